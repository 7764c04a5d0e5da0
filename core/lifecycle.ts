/**
 * The job lifecycle as data: from the state a write read (or a worker's lease holds) and an
 * event, each function here computes the next state and the condition the write needs. Nothing
 * here does I/O; `store.ts` turns a Change into one conditional write and returns what it wrote.
 * Every change is checked against the one table of transitions in job.ts, so a new state (a
 * parent waiting for its children, a job parked behind a limit) is a new row and a new function
 * here, not a new code path in the store.
 *
 * Conditions (`Guard`):
 * - `absent`: the id must be new (create);
 * - `version`: decided from a read, so nothing may have changed since (claims, the sweeper, the
 *   API's cancel and retry): every write bumps the version, so no decision made on an older read
 *   can land (no ABA through cancel, retry or a heartbeat);
 * - `fence`: a worker's write under its lease: the job must still be running under its token.
 */
import { LIMITS, storedPriority, TIMINGS, type Priority, type QueueName } from "./config.js";
import type { Flow, FlowPolicy, ParentLink } from "./flow.js";
import { holdPartition, holdRecheckMs, type Hold } from "./gates.js";
import {
  ATTEMPT_MESSAGE_CHARS,
  canTransition,
  isTerminal,
  type AttemptRecord,
  type CancelledJob,
  type FailedJob,
  type HeldSlots,
  type Job,
  type JobAction,
  type JobError,
  type Outcome,
  type Progress,
  type QueuedJob,
  readyAtOf,
  ringsOf,
  type RunningJob,
  type SucceededJob,
  type TransitionName,
  TRANSITIONS,
  type WaitingJob,
} from "./job.js";

export interface Clock {
  now: number;
  startDeadlineMs: number;
  cancelGraceMs: number;
  retentionDays: number;
}

/**
 * `notCancelled`: a worker's hand-back must not wipe a cancel request it has not heard of yet
 * (the mark is running-only, so a requeue would remove it and the job would run again).
 */
export type Guard = { kind: "absent" } | { kind: "version"; version: number } | { kind: "fence"; token: number; notCancelled?: true };

/** One transition, ready to be written: the state it assumed, the state it writes, and its condition. */
export interface Change<J extends Job = Job> {
  transition: TransitionName;
  /** What the writer believes is stored (a read, or the lease's view); absent for a create. */
  prev?: Job;
  next: J;
  guard: Guard;
  /** An ended attempt's full message and stack, written beside the record (core/attempt-detail.ts). */
  detail?: AttemptDetail;
}

/** What an attempt that failed leaves for a person to read: more than its history entry holds. */
export interface AttemptDetail {
  attempt: number;
  startedAt: number;
  message: string;
  stack?: string;
}

/** An attempt's error as the worker saw it: the stack of what the handler threw, when it threw something. */
export type AttemptFailure = JobError & { stack?: string };

/** What a worker carries on a heartbeat or a final write; undefined fields are left as they are. */
export interface Report {
  progress?: Progress;
  checkpoint?: unknown;
}

export type ClaimRefusal =
  | "not_found"
  | "finished"
  | "leased"
  | "not_due"
  | "attempts_exhausted"
  | "timed_out"
  | "cancel_requested"
  /** A parent waiting for its children: it runs when they have ended, on its own doorbell. */
  | "waiting"
  /** The job waits on another queue: its doorbell belongs there (a duplicate, a redrive, a move to `large`). */
  | "wrong_queue"
  /** A pause or a limit holds it back (core/gates.ts): it is held, and what frees it wakes it. */
  | "held";

export type Decision<J extends Job> = { ok: true; change: Change<J> } | { ok: false; reason: string; message: string };

// ─── shared rules ───────────────────────────────────────────────────────────────────────────

/** When a job entering queued may first be claimed: now, or its runAt when later. */
const readyFrom = (runAt: number | undefined, c: Clock): number => (runAt !== undefined && runAt > c.now ? runAt : c.now);

/**
 * When a queued job counts as stuck: its start deadline after it becomes runnable. A runAt
 * further out than SQS can delay a message is simply due at runAt: the sweeper sends it then.
 */
export function queuedDueAt(runAt: number | undefined, c: Clock): number {
  const start = readyFrom(runAt, c);
  if (start - c.now > TIMINGS.maxMessageDelaySeconds * 1000) return start;
  return start + c.startDeadlineMs;
}

/**
 * The total runtime limit, counted from the first start and never reset by a re-claim (invariant
 * 5). Time it ran no code does not count: waiting for children (`waitedMs`), and held back by a
 * pause or a limit (folded into `waitedMs` when the hold ends; the hold in progress counted here).
 */
