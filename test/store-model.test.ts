/**
 * A model-based test of the job store (core/store.ts) against a reference model of the job
 * lifecycle written here, independently of core/lifecycle.ts.
 *
 * fast-check generates a few jobs (1–3) and 20–40 steps of several actors interleaved:
 * - workers (claim, heartbeat with progress and checkpoint, succeed, fail retryable or
 *   permanent, release, acknowledge a cancel), each keeping every lease it ever got, so a worker
 *   whose lease was taken over goes on writing with its old token (a zombie);
 * - the sweeper: listOverdue, then the plan core/sweeper.ts makes from what it read (reclaim,
 *   expire, cancelSilent, pushStartDeadline); or only the read, to act on it several steps later
 *   (a stale read);
 * - API callers: create (also a repeated idempotency key), requestCancel, retry;
 * - a manual clock shared by the store, so leases, start deadlines, cancel graces and runtime
 *   limits pass without waiting;
 * - lost replies: before a step, a one-shot `lostReply` on the wire proxy for its first write, so
 *   DynamoDB applies it, the reply is lost and the SDK resends it.
 *
 * Everything runs against the real store on dynalite through the proxy. After every step the
 * stored item, the answer the caller got, and the due index are checked against the model, plus
 * invariants the model does not need to state (attempts ≤ maxAttempts, never completed twice,
 * firstStartedAt fixed until a retry, versions and tokens only grow).
 *
 * A failure names the step, what differs (store vs model), and the steps that ran. Reproduce it
 * with the seed and path fast-check prints:
 *   MODEL_SEED=<seed> MODEL_PATH=<path> npx vitest run test/store-model.test.ts
 * MODEL_RUNS=<n> runs more (or fewer) scenarios.
 */
import { isDeepStrictEqual } from "node:util";
import { DeleteCommand, GetCommand, ScanCommand } from "@aws-sdk/lib-dynamodb";
import fc from "fast-check";
import { expect, test } from "vitest";
import { LIMITS, TABLE, TIMINGS, type QueueName } from "../core/config.js";
import { ConflictError, LeaseLostError } from "../core/errors.js";
import type { AttemptRecord, ErrorCode, Job, Lease, Outcome, Progress, RunningJob, Status } from "../core/job.js";
import { shardOf } from "../core/shards.js";
import type { JobStore } from "../core/store.js";
import { toJob } from "../core/store-write.js";
import { fitsInline, INLINE_VALUE_BYTES, VALUE_FIELDS, type ValueField } from "../core/values.js";
import { plan, type Plan } from "../core/sweeper.js";
import { manualClock } from "./support/emulators.js";
import { useWireFaults } from "./support/wire.js";

const w = useWireFaults("model");

// ─── the reference model ────────────────────────────────────────────────────────────────────

const START_DEADLINE = 3_000;
const CANCEL_GRACE = 2_000;
const RETENTION_DAYS = 30;
const MAX_DELAY_MS = TIMINGS.maxMessageDelaySeconds * 1000;
const HISTORY = LIMITS.historyEntries;
const WORKERS = 3;

const SLOTS = 3;

interface MJob {
  id: string;
  owner: string;
  key?: string;
  status: Status;
  queue: QueueName;
  attempts: number;
  maxAttempts: number;
  timeoutMs: number;
  token: number;
  version: number;
  createdAt: number;
  updatedAt: number;
  firstStartedAt?: number;
  runAt?: number;
  dueAt?: number;
  startedAt?: number;
  heartbeatAt?: number;
  leaseExpiresAt?: number;
  workerId?: string;
  /** Set iff a cancel was requested while it runs. */
  cancelRequestedAt?: number;
  error?: string;
  progress?: Progress;
  checkpoint?: unknown;
  result?: unknown;
  finishedAt?: number;
  history: AttemptRecord[];
}

interface MReport {
  progress?: Progress;
  checkpoint?: unknown;
}

const isLive = (s: Status): boolean => s === "queued" || s === "running";

/** A queued job is due (overdue) one start deadline after it becomes runnable; a runAt beyond SQS's delay is due at runAt itself. */
function queuedDue(now: number, runAt: number | undefined): number {
  const start = runAt !== undefined && runAt > now ? runAt : now;
  return start - now > MAX_DELAY_MS ? start : start + START_DEADLINE;
}

const runtimeEnd = (m: MJob): number => (m.firstStartedAt ?? Infinity) + m.timeoutMs;

/** Every write: a new version, a new updatedAt. */
function written(m: MJob, now: number, r?: MReport): MJob {
  const n: MJob = { ...m, history: m.history.map((h) => ({ ...h })), version: m.version + 1, updatedAt: now };
  if (r?.progress !== undefined) n.progress = r.progress;
  if (r?.checkpoint !== undefined) n.checkpoint = r.checkpoint;
  return n;
}

function withoutRun(n: MJob): MJob {
  delete n.startedAt;
  delete n.heartbeatAt;
  delete n.leaseExpiresAt;
  delete n.workerId;
  delete n.cancelRequestedAt;
  return n;
}

/** `code`: the ended attempt's own error (the model tracks codes; messages and details are the store's). */
function closeLast(history: AttemptRecord[], now: number, outcome: Outcome | null, code?: string): AttemptRecord[] {
  const last = history.at(-1);
  if (outcome === null || !last || last.endedAt !== null) return history;
  return [...history.slice(0, -1), { ...last, endedAt: now, outcome, ...(code !== undefined ? { error: code as ErrorCode } : {}) }];
}

function toQueued(
  m: MJob,
  now: number,
  o: { attempts: number; queue: QueueName; runAt?: number; error?: string; attemptError?: string; outcome: Outcome | null; bumpToken?: boolean; report?: MReport },
): MJob {
  const n = withoutRun(written(m, now, o.report));
  delete n.finishedAt;
  delete n.result;
  delete n.runAt;
  n.status = "queued";
  n.attempts = o.attempts;
  n.queue = o.queue;
  const runAt = o.runAt !== undefined && o.runAt > now ? o.runAt : undefined;
  if (runAt !== undefined) n.runAt = runAt;
  n.dueAt = queuedDue(now, runAt);
  if (o.error !== undefined) n.error = o.error;
  if (o.bumpToken) n.token++;
  n.history = closeLast(n.history, now, o.outcome, o.attemptError);
  return n;
}

