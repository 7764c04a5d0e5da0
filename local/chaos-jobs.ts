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
 * - chaos.unstorable (Lambda): returns a result DynamoDB cannot hold (a Date, or NaN). It must
 *   end failed (`invalid_result`, or `store_rejected` had DynamoDB been the one to refuse) after
 *   one handler start: retrying cannot make the result storable, so the work is never re-run.
 * - chaos.oversize (Fargate): an input and a checkpoint at their limits, then a result one byte
 *   over its own. Same ending as above: a result that cannot be stored is never retried.
 * - chaos.nearlimit (Fargate): an input and a checkpoint at their limits (each stored as a value
 *   item of its own, core/values.ts, though together they would not fit one DynamoDB item); then
 *   a checkpoint one byte over the limit, which the runner refuses to the handler with a
 *   TooLargeError. The handler catches it and succeeds, and the job keeps the one at the limit.
 * - chaos.steps and chaos.long with `checkpointPad`: checkpoints too large for the record, so
 *   every one is a value item written before the fenced record write that names it, under the
 *   same wire faults: the checks see that an attempt resumes from the checkpoint the record
 *   named, never one a worker wrote after losing its lease.
 *
 * Loaded into worker processes through WARDEN_EXTRA_JOBS (see `setup`).
 */
import { z } from "zod";
import { LIMITS } from "../core/config.js";
import { PermanentError, TooLargeError } from "../core/errors.js";
import { AbortedError, pause } from "../core/jobs/abort.js";
import { defineJob, type JobContext, type JobType, type Registry } from "../core/registry.js";
import type { Services } from "../core/services.js";
import { record } from "./chaos-ledger.js";

const stepsInput = z
  .object({
    steps: z.number().int().min(1).max(1000),
    stepMs: z.number().int().min(0).max(10_000),
    stallMs: z.number().int().min(0).max(60_000).optional(),
    checkpointPad: z.number().int().min(0).max(16_384).optional(),
  })
  .strict();
type StepsInput = z.infer<typeof stepsInput>;
export interface StepsResult {
  steps: number;
  sum: number;
}

/** What a steps job must end with: the checks recompute it. */
export const expectedSum = (steps: number): number => (steps * (steps - 1)) / 2;

type StepsCheckpoint = { next: number; pad?: string };