export const runtimeDeadline = (job: { firstStartedAt?: number; timeoutMs: number; waitedMs?: number; hold?: Hold }, now: number): number =>
  (job.firstStartedAt ?? now) + (job.waitedMs ?? 0) + heldMs(job, now) + job.timeoutMs;

/** How long a job that had started is held now (0 for one never started: its limit counts from its first start). */
const heldMs = (job: { firstStartedAt?: number; hold?: Hold }, now: number): number =>
  job.hold && job.firstStartedAt !== undefined ? Math.max(0, now - job.hold.since) : 0;

/** `waitedMs` once a hold ends (its time folded in). */
const waitedAfterHold = (job: QueuedJob, now: number): { waitedMs?: number } => {
  const held = heldMs(job, now);
  return held > 0 || job.waitedMs !== undefined ? { waitedMs: (job.waitedMs ?? 0) + held } : {};
};

/** The earliest moment the sweeper must look at a running job: lease end, runtime limit, or cancel grace. */
export function runningDueAt(job: RunningJob, leaseExpiresAt: number, c: Clock): number {
  const cancelAt = job.cancelRequestedAt !== undefined ? job.cancelRequestedAt + c.cancelGraceMs : Infinity;
  return Math.min(leaseExpiresAt, runtimeDeadline(job, c.now), cancelAt);
}

export const expiresAt = (c: Clock): number => Math.floor(c.now / 1000) + c.retentionDays * 24 * 3600;

/** Ends the open attempt, keeping its error (cut short; the full text goes to its detail). */
function closeLast(history: AttemptRecord[], now: number, outcome: Outcome | null, error?: AttemptFailure): AttemptRecord[] {
  if (!history.length || outcome === null) return history;
  const last = history[history.length - 1]!;
  if (last.endedAt !== null) return history;
  const ended: AttemptRecord = { ...last, endedAt: now, outcome };
  if (error) {
    ended.error = error.code;
    ended.message = shortMessage(error.message);
    if (hasDetail(error)) ended.detail = true;
  }
  return [...history.slice(0, -1), ended];
}

const shortMessage = (m: string): string => (m.length > ATTEMPT_MESSAGE_CHARS ? `${m.slice(0, ATTEMPT_MESSAGE_CHARS - 1)}…` : m);
const hasDetail = (e: AttemptFailure): boolean => e.stack !== undefined || e.message.length > ATTEMPT_MESSAGE_CHARS;

/** The detail to write beside a change that ended `job`'s open attempt with `error`, when it has more than its history entry. */
function detailOf(job: RunningJob, error: AttemptFailure | undefined): AttemptDetail | undefined {
  if (!error || !hasDetail(error)) return undefined;
  return { attempt: job.attempts, startedAt: job.startedAt, message: error.message, ...(error.stack !== undefined ? { stack: error.stack } : {}) };
}

/** Appends a person's request, keeping the last LIMITS.actionEntries. */
const withAction = (job: Job, action: JobAction["action"], by: string, c: Clock): JobAction[] =>
  [...(job.actions ?? []), { at: c.now, action, by }].slice(-LIMITS.actionEntries);


const bounded = (history: AttemptRecord[]): AttemptRecord[] => history.slice(-LIMITS.historyEntries);

const iso = (ms: number): string => new Date(ms).toISOString();

const lostMessage = (job: RunningJob): string =>
  `no heartbeat from worker ${job.workerId} since ${iso(job.heartbeatAt)}; its lease expired at ${iso(job.leaseExpiresAt)}`;

/** The fields every job keeps whatever its state: what is left when a state's own fields go. */
function common(job: Job): Omit<QueuedJob, "status" | "dueAt" | "runAt" | "readyAt" | "rings"> {
  const { id, owner, type, queue, input, createdAt, updatedAt, attempts, maxAttempts, timeoutMs, token, version, history } = job;
  return {
    id,
    owner,
    type,
    queue,
    input,
    createdAt,
    updatedAt,
    attempts,
    maxAttempts,
    timeoutMs,
    token,
    version,
    history,
    ...(job.firstStartedAt !== undefined ? { firstStartedAt: job.firstStartedAt } : {}),
    ...(job.progress !== undefined ? { progress: job.progress } : {}),
    ...(job.checkpoint !== undefined ? { checkpoint: job.checkpoint } : {}),
    ...(job.error !== undefined ? { error: job.error } : {}),
    ...(job.idempotencyKey !== undefined ? { idempotencyKey: job.idempotencyKey } : {}),
    ...(job.concurrencyKey !== undefined ? { concurrencyKey: job.concurrencyKey } : {}),
    ...(job.priority !== undefined ? { priority: job.priority } : {}),
    ...(job.refs !== undefined ? { refs: job.refs } : {}),
    ...(job.actions !== undefined ? { actions: job.actions } : {}),
    ...(job.parent !== undefined ? { parent: job.parent } : {}),
    ...(job.flow !== undefined ? { flow: job.flow } : {}),
    ...(job.waitedMs !== undefined ? { waitedMs: job.waitedMs } : {}),
  };
}

