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
 * - chaos.effects (Fargate): a fenced row per step in a downstream table of the run's own; its
 *   first attempt asks the run to SIGSTOP it before its middle step's write, and is continued
 *   only once a later attempt has written that row, so the fence must refuse its write.
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
 * - chaos.evaluate (Lambda): a flow, modelled on an evaluation job that is a set of executions (regions × models ×
 *   questions, one execution each). Its first run spawns one execution per combination and
 *   waits; the run after they all ended combines their outcomes as demo.evaluate does (counts
 *   from ctx.children, the mean score of the succeeded ones). Some executions are `doomed` (fail
 *   for good) and some `flaky` (fail their first attempt), by key; the checks derive every
 *   child's id, type and expected end from the parent's input (`executionsOf`).
 * - chaos.execution (Lambda) and chaos.execution.large (Fargate): one execution, `stepMs` long,
 *   answering a score the checks recompute; the models alternate between the two, so both kinds
 *   of worker (and both kinds of kill) run children.
 * - chaos.tick (Lambda): a schedule's tick (core/schedules.ts), a short steps job the sweeper
 *   creates once per tick of the run's schedule; a type of its own, so every job of it in the
 *   table must be the job of one tick (its id derived from the tick).
 *
 * Every handler records its start and, registered through `tracked`, its end however it ends, so
 * the checks know the interval each handler ran in: the keyed jobs' concurrency limit is checked
 * on them. Jobs of KEYED_TYPES may carry the run's concurrency key (`--keyed-share`).
 *
 * Loaded into worker processes through WARDEN_EXTRA_JOBS (see `setup`).
 */