async function runSteps(input: StepsInput, ctx: JobContext<StepsCheckpoint>): Promise<StepsResult> {
  const resume = ctx.resumeFrom?.next ?? 0;
  const pad = input.checkpointPad ? { pad: "c".repeat(input.checkpointPad) } : {};
  record({ k: "start", job: ctx.jobId, attempt: ctx.attempt, resume, pid: process.pid, at: Date.now() });
  for (let step = resume; step < input.steps; step++) {
    const full = await pause(input.stepMs, ctx.signal);
    if (!full) {
      ctx.checkpoint({ next: step, ...pad });
      throw new AbortedError(ctx.signal.reason);
    }
    record({ k: "step", job: ctx.jobId, attempt: ctx.attempt, step, pid: process.pid, at: Date.now() });
    ctx.progress(step + 1, input.steps);
    ctx.checkpoint({ next: step + 1, ...pad });
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

export const chaosSteps = defineJob<StepsInput, StepsResult, StepsCheckpoint>({
  name: "chaos.steps",
  input: stepsInput,
  runsOn: "lambda",
  canMoveToLarge: false,
  limits: CHAOS_LIMITS,
  handler: runSteps,
});

export const chaosLong = defineJob<StepsInput, StepsResult, StepsCheckpoint>({
  name: "chaos.long",
  input: stepsInput,
  runsOn: "fargate",
  limits: CHAOS_LIMITS,
  handler: runSteps,
});

export const chaosStall = defineJob<StepsInput, StepsResult, StepsCheckpoint>({
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

export const chaosUnstorable = defineJob<{ kind: "date" | "nan" }, unknown>({
  name: "chaos.unstorable",
  input: z.object({ kind: z.enum(["date", "nan"]) }).strict(),
  runsOn: "lambda",
  canMoveToLarge: false,
  limits: CHAOS_LIMITS,
  async handler(input, ctx) {
    record({ k: "start", job: ctx.jobId, attempt: ctx.attempt, resume: 0, pid: process.pid, at: Date.now() });
    record({ k: "done", job: ctx.jobId, attempt: ctx.attempt, pid: process.pid, at: Date.now() });
    return input.kind === "date" ? { finishedAt: new Date() } : { ratio: Number.NaN };
  },
});

/**
 * Values at their limits (LIMITS in core/config.ts), as strings: each is its own item, so it is
 * the JSON limit alone that decides, whatever else the job holds.
 */
export const BIG = {
  input: LIMITS.maxInputBytes - 64,
  checkpoint: LIMITS.maxCheckpointBytes - 32,
  result: LIMITS.maxResultBytes,
} as const;

const bigInput = z.object({ text: z.string(), checkpointText: z.number().int().min(0), resultText: z.number().int().min(0) }).strict();

export const chaosOversize = defineJob<z.infer<typeof bigInput>, { text: string }, { text: string }>({
  name: "chaos.oversize",
  input: bigInput,
  runsOn: "fargate",
  limits: CHAOS_LIMITS,
  async handler(input, ctx) {
    record({ k: "start", job: ctx.jobId, attempt: ctx.attempt, resume: 0, pid: process.pid, at: Date.now() });
    ctx.checkpoint({ text: "y".repeat(input.checkpointText) });
    record({ k: "done", job: ctx.jobId, attempt: ctx.attempt, pid: process.pid, at: Date.now() });
    // Just over the result's own limit: refused before any write, and never re-run for it.
    return { text: "z".repeat(input.resultText) };
  },
});

export interface NearLimitResult {
  /** The larger checkpoint was refused to the handler (TooLargeError), as it must be. */
  refused: boolean;
  bytes?: number;
}

const nearInput = z.object({ text: z.string(), keep: z.number().int().min(0), over: z.number().int().min(0), holdMs: z.number().int().min(0).max(10_000) }).strict();

export const chaosNearLimit = defineJob<z.infer<typeof nearInput>, NearLimitResult, { text: string }>({
  name: "chaos.nearlimit",
  input: nearInput,
  runsOn: "fargate",
  limits: CHAOS_LIMITS,
  async handler(input, ctx) {
    record({ k: "start", job: ctx.jobId, attempt: ctx.attempt, resume: 0, pid: process.pid, at: Date.now() });
    ctx.checkpoint({ text: "k".repeat(input.keep) });
    // Optionally long enough for a heartbeat to carry it; the final write carries it either way.
    if (input.holdMs > 0 && !(await pause(input.holdMs, ctx.signal))) throw new AbortedError(ctx.signal.reason);
    let out: NearLimitResult = { refused: false };
    try {
      ctx.checkpoint({ text: "o".repeat(input.over) });
    } catch (e) {
      if (!(e instanceof TooLargeError)) throw e;
      record({ k: "refused", job: ctx.jobId, attempt: ctx.attempt, bytes: e.bytes, pid: process.pid, at: Date.now() });
      out = { refused: true, bytes: e.bytes };
    }
    record({ k: "done", job: ctx.jobId, attempt: ctx.attempt, pid: process.pid, at: Date.now() });
    return out;
  },
});

/** The chaos run's Lambda process claims as this worker, and its death event names the same id. */
export const chaosLambdaWorkerId = (pid: number | undefined): string => `lambda:chaos-${pid ?? "?"}`;

export const CHAOS_TYPES: JobType<any, any, any>[] = [chaosSteps, chaosLong, chaosStall, chaosFlaky, chaosDoomed, chaosUnstorable, chaosOversize, chaosNearLimit];

/** What each type must end as, whatever the chaos did to it (a caller's cancel aside). */
export const EXPECTED_STATUS: Record<string, "succeeded" | "failed"> = {
  "chaos.steps": "succeeded",
  "chaos.long": "succeeded",
  "chaos.stall": "succeeded",
  "chaos.flaky": "succeeded",
  "chaos.doomed": "failed",
  "chaos.unstorable": "failed",
  "chaos.oversize": "failed",
  "chaos.nearlimit": "succeeded",
};

/** Types whose handler returns what cannot be stored: they fail with one of these codes, never re-run for it. */
export const UNSTORABLE_TYPES = new Set(["chaos.unstorable", "chaos.oversize"]);
export const UNSTORABLE_CODES = new Set(["invalid_result", "store_rejected"]);

export function registerChaosJobs(registry: Registry): Registry {
  return registry.register(...CHAOS_TYPES);
}

/**
 * The WARDEN_EXTRA_JOBS hook: a worker process loads this module and calls `setup` with its
 * services before it starts. It registers the chaos types and records in the ledger which
 * worker id this process's claims carry (a Fargate worker's comes from WARDEN_WORKER_ID), so the
 * checks can tell which process each claim DynamoDB applied belongs to.
 */
export function setup(services: Pick<Services, "registry">, worker: string | undefined = process.env.WARDEN_WORKER_ID): void {
  registerChaosJobs(services.registry);
  const role = process.env.WARDEN_CHAOS_ROLE === "lambda" ? "lambda" : "fargate";
  record({ k: "proc", role, ...(worker ? { worker } : {}), pid: process.pid, at: Date.now() });
}