const withReport = <T extends object>(base: T, r: Report | undefined): T => ({
  ...base,
  ...(r?.progress !== undefined ? { progress: r.progress } : {}),
  ...(r?.checkpoint !== undefined ? { checkpoint: r.checkpoint } : {}),
});

/** Builds a change after checking it against the transition table. */
function change<J extends Job>(transition: TransitionName, prev: Job | undefined, next: J, guard: Guard, detail?: AttemptDetail): Change<J> {
  if (!canTransition(transition, prev?.status) || next.status !== TRANSITION_TARGET[transition]) {
    throw new Error(`lifecycle: ${transition} cannot take a job from ${prev?.status ?? "nothing"} to ${next.status}`);
  }
  return { transition, ...(prev ? { prev } : {}), next: { ...next, version: (prev?.version ?? 0) + 1 }, guard, ...(detail ? { detail } : {}) };
}

const TRANSITION_TARGET = Object.fromEntries(Object.entries(TRANSITIONS).map(([k, t]) => [k, t.to])) as Record<TransitionName, Job["status"]>;

const read = (job: Job): Guard => ({ kind: "version", version: job.version });
const fence = (job: RunningJob): Extract<Guard, { kind: "fence" }> => ({ kind: "fence", token: job.token });

/** A finished job leaves the due index (sparse) and gets its TTL. */
function finished<S extends "succeeded" | "failed" | "cancelled">(job: Job, status: S, c: Clock, history: AttemptRecord[]) {
  return { ...common(job), status, history, finishedAt: c.now, expiresAt: expiresAt(c), updatedAt: c.now };
}

// ─── create ─────────────────────────────────────────────────────────────────────────────────

export interface NewJob {
  owner: string;
  type: string;
  queue: QueueName;
  input: unknown;
  maxAttempts: number;
  timeoutMs: number;
  runAt?: number;
  idempotencyKey?: string;
  /** The key its limits count it under, beside its type (core/gates.ts). */
  concurrencyKey?: string;
  /** Its lane; `normal` when absent. */
  priority?: Priority;
  /** A child's place in its parent's flow. */
  parent?: ParentLink;
}

function newCommon(spec: NewJob, id: string, c: Clock) {
  return {
    id,
    owner: spec.owner,
    type: spec.type,
    queue: spec.queue,
    input: spec.input ?? null,
    createdAt: c.now,
    updatedAt: c.now,
    attempts: 0,
    maxAttempts: spec.maxAttempts,
    timeoutMs: spec.timeoutMs,
    token: 0,
    version: 0,
    history: [],
    ...(spec.idempotencyKey ? { idempotencyKey: spec.idempotencyKey } : {}),
    ...(spec.concurrencyKey ? { concurrencyKey: spec.concurrencyKey } : {}),
    ...storedPriority(spec.priority),
    ...(spec.parent ? { parent: spec.parent } : {}),
  };
}

export function create(spec: NewJob, id: string, c: Clock): Change<QueuedJob> {
  const job: QueuedJob = {
    ...newCommon(spec, id, c),
    status: "queued",
    ...(spec.runAt !== undefined && spec.runAt > c.now ? { runAt: spec.runAt } : {}),
    dueAt: queuedDueAt(spec.runAt, c),
    readyAt: readyFrom(spec.runAt, c),
    rings: 0,
  };
  return change("create", undefined, job, { kind: "absent" });
}

// ─── claim ──────────────────────────────────────────────────────────────────────────────────

/** Why `job` cannot be claimed now, or undefined when it can. */
export function claimRefusal(job: Job | undefined, c: Clock, queue?: QueueName): ClaimRefusal | undefined {
  if (!job) return "not_found";
  if (isTerminal(job.status)) return "finished";
  if (job.status === "waiting") return "waiting";
  if (job.status === "running") {
    if (job.leaseExpiresAt >= c.now) return "leased";
    if (job.cancelRequested) return "cancel_requested";
  }
  if (queue !== undefined && job.queue !== queue) return "wrong_queue";
  if (job.status === "queued" && job.runAt !== undefined && job.runAt > c.now) return "not_due";
  if (job.firstStartedAt !== undefined && runtimeDeadline(job, c.now) <= c.now) return "timed_out";
  if (job.attempts >= job.maxAttempts) return "attempts_exhausted";
  return undefined;
}