function toFinished(
  m: MJob,
  now: number,
  status: "succeeded" | "failed" | "cancelled",
  o: { error?: string; attemptError?: string; result?: unknown; outcome: Outcome | null; bumpToken?: boolean; report?: MReport },
): MJob {
  const n = withoutRun(written(m, now, o.report));
  delete n.runAt;
  delete n.dueAt;
  n.status = status;
  n.finishedAt = now;
  if (status === "succeeded") {
    n.result = o.result ?? null;
    delete n.error;
  } else n.error = o.error!;
  if (o.bumpToken) n.token++;
  n.history = closeLast(n.history, now, o.outcome, o.attemptError);
  return n;
}

type MClaim = { ok: true; next: MJob } | { ok: false; reason: string; next?: MJob };

/**
 * A claim succeeds iff the job is queued and due (runAt passed), or running with an expired
 * lease and no cancel request, on the queue asked for, with attempts and runtime left. A claim
 * that finds an expired job with nothing left to try settles it (running: failed; queued past
 * its runtime: failed).
 */
function mClaim(m: MJob | undefined, o: { worker: string; leaseMs: number; queue?: QueueName }, now: number): MClaim {
  if (!m) return { ok: false, reason: "not_found" };
  if (!isLive(m.status)) return { ok: false, reason: "finished" };
  if (m.status === "running") {
    if (m.leaseExpiresAt! >= now) return { ok: false, reason: "leased" };
    if (m.cancelRequestedAt !== undefined) return { ok: false, reason: "cancel_requested" };
  }
  if (o.queue !== undefined && o.queue !== m.queue) return { ok: false, reason: "wrong_queue" };
  if (m.status === "queued" && m.runAt !== undefined && m.runAt > now) return { ok: false, reason: "not_due" };
  if (runtimeEnd(m) <= now) return { ok: false, reason: "timed_out", next: m.status === "running" ? mExpire(m, now) : mExpireQueued(m, now) };
  if (m.attempts >= m.maxAttempts) return { ok: false, reason: "attempts_exhausted", ...(m.status === "running" ? { next: mExpire(m, now) } : {}) };
  const n = withoutRun(written(m, now));
  delete n.runAt;
  const history = m.status === "running" ? closeLast(n.history, now, "worker_lost", "worker_lost") : n.history;
  // The history keeps the last attempt's error; the running record does not carry it too.
  delete n.error;
  n.status = "running";
  n.attempts = m.attempts + 1;
  n.token = m.token + 1;
  n.firstStartedAt = m.firstStartedAt ?? now;
  n.startedAt = now;
  n.heartbeatAt = now;
  n.leaseExpiresAt = now + o.leaseMs;
  n.workerId = o.worker;
  n.dueAt = Math.min(now + o.leaseMs, n.firstStartedAt + m.timeoutMs);
  n.history = [...history, { attempt: n.attempts, worker: o.worker, startedAt: now, endedAt: null, outcome: null }].slice(-HISTORY);
  return { ok: true, next: n };
}

/** A worker's write lands iff the job is running under the worker's token. */
const fenceHolds = (m: MJob, token: number): boolean => m.status === "running" && m.token === token;

/**
 * A heartbeat renews the lease; the job is due at the lease end, the runtime limit or the cancel
 * grace, whichever comes first, whether or not the worker has heard of the cancel request yet.
 */
function mBeat(m: MJob, leaseMs: number, r: MReport, now: number, _view: RunningJob): MJob {
  const n = written(m, now, r);
  n.heartbeatAt = now;
  n.leaseExpiresAt = now + leaseMs;
  const cancelAt = m.cancelRequestedAt;
  n.dueAt = Math.min(now + leaseMs, runtimeEnd(m), cancelAt !== undefined ? cancelAt + CANCEL_GRACE : Infinity);
  return n;
}

const mSucceed = (m: MJob, result: unknown, r: MReport, now: number): MJob => toFinished(m, now, "succeeded", { result, outcome: "succeeded", report: r });

/**
 * Retryable with attempts and runtime left: queued after the backoff. Otherwise failed, saying
 * why when the budget ran out. A hand-back that would queue a job with a cancel request ends it
 * cancelled instead (the request must not be lost, nor the job run again).
 */
function mFail(m: MJob, code: string, o: { retryable: boolean; backoffMs: number; queue?: QueueName; report?: MReport }, now: number): MJob {
  const attemptsLeft = m.attempts < m.maxAttempts;
  const pastRuntime = now >= runtimeEnd(m);
  if (o.retryable && attemptsLeft && !pastRuntime) {
    if (m.cancelRequestedAt !== undefined) return mAck(m, o.report ?? {}, now);
    return toQueued(m, now, { attempts: m.attempts, queue: o.queue ?? m.queue, runAt: now + o.backoffMs, error: code, attemptError: code, outcome: "retried", ...(o.report ? { report: o.report } : {}) });
  }
  const error = o.retryable && !attemptsLeft ? "attempts_exhausted" : o.retryable && pastRuntime ? "timeout" : code;
  return toFinished(m, now, "failed", { error, attemptError: code, outcome: "failed", ...(o.report ? { report: o.report } : {}) });
}

/** A hand-back: queued again with the attempt refunded (or kept with spendAttempt); spending the last one ends it; a cancel request wins. */
function mRelease(m: MJob, o: { spend: boolean; queue?: QueueName; error?: string; report?: MReport }, now: number): MJob {
  if (o.spend && m.attempts >= m.maxAttempts) return mFail(m, o.error ?? "timeout", { retryable: true, backoffMs: 0, ...(o.report ? { report: o.report } : {}) }, now);
  if (m.cancelRequestedAt !== undefined) return mAck(m, o.report ?? {}, now);
  return toQueued(m, now, {
    attempts: o.spend ? m.attempts : m.attempts - 1,
    queue: o.queue ?? m.queue,
    ...(o.error ? { error: o.error, attemptError: o.error } : {}),
    outcome: "released",
    ...(o.report ? { report: o.report } : {}),
  });
}

const mAck = (m: MJob, r: MReport, now: number): MJob => toFinished(m, now, "cancelled", { error: "cancelled", outcome: "cancelled", report: r });

