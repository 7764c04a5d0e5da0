/**
 * Run a job type's handler against a fake context, with no AWS and no worker: for testing your
 * own job types. It validates the input as a submission would, records every progress report and
 * checkpoint, resumes from a checkpoint you give it, and fires the signal when you say (after a
 * number of checkpoints, or a time), so a test can show that a handler stops where it should and
 * resumes where it stopped.
 *
 *   const run = await runHandler(myJob, { items: 10 }, { abortAfterCheckpoints: 2 });
 *   expect(run.aborted).toBe("shutdown");
 *   const resumed = await runHandler(myJob, { items: 10 }, { resumeFrom: run.lastCheckpoint });
 */
import { effectKey } from "./fence.js";
import { checkSize } from "./store.js";
import { LIMITS } from "./config.js";
import type { Progress } from "./job.js";
import { Registry, WaitRequest, type AbortReason, type ChildrenView, type JobContext, type JobLogger, type JobType } from "./registry.js";
import type { ChildRequest } from "./child-specs.js";
import type { FlowPolicy } from "./flow.js";

export interface RunHandlerOptions<C> {
  /** The checkpoint an earlier attempt saved; `ctx.resumeFrom`. */
  resumeFrom?: C;
  attempt?: number;
  /** `ctx.fence.token`: the attempt's fencing token; its attempt number by default. */
  token?: number;
  /** Fire the signal right after the handler's Nth checkpoint. */
  abortAfterCheckpoints?: number;
  /** Fire the signal this many milliseconds after the start. */
  abortAfterMs?: number;
  /** Why the signal fires (`signal.reason`); shutdown by default. */
  abortReason?: AbortReason;
  /** What `ctx.remainingMs()` starts from; the type's soft limit by default. */
  remainingMs?: number;
  /** What `ctx.children()` answers: the children of a round that ended, as a resumed parent sees them. */
  children?: ChildrenView;
}

export interface HandlerRun<R, C> {
  /** The handler's return value, when it returned. */
  result?: R;
  /** What it threw, when it threw. */
  error?: unknown;
  /** The signal's reason, when it fired. */
  aborted?: AbortReason;
  progress: Progress[];
  checkpoints: C[];
  lastCheckpoint?: C;
  logs: { level: "info" | "warn" | "error"; message: string; extra?: Record<string, unknown> }[];
  /** The children the handler spawned, as it asked for them. */
  spawned: ChildRequest[];
  /** True when the handler returned ctx.wait(): in Warden it would wait for `spawned`. */
  waited?: { policy: FlowPolicy };
}

/** The job id `runHandler` gives its context (`ctx.jobId`, `ctx.fence.jobId`, the prefix of `ctx.effectKey`). */
export const TEST_JOB_ID = "TESTJOB0000000000000000000";

export async function runHandler<I, R, C>(type: JobType<I, R, C>, input: unknown, o: RunHandlerOptions<C> = {}): Promise<HandlerRun<R, C>> {
  // The registry's own validation, so the refusal is the one a submission gets.
  const parsed = new Registry().register(type).parseInput(type.name, input);
  const run: HandlerRun<R, C> = { progress: [], checkpoints: [], logs: [], spawned: [] };
  const ac = new AbortController();
  const abort = () => {
    if (ac.signal.aborted) return;
    run.aborted = o.abortReason ?? "shutdown";
    ac.abort(run.aborted);
  };
  const timer = o.abortAfterMs !== undefined ? setTimeout(abort, o.abortAfterMs) : undefined;
  const started = Date.now();
  const log = (level: "info" | "warn" | "error"): JobLogger[typeof level] => (message, extra) => run.logs.push({ level, message, ...(extra ? { extra } : {}) });
  const ctx: JobContext<C> = {
    jobId: TEST_JOB_ID,
    attempt: o.attempt ?? 1,
    fence: { jobId: TEST_JOB_ID, token: o.token ?? o.attempt ?? 1 },
    effectKey: (step) => effectKey(TEST_JOB_ID, step),
    progress: (done, total, message) => run.progress.push({ done, ...(total !== undefined ? { total } : {}), ...(message !== undefined ? { message } : {}) }),
    checkpoint: (value) => {
      // The same bound the worker enforces, so a test sees the refusal a worker would give.
      checkSize("the checkpoint", value, LIMITS.maxCheckpointBytes);
      const copy = structuredClone(value);
      run.checkpoints.push(copy);
      run.lastCheckpoint = copy;
      if (o.abortAfterCheckpoints !== undefined && run.checkpoints.length >= o.abortAfterCheckpoints) abort();
    },
    resumeFrom: o.resumeFrom,
    signal: ac.signal,
    remainingMs: () => Math.max(0, (o.remainingMs ?? type.limits.softLimitMs) - (Date.now() - started)),
    log: { info: log("info"), warn: log("warn"), error: log("error") },
    spawn: (children) => void run.spawned.push(...children),
    wait: (w = {}) => new WaitRequest(w.policy ?? "collect"),
    children: async () => o.children,
  };
  try {
    const out = await type.handler(parsed.input as I, ctx);
    if (out instanceof WaitRequest) run.waited = { policy: out.policy };
    else run.result = out;
  } catch (e) {
    run.error = e;
  } finally {
    clearTimeout(timer);
  }
  return run;
}