/**
 * A queued job whose runAt has come, or a running job whose lease expired, becomes this worker's:
 * a new attempt under a new fencing token. `queue` is where the doorbell was heard.
 */
export function claim(
  prev: Job | undefined,
  o: { workerId: string; leaseMs: number; queue?: QueueName },
  c: Clock,
): Decision<RunningJob> {
  const refusal = claimRefusal(prev, c, o.queue);
  if (refusal || !prev || (prev.status !== "queued" && prev.status !== "running")) {
    return { ok: false, reason: refusal ?? "finished", message: `the job cannot be claimed: ${refusal}` };
  }
  const firstStartedAt = prev.firstStartedAt ?? c.now;
  const attempt = prev.attempts + 1;
  const history =
    prev.status === "running" ? closeLast(prev.history, c.now, "worker_lost", { code: "worker_lost", message: lostMessage(prev) }) : prev.history;
  const leaseExpiresAt = c.now + o.leaseMs;
  const { error: _kept, ...rest } = common(prev);
  // A run taken over from a lost worker keeps the slots its job already holds.
  const slots = prev.status === "running" ? prev.slots : undefined;
  const waited = prev.status === "queued" ? waitedAfterHold(prev, c.now) : {};
  const next: RunningJob = {
    ...rest,
    status: "running",
    attempts: attempt,
    token: prev.token + 1,
    firstStartedAt,
    startedAt: c.now,
    heartbeatAt: c.now,
    leaseExpiresAt,
    workerId: o.workerId,
    dueAt: leaseExpiresAt, // or its runtime limit when sooner, below
    updatedAt: c.now,
    history: bounded([...history, { attempt, worker: o.workerId, startedAt: c.now, endedAt: null, outcome: null }]),
    ...(slots ? { slots } : {}),
    ...waited,
  };
  next.dueAt = Math.min(leaseExpiresAt, runtimeDeadline(next, c.now));
  return { ok: true, change: change("claim", prev, next, read(prev)) };
}

/** A claim that took concurrency slots on its way (core/gatekeeper.ts): its run holds them. */
export const claimWith = (c: Change<RunningJob>, slots: HeldSlots): Change<RunningJob> => ({ ...c, next: { ...c.next, slots } });

// ─── a worker's writes under its lease ──────────────────────────────────────────────────────

/** Renews the lease and carries the coalesced progress and checkpoint. */
export function beat(job: RunningJob, o: { leaseMs: number; report?: Report }, c: Clock): Change<RunningJob> {
  const leaseExpiresAt = c.now + o.leaseMs;
  const next: RunningJob = withReport({ ...job, heartbeatAt: c.now, leaseExpiresAt, dueAt: runningDueAt(job, leaseExpiresAt, c), updatedAt: c.now }, o.report);
  // A worker that has not seen a cancel request must not move dueAt past its grace: the beat is
  // conditional on there being none, and the store beats again with the mark when there is.
  return change("beat", job, next, job.cancelRequested ? fence(job) : { ...fence(job), notCancelled: true });
}

export function succeed(job: RunningJob, o: { result: unknown; report?: Report }, c: Clock): Change<SucceededJob> {
  const { error: _e, ...base } = withReport(finished(job, "succeeded", c, closeLast(job.history, c.now, "succeeded")), o.report);
  return change("succeed", job, { ...base, result: o.result ?? null }, fence(job));
}

export interface FailOptions {
  retryable: boolean;
  backoffMs?: number;
  /** A job that ran out of memory moves to the large queue. */
  queue?: QueueName;
  report?: Report;
}

/**
 * A failed attempt. With `retryable` and attempts left (and the runtime limit not reached) the
 * job is queued again after `backoffMs`; otherwise it ends failed, `attempts_exhausted` when its
 * budget ran out.
 */
export function fail(job: RunningJob, failure: AttemptFailure, o: FailOptions, c: Clock): Change<QueuedJob | FailedJob> {
  const { stack: _s, ...error } = failure;
  const attemptsLeft = job.attempts < job.maxAttempts;
  const pastRuntime = c.now >= runtimeDeadline(job, c.now);
  if (o.retryable && attemptsLeft && !pastRuntime) {
    return requeue(job, "failRetry", c, { outcome: "retried", attempts: job.attempts, runAt: c.now + (o.backoffMs ?? 0), error: failure, queue: o.queue ?? job.queue, report: o.report });
  }
  const final: JobError =
    o.retryable && !attemptsLeft
      ? { code: "attempts_exhausted", message: `all ${job.maxAttempts} attempts failed; the last: ${error.message}` }
      : o.retryable && pastRuntime
        ? { code: "timeout", message: `total runtime limit of ${Math.round(job.timeoutMs / 1000)} s reached; the last attempt: ${error.message}` }
        : error;
  const next: FailedJob = { ...withReport(finished(job, "failed", c, closeLast(job.history, c.now, "failed", failure)), o.report), error: final };
  return change("failFinal", job, next, fence(job), detailOf(job, failure));
}