import { z } from "zod";
import { LIMITS } from "../core/config.js";
import { PermanentError, TooLargeError } from "../core/errors.js";
import { AbortedError, pause } from "../core/jobs/abort.js";
import { defineJob, type JobContext, type JobType, type Registry } from "../core/registry.js";
import type { Services } from "../core/services.js";
import { breakIfAsked } from "./chaos-broken.js";
import { LEDGER_ENV, record } from "./chaos-ledger.js";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { PutCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { dynamoClient } from "../core/aws.js";
import { loadEndpoints } from "../core/runtime.js";
import { FencedOutError, fencedPut, isFencedOut } from "../core/fence.js";

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

/**
 * The type with its handler's end recorded, however it ends (returned, threw, aborted): with the
 * start each handler records first, the interval the handler ran in.
 */
function tracked<I, R, C>(t: JobType<I, R, C>): JobType<I, R, C> {
  return {
    ...t,
    async handler(input, ctx) {
      let threw = true;
      try {
        const out = await t.handler(input, ctx);
        threw = false;
        return out;
      } finally {
        record({ k: "end", job: ctx.jobId, attempt: ctx.attempt, threw, pid: process.pid, at: Date.now() });
      }
    },
  };
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

/** The downstream table chaos.effects writes to (local/chaos.ts makes it), reached like the store: through the wire-fault proxy. */
export const EFFECTS_TABLE_ENV = "WARDEN_CHAOS_EFFECTS_TABLE";
let effectsDoc: DynamoDBDocumentClient | undefined;
const effectsClient = (): DynamoDBDocumentClient =>
  (effectsDoc ??= dynamoClient(loadEndpoints()));

const effectsInput = z.object({ steps: z.number().int().min(1).max(100), stepMs: z.number().int().min(0).max(10_000) }).strict();
type EffectsInput = z.infer<typeof effectsInput>;

/**
 * chaos.effects (Fargate): `steps` steps, each one fenced write of its row to the downstream
 * table (keyed by ctx.effectKey, so a step re-run rewrites its row), then a checkpoint. Its first
 * attempt, right before the write of its middle step, asks the run to freeze its process
 * (`freezeRequest`): the run SIGSTOPs it, lets another worker take the job over and write that
 * row, and only then SIGCONTs it, so its write comes last and the fence must refuse it. A refused
 * write ends the attempt.
 */
async function runEffects(input: EffectsInput, ctx: JobContext<{ next: number }>): Promise<{ steps: number }> {
  const table = process.env[EFFECTS_TABLE_ENV];
  if (!table) throw new PermanentError(`${EFFECTS_TABLE_ENV} is not set: the chaos run makes the downstream table`);
  const resume = ctx.resumeFrom?.next ?? 0;
  record({ k: "start", job: ctx.jobId, attempt: ctx.attempt, resume, pid: process.pid, at: Date.now() });
  for (let step = resume; step < input.steps; step++) {
    if (!(await pause(input.stepMs, ctx.signal))) throw new AbortedError(ctx.signal.reason);
    const id = ctx.effectKey(`step/${step}`);
    if (ctx.attempt === 1 && step === Math.floor(input.steps / 2)) awaitFreeze({ job: ctx.jobId, id, token: ctx.fence.token });
    const item = { id, job: ctx.jobId, step, attempt: ctx.attempt };
    try {
      await effectsClient().send(new PutCommand({ TableName: table, ...fencedPut(ctx.fence, item) }));
    } catch (e) {
      if (!isFencedOut(e)) throw e;
      record({ k: "effect", job: ctx.jobId, attempt: ctx.attempt, step, token: ctx.fence.token, refused: true, pid: process.pid, at: Date.now() });
      throw new FencedOutError(ctx.fence, e);
    }
    record({ k: "effect", job: ctx.jobId, attempt: ctx.attempt, step, token: ctx.fence.token, refused: false, pid: process.pid, at: Date.now() });
    record({ k: "step", job: ctx.jobId, attempt: ctx.attempt, step, pid: process.pid, at: Date.now() });
    ctx.checkpoint({ next: step + 1 });
  }
  record({ k: "done", job: ctx.jobId, attempt: ctx.attempt, pid: process.pid, at: Date.now() });
  return { steps: input.steps };
}

/** What a chaos.effects attempt asks the run to freeze it for: the row it is about to write, under its token. */
export interface FreezeRequest {
  job: string;
  id: string;
  token: number;
}

/** The file a process writes to ask the run (local/chaos.ts) to SIGSTOP it; undefined outside a chaos run. */
export function freezeRequest(pid: number, ledger: string | undefined = process.env[LEDGER_ENV]): string | undefined {
  return ledger ? join(dirname(ledger), `freeze-${pid}.json`) : undefined;
}

/**
 * Asks to be frozen and blocks the whole thread (no heartbeats) until the run has answered by
 * taking the request away: after a SIGSTOP and SIGCONT once the job moved on, or at once when no
 * other worker could take the job over. Bounded, so a run that never answers cannot hang it.
 */
function awaitFreeze(r: FreezeRequest, maxMs = 90_000): void {
  const file = freezeRequest(process.pid);
  if (!file) return;
  writeFileSync(file, JSON.stringify(r));
  const until = Date.now() + maxMs;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  while (existsSync(file) && Date.now() < until) Atomics.wait(cell, 0, 0, 20);
  rmSync(file, { force: true });
}

export const chaosEffects = defineJob<EffectsInput, { steps: number }, { next: number }>({
  name: "chaos.effects",
  input: effectsInput,
  runsOn: "fargate",
  limits: CHAOS_LIMITS,
  handler: runEffects,
});

/** A schedule's tick (local/chaos.ts `scheduleEveryMs`): a short steps job, of its own type. */
export const chaosTick = defineJob<StepsInput, StepsResult, StepsCheckpoint>({
  name: "chaos.tick",
  input: stepsInput,
  runsOn: "lambda",
  canMoveToLarge: false,
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

// ─── a flow: an evaluation and its executions (an evaluation fanned out) ─────────────────────────────────────

const executionInput = z
  .object({
    region: z.string().max(64),
    model: z.string().max(64),
    question: z.string().max(200),
    stepMs: z.number().int().min(0).max(10_000),
    /** Attempts that fail (an ordinary error) before one succeeds. */
    failTimes: z.number().int().min(0).max(5),
    /** Fails for good (a PermanentError): the execution must end failed, its parent still combines. */
    doomed: z.boolean(),
  })
  .strict();
type ExecutionInput = z.infer<typeof executionInput>;
export interface ExecutionResult {
  answer: string;
  score: number;
}

/** The score an execution answers: the checks recompute it, and the parent's mean from it. */
export const executionScore = (region: string, model: string, question: string): number =>
  [...`${region}/${model}/${question}`].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) % 101, 7);

async function runExecution(input: ExecutionInput, ctx: JobContext): Promise<ExecutionResult> {
  record({ k: "start", job: ctx.jobId, attempt: ctx.attempt, resume: 0, pid: process.pid, at: Date.now() });
  if (!(await pause(input.stepMs, ctx.signal))) throw new AbortedError(ctx.signal.reason);
  if (input.doomed) throw new PermanentError(`model ${input.model} cannot answer "${input.question}" in ${input.region}`);
  if (ctx.attempt <= input.failTimes) throw new Error(`chaos.execution: attempt ${ctx.attempt} fails on purpose`);
  record({ k: "done", job: ctx.jobId, attempt: ctx.attempt, pid: process.pid, at: Date.now() });
  return { answer: `${input.model} in ${input.region}: ${input.question}`, score: executionScore(input.region, input.model, input.question) };
}

export const chaosExecution = defineJob<ExecutionInput, ExecutionResult>({
  name: "chaos.execution",
  input: executionInput,
  runsOn: "lambda",
  canMoveToLarge: false,
  limits: CHAOS_LIMITS,
  handler: runExecution,
});

export const chaosExecutionLarge = defineJob<ExecutionInput, ExecutionResult>({
  name: "chaos.execution.large",
  input: executionInput,
  runsOn: "fargate",
  limits: CHAOS_LIMITS,
  handler: runExecution,
});

export const EXECUTION_TYPES = new Set([chaosExecution.name, chaosExecutionLarge.name]);

const evaluateInput = z
  .object({
    regions: z.array(z.string().max(64)).min(1).max(20),
    models: z.array(z.string().max(64)).min(1).max(20),
    questions: z.array(z.string().max(200)).min(1).max(100),
    stepMs: z.number().int().min(0).max(10_000),
    /** Executions (by key, `region/model/question`) that fail for good, and that fail their first attempt. */
    doomed: z.array(z.string().max(400)).max(1_000),
    flaky: z.array(z.string().max(400)).max(1_000),
  })
  .strict();
export type EvaluateInput = z.infer<typeof evaluateInput>;
/** What an evaluation ends with (demo.evaluate's result). */
export interface EvaluationResult {
  executions: number;
  succeeded: number;
  failed: number;
  meanScore: number | null;
}

/** One child of an evaluation, as its handler spawns it: its place in the round, key, type and input. */
export interface Execution {
  index: number;
  key: string;
  type: string;
  input: ExecutionInput;
}

/** The executions an evaluation spawns, in spawn order (the index is the child's place in its round). */
export function executionsOf(input: EvaluateInput): Execution[] {
  const doomed = new Set(input.doomed);
  const flaky = new Set(input.flaky);
  const out: Execution[] = [];
  for (const region of input.regions)
    input.models.forEach((model, m) => {
      for (const question of input.questions) {
        const key = `${region}/${model}/${question}`;
        const type = m % 2 === 0 ? chaosExecution.name : chaosExecutionLarge.name;
        out.push({ index: out.length, key, type, input: { region, model, question, stepMs: input.stepMs, failTimes: flaky.has(key) ? 1 : 0, doomed: doomed.has(key) } });
      }
    });
  return out;
}

export const chaosEvaluate = defineJob<EvaluateInput, EvaluationResult>({
  name: "chaos.evaluate",
  input: evaluateInput,
  runsOn: "lambda",
  canMoveToLarge: false,
  limits: CHAOS_LIMITS,
  async handler(input, ctx) {
    record({ k: "start", job: ctx.jobId, attempt: ctx.attempt, resume: 0, pid: process.pid, at: Date.now() });
    const done = await ctx.children();
    if (!done) {
      ctx.spawn(executionsOf(input).map((e) => ({ type: e.type, key: e.key, input: e.input })));
      return ctx.wait({ policy: "collect" });
    }
    // Combined as demo.evaluate combines: the counts ctx.children gives, the scores page by page.
    let scores: number[] = [];
    for (let page = done; ; ) {
      scores = scores.concat(page.children.flatMap((c) => (c.status === "succeeded" ? [(c.result as ExecutionResult).score] : [])));
      if (page.next === null) break;
      page = (await ctx.children({ from: page.next }))!;
    }
    record({ k: "done", job: ctx.jobId, attempt: ctx.attempt, pid: process.pid, at: Date.now() });
    return { executions: done.counts.total, succeeded: done.counts.succeeded, failed: done.counts.failed, meanScore: scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : null };
  },
});

/** The chaos run's Lambda process claims as this worker, and its death event names the same id. */
export const chaosLambdaWorkerId = (pid: number | undefined): string => `lambda:chaos-${pid ?? "?"}`;

/** As the workers register them: each handler's end recorded (`tracked`). */
export const CHAOS_TYPES: JobType<any, any, any>[] = [chaosSteps, chaosLong, chaosStall, chaosTick, chaosEffects, chaosFlaky, chaosDoomed, chaosUnstorable, chaosOversize, chaosNearLimit, chaosEvaluate, chaosExecution, chaosExecutionLarge].map((t: JobType<any, any, any>) => tracked(t));

/**
 * The types that may carry the run's concurrency key (`keyedShare`): Lambda and Fargate ones, a
 * retried one, a failed one, and the frozen-worker one (its handler runs on past its lease; the
 * check counts a handler only while its run holds its slot, local/chaos-check.ts section 9).
 */
export const KEYED_TYPES = new Set(["chaos.steps", "chaos.long", "chaos.flaky", "chaos.doomed", "chaos.stall"]);

/** What each type must end as, whatever the chaos did to it (a caller's cancel aside). */
export const EXPECTED_STATUS: Record<string, "succeeded" | "failed"> = {
  "chaos.steps": "succeeded",
  "chaos.long": "succeeded",
  "chaos.stall": "succeeded",
  "chaos.effects": "succeeded",
  "chaos.tick": "succeeded",
  "chaos.flaky": "succeeded",
  "chaos.doomed": "failed",
  "chaos.unstorable": "failed",
  "chaos.oversize": "failed",
  "chaos.nearlimit": "succeeded",
  "chaos.evaluate": "succeeded",
  // A doomed execution must fail instead (expectedStatus).
  "chaos.execution": "succeeded",
  "chaos.execution.large": "succeeded",
};

/** What one job must end as: its type's end, or failed for a doomed execution. */
export function expectedStatus(type: string, input: Record<string, unknown>): "succeeded" | "failed" | undefined {
  if (EXECUTION_TYPES.has(type) && input.doomed === true) return "failed";
  return EXPECTED_STATUS[type];
}

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
  breakIfAsked();
  const role = process.env.WARDEN_CHAOS_ROLE === "lambda" ? "lambda" : "fargate";
  record({ k: "proc", role, ...(worker ? { worker } : {}), pid: process.pid, at: Date.now() });
}
