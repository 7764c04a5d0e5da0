/** The built-in job types: the demo jobs the tests and the dashboard use, and junit.import; demo.effects beside them writes to the stage's effects table. */
import { Registry } from "../registry.js";
import { demoFail, demoHang, demoMemory, demoPermanent, demoSleep } from "./demo.js";
import { stageEffectsDemo } from "./effects.js";
import { FLOW_DEMO_TYPES } from "./flows.js";
import { junitImport } from "./junit.js";

export const BUILTIN_TYPES = [demoSleep, demoFail, demoPermanent, demoMemory, demoHang, junitImport, ...FLOW_DEMO_TYPES] as const;

/** The built-in types, with demo.effects reaching the effects table `env` names (core/jobs/effects.ts). */
export function builtinRegistry(env: Record<string, string | undefined> = process.env): Registry {
  return new Registry().register(...BUILTIN_TYPES, stageEffectsDemo(env));
}
