/** The built-in job types: the demo jobs the tests and the dashboard use, and junit.import. */
import { Registry } from "../registry.js";
import { demoFail, demoHang, demoMemory, demoPermanent, demoSleep } from "./demo.js";
import { FLOW_DEMO_TYPES } from "./flows.js";
import { junitImport } from "./junit.js";

export const BUILTIN_TYPES = [demoSleep, demoFail, demoPermanent, demoMemory, demoHang, junitImport, ...FLOW_DEMO_TYPES] as const;

export function builtinRegistry(): Registry {
  return new Registry().register(...BUILTIN_TYPES);
}