/**
 * Hands the job back without spending an attempt (shutdown, Lambda deadline, soft limit with a
 * checkpoint) so another worker resumes it. `spendAttempt` keeps the attempt spent, for a
 * hand-back that made no progress; spending the last one ends the job, since a queued job with no
 * attempts left could never be claimed again.
 */
export function release(
  job: RunningJob,
  o: { report?: Report; queue?: QueueName; spendAttempt?: boolean; error?: JobError },
  c: Clock,
): Change<QueuedJob | FailedJob> {
  if (o.spendAttempt && job.attempts >= job.maxAttempts) {
    const error = o.error ?? { code: "timeout" as const, message: "the last attempt was handed back without progress" };
    return fail(job, error, { retryable: true, ...(o.report ? { report: o.report } : {}) }, c);
  }
  return requeue(job, "release", c, {
    outcome: "released",
    attempts: o.spendAttempt ? job.attempts : job.attempts - 1,
    error: o.error,
    queue: o.queue ?? job.queue,
    report: o.report,
  });
}

function requeue(
  job: RunningJob,
  transition: "failRetry" | "release",
  c: Clock,
  o: { outcome: Outcome; attempts: number; runAt?: number; error?: AttemptFailure | undefined; queue: QueueName; report?: Report | undefined },
): Change<QueuedJob> {
  const runAt = o.runAt !== undefined && o.runAt > c.now ? o.runAt : undefined;
  const next: QueuedJob = withReport(
    {
      ...common(job),
      status: "queued",
      attempts: o.attempts,
      queue: o.queue,
      ...(runAt !== undefined ? { runAt } : {}),
      dueAt: queuedDueAt(runAt, c),
      readyAt: readyFrom(runAt, c),
      rings: 0,
      history: closeLast(job.history, c.now, o.outcome, o.error),
      updatedAt: c.now,
      ...(o.error ? { error: { code: o.error.code, message: o.error.message } } : {}),
    },
    o.report,
  );
  return change(transition, job, next, { ...fence(job), notCancelled: true }, detailOf(job, o.error));
}

/** The worker saw the cancel request and stopped. */
export function acknowledgeCancel(job: RunningJob, o: { report?: Report }, c: Clock): Change<CancelledJob> {
  const error: JobError = { code: "cancelled", message: "cancelled on request; the worker stopped" };
  return change("cancelRunning", job, { ...withReport(finished(job, "cancelled", c, closeLast(job.history, c.now, "cancelled")), o.report), error }, fence(job));
}

// ─── requests from callers ──────────────────────────────────────────────────────────────────

/**
 * A queued job is cancelled at once; a running one is marked, and its worker stops when its next
 * heartbeat sees the mark (or the sweeper cancels it after the grace period). Undefined change:
 * already requested, nothing to write.
 */
export function requestCancel(prev: Job, c: Clock, by: string): Decision<CancelledJob | RunningJob> | { ok: true; change: undefined } {
  const actions = withAction(prev, "cancel", by, c);
  if (prev.status === "queued") {
    const error: JobError = { code: "cancelled", message: `cancelled on request by ${by} before it started` };
    return { ok: true, change: cancelUnheld(prev, error, c, actions) };
  }
  if (prev.status === "waiting") {
    // A parent holds no worker: it ends at once, and its live children are cancelled after it (core/flows.ts).
    const error: JobError = { code: "cancelled", message: `cancelled on request by ${by} while it waited for its children` };
    return { ok: true, change: cancelUnheld(prev, error, c, actions) };
  }
  if (prev.status === "running") {
    if (prev.cancelRequested) return { ok: true, change: undefined };
    const next: RunningJob = { ...prev, actions, cancelRequested: true, cancelRequestedAt: c.now, dueAt: Math.min(prev.dueAt, c.now + c.cancelGraceMs), updatedAt: c.now };
    return { ok: true, change: change("requestCancel", prev, next, read(prev)) };
  }
  return { ok: false, reason: prev.status, message: `job ${prev.id} has already finished (${prev.status}); there is nothing to cancel` };
}

