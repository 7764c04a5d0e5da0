/**
 * Job types for the chaos run. Each records its side effects in the chaos ledger, so the checks
 * can tell what was done, by which attempt, and how much was redone after a crash.
 *
 * - chaos.steps (Lambda) and chaos.long (Fargate): `steps` units of `stepMs`, a checkpoint after
 *   each, resumed from the checkpoint; succeed with a result the checks can recompute.
 * - chaos.flaky: its first `failTimes` attempts throw an ordinary error; then it succeeds.
 * - chaos.doomed: throws a PermanentError: it must end failed, never succeeded.
 * - chaos.stall (Fargate): on its first attempt, after its last step, freezes its whole process
 *   (a synchronous wait: no timers, no heartbeats, like a long GC pause) for `stallMs`, longer
 *   than the lease, then returns as if nothing happened. Another worker takes the job over
 *   meanwhile; only the fence stops the frozen one from committing a second result.
 *
 * Loaded into worker processes through WARDEN_EXTRA_JOBS (see `setup`).
 */
import { z } from "zod";
import { PermanentError } from "../core/errors.js";
import { AbortedError, pause } from "../core/jobs/abort.js";
import { defineJob, type JobContext, type JobType, type Registry } from "../core/registry.js";
import type { Services } from "../core/services.js";
import { installFromEnv } from "./chaos-faults.js";
import { record } from "./chaos-ledger.js";

const stepsInput = z
  .object({
    steps: z.number().int().min(1).max(1000),
    stepMs: z.number().int().min(0).max(10_000),
    stallMs: z.number().int().min(0).max(60_000).optional(),
  })
  .strict();
type StepsInput = z.infer<typeof stepsInput>;
export interface StepsResult {
  steps: number;
  sum: number;
}

/** What a steps job must end with: the checks recompute it. */
export const expectedSum = (steps: number): number => (steps * (steps - 1)) / 2;

async function runSteps(input: StepsInput, ctx: JobContext<{ next: number }>): Promise<StepsResult> {
  const resume = ctx.resumeFrom?.next ?? 0;
  record({ k: "start", job: ctx.jobId, attempt: ctx.attempt, resume, pid: process.pid, at: Date.now() });
  for (let step = resume; step < input.steps; step++) {
    const full = await pause(input.stepMs, ctx.signal);
    if (!full) {
      ctx.checkpoint({ next: step });
      throw new AbortedError(ctx.signal.reason);
    }
    record({ k: "step", job: ctx.jobId, attempt: ctx.attempt, step, pid: process.pid, at: Date.now() });
    ctx.progress(step + 1, input.steps);
    ctx.checkpoint({ next: step + 1 });
  }
  // Frozen right before returning, the worker cannot learn of its lost lease first: the runner goes
  // straight from the handler's return to the succeed write, and only the fence can refuse it.
  if (input.stallMs && ctx.attempt === 1) freeze(input.stallMs);
  record({ k: "done", job: ctx.jobId, attempt: ctx.attempt, pid: process.pid, at: Date.now() });
  return { steps: input.steps, sum: expectedSum(input.steps) };
}

/** Blocks the whole thread: the event loop, its timers and the heartbeats stop with it. */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const CHAOS_LIMITS = { maxAttempts: 20, backoffBaseMs: 200, backoffMaxMs: 2_000, timeoutMs: 30 * 60_000 };

export const chaosSteps = defineJob<StepsInput, StepsResult, { next: number }>({
  name: "chaos.steps",
  input: stepsInput,
  runsOn: "lambda",
  canMoveToLarge: false,
  limits: CHAOS_LIMITS,
  handler: runSteps,
});

export const chaosLong = defineJob<StepsInput, StepsResult, { next: number }>({
  name: "chaos.long",
  input: stepsInput,
  runsOn: "fargate",
  limits: CHAOS_LIMITS,
  handler: runSteps,
});

export const chaosStall = defineJob<StepsInput, StepsResult, { next: number }>({
  name: "chaos.stall",
  input: stepsInput,
  runsOn: "fargate",
  limits: CHAOS_LIMITS,
  handler: runSteps,
});

export const chaosFlaky = defineJob<{ failTimes: number }, { attempt: number }>({
  name: "chaos.flaky",
  input: z.object({ failTimes: z.number().int().min(0).max(5) }).strict(),
  runsOn: "lambda",
  canMoveToLarge: false,
  limits: CHAOS_LIMITS,
  async handler(input, ctx) {
    record({ k: "start", job: ctx.jobId, attempt: ctx.attempt, resume: 0, pid: process.pid, at: Date.now() });
    if (ctx.attempt <= input.failTimes) throw new Error(`chaos.flaky: attempt ${ctx.attempt} fails on purpose`);
    record({ k: "done", job: ctx.jobId, attempt: ctx.attempt, pid: process.pid, at: Date.now() });
    return { attempt: ctx.attempt };
  },
});

export const chaosDoomed = defineJob<Record<string, never>, never>({
  name: "chaos.doomed",
  input: z.object({}).strict(),
  runsOn: "lambda",
  canMoveToLarge: false,
  limits: CHAOS_LIMITS,
  async handler(_input, ctx) {
    record({ k: "start", job: ctx.jobId, attempt: ctx.attempt, resume: 0, pid: process.pid, at: Date.now() });
    throw new PermanentError("chaos.doomed can never succeed");
  },
});

export const CHAOS_TYPES: JobType<any, any, any>[] = [chaosSteps, chaosLong, chaosStall, chaosFlaky, chaosDoomed];

/** What each type must end as, whatever the chaos did to it. */
export const EXPECTED_STATUS: Record<string, "succeeded" | "failed"> = {
  "chaos.steps": "succeeded",
  "chaos.long": "succeeded",
  "chaos.stall": "succeeded",
  "chaos.flaky": "succeeded",
  "chaos.doomed": "failed",
};

export function registerChaosJobs(registry: Registry): Registry {
  return registry.register(...CHAOS_TYPES);
}

/**
 * The WARDEN_EXTRA_JOBS hook: a worker process loads this module and calls `setup` with its
 * services before it starts. It registers the chaos types and, when WARDEN_CHAOS_FAULTS is set,
 * puts the fault middleware between the worker and DynamoDB.
 */
export function setup(services: Pick<Services, "registry" | "doc">): void {
  registerChaosJobs(services.registry);
  installFromEnv(services.doc);
}