/** Queued: cancelled at once. Running: marked once, due at the end of the grace at the latest. Finished: refused. */
function mRequestCancel(m: MJob, now: number): { ok: true; next: MJob; wrote: boolean } | { ok: false } {
  if (m.status === "queued") return { ok: true, wrote: true, next: toFinished(m, now, "cancelled", { error: "cancelled", outcome: null }) };
  if (m.status !== "running") return { ok: false };
  if (m.cancelRequestedAt !== undefined) return { ok: true, wrote: false, next: m };
  const n = written(m, now);
  n.cancelRequestedAt = now;
  n.dueAt = Math.min(m.dueAt!, now + CANCEL_GRACE);
  return { ok: true, wrote: true, next: n };
}

/** Failed or cancelled: queued again with a fresh attempt budget and runtime clock, keeping history and the last error. */
function mRetry(m: MJob, now: number): MJob | undefined {
  if (m.status !== "failed" && m.status !== "cancelled") return undefined;
  const n = toQueued(m, now, { attempts: 0, queue: m.queue, ...(m.error !== undefined ? { error: m.error } : {}), outcome: null });
  // A retry starts from the beginning: the failed run's checkpoint is not resumed.
  delete n.firstStartedAt;
  delete n.checkpoint;
  return n;
}

function mExpire(m: MJob, now: number): MJob {
  const past = runtimeEnd(m) <= now;
  return toFinished(m, now, "failed", {
    error: past ? "timeout" : "attempts_exhausted",
    attemptError: past ? "timeout" : "worker_lost",
    outcome: past ? "timeout" : "worker_lost",
    bumpToken: true,
  });
}

const mExpireQueued = (m: MJob, now: number): MJob => toFinished(m, now, "failed", { error: "timeout", outcome: null });

/** The sweeper's reclaim: queued again under a new token, or failed when no attempt is left. */
function mReclaim(m: MJob, now: number): MJob {
  if (m.attempts >= m.maxAttempts) return mExpire(m, now);
  return toQueued(m, now, { attempts: m.attempts, queue: m.queue, error: "worker_lost", attemptError: "worker_lost", outcome: "worker_lost", bumpToken: true });
}

const mCancelSilent = (m: MJob, now: number): MJob => toFinished(m, now, "cancelled", { error: "cancelled", outcome: "cancelled", bumpToken: true });

function mResend(m: MJob, now: number): MJob {
  const n = written(m, now);
  n.dueAt = now + START_DEADLINE;
  return n;
}

/** Values on both sides of the inline limit, so records that hold them and records that point at them are both checked. */
const LARGE_PAD = "p".repeat(INLINE_VALUE_BYTES + 50);
const bulky = (n: number): { at: number; pad?: string } => (n % 2 ? { at: n, pad: LARGE_PAD } : { at: n });

// ─── comparing the store with the model ─────────────────────────────────────────────────────

const FIELDS = [
  "id",
  "owner",
  "status",
  "queue",
  "attempts",
  "maxAttempts",
  "timeoutMs",
  "token",
  "version",
  "createdAt",
  "updatedAt",
  "firstStartedAt",
  "runAt",
  "dueAt",
  "startedAt",
  "heartbeatAt",
  "leaseExpiresAt",
  "workerId",
  "cancelRequestedAt",
  "progress",
  "checkpoint",
  "result",
  "finishedAt",
  "history",
] as const;

/** `answer`: a value the job names but did not read with it (a sweeper's record-only view) is not compared; the stored job's is. */
function mismatches(actual: Job | undefined, m: MJob, answer = false): string[] {
  if (!actual) return ["the job is missing"];
  const a = actual as unknown as Record<string, unknown>;
  const e = m as unknown as Record<string, unknown>;
  const out: string[] = [];
  const unread = (k: string) => answer && actual.refs?.[k as ValueField] !== undefined && a[k] === undefined;
  // The model tracks each attempt's error code; its message and detail are the store's own words.
  const codesOnly = (h: AttemptRecord[]) => h.map(({ message: _m, detail: _d, ...rest }) => rest);
  const compared = (k: string, v: unknown) => (k === "history" ? codesOnly(v as AttemptRecord[]) : v);
  for (const k of FIELDS) if (!unread(k) && !isDeepStrictEqual(compared(k, a[k]), e[k])) out.push(`${k}: store ${show(a[k])}, model ${show(e[k])}`);
  const cancel = m.cancelRequestedAt !== undefined ? true : undefined;
  if (a.cancelRequested !== cancel) out.push(`cancelRequested: store ${show(a.cancelRequested)}, model ${show(cancel)}`);
  if (actual.error?.code !== m.error) out.push(`error.code: store ${show(actual.error?.code)}, model ${show(m.error)}`);
  const expiresAt = isLive(m.status) ? undefined : Math.floor(m.finishedAt! / 1000) + RETENTION_DAYS * 24 * 3600;
  if (a.expiresAt !== expiresAt) out.push(`expiresAt: store ${show(a.expiresAt)}, model ${show(expiresAt)}`);
  return out;
}

/** What is stored, without the ref'd values the answer did not read (a sweeper decides on records alone). */
function asAnswered(stored: Job | undefined, answer: Job): Job | undefined {
  if (!stored) return stored;
  const out = { ...stored } as Job & Record<string, unknown>;
  for (const f of VALUE_FIELDS) if (stored.refs?.[f] && (answer as unknown as Record<string, unknown>)[f] === undefined) delete out[f];
  return out;
}

const show = (v: unknown): string => (v === undefined ? "undefined" : JSON.stringify(v));

class ModelMismatch extends Error {
  override readonly name = "ModelMismatch";
}

// ─── the actors' operations ─────────────────────────────────────────────────────────────────

interface Spec {
  maxAttempts: number;
  timeoutMs: number;
  runAfterMs: number | undefined;
  keyed: boolean;
}

type Op =
  | { k: "create"; slot: number; spec: Spec; lost: boolean }
  | { k: "claim"; w: number; slot: number; live: boolean; leaseMs: number; queue: QueueName | undefined; lost: boolean }
  | { k: "beat"; lease: number; current: boolean; progress: number | undefined; checkpoint: number | undefined; lost: boolean }
  | { k: "succeed"; lease: number; current: boolean; result: number; lost: boolean }
  | { k: "fail"; lease: number; current: boolean; retryable: boolean; backoffMs: number; toLarge: boolean; lost: boolean }
  | { k: "release"; lease: number; current: boolean; spend: boolean; toLarge: boolean; withError: boolean; lost: boolean }
  | { k: "ack"; lease: number; current: boolean; lost: boolean }
  | { k: "cancel"; slot: number; running: boolean; lost: boolean }
  | { k: "retry"; slot: number; lost: boolean }
  | { k: "sweep"; act: boolean; advanceMs: number; lost: boolean }
  | { k: "stale"; pick: number; lost: boolean }
  | { k: "advance"; ms: number };