/**
 * A failed or cancelled job queued again with a fresh attempt budget and runtime clock, keeping
 * its history. It starts from the beginning: a checkpoint is for resuming the attempts of one
 * run (its value expires with that run's runtime limit, core/values.ts), and the one a failed run
 * left may be what made it fail.
 */
export function retry(prev: Job, c: Clock, by: string): Decision<QueuedJob | WaitingJob> {
  if (prev.status !== "failed" && prev.status !== "cancelled") {
    return { ok: false, reason: prev.status, message: `only failed or cancelled jobs can be retried; job ${prev.id} is ${prev.status}` };
  }
  const { firstStartedAt: _f, checkpoint: _c, waitedMs: _w, refs, ...base } = common(prev);
  const { checkpoint: _r, ...kept } = refs ?? {};
  const fresh = { ...base, ...(Object.keys(kept).length ? { refs: kept } : {}), actions: withAction(prev, "retry", by, c), attempts: 0, updatedAt: c.now };
  if (prev.flow) {
    // A parent waits on its last round again: its failed and cancelled children run again (those
    // that ended before `retriedAt`), its succeeded ones keep their results (core/flows.ts).
    const next: WaitingJob = { ...fresh, status: "waiting", flow: { ...prev.flow, retriedAt: c.now }, waitingSince: c.now, dueAt: flowDueAt(c) };
    return { ok: true, change: change("retryFlow", prev, next, read(prev)) };
  }
  const next: QueuedJob = { ...fresh, status: "queued", dueAt: queuedDueAt(undefined, c), readyAt: c.now, rings: 0 };
  return { ok: true, change: change("retry", prev, next, read(prev)) };
}

// ─── a parent and its children (core/flow.ts) ───────────────────────────────────────────────

/**
 * A waiting parent's deadline: when the sweeper recounts its children (core/flows.ts). One start
 * deadline: by then every child was written and rung, or something went wrong.
 */
export const flowDueAt = (c: Clock): number => c.now + c.startDeadlineMs;

/** A submitted parent (or a chain's step) that waits on its children before it first runs. */
export function createWaiting(spec: NewJob, id: string, flow: Flow, c: Clock): Change<WaitingJob> {
  const job: WaitingJob = { ...newCommon(spec, id, c), status: "waiting", flow, waitingSince: c.now, dueAt: flowDueAt(c) };
  return change("createWaiting", undefined, job, { kind: "absent" });
}

/**
 * The handler spawned a round of children and asked to wait: the attempt ends without spending
 * one (the parent did what it was asked), the lease and the worker go, and the next round begins.
 */
export function wait(job: RunningJob, o: { total: number; policy: FlowPolicy; spec: string; keyed?: boolean; report?: Report }, c: Clock): Change<WaitingJob> {
  const flow: Flow = { round: (job.flow?.round ?? -1) + 1, total: o.total, policy: o.policy, spec: o.spec, ...(o.keyed ? { keyed: true as const } : {}) };
  const next: WaitingJob = withReport(
    { ...common(job), status: "waiting", attempts: job.attempts - 1, flow, waitingSince: c.now, dueAt: flowDueAt(c), history: closeLast(job.history, c.now, "waiting"), updatedAt: c.now },
    o.report,
  );
  return change("wait", job, next, { ...fence(job), notCancelled: true });
}

/**
 * Every child of the round is terminal: the parent is queued again, keeping its checkpoint, and
 * the time it waited is not counted against its runtime limit. A chain's step takes its child's
 * result as its input.
 */
export function resume(prev: WaitingJob, c: Clock, o: { input?: unknown } = {}): Change<QueuedJob> {
  const { waitingSince: _s, dueAt: _d, ...rest } = prev;
  const next: QueuedJob = {
    ...rest,
    ...(o.input !== undefined ? { input: o.input } : {}),
    status: "queued",
    // Only a run that had started is paused by a wait; one that never ran has its limit from its first start.
    ...(prev.firstStartedAt !== undefined ? { waitedMs: (prev.waitedMs ?? 0) + Math.max(0, c.now - prev.waitingSince) } : {}),
    dueAt: queuedDueAt(undefined, c),
    readyAt: c.now,
    rings: 0,
    updatedAt: c.now,
  };
  return change("resume", prev, next, read(prev));
}

/** A child failed under failFast: the parent fails with it (its live children are cancelled after). */
export function failFlow(prev: WaitingJob, error: JobError, c: Clock): Change<FailedJob> {
  return change("failFlow", prev, { ...finished(prev, "failed", c, prev.history), error }, read(prev));
}

/** A parent that ends without running again: a chain whose step was cancelled, an orphaned step, a wait past its bound. */
export function endFlow(prev: WaitingJob, how: "cancelled" | "failed", error: JobError, c: Clock): Change<CancelledJob | FailedJob> {
  if (how === "failed") return failFlow(prev, error, c);
  return cancelUnheld(prev, error, c);
}

