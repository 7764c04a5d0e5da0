/** The built-in job types: the demo jobs the tests and the dashboard use, and junit.import. */
import { Registry } from "../registry.js";
import { demoFail, demoHang, demoMemory, demoPermanent, demoSleep } from "./demo.js";
import { junitImport } from "./junit.js";

export const BUILTIN_TYPES = [demoSleep, demoFail, demoPermanent, demoMemory, demoHang, junitImport] as const;

export function builtinRegistry(): Registry {
  return new Registry().register(...BUILTIN_TYPES);
}
