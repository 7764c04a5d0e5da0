/**
 * The job types every entry point runs: the built-in ones (core/jobs) and the team's own
 * (jobs/index.ts, a file Warden never edits). The API validates submissions against it and the
 * workers run its handlers, so a type registered here exists everywhere at once.
 */
import { builtinRegistry } from "../core/jobs/index.js";
import type { Registry } from "../core/registry.js";
import { jobs } from "../jobs/index.js";

/** `env` names what the built-in types reach (demo.effects' table): the process's own, or the local system's. */
export function appRegistry(env: Record<string, string | undefined> = process.env): Registry {
  const registry = builtinRegistry(env);
  for (const t of jobs) {
    if (registry.get(t.name)) throw new Error(`jobs/index.ts: job type "${t.name}" is already defined (a built-in type or listed twice)`);
    registry.register(t);
  }
  return registry;
}