/** The longest gap between two of the sweeper's looks at a quiet flow. */
export const FLOW_RECHECK_MAX_MS = 3_600_000;

/**
 * The sweeper looked at a waiting parent whose children still run: its next look, after as long
 * again as it has waited so far (at least a start deadline, at most an hour), so a flow that runs
 * for hours is looked at a few times, not every few minutes.
 */
export function recheck(prev: WaitingJob, c: Clock): Change<WaitingJob> {
  const gap = Math.min(FLOW_RECHECK_MAX_MS, Math.max(c.startDeadlineMs, c.now - prev.waitingSince));
  return change("recheck", prev, { ...prev, dueAt: c.now + gap, updatedAt: c.now }, read(prev));
}

// ─── the sweeper's repairs, each decided from what the sweep read ───────────────────────────

/**
 * A running job whose worker is gone: back to queued keeping its checkpoint, or failed when it
 * has no attempts left. `lost` says how the worker was found gone (its lease expired, by default).
 */
export function reclaim(prev: RunningJob, c: Clock, lost: string = lostMessage(prev)): Change<QueuedJob | FailedJob> {
  if (prev.attempts >= prev.maxAttempts) return expire(prev, c, lost);
  const next: QueuedJob = {
    ...common(prev),
    status: "queued",
    token: prev.token + 1,
    dueAt: queuedDueAt(undefined, c),
    readyAt: c.now,
    rings: 0,
    history: closeLast(prev.history, c.now, "worker_lost", { code: "worker_lost", message: lost }),
    error: { code: "worker_lost", message: lost },
    updatedAt: c.now,
  };
  return change("reclaim", prev, next, read(prev));
}

/** Ends a running job as failed: its worker is gone with no attempts left, or it ran past its total runtime limit. */
export function expire(prev: RunningJob, c: Clock, lost: string = lostMessage(prev)): Change<FailedJob> {
  const pastRuntime = runtimeDeadline(prev, c.now) <= c.now;
  const error: JobError = pastRuntime
    ? { code: "timeout", message: `ran past its total runtime limit of ${Math.round(prev.timeoutMs / 1000)} s, counted from its first start at ${iso(prev.firstStartedAt)}` }
    : { code: "attempts_exhausted", message: `all ${prev.maxAttempts} attempts used; the last worker (${prev.workerId}) was lost: ${lost}` };
  const attemptError: JobError = pastRuntime ? error : { code: "worker_lost", message: lost };
  const next: FailedJob = {
    ...finished(prev, "failed", c, closeLast(prev.history, c.now, pastRuntime ? "timeout" : "worker_lost", attemptError)),
    token: prev.token + 1,
    error,
  };
  // No detail: only the worker of an attempt writes one (the sweeper and the reaper may not put items).
  return change("expire", prev, next, read(prev));
}

/** The platform's word that a worker died: an ECS task stopped, a Lambda runtime crashed or timed out, a local process exited. */
export interface WorkerDeath {
  workerId: string;
  /** Epoch ms when it died, as the platform reports it. */
  at: number;
  /** What the platform said (a stoppedReason, "Runtime exited", an exit code). */
  reason: string;
}

/**
 * A running job whose worker the platform reported dead, reclaimed at once instead of when its
 * lease runs out. Only the attempt that worker started before it died: a job that meanwhile moved
 * to another worker, or that a worker of the same id (a restarted runtime in the same Lambda
 * environment) claimed after the death, is not the dead worker's (`moved`). A repeated or late
 * event finds nothing to do.
 */
export function reclaimDead(prev: Job | undefined, death: WorkerDeath, c: Clock): Decision<QueuedJob | FailedJob | CancelledJob> {
  if (prev?.status !== "running" || prev.workerId !== death.workerId || prev.startedAt > death.at) {
    return { ok: false, reason: "moved", message: `job ${prev?.id ?? "?"} is no longer the attempt worker ${death.workerId} started before it died` };
  }
  const lost = `worker ${death.workerId} died at ${iso(death.at)} (${death.reason})`;
  switch (goneWorkerRepair(prev, c.now)) {
    case "expire":
      return { ok: true, change: expire(prev, c, lost) };
    case "cancel":
      return { ok: true, change: cancelSilent(prev, c, `cancelled on request; ${lost} before acknowledging`) };
    case "reclaim":
      return { ok: true, change: reclaim(prev, c, lost) };
  }
}