interface Scenario {
  jobs: Spec[];
  ops: Op[];
}

const slotArb = fc.nat({ max: SLOTS - 1 });
const workerArb = fc.nat({ max: WORKERS - 1 });
/** Which of the leases handed out so far a worker writes under: 0 is the newest; older ones are likely taken over. */
const leaseArb = fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.nat({ max: 5 }), weight: 2 });
/** Steers an op towards where something can happen (a live job, a current lease) three times in four. */
const steerArb = fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 });
const lostArb = fc.oneof({ arbitrary: fc.constant(false), weight: 3 }, { arbitrary: fc.constant(true), weight: 1 });
const specArb: fc.Arbitrary<Spec> = fc.record({
  maxAttempts: fc.integer({ min: 1, max: 3 }),
  timeoutMs: fc.constantFrom(4_000, 9_000, 30_000),
  runAfterMs: fc.oneof({ arbitrary: fc.constantFrom(undefined, undefined, 0, 1_000, 3_000), weight: 9 }, { arbitrary: fc.constant(1_000_000), weight: 1 }),
  keyed: fc.boolean(),
});
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ k: fc.constant("create" as const), slot: slotArb, spec: specArb, lost: lostArb }) },
  {
    weight: 10,
    arbitrary: fc.record({
      k: fc.constant("claim" as const),
      w: workerArb,
      slot: slotArb,
      live: steerArb,
      leaseMs: fc.constantFrom(1_000, 2_000, 3_000),
      queue: fc.constantFrom<QueueName | undefined>(undefined, undefined, undefined, undefined, "default", "large"),
      lost: lostArb,
    }),
  },
  {
    weight: 9,
    arbitrary: fc.record({ k: fc.constant("beat" as const), lease: leaseArb, current: steerArb, progress: maybe(fc.nat({ max: 99 })), checkpoint: maybe(fc.nat({ max: 99 })), lost: lostArb }),
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("succeed" as const), lease: leaseArb, current: steerArb, result: fc.nat({ max: 99 }), lost: lostArb }) },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant("fail" as const),
      lease: leaseArb,
      current: steerArb,
      retryable: fc.boolean(),
      backoffMs: fc.constantFrom(0, 0, 1_000, 1_000_000),
      toLarge: fc.boolean(),
      lost: lostArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant("release" as const), lease: leaseArb, current: steerArb, spend: fc.boolean(), toLarge: fc.boolean(), withError: fc.boolean(), lost: lostArb }),
  },
  { weight: 4, arbitrary: fc.record({ k: fc.constant("ack" as const), lease: leaseArb, current: steerArb, lost: lostArb }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("cancel" as const), slot: slotArb, running: steerArb, lost: lostArb }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("retry" as const), slot: slotArb, lost: lostArb }) },
  { weight: 5, arbitrary: fc.record({ k: fc.constant("sweep" as const), advanceMs: fc.constantFrom(0, 0, 1_000, 2_000, 3_000), act: fc.oneof({ arbitrary: fc.constant(true), weight: 2 }, { arbitrary: fc.constant(false), weight: 1 }), lost: lostArb }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("stale" as const), pick: fc.nat({ max: 20 }), lost: lostArb }) },
  {
    weight: 8,
    arbitrary: fc.record({
      k: fc.constant("advance" as const),
      ms: fc.oneof({ arbitrary: fc.constantFrom(250, 1_000, 1_000, 2_000, 3_000, 6_000), weight: 15 }, { arbitrary: fc.constant(1_000_000), weight: 1 }),
    }),
  },
);

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  jobs: fc.oneof({ arbitrary: fc.array(specArb, { minLength: 1, maxLength: 1 }), weight: 1 }, { arbitrary: fc.array(specArb, { minLength: 2, maxLength: SLOTS }), weight: 3 }),
  ops: fc.array(opArb, { minLength: 20, maxLength: 40 }),
});

// ─── one scenario against the store ─────────────────────────────────────────────────────────

