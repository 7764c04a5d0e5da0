/** The built-in job types (demo jobs and junit.import). The workers helper fills this in. */
import { Registry } from "../registry.js";

export function builtinRegistry(): Registry {
  return new Registry();
}