/**
 * What a running job whose worker is gone (its lease expired, its death reported) gets, in the
 * one order the sweeper and the reaper share: the runtime limit wins over everything (a
 * heartbeating worker does not save a job past its total limit), then a requested cancel is
 * kept, else it is taken back.
 */
export function goneWorkerRepair(job: RunningJob, now: number): "expire" | "cancel" | "reclaim" {
  if (runtimeDeadline(job, now) <= now) return "expire";
  if (job.cancelRequested) return "cancel";
  return "reclaim";
}

/** A queued job (in backoff, or handed back) past its total runtime limit: no attempt may begin. */
export function expireQueued(prev: QueuedJob, c: Clock): Change<FailedJob> {
  const error: JobError = {
    code: "timeout",
    message: `ran past its total runtime limit of ${Math.round(prev.timeoutMs / 1000)} s, counted from its first start at ${iso(prev.firstStartedAt ?? prev.createdAt)}`,
  };
  return change("expireQueued", prev, { ...finished(prev, "failed", c, prev.history), error }, read(prev));
}

/** A queued child whose parent no longer waits on it: cancelled, never run. */
export function cancelOrphanQueued(prev: QueuedJob, c: Clock, message: string): Change<CancelledJob> {
  return cancelUnheld(prev, { code: "cancelled", message }, c);
}

/** A job no worker holds (queued, or a waiting parent) cancelled at once, decided from a read. */
function cancelUnheld(prev: QueuedJob | WaitingJob, error: JobError, c: Clock, actions?: JobAction[]): Change<CancelledJob> {
  const next: CancelledJob = { ...finished(prev, "cancelled", c, prev.history), ...(actions ? { actions } : {}), error };
  return change(prev.status === "queued" ? "cancelQueued" : "cancelWaiting", prev, next, read(prev));
}

/** A cancel that no worker acknowledged within the grace period. */
export function cancelSilent(
  prev: RunningJob,
  c: Clock,
  message = `cancelled on request; the worker (${prev.workerId}) did not acknowledge within the grace period`,
): Change<CancelledJob> {
  const error: JobError = { code: "cancelled", message };
  const next: CancelledJob = { ...finished(prev, "cancelled", c, closeLast(prev.history, c.now, "cancelled")), token: prev.token + 1, error };
  return change("cancelRunning", prev, next, read(prev));
}

/** A queued job past its start deadline gets a new deadline before its doorbell rings again. */
export function resend(prev: QueuedJob, c: Clock): Change<QueuedJob> {
  const readyAt = readyAtOf(prev);
  // A runAt further out than SQS can delay gets no message when submitted: it is due at readyAt
  // itself (queuedDueAt), and this send is its first doorbell, not a repeat.
  const first = prev.dueAt <= readyAt;
  return change("resend", prev, { ...prev, dueAt: c.now + c.startDeadlineMs, readyAt, rings: ringsOf(prev) + (first ? 0 : 1), updatedAt: c.now }, read(prev));
}

// ─── pauses and limits (core/gates.ts) ──────────────────────────────────────────────────────

/**
 * A claim a gate refused: the job stays queued, spends no attempt and is held, out of the wait
 * index (it is not claimable) and, for a pause or a concurrency limit, in the held index, where
 * what frees it finds it. Held again on the same gate (the sweeper's look found it still shut),
 * it keeps its place and its next look backs off.
 */
export function hold(prev: QueuedJob, h: Hold, c: Clock): Change<QueuedJob> {
  const same = prev.hold !== undefined && holdPartition(prev.hold) !== undefined && holdPartition(prev.hold) === holdPartition(h);
  const held: Hold = same ? { ...h, since: prev.hold!.since } : h;
  // A rate hold is woken by its own delayed doorbell at `until` (past what SQS can delay, by the sweeper then).
  const dueAt = held.by === "rate" ? queuedDueAt(held.until, c) : c.now + holdRecheckMs(c.now - held.since);
  const next: QueuedJob = { ...prev, hold: held, dueAt, readyAt: held.by === "rate" ? held.until : readyAtOf(prev), rings: 0, updatedAt: c.now };
  // A job re-held on another gate carries the time its last hold took (so its runtime limit does not count it).
  if (prev.hold && !same) Object.assign(next, waitedAfterHold(prev, c.now));
  return change("hold", prev, next, read(prev));
}

/** What held the job freed up: it is claimable again from now, its doorbell rung by whoever woke it. */
export function unhold(prev: QueuedJob, c: Clock): Change<QueuedJob> {
  const { hold: _h, ...rest } = prev;
  return change("unhold", prev, { ...rest, ...waitedAfterHold(prev, c.now), dueAt: queuedDueAt(undefined, c), readyAt: c.now, rings: 0, updatedAt: c.now }, read(prev));
}