/** The due index's items for these ids, whatever their partition: a Scan of the (sparse, small) index. */
async function dueIndexItems(ids: string[]): Promise<Record<string, unknown>[]> {
  const values = Object.fromEntries(ids.map((id, i) => [`:i${i}`, id]));
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await w.doc.send(
      new ScanCommand({
        TableName: w.env.emu.tableName,
        IndexName: TABLE.dueIndex.name,
        FilterExpression: `#id IN (${Object.keys(values).join(", ")})`,
        ExpressionAttributeNames: { "#id": "id" },
        ExpressionAttributeValues: values,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  return items;
}

/**
 * Every scenario's clock starts GAP earlier than the one before, so the jobs of earlier
 * scenarios (a passing one deletes its own; a failing one leaves them) are never overdue within
 * a later one, and listOverdue sees exactly this scenario's jobs.
 */
const BASE = Date.UTC(2045, 0, 1);
const GAP = 1e9;
/** Beyond every deadline a job of this scenario can have, and before any earlier scenario's jobs. */
const FAR = 1e8;
let scenarios = 0;

/** The one-shot lost reply on the proxy, armed for one step's first write. */
const lost = { armed: false, planned: false, fired: false };
function armLostReply(): void {
  lost.armed = true;
  lost.fired = false;
  if (lost.planned) return;
  lost.planned = true;
  void w.dynamo.injectNext("lostReply", (target) => {
    if (!lost.armed || !/\.(PutItem|UpdateItem)$/.test(target)) return false;
    lost.armed = false;
    lost.planned = false;
    lost.fired = true;
    return true;
  });
}

interface StaleRead {
  step: number;
  plan: Exclude<Plan, { do: "wait" }>;
}

async function runScenario(sc: Scenario): Promise<void> {
  const run = ++scenarios;
  const clock = manualClock(BASE - run * GAP);
  const store: JobStore = w.store({ now: clock.now, startDeadlineMs: START_DEADLINE, cancelGraceMs: CANCEL_GRACE, retentionDays: RETENTION_DAYS });
  const owner = `model-${run}`;
  const slots: (MJob | undefined)[] = Array.from({ length: SLOTS }, () => undefined);
  const specs: (Spec | undefined)[] = Array.from({ length: SLOTS }, () => undefined);
  /** Every lease handed out (the newest last), kept after it is lost: a worker that missed the loss writes on with it. */
  const leases: { slot: number; lease: Lease }[] = [];
  const reads: StaleRead[] = [];
  const trace: string[] = [];
  /** Harness invariants, kept apart from the model. */
  const seen = new Map<string, { firstStartedAt?: number; token: number; version: number; succeeded?: Job; successes: number }>();

  const fail = (step: number, what: string): never => {
    const ran = trace.filter((t) => !t.endsWith("(skipped)"));
    throw new ModelMismatch(`step ${step}: ${what}\nscenario ${run}, the steps that ran (${trace.length - ran.length} skipped ones left out):\n${ran.join("\n")}`);
  };
  const slotOf = (id: string): number => slots.findIndex((m) => m?.id === id);
  /** An op's slot among the jobs that exist (creates fill slots in order), so few steps are skipped. */
  const existing = (pick: number, prefer?: (m: MJob) => boolean): number | undefined => {
    const filled = slots.flatMap((m, i) => (m ? [i] : []));
    const preferred = prefer ? filled.filter((i) => prefer(slots[i]!)) : [];
    const from = preferred.length ? preferred : filled;
    return from.length ? from[pick % from.length] : undefined;
  };

  /** The answer's job must be the model's, and what is stored. */
  const expectJob = (step: number, what: string, actual: Job | undefined, m: MJob) => {
    const diff = mismatches(actual, m, true);
    if (diff.length) fail(step, `${what}: the answer differs from the model:\n  ${diff.join("\n  ")}`);
  };

  async function expectError<T>(step: number, what: string, p: Promise<T>, kind: typeof ConflictError | typeof LeaseLostError): Promise<void> {
    try {
      const got = await p;
      fail(step, `${what}: expected ${kind.name}, got ${show(got)}`);
    } catch (e) {
      if (e instanceof ModelMismatch) throw e;
      if (!(e instanceof kind)) fail(step, `${what}: expected ${kind.name}, got ${String(e)}`);
    }
  }

  async function create(step: number, slot: number, spec: Spec): Promise<void> {
    const now = clock.now();
    const existing = slots[slot];
    const key = spec.keyed ? `k${slot}` : undefined;
    const runAt = spec.runAfterMs !== undefined ? now + spec.runAfterMs : undefined;
    // Odd slots carry an input too large for the record: it lives in a value item (core/values.ts).
    const input = slot % 2 ? { slot, pad: LARGE_PAD } : { slot };
    const res = await store.create({
      owner,
      type: "model.job",
      queue: "default",
      input,
      maxAttempts: spec.maxAttempts,
      timeoutMs: spec.timeoutMs,
      ...(runAt !== undefined ? { runAt } : {}),
      ...(key ? { idempotencyKey: key } : {}),
    });
    if (existing) {
      // Only a repeated key reaches an occupied slot: it must find the first job, unchanged.
      if (res.created) fail(step, "a repeated idempotency key created a second job");
      expectJob(step, "create (repeated key)", res.job, existing);
      return;
    }
    if (!res.created) fail(step, "a new job came back as not created");
    const m: MJob = {
      id: res.job.id,
      owner,
      status: "queued",
      queue: "default",
      attempts: 0,
      maxAttempts: spec.maxAttempts,
      timeoutMs: spec.timeoutMs,
      token: 0,
      version: 1,
      createdAt: now,
      updatedAt: now,
      dueAt: queuedDue(now, runAt),
      history: [],
      ...(key ? { key } : {}),
      ...(runAt !== undefined && runAt > now ? { runAt } : {}),
    };
    if (res.job.input === undefined || !isDeepStrictEqual(res.job.input, input)) fail(step, `create: input ${show(res.job.input)}`);
    slots[slot] = m;
    specs[slot] = spec;
    expectJob(step, "create", res.job, m);
  }

  /** Runs one step; answers the jobs the step's answer carried, to compare with what is stored. */
  async function perform(step: number, op: Op): Promise<{ skipped: boolean; returned: Job[] }> {
    const now = clock.now();
    const returned: Job[] = [];
    switch (op.k) {
      case "advance":
        clock.advance(op.ms);
        return { skipped: false, returned };
      case "create": {
        const there = slots[op.slot];
        if (there && !there.key) return { skipped: true, returned };
        if (there) trace[trace.length - 1] += ` (its key again)${state(op.slot, there)}`;
        await create(step, op.slot, there ? specs[op.slot]! : op.spec);
        return { skipped: false, returned: [] };
      }
      case "claim": {
        const slot = existing(op.slot, op.live ? (m) => isLive(m.status) : undefined);
        if (slot === undefined) return { skipped: true, returned };
        const m = slots[slot]!;
        trace[trace.length - 1] += state(slot, m);
        const worker = `w${op.w}`;
        const exp = mClaim(m, { worker, leaseMs: op.leaseMs, ...(op.queue ? { queue: op.queue } : {}) }, now);
        const r = await store.claim(m.id, worker, op.leaseMs, op.queue ? { queue: op.queue } : {});
        count(exp.ok ? "claim→ok" : `claim→${exp.reason}${exp.next ? "+settled" : ""}`);
        if (exp.ok) {
          if (!r.ok) fail(step, `claim: the model says it succeeds, the store refused it (${r.reason})`);
          else {
            if (r.lease.token !== exp.next.token || r.lease.workerId !== worker || r.lease.leaseMs !== op.leaseMs) fail(step, `claim: lease ${show({ token: r.lease.token, workerId: r.lease.workerId })}`);
            expectJob(step, "claim", r.lease.job, exp.next);
            leases.push({ slot, lease: r.lease });
            returned.push(r.lease.job);
          }
        } else {
          if (r.ok) fail(step, `claim: the model refuses it (${exp.reason}), the store granted token ${r.lease.token}`);
          else if (r.reason !== exp.reason) fail(step, `claim refused for ${r.reason}, the model says ${exp.reason}`);
          else if (r.job?.version !== m.version) fail(step, `claim refusal carries version ${r.job?.version}, the job was at ${m.version}`);
        }
        slots[slot] = exp.next ?? m;
        return { skipped: false, returned };
      }
      case "beat":
      case "succeed":
      case "fail":
      case "release":
      case "ack": {
        // A worker acknowledges a cancel it has seen on a heartbeat (or, failing that, one it heard of otherwise).
        const seenCancel = leases.filter((l) => l.lease.job.cancelRequested);
        const some = op.k !== "ack" ? leases : seenCancel.length ? seenCancel : leases.filter((l) => slots[l.slot]!.cancelRequestedAt !== undefined);
        const current = some.filter((l) => fenceHolds(slots[l.slot]!, l.lease.token));
        const held = op.current && current.length ? current : some;
        if (!held.length) return { skipped: true, returned };
        const { slot, lease } = held[held.length - 1 - (op.lease % held.length)]!;
        const m = slots[slot]!;
        trace[trace.length - 1] += ` with ${lease.workerId}'s token ${lease.token}${state(slot, m)}`;
        const ok = fenceHolds(m, lease.token);
        const report: MReport = {};
        if (op.k === "beat") {
          if (op.progress !== undefined) report.progress = { done: op.progress, total: 100 };
          if (op.checkpoint !== undefined) report.checkpoint = bulky(op.checkpoint);
        }
        let next: MJob | undefined;
        let call: () => Promise<Job>;
        switch (op.k) {
          case "beat":
            next = ok ? mBeat(m, lease.leaseMs, report, now, lease.job) : undefined;
            call = async () => {
              const hb = await store.heartbeat(lease, report);
              if (next && hb.cancelRequested !== (next.cancelRequestedAt !== undefined)) fail(step, `heartbeat answered cancelRequested=${hb.cancelRequested}`);
              if (lease.job !== hb.job) fail(step, "heartbeat did not update the lease's view");
              return hb.job;
            };
            break;
          case "succeed":
            next = ok ? mSucceed(m, bulky(op.result), report, now) : undefined;
            call = () => store.succeed(lease, bulky(op.result), report);
            break;
          case "fail": {
            const queue = op.toLarge ? ("large" as const) : undefined;
            next = ok ? mFail(m, "handler_error", { retryable: op.retryable, backoffMs: op.backoffMs, ...(queue ? { queue } : {}) }, now) : undefined;
            call = () => store.fail(lease, { code: "handler_error", message: "boom" }, { retryable: op.retryable, backoffMs: op.backoffMs, ...(queue ? { queue } : {}) });
            break;
          }
          case "release": {
            const queue = op.toLarge ? ("large" as const) : undefined;
            const error = op.withError ? { code: "memory" as const, message: "handed back" } : undefined;
            next = ok ? mRelease(m, { spend: op.spend, ...(queue ? { queue } : {}), ...(error ? { error: error.code } : {}) }, now) : undefined;
            call = () => store.release(lease, { spendAttempt: op.spend, ...(queue ? { queue } : {}), ...(error ? { error } : {}) });
            break;
          }
          case "ack":
            next = ok ? mAck(m, report, now) : undefined;
            call = () => store.acknowledgeCancel(lease, report);
            break;
        }
        count(`${op.k}→${next ? (next.status === "cancelled" && op.k !== "ack" ? "cancelled" : "ok") : "leaseLost"}`);
        if (next) {
          const got = await call();
          expectJob(step, op.k, got, next);
          returned.push(got);
          slots[slot] = next;
        } else await expectError(step, `${op.k} with token ${lease.token} on ${m.status} token ${m.token}`, call(), LeaseLostError);
        return { skipped: false, returned };
      }
      case "cancel": {
        const slot = existing(op.slot, op.running ? (m) => m.status === "running" : undefined);
        if (slot === undefined) return { skipped: true, returned };
        const m = slots[slot]!;
        trace[trace.length - 1] += state(slot, m);
        const exp = mRequestCancel(m, now);
        if (!exp.ok) await expectError(step, `requestCancel on ${m.status}`, store.requestCancel(m.id), ConflictError);
        else {
          const got = await store.requestCancel(m.id);
          expectJob(step, "requestCancel", got, exp.next);
          returned.push(got);
          slots[slot] = exp.next;
        }
        return { skipped: false, returned };
      }
      case "retry": {
        const slot = existing(op.slot);
        if (slot === undefined) return { skipped: true, returned };
        const m = slots[slot]!;
        trace[trace.length - 1] += state(slot, m);
        const next = mRetry(m, now);
        if (!next) await expectError(step, `retry on ${m.status}`, store.retry(m.id), ConflictError);
        else {
          const got = await store.retry(m.id);
          expectJob(step, "retry", got, next);
          returned.push(got);
          slots[slot] = next;
        }
        return { skipped: false, returned };
      }
      case "sweep": {
        // The sweeper runs on its schedule: some time has passed.
        clock.advance(op.advanceMs);
        const now = clock.now();
        const out = await store.listOverdue(now, 100);
        const mine = out.jobs.filter((j) => slotOf(j.id) >= 0);
        if (mine.length !== out.jobs.length) fail(step, `listOverdue(now) returned jobs of another scenario: ${show(out.jobs.map((j) => j.id))}`);
        const want = slots.filter((m): m is MJob => !!m && isLive(m.status) && m.dueAt! <= now).map((m) => m.id);
        const got = mine.map((j) => j.id);
        if (!isDeepStrictEqual(new Set(got), new Set(want))) fail(step, `listOverdue(now): store ${show(got)}, model ${show(want)}`);
        // Records alone: the sweeper decides without values.
        for (const j of mine) expectJob(step, "listOverdue's read", j, slots[slotOf(j.id)]!);
        const plans = mine.map((j) => plan(j, now)).filter((p): p is Exclude<Plan, { do: "wait" }> => p.do !== "wait");
        for (const p of plans) reads.push({ step, plan: p });
        if (op.act) for (const p of plans) returned.push(...(await sweepAction(step, p)));
        trace[trace.length - 1] += ` read=${show(plans.map((p) => `${slotOf(p.job.id)}:${p.do}@v${p.job.version}`))}`;
        return { skipped: false, returned };
      }
      case "stale": {
        const old = reads.filter((r) => r.step <= step - 2);
        if (!old.length) return { skipped: true, returned };
        const r = old[op.pick % old.length]!;
        trace[trace.length - 1] += ` acting on step ${r.step}'s read: ${slotOf(r.plan.job.id)}:${r.plan.do}@v${r.plan.job.version}`;
        returned.push(...(await sweepAction(step, r.plan)));
        return { skipped: false, returned };
      }
    }
  }

  /** One of the sweeper's conditional writes, decided from `p.job` (a read of some step): refused iff the job changed since. */
  async function sweepAction(step: number, p: Exclude<Plan, { do: "wait" }>): Promise<Job[]> {
    const slot = slotOf(p.job.id);
    const m = slots[slot]!;
    const now = clock.now();
    const what = `${p.do} on slot ${slot} read at v${p.job.version}, now v${m.version}`;
    const call = (): Promise<Job> => {
      switch (p.do) {
        case "expire":
          return store.expire(p.job);
        case "cancel":
          return store.cancelSilent(p.job);
        case "reclaim":
          return store.reclaim(p.job);
        case "resend":
          return store.pushStartDeadline(p.job);
        case "flow":
        case "orphan":
        case "hold":
          throw new Error(`the model makes no flows or limits, yet the sweeper planned ${p.do}`);
      }
    };
    count(`${p.do}${step > reads.find((r) => r.plan === p)!.step ? "(stale)" : ""}→${m.version !== p.job.version ? "conflict" : "ok"}`);
    if (m.version !== p.job.version) {
      await expectError(step, `a stale ${what}`, call(), ConflictError);
      return [];
    }
    const next = p.do === "expire" ? mExpire(m, now) : p.do === "cancel" ? mCancelSilent(m, now) : p.do === "reclaim" ? mReclaim(m, now) : mResend(m, now);
    const got = await call();
    expectJob(step, what, got, next);
    slots[slot] = next;
    return [got];
  }

  /** After every step: each stored item, the due index, and the invariants. */
  async function verify(step: number, returned: Job[]): Promise<void> {
    const models = slots.filter((m): m is MJob => !!m);
    const [items, due] = await Promise.all([
      Promise.all(models.map((m) => w.doc.send(new GetCommand({ TableName: w.env.emu.tableName, Key: { id: m.id }, ConsistentRead: true })).then((o) => o.Item))),
      dueIndexItems(models.map((m) => m.id)),
    ]);
    const stored = new Map<string, Job>();
    // The record and the values it names (core/values.ts): a ref whose value is not there is a lost value.
    const loaded = await Promise.all(items.map((it) => (it ? store.withValues(toJob(it)) : undefined)));
    models.forEach((m, i) => {
      const item = items[i];
      if (!item) return fail(step, `job ${m.id} is missing from the table`);
      const job = loaded[i]!;
      stored.set(m.id, job);
      for (const f of VALUE_FIELDS) {
        if (item[f] !== undefined && !fitsInline(item[f])) fail(step, `slot ${slotOf(m.id)}'s record holds a ${f} larger than the inline limit`);
        if (job.refs?.[f] && (job as unknown as Record<string, unknown>)[f] === undefined) fail(step, `slot ${slotOf(m.id)}'s record names a ${f} that is not stored`);
      }
      const diff = mismatches(job, m);
      if (diff.length) fail(step, `the stored job in slot ${slotOf(m.id)} differs from the model:\n  ${diff.join("\n  ")}`);
      // The due index is sparse: only a live job carries its partition key.
      const shard = isLive(m.status) ? `${m.queue}#${m.status}#${shardOf(m.id)}` : undefined;
      if (item.dueShard !== shard) fail(step, `slot ${slotOf(m.id)} (${m.status}) has dueShard ${show(item.dueShard)}, expected ${show(shard)}`);
      // Invariants the model does not need to state.
      if (job.attempts > job.maxAttempts) fail(step, `attempts ${job.attempts} > maxAttempts ${job.maxAttempts}`);
      const s = seen.get(m.id);
      if (s) {
        if (job.version < s.version || job.token < s.token) fail(step, `version or token went back: v${s.version}→v${job.version}, t${s.token}→t${job.token}`);
        if (s.firstStartedAt !== undefined && job.firstStartedAt !== s.firstStartedAt && !(job.status === "queued" && job.firstStartedAt === undefined && job.attempts === 0)) {
          fail(step, `firstStartedAt changed from ${s.firstStartedAt} to ${show(job.firstStartedAt)} without a retry`);
        }
        if (s.succeeded && !isDeepStrictEqual(job, s.succeeded)) fail(step, `a succeeded job changed: ${show(job)}`);
      }
      seen.set(m.id, {
        firstStartedAt: job.firstStartedAt,
        token: job.token,
        version: job.version,
        successes: s?.successes ?? 0,
        ...(job.status === "succeeded" ? { succeeded: job } : {}),
      });
    });
    // What the step's caller got is what is stored (ALL_NEW, or the re-read after a lost reply).
    for (const j of returned) {
      const now = asAnswered(stored.get(j.id), j);
      if (!isDeepStrictEqual(j, now)) fail(step, `the answer ${show(j)} is not what is stored: ${show(now)}`);
    }
    // The due index holds exactly the live jobs, each once, where and when the model says: a finished job has left it.
    const inIndex = due.map((it) => it.id as string);
    const live = models.filter((m) => isLive(m.status)).map((m) => m.id);
    if (inIndex.length !== new Set(inIndex).size || !isDeepStrictEqual(new Set(inIndex), new Set(live))) fail(step, `the due index holds ${show(inIndex)}, the live jobs are ${show(live)}`);
    for (const it of due) {
      const m = slots[slotOf(it.id as string)]!;
      // Keys only (invariant 11): the record is the truth for everything else.
      if (it.dueAt !== m.dueAt || it.dueShard !== `${m.queue}#${m.status}#${shardOf(m.id)}` || Object.keys(it).length !== 3) {
        fail(step, `the due index has slot ${slotOf(m.id)} in ${show(it.dueShard)} due ${show(it.dueAt)} with ${show(Object.keys(it))}; the model: ${m.status} on ${m.queue} due ${m.dueAt}`);
      }
    }
  }

  /** At the end: the store's own read of the due index, far in the future, finds exactly the live jobs. */
  async function verifyFarOverdue(step: number): Promise<void> {
    const out = await store.listOverdue(clock.now() + FAR, 500);
    const got = out.jobs.map((j) => j.id);
    const live = slots.filter((m): m is MJob => !!m && isLive(m.status)).map((m) => m.id);
    if (!isDeepStrictEqual(new Set(got), new Set(live))) fail(step, `listOverdue far in the future: ${show(got)}, the live jobs are ${show(live)}`);
  }

  const all: Op[] = [...sc.jobs.map((spec, slot): Op => ({ k: "create", slot, spec, lost: false })), ...sc.ops];
  for (let step = 0; step < all.length; step++) {
    const op = all[step]!;
    trace.push(`#${step} t+${clock.now() - (BASE - run * GAP)} ${describe(op)}`);
    const lossy = "lost" in op && op.lost;
    lost.fired = false;
    if (lossy) armLostReply();
    let result: { skipped: boolean; returned: Job[] };
    try {
      result = await perform(step, op);
    } catch (e) {
      if (e instanceof ModelMismatch) throw e;
      fail(step, `unexpected error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    } finally {
      lost.armed = false;
    }
    if (lossy && lost.fired) trace[trace.length - 1] += " [reply lost]";
    count(result!.skipped ? `${op.k}:skipped` : op.k);
    if (lossy && lost.fired) count(`${op.k}:lost`);
    if (result!.skipped) {
      trace[trace.length - 1] += " (skipped)";
      continue;
    }
    for (const j of result!.returned) if (j.status === "succeeded") seen.get(j.id)!.successes++;
    for (const [id, s] of seen) if (s.successes > 1) fail(step, `job ${id} completed ${s.successes} times`);
    await verify(step, result!.returned);
  }
  await verifyFarOverdue(all.length);
  // Passed: its jobs go, so the table (and every later Scan and Query) stays small.
  for (const m of slots) if (m) await w.env.doc.send(new DeleteCommand({ TableName: w.env.emu.tableName, Key: { id: m.id } }));
  stats.steps += all.length;
  stats.scenarios++;
}

function describe(op: Op): string {
  const { k, ...rest } = op as Op & Record<string, unknown>;
  return `${k} ${JSON.stringify(rest)}`;
}

const state = (slot: number, m: MJob): string => ` on slot ${slot} [${m.status} v${m.version} t${m.token} a${m.attempts}/${m.maxAttempts}]`;

const stats = { scenarios: 0, steps: 0, ran: {} as Record<string, number> };
const count = (what: string): void => void (stats.ran[what] = (stats.ran[what] ?? 0) + 1);

// ─── the property ───────────────────────────────────────────────────────────────────────────

const NUM_RUNS = Number(process.env.MODEL_RUNS ?? 60);
/** About 0.3 s a scenario on an idle 2-core machine; the limit leaves room for a loaded one, and for shrinking a failure. */
const TIME_LIMIT_MS = Math.max(150_000, NUM_RUNS * 2_500);

test(
  "the store follows the reference model through random interleavings of workers, sweeper, API, clock and lost replies",
  async () => {
    const seed = process.env.MODEL_SEED !== undefined ? Number(process.env.MODEL_SEED) : Math.floor(Math.random() * 2 ** 31);
    const replay = process.env.MODEL_PATH;
    const started = Date.now();
    const lostBefore = w.dynamo.counts.lostReply;
    await fc.assert(
      fc.asyncProperty(scenarioArb, (sc) => runScenario(sc)),
      {
        numRuns: NUM_RUNS,
        seed,
        ...(replay ? { path: replay } : {}),
        // Shrinking replays scenarios against the store: bounded, so a failure reports in time
        // (with the smallest counterexample found so far). A slow machine runs fewer scenarios.
        interruptAfterTimeLimit: TIME_LIMIT_MS,
      },
    );
    const lostReplies = w.dynamo.counts.lostReply - lostBefore;
    console.log(`store model: seed ${seed}, ${stats.scenarios} scenarios, ${stats.steps} steps, ${lostReplies} lost replies, ${Date.now() - started} ms`);
    if (process.env.MODEL_VERBOSE) console.log(Object.entries(stats.ran).sort().map(([k, n]) => `${k}=${n}`).join(" "));
    // The run exercised what it is for: lost replies landed, claims won, stale sweeps were refused.
    if (!replay && NUM_RUNS >= 30) {
      expect(stats.scenarios).toBeGreaterThanOrEqual(20);
      expect(lostReplies).toBeGreaterThan(0);
      expect(stats.ran["claim→ok"] ?? 0).toBeGreaterThan(0);
      expect(Object.entries(stats.ran).some(([k, n]) => k.endsWith("(stale)→conflict") && n > 0)).toBe(true);
    }
  },
  TIME_LIMIT_MS + 60_000,
);

// ─── the bugs the model found, each on its own (both failed before the fix) ─────────────────

function bugStore() {
  const clock = manualClock(BASE + 10 * GAP + Math.floor(Math.random() * 1e6));
  const store = w.store({ now: clock.now, startDeadlineMs: START_DEADLINE, cancelGraceMs: CANCEL_GRACE, retentionDays: RETENTION_DAYS });
  const spec = { owner: "model-found", type: "model.job", queue: "default" as const, input: {}, maxAttempts: 1, timeoutMs: 60_000 };
  return { clock, store, spec };
}

test("the first heartbeat after a cancel request the worker had not heard of keeps the cancel grace deadline", async () => {
  const { clock, store, spec } = bugStore();
  const t0 = clock.now();
  const { job } = await store.create(spec);
  const c = await store.claim(job.id, "w0", 3_000);
  if (!c.ok) throw new Error(`claim refused: ${c.reason}`);
  const marked = await store.requestCancel(job.id);
  expect((marked as RunningJob).dueAt).toBe(t0 + CANCEL_GRACE); // the grace ends before the lease
  clock.advance(1_000);
  const hb = await store.heartbeat(c.lease); // the worker had not heard of the cancel: this beat tells it
  expect(hb.cancelRequested).toBe(true);
  // The worker ignores it. At the end of the grace the sweeper must find the job to cancel it.
  clock.advance(1_500);
  const found = (await store.listOverdue(clock.now(), 100)).jobs.some((j) => j.id === job.id);
  expect(hb.job.dueAt).toBe(t0 + CANCEL_GRACE);
  expect(found).toBe(true);
});

test("a heartbeat whose reply is lost is applied once: the SDK's resend is refused and recognized", async () => {
  const { store, spec } = bugStore();
  const { job } = await store.create(spec);
  const c = await store.claim(job.id, "w0", 3_000);
  if (!c.ok) throw new Error(`claim refused: ${c.reason}`);
  const before = c.lease.job.version;
  const applied = w.applied.length;
  lost.fired = false;
  armLostReply();
  const hb = await store.heartbeat(c.lease, { progress: { done: 1 } });
  lost.armed = false;
  expect(lost.fired).toBe(true);
  const updates = w.applied.slice(applied).filter((a) => a.target.endsWith(".UpdateItem") && a.status === 200);
  expect(hb.job.version).toBe(before + 1);
  expect(updates).toHaveLength(1);
  expect((await store.get(job.id))?.version).toBe(hb.job.version);
});
