/**
 * The DynamoDB job store: the one place that reads and writes jobs. DynamoDB is the truth
 * (invariant 1); every transition here is a conditional write on the state it expects
 * (invariant 2), and every write a worker makes is fenced on the token its claim received.
 */
import { createHash } from "node:crypto";
import {
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from "@aws-sdk/lib-dynamodb";
import { ulid } from "ulid";
import { batchGetAll } from "./aws.js";
import { DUE_SHARDS, LIMITS, QUEUE_NAMES, TABLE, TIMINGS, type QueueName } from "./config.js";
import { ConflictError, LeaseLostError, NotFoundError, TooLargeError, ValidationError } from "./errors.js";
import { Expr, isConditionFailure } from "./expr.js";
import {
  canTransition,
  isTerminal,
  STATUSES,
  type AttemptRecord,
  type CancelledJob,
  type FailedJob,
  type Job,
  type JobError,
  type Lease,
  type Outcome,
  type Progress,
  type QueuedJob,
  type RunningJob,
  type Status,
  type SucceededJob,
  type TransitionName,
} from "./job.js";

export interface StoreOptions {
  tableName: string;
  now?: () => number;
  retentionDays?: number;
  startDeadlineMs?: number;
  cancelGraceMs?: number;
}

export interface NewJob {
  owner: string;
  type: string;
  queue: QueueName;
  input: unknown;
  maxAttempts: number;
  timeoutMs: number;
  runAt?: number;
  idempotencyKey?: string;
}

export type ClaimRefusal = "not_found" | "finished" | "leased" | "not_due" | "attempts_exhausted" | "timed_out" | "cancel_requested";
export type ClaimResult =
  | { ok: true; lease: Lease }
  | { ok: false; reason: ClaimRefusal; job?: Job };

/** What a worker carries on a heartbeat or a final write; undefined fields are left as they are. */
export interface Report {
  progress?: Progress;
  checkpoint?: unknown;
}

export interface HeartbeatResult {
  job: RunningJob;
  cancelRequested: boolean;
}

export interface ListFilter {
  owner?: string;
  status?: Status;
  type?: string;
}

export interface Page {
  jobs: Job[];
  nextCursor: string | null;
}

export interface OverdueResult {
  jobs: (QueuedJob | RunningJob)[];
  /** Items DynamoDB read for the query: proof the cost follows the overdue count, not the table. */
  scanned: number;
  /** True when some partition had more overdue items than the limit let through. */
  more: boolean;
}

/** Attributes that exist only for the indexes; they never leave the store. */
const INDEX_ONLY = ["dueShard", "createdKey", "expiresAtSeconds"] as const;

export const jsonBytes = (v: unknown): number => (v === undefined ? 0 : Buffer.byteLength(JSON.stringify(v) ?? "", "utf8"));

export function shardOf(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % DUE_SHARDS;
}

export const dueShard = (queue: QueueName, status: "queued" | "running", id: string): string =>
  `${queue}#${status}#${shardOf(id)}`;

/** Every due-index partition the sweeper reads. */
export const allDueShards = (): string[] =>
  QUEUE_NAMES.flatMap((q) =>
    (["queued", "running"] as const).flatMap((s) => Array.from({ length: DUE_SHARDS }, (_, i) => `${q}#${s}#${i}`)),
  );

/** A repeated idempotency key from the same owner must land on the same id. */
export function idempotentId(owner: string, key: string): string {
  const digest = createHash("sha256").update(`${owner}\u0000${key}`).digest("hex");
  return `K${digest.slice(0, 25).toUpperCase()}`;
}

const CROCKFORD = /^[0-9A-HJKMNP-TV-Z]{26}$/;
export const isJobId = (id: string): boolean => CROCKFORD.test(id) || /^K[0-9A-F]{25}$/.test(id);

export function checkSize(what: string, value: unknown, limit: number): void {
  const bytes = jsonBytes(value);
  if (bytes > limit) {
    throw new TooLargeError(
      `${what} is ${bytes} bytes as JSON; the limit is ${limit}. Store large data elsewhere (S3) and pass a reference.`,
      bytes,
      limit,
    );
  }
}

export class JobStore {
  readonly table: string;
  private readonly now: () => number;
  private readonly retentionDays: number;
  private readonly startDeadlineMs: number;
  private readonly cancelGraceMs: number;

  constructor(
    private readonly db: DynamoDBDocumentClient,
    opts: StoreOptions,
  ) {
    this.table = opts.tableName;
    this.now = opts.now ?? Date.now;
    this.retentionDays = opts.retentionDays ?? TIMINGS.retentionDays;
    this.startDeadlineMs = opts.startDeadlineMs ?? TIMINGS.startDeadlineMs;
    this.cancelGraceMs = opts.cancelGraceMs ?? TIMINGS.cancelGraceMs;
  }

  // ─── reads ────────────────────────────────────────────────────────────────────────────────

  async get(id: string): Promise<Job | undefined> {
    if (!isJobId(id)) return undefined;
    const out = await this.db.send(new GetCommand({ TableName: this.table, Key: { id }, ConsistentRead: true }));
    return out.Item ? toJob(out.Item) : undefined;
  }

  async mustGet(id: string): Promise<Job> {
    const job = await this.get(id);
    if (!job) throw new NotFoundError(id);
    return job;
  }

  // ─── create ───────────────────────────────────────────────────────────────────────────────

  /**
   * Writes a new queued job. With an idempotency key the id is derived from owner and key, and
   * the put is conditional on the id being new, so a repeated submit finds the first job.
   */
  async create(spec: NewJob): Promise<{ job: Job; created: boolean }> {
    validateNewJob(spec);
    const now = this.now();
    const id = spec.idempotencyKey ? idempotentId(spec.owner, spec.idempotencyKey) : ulid(now);
    const job: QueuedJob = {
      id,
      owner: spec.owner,
      type: spec.type,
      queue: spec.queue,
      status: "queued",
      input: spec.input ?? null,
      createdAt: now,
      updatedAt: now,
      attempts: 0,
      maxAttempts: spec.maxAttempts,
      timeoutMs: spec.timeoutMs,
      token: 0,
      history: [],
      ...(spec.runAt !== undefined && spec.runAt > now ? { runAt: spec.runAt } : {}),
      ...(spec.idempotencyKey ? { idempotencyKey: spec.idempotencyKey } : {}),
      dueAt: this.queuedDueAt(spec.runAt, now),
    };
    const item = {
      ...job,
      dueShard: dueShard(job.queue, "queued", id),
      createdKey: createdKey(now, id),
    };
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: item,
          ConditionExpression: "attribute_not_exists(#id)",
          ExpressionAttributeNames: { "#id": "id" },
        }),
      );
      return { job, created: true };
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      const existing = await this.mustGet(id);
      if (existing.owner !== spec.owner) throw new ConflictError("idempotency key collision");
      return { job: existing, created: false };
    }
  }

  /**
   * When a queued job counts as stuck: its start deadline after it becomes runnable. A runAt
   * further out than SQS can delay a message is simply due at runAt: the sweeper sends it then.
   */
  private queuedDueAt(runAt: number | undefined, now: number): number {
    const start = runAt !== undefined && runAt > now ? runAt : now;
    if (start - now > TIMINGS.maxMessageDelaySeconds * 1000) return start;
    return start + this.startDeadlineMs;
  }

  // ─── claim ────────────────────────────────────────────────────────────────────────────────

  /**
   * Claims a job for `workerId`: a queued job whose runAt has come, or a running job whose lease
   * has expired. Reads the job, then writes conditionally on the token and state it read, so of
   * any number of concurrent claimers exactly one wins. Every claim bumps the fencing token.
   */
  async claim(jobId: string, workerId: string, leaseMs: number): Promise<ClaimResult> {
    const job = await this.get(jobId);
    const refusal = this.claimRefusal(job);
    if (refusal) {
      // An expired job with nothing left to try is settled here instead of waiting for the sweeper.
      if ((refusal === "attempts_exhausted" || refusal === "timed_out") && job?.status === "running") await this.expire(job).catch(ignoreConflict);
      if (refusal === "timed_out" && job?.status === "queued") await this.expireQueued(job).catch(ignoreConflict);
      return { ok: false, reason: refusal, ...(job ? { job } : {}) };
    }
    const prev = job as QueuedJob | RunningJob;
    const now = this.now();
    const firstStartedAt = prev.firstStartedAt ?? now;
    const runtimeDeadline = firstStartedAt + prev.timeoutMs;
    const attempt = prev.attempts + 1;
    const history = closeLast(prev.history, now, prev.status === "running" ? "worker_lost" : null);
    const running: RunningJob = {
      ...stripRunning(prev),
      status: "running",
      attempts: attempt,
      token: prev.token + 1,
      firstStartedAt,
      startedAt: now,
      heartbeatAt: now,
      leaseExpiresAt: now + leaseMs,
      workerId,
      dueAt: Math.min(now + leaseMs, runtimeDeadline),
      updatedAt: now,
      history: bounded([...history, { attempt, worker: workerId, startedAt: now, endedAt: null, outcome: null }]),
    };
    const x = new Expr()
      .set("status", "running")
      .set("attempts", running.attempts)
      .set("token", running.token)
      .set("firstStartedAt", firstStartedAt)
      .set("startedAt", now)
      .set("heartbeatAt", now)
      .set("leaseExpiresAt", running.leaseExpiresAt)
      .set("workerId", workerId)
      .set("dueAt", running.dueAt)
      .set("dueShard", dueShard(prev.queue, "running", jobId))
      .set("updatedAt", now)
      .set("history", running.history)
      .remove("runAt")
      .eq("token", prev.token)
      .eq("status", prev.status);
    if (prev.status === "running") x.eq("leaseExpiresAt", prev.leaseExpiresAt);
    try {
      await this.update(jobId, x);
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      // Someone moved first. Read again to say why; refusals are the rare path.
      const now2 = await this.get(jobId);
      return { ok: false, reason: this.claimRefusal(now2) ?? "leased", ...(now2 ? { job: now2 } : {}) };
    }
    return { ok: true, lease: { jobId, token: running.token, workerId, leaseMs, runtimeDeadline, job: running } };
  }

  private claimRefusal(job: Job | undefined): ClaimRefusal | undefined {
    const now = this.now();
    if (!job) return "not_found";
    if (isTerminal(job.status)) return "finished";
    if (job.status === "running") {
      if (job.leaseExpiresAt >= now) return "leased";
      if (job.cancelRequested) return "cancel_requested";
    }
    if (job.status === "queued" && job.runAt !== undefined && job.runAt > now) return "not_due";
    if (job.firstStartedAt !== undefined && job.firstStartedAt + job.timeoutMs <= now) return "timed_out";
    if (job.attempts >= job.maxAttempts) return "attempts_exhausted";
    return undefined;
  }

  // ─── a worker's fenced writes ─────────────────────────────────────────────────────────────

  /**
   * Renews the lease and writes the coalesced progress and checkpoint. Answers whether a cancel
   * was requested; throws LeaseLostError when the token no longer matches.
   */
  async heartbeat(lease: Lease, report: Report = {}): Promise<HeartbeatResult> {
    const now = this.now();
    const leaseExpiresAt = now + lease.leaseMs;
    const x = this.fenced(lease)
      .set("heartbeatAt", now)
      .set("leaseExpiresAt", leaseExpiresAt)
      .set("dueAt", this.runningDueAt(lease, leaseExpiresAt))
      .set("updatedAt", now);
    this.addReport(x, report);
    const out = await this.fencedUpdate(lease, x, "ALL_NEW");
    const job = toJob(out!) as RunningJob;
    lease.job = job;
    return { job, cancelRequested: job.cancelRequested === true };
  }

  /** The earliest moment the sweeper must look at a running job. */
  private runningDueAt(lease: Lease, leaseExpiresAt: number): number {
    const cancelAt = lease.job.cancelRequestedAt !== undefined ? lease.job.cancelRequestedAt + this.cancelGraceMs : Infinity;
    return Math.min(leaseExpiresAt, lease.runtimeDeadline, cancelAt);
  }

  async succeed(lease: Lease, result: unknown, report: Report = {}): Promise<SucceededJob> {
    checkSize("the result", result, LIMITS.maxResultBytes);
    const now = this.now();
    const x = this.finish(lease, "succeeded", now, "succeeded", unsafeUnfencedSucceed()).set("result", result ?? null).remove("error");
    this.addReport(x, report);
    await this.fencedUpdate(lease, x);
    return this.finishedView(lease, x, { status: "succeeded", result: result ?? null, finishedAt: now }) as SucceededJob;
  }

  /**
   * Records a failed attempt. With `retryable` and attempts left the job is queued again after
   * `backoffMs` (on `queue` when given: a job that ran out of memory moves to the large queue);
   * otherwise it ends failed, `attempts_exhausted` when its budget ran out.
   */
  async fail(
    lease: Lease,
    error: JobError,
    opts: { retryable: boolean; backoffMs?: number; queue?: QueueName; report?: Report },
  ): Promise<QueuedJob | FailedJob> {
    const now = this.now();
    const job = lease.job;
    const attemptsLeft = job.attempts < job.maxAttempts;
    const pastRuntime = now >= lease.runtimeDeadline;
    if (opts.retryable && attemptsLeft && !pastRuntime) {
      const runAt = now + (opts.backoffMs ?? 0);
      return this.requeue(lease, now, {
        outcome: "retried",
        attempts: job.attempts,
        runAt,
        error,
        queue: opts.queue ?? job.queue,
        report: opts.report,
      });
    }
    const final: JobError =
      opts.retryable && !attemptsLeft
        ? { code: "attempts_exhausted", message: `all ${job.maxAttempts} attempts failed; the last: ${error.message}` }
        : opts.retryable && pastRuntime
          ? { code: "timeout", message: `total runtime limit of ${Math.round(job.timeoutMs / 1000)} s reached; the last attempt: ${error.message}` }
          : error;
    const x = this.finish(lease, "failed", now, "failed").set("error", final);
    this.addReport(x, opts.report ?? {});
    await this.fencedUpdate(lease, x);
    return this.finishedView(lease, x, { status: "failed", error: final, finishedAt: now }) as FailedJob;
  }

  /**
   * Hands the job back without spending an attempt (shutdown, Lambda deadline, soft limit with
   * progress) so another worker resumes it from its checkpoint. `spendAttempt` keeps the attempt
   * spent, for a hand-back that made no progress.
   */
  async release(
    lease: Lease,
    opts: { report?: Report; queue?: QueueName; spendAttempt?: boolean; error?: JobError } = {},
  ): Promise<QueuedJob | FailedJob> {
    const now = this.now();
    // A hand-back that spends the last attempt must end the job: a queued job with no attempts
    // left could never be claimed again and would sit in the queue forever.
    if (opts.spendAttempt && lease.job.attempts >= lease.job.maxAttempts) {
      const error = opts.error ?? { code: "timeout" as const, message: "the last attempt was handed back without progress" };
      return this.fail(lease, error, { retryable: true, ...(opts.report ? { report: opts.report } : {}) });
    }
    return this.requeue(lease, now, {
      outcome: "released",
      attempts: opts.spendAttempt ? lease.job.attempts : lease.job.attempts - 1,
      runAt: undefined,
      error: opts.error,
      queue: opts.queue ?? lease.job.queue,
      report: opts.report,
    });
  }

  /** The worker saw the cancel request and stopped. */
  async acknowledgeCancel(lease: Lease, report: Report = {}): Promise<CancelledJob> {
    const now = this.now();
    const error: JobError = { code: "cancelled", message: "cancelled on request; the worker stopped" };
    const x = this.finish(lease, "cancelled", now, "cancelled").set("error", error);
    this.addReport(x, report);
    await this.fencedUpdate(lease, x);
    return this.finishedView(lease, x, { status: "cancelled", error, finishedAt: now }) as CancelledJob;
  }

  private async requeue(
    lease: Lease,
    now: number,
    o: { outcome: Outcome; attempts: number; runAt?: number; error?: JobError; queue: QueueName; report?: Report },
  ): Promise<QueuedJob> {
    const runAt = o.runAt !== undefined && o.runAt > now ? o.runAt : undefined;
    const history = closeLast(lease.job.history, now, o.outcome);
    const x = this.fenced(lease)
      .set("status", "queued")
      .set("attempts", o.attempts)
      .set("queue", o.queue)
      .set("runAt", runAt)
      .set("dueAt", this.queuedDueAt(runAt, now))
      .set("dueShard", dueShard(o.queue, "queued", lease.jobId))
      .set("history", history)
      .set("updatedAt", now)
      .remove(...RUNNING_ONLY);
    if (o.error) x.set("error", o.error);
    this.addReport(x, o.report ?? {});
    await this.fencedUpdate(lease, x);
    const base = stripRunning(lease.job);
    return {
      ...base,
      ...reportFields(o.report),
      status: "queued",
      attempts: o.attempts,
      queue: o.queue,
      ...(runAt !== undefined ? { runAt } : {}),
      dueAt: this.queuedDueAt(runAt, now),
      history,
      updatedAt: now,
      ...(o.error ? { error: o.error } : {}),
    };
  }

  // ─── requests from callers ────────────────────────────────────────────────────────────────

  /**
   * A queued job is cancelled at once; a running one is marked, and its worker stops when its
   * next heartbeat sees the mark (or the sweeper cancels it after a grace period).
   */
  async requestCancel(jobId: string): Promise<Job> {
    const job = await this.mustGet(jobId);
    const now = this.now();
    if (job.status === "queued") {
      assertTransition("cancelQueued", job.status);
      const error: JobError = { code: "cancelled", message: "cancelled on request before it started" };
      const x = new Expr().eq("status", "queued").eq("token", job.token);
      this.applyFinished(x, "cancelled", now).set("error", error);
      await this.conditional(jobId, x, "the job changed while it was being cancelled; try again");
      return { ...stripQueued(job), status: "cancelled", error, finishedAt: now, expiresAt: this.expiresAt(now), updatedAt: now };
    }
    if (job.status === "running") {
      if (job.cancelRequested) return job;
      const dueAt = Math.min(job.dueAt, now + this.cancelGraceMs);
      const x = new Expr()
        .set("cancelRequested", true)
        .set("cancelRequestedAt", now)
        .set("dueAt", dueAt)
        .set("updatedAt", now)
        .eq("status", "running")
        .eq("token", job.token);
      await this.conditional(jobId, x, "the job changed while it was being cancelled; try again");
      return { ...job, cancelRequested: true, cancelRequestedAt: now, dueAt, updatedAt: now };
    }
    throw new ConflictError(`job ${jobId} has already finished (${job.status}); there is nothing to cancel`, job.status);
  }

  /** A failed or cancelled job queued again with a fresh attempt budget, keeping its history. */
  async retry(jobId: string): Promise<QueuedJob> {
    const job = await this.mustGet(jobId);
    if (!canTransition("retry", job.status)) {
      throw new ConflictError(`only failed or cancelled jobs can be retried; job ${jobId} is ${job.status}`, job.status);
    }
    const now = this.now();
    const x = new Expr()
      .set("status", "queued")
      .set("attempts", 0)
      .set("dueAt", this.queuedDueAt(undefined, now))
      .set("dueShard", dueShard(job.queue, "queued", jobId))
      .set("updatedAt", now)
      .remove("finishedAt", "expiresAt", "result", "firstStartedAt", ...RUNNING_ONLY)
      .eq("status", job.status)
      .eq("token", job.token);
    await this.conditional(jobId, x, "the job changed while it was being retried; try again");
    const { finishedAt: _f, expiresAt: _e, ...rest } = job as FailedJob;
    const { firstStartedAt: _s, ...fresh } = rest;
    return { ...fresh, status: "queued", attempts: 0, dueAt: this.queuedDueAt(undefined, now), updatedAt: now };
  }

  // ─── the sweeper's writes: conditional on exactly what the sweep read ──────────────────────

  /**
   * A running job whose lease expired: back to queued keeping its checkpoint, or failed when it
   * has no attempts left. Conditional on the token and lease the sweep read, and bumps the token,
   * so a concurrent sweep or a late heartbeat cannot both win.
   */
  async reclaim(job: RunningJob): Promise<QueuedJob | FailedJob> {
    const now = this.now();
    if (job.attempts >= job.maxAttempts) return this.expire(job);
    const history = closeLast(job.history, now, "worker_lost");
    const error: JobError = { code: "worker_lost", message: lostMessage(job) };
    const dueAt = this.queuedDueAt(undefined, now);
    const x = this.sweptRunning(job)
      .set("status", "queued")
      .set("token", job.token + 1)
      .set("dueAt", dueAt)
      .set("dueShard", dueShard(job.queue, "queued", job.id))
      .set("history", history)
      .set("error", error)
      .set("updatedAt", now)
      .remove(...RUNNING_ONLY);
    await this.conditional(job.id, x, "the job changed during the sweep");
    return { ...stripRunning(job), status: "queued", token: job.token + 1, dueAt, history, error, updatedAt: now };
  }

  /**
   * Ends a running job as failed: its lease expired with no attempts left, or it ran past its
   * total runtime limit (counted from its first start, so re-claims never reset it).
   */
  async expire(job: RunningJob): Promise<FailedJob> {
    const now = this.now();
    const pastRuntime = job.firstStartedAt + job.timeoutMs <= now;
    const error: JobError = pastRuntime
      ? {
          code: "timeout",
          message: `ran past its total runtime limit of ${Math.round(job.timeoutMs / 1000)} s, counted from its first start at ${iso(job.firstStartedAt)}`,
        }
      : {
          code: "attempts_exhausted",
          message: `all ${job.maxAttempts} attempts used; the last worker (${job.workerId}) was lost: ${lostMessage(job)}`,
        };
    const x = this.sweptRunning(job).set("token", job.token + 1).set("history", closeLast(job.history, now, pastRuntime ? "timeout" : "worker_lost"));
    this.applyFinished(x, "failed", now).set("error", error);
    await this.conditional(job.id, x, "the job changed during the sweep");
    return {
      ...stripRunning(job),
      status: "failed",
      token: job.token + 1,
      error,
      finishedAt: now,
      expiresAt: this.expiresAt(now),
      updatedAt: now,
    } as FailedJob;
  }

  /**
   * A queued job (waiting out a backoff, or handed back) whose total runtime limit has passed
   * since its first start: no attempt may begin, so it ends here.
   */
  async expireQueued(job: QueuedJob): Promise<FailedJob> {
    const now = this.now();
    const error: JobError = {
      code: "timeout",
      message: `ran past its total runtime limit of ${Math.round(job.timeoutMs / 1000)} s, counted from its first start at ${iso(job.firstStartedAt ?? job.createdAt)}`,
    };
    const x = new Expr().eq("status", "queued").eq("token", job.token);
    this.applyFinished(x, "failed", now).set("error", error);
    await this.conditional(job.id, x, "the job changed while it was being expired");
    return { ...stripQueued(job), status: "failed", error, finishedAt: now, expiresAt: this.expiresAt(now), updatedAt: now };
  }

  /** A cancel that no worker acknowledged within the grace period. */
  async cancelSilent(job: RunningJob): Promise<CancelledJob> {
    const now = this.now();
    const error: JobError = {
      code: "cancelled",
      message: `cancelled on request; the worker (${job.workerId}) did not acknowledge within the grace period`,
    };
    const x = this.sweptRunning(job).set("token", job.token + 1).set("history", closeLast(job.history, now, "cancelled"));
    this.applyFinished(x, "cancelled", now).set("error", error);
    await this.conditional(job.id, x, "the job changed during the sweep");
    return { ...stripRunning(job), status: "cancelled", token: job.token + 1, error, finishedAt: now, expiresAt: this.expiresAt(now), updatedAt: now } as CancelledJob;
  }

  /**
   * A queued job past its start deadline gets a new deadline before its message is sent again;
   * conditional on the deadline the sweep read, so of two concurrent sweeps only one sends.
   */
  async pushStartDeadline(job: QueuedJob): Promise<QueuedJob> {
    const now = this.now();
    const dueAt = now + this.startDeadlineMs;
    const x = new Expr()
      .set("dueAt", dueAt)
      .set("updatedAt", now)
      .eq("status", "queued")
      .eq("token", job.token)
      .eq("dueAt", job.dueAt);
    await this.conditional(job.id, x, "the job changed during the sweep");
    return { ...job, dueAt, updatedAt: now };
  }

  // ─── queries ──────────────────────────────────────────────────────────────────────────────

  /**
   * Live jobs whose deadline has passed: a Query per due-index partition, never a Scan, so the
   * cost follows the number of overdue jobs and not the size of the table (invariant 4).
   */
  async listOverdue(now: number, limit: number): Promise<OverdueResult> {
    const results = await Promise.all(
      allDueShards().map((shard) =>
        this.db.send(new QueryCommand({ ...this.overdueQuery(shard, now), Limit: limit })),
      ),
    );
    const jobs = results
      .flatMap((r) => (r.Items ?? []).map(toJob))
      .filter((j): j is QueuedJob | RunningJob => j.status === "queued" || j.status === "running")
      .sort((a, b) => a.dueAt - b.dueAt);
    return {
      jobs: jobs.slice(0, limit),
      scanned: results.reduce((n, r) => n + (r.ScannedCount ?? 0), 0),
      more: jobs.length > limit || results.some((r) => r.LastEvaluatedKey !== undefined),
    };
  }

  /** One due-index partition's items whose deadline is at or before `now`. */
  private overdueQuery(shard: string, now: number) {
    return {
      TableName: this.table,
      IndexName: TABLE.dueIndex.name,
      KeyConditionExpression: "#p = :p AND #d <= :now",
      ExpressionAttributeNames: { "#p": TABLE.dueIndex.partitionKey, "#d": TABLE.dueIndex.sortKey },
      ExpressionAttributeValues: { ":p": shard, ":now": now },
    };
  }

  /** Counts of overdue items per due-index partition, for the stuck report, without fetching them. */
  async countOverdue(now: number): Promise<Record<string, number>> {
    const shards = allDueShards();
    const counts = await Promise.all(
      shards.map(async (shard) => {
        // A COUNT query still stops at 1 MB read; follow its pages or a backlog is undercounted.
        let count = 0;
        let start: Record<string, unknown> | undefined;
        do {
          const r = await this.db.send(
            new QueryCommand({ ...this.overdueQuery(shard, now), Select: "COUNT", ...(start ? { ExclusiveStartKey: start } : {}) }),
          );
          count += r.Count ?? 0;
          start = r.LastEvaluatedKey;
        } while (start);
        return count;
      }),
    );
    return Object.fromEntries(shards.map((s, i) => [s, counts[i] ?? 0]));
  }

  /**
   * A page of jobs, newest first. With an owner, that caller's jobs (filtered by status and type
   * in the query); without one, everybody's (the admin and the dashboard) through the status index.
   */
  async list(filter: ListFilter, cursor: string | null | undefined, limit: number): Promise<Page> {
    if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.listMax) {
      throw new ValidationError(`limit must be a whole number from 1 to ${LIMITS.listMax}`);
    }
    const before = cursor ? decodeCursor(cursor) : undefined;
    const keys = filter.owner
      ? await this.queryKeys(TABLE.ownerIndex.name, TABLE.ownerIndex.partitionKey, filter.owner, before, limit, filter)
      : (
          await Promise.all(
            (filter.status ? [filter.status] : STATUSES).map((s) =>
              this.queryKeys(TABLE.statusIndex.name, TABLE.statusIndex.partitionKey, s, before, limit, filter),
            ),
          )
        ).flat();
    keys.sort((a, b) => (a.createdKey < b.createdKey ? 1 : -1));
    const page = keys.slice(0, limit);
    const jobs = await this.batchGet(page.map((k) => k.id));
    const more = keys.length > limit || keys.some((k) => k.more);
    const last = page[page.length - 1];
    return { jobs, nextCursor: more && last ? encodeCursor(last.createdKey) : null };
  }

  private async queryKeys(
    index: string,
    pkName: string,
    pk: string,
    before: string | undefined,
    limit: number,
    filter: ListFilter,
  ): Promise<{ id: string; createdKey: string; more: boolean }[]> {
    const names: Record<string, string> = { "#p": pkName };
    const values: Record<string, unknown> = { ":p": pk };
    const filters: string[] = [];
    if (filter.owner && filter.status) {
      names["#s"] = "status";
      values[":s"] = filter.status;
      filters.push("#s = :s");
    }
    if (filter.type) {
      names["#t"] = "type";
      values[":t"] = filter.type;
      filters.push("#t = :t");
    }
    if (before) {
      names["#k"] = "createdKey";
      values[":before"] = before;
    }
    const found: { id: string; createdKey: string; more: boolean }[] = [];
    let start: Record<string, unknown> | undefined;
    // Filters apply after the read, so keep reading pages until the page is full; bounded so a
    // sparse filter cannot turn one request into a table-sized read.
    for (let page = 0; page < 10 && found.length < limit; page++) {
      const r = await this.db.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: index,
          KeyConditionExpression: before ? "#p = :p AND #k < :before" : "#p = :p",
          ...(filters.length ? { FilterExpression: filters.join(" AND ") } : {}),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ScanIndexForward: false,
          Limit: limit + 1,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const it of r.Items ?? []) found.push({ id: it.id as string, createdKey: it.createdKey as string, more: false });
      start = r.LastEvaluatedKey;
      if (!start) break;
    }
    const last = found[found.length - 1];
    if (start && last) last.more = true;
    return found;
  }

  private async batchGet(ids: string[]): Promise<Job[]> {
    if (!ids.length) return [];
    const items = await batchGetAll(this.db, this.table, ids.map((id) => ({ id })));
    const byId = new Map(items.map((it) => [it.id as string, toJob(it)]));
    // A job deleted by TTL between the index read and this read simply drops out of the page.
    return ids.map((id) => byId.get(id)).filter((j): j is Job => j !== undefined);
  }

  // ─── building blocks ──────────────────────────────────────────────────────────────────────

  private fenced(lease: Lease): Expr {
    return new Expr().eq("token", lease.token).eq("status", "running");
  }

  private sweptRunning(job: RunningJob): Expr {
    return new Expr().eq("status", "running").eq("token", job.token).eq("leaseExpiresAt", job.leaseExpiresAt);
  }

  private finish(lease: Lease, status: "succeeded" | "failed" | "cancelled", now: number, outcome: Outcome, unfenced = false): Expr {
    const x = (unfenced ? new Expr() : this.fenced(lease)).set("history", closeLast(lease.job.history, now, outcome));
    return this.applyFinished(x, status, now);
  }

  /** A finished job leaves the due index (sparse) and gets its TTL. */
  private applyFinished(x: Expr, status: "succeeded" | "failed" | "cancelled", now: number): Expr {
    return x
      .set("status", status)
      .set("finishedAt", now)
      .set("expiresAt", this.expiresAt(now))
      .set("updatedAt", now)
      .remove("dueAt", "dueShard", "runAt", ...RUNNING_ONLY);
  }

  private finishedView(lease: Lease, _x: Expr, fields: Record<string, unknown>): Job {
    const now = fields.finishedAt as number;
    return {
      ...stripRunning(lease.job),
      history: closeLast(lease.job.history, now, (fields.status as Outcome) ?? null),
      ...fields,
      expiresAt: this.expiresAt(now),
      updatedAt: now,
    } as unknown as Job;
  }

  private expiresAt(now: number): number {
    return Math.floor(now / 1000) + this.retentionDays * 24 * 3600;
  }

  private addReport(x: Expr, report: Report): void {
    if (report.progress !== undefined) x.set("progress", report.progress);
    if (report.checkpoint !== undefined) {
      checkSize("the checkpoint", report.checkpoint, LIMITS.maxCheckpointBytes);
      x.set("checkpoint", report.checkpoint);
    }
  }

  private async update(id: string, x: Expr, returnValues?: "ALL_NEW"): Promise<Record<string, unknown> | undefined> {
    const out = await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { id },
        ...x.params(),
        ...(returnValues ? { ReturnValues: returnValues } : {}),
      }),
    );
    return out.Attributes;
  }

  private async fencedUpdate(lease: Lease, x: Expr, returnValues?: "ALL_NEW"): Promise<Record<string, unknown> | undefined> {
    try {
      return await this.update(lease.jobId, x, returnValues);
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      const job = await this.get(lease.jobId);
      throw new LeaseLostError(lease.jobId, describeLoss(job, lease));
    }
  }

  private async conditional(id: string, x: Expr, message: string): Promise<void> {
    try {
      await this.update(id, x);
    } catch (e) {
      if (isConditionFailure(e)) throw new ConflictError(message);
      throw e;
    }
  }
}

/**
 * TEST-ONLY, DELIBERATELY UNSAFE: WARDEN_UNSAFE_UNFENCED_SUCCEED=1 drops the fence (token and
 * state condition) from `succeed`, so test/chaos-guard.test.ts can show the chaos checks catching a
 * job completed twice. Read per call so only the process that sets it is broken. Never set it
 * anywhere else.
 */
const unsafeUnfencedSucceed = (): boolean => process.env.WARDEN_UNSAFE_UNFENCED_SUCCEED === "1";

// ─── helpers ────────────────────────────────────────────────────────────────────────────────

/** Fields only a running job has; removed when it leaves `running`. */
const RUNNING_ONLY = ["startedAt", "heartbeatAt", "leaseExpiresAt", "workerId", "cancelRequested", "cancelRequestedAt"];

function stripRunning<T extends Job>(job: T): Omit<T, "status"> & Record<string, unknown> {
  const copy: Record<string, unknown> = { ...job };
  for (const k of [...RUNNING_ONLY, "dueAt", "runAt"]) delete copy[k];
  return copy as Omit<T, "status">;
}

function stripQueued(job: QueuedJob): Omit<QueuedJob, "status" | "dueAt" | "runAt"> {
  const { dueAt: _d, runAt: _r, status: _s, ...rest } = job;
  return rest;
}

function reportFields(report: Report | undefined): Partial<Pick<Job, "progress" | "checkpoint">> {
  return {
    ...(report?.progress !== undefined ? { progress: report.progress } : {}),
    ...(report?.checkpoint !== undefined ? { checkpoint: report.checkpoint } : {}),
  };
}

function closeLast(history: AttemptRecord[], now: number, outcome: Outcome | null): AttemptRecord[] {
  if (!history.length || outcome === null) return history;
  const last = history[history.length - 1]!;
  if (last.endedAt !== null) return history;
  return [...history.slice(0, -1), { ...last, endedAt: now, outcome }];
}

const bounded = (history: AttemptRecord[]): AttemptRecord[] => history.slice(-LIMITS.historyEntries);

const createdKey = (createdAt: number, id: string): string => `${new Date(createdAt).toISOString()}#${id}`;

const iso = (ms: number): string => new Date(ms).toISOString();

function lostMessage(job: RunningJob): string {
  return `no heartbeat from worker ${job.workerId} since ${iso(job.heartbeatAt)}; its lease expired at ${iso(job.leaseExpiresAt)}`;
}

function describeLoss(job: Job | undefined, lease: Lease): string {
  if (!job) return "the job no longer exists";
  if (job.status !== "running") return `the job is ${job.status} now`;
  if (job.token !== lease.token) return `worker ${job.workerId} claimed it after this lease expired`;
  return "the job changed";
}

function assertTransition(name: TransitionName, from: Status): void {
  if (!canTransition(name, from)) throw new ConflictError(`cannot ${name} a ${from} job`, from);
}

const ignoreConflict = (e: unknown): void => {
  if (!(e instanceof ConflictError)) throw e;
};

function validateNewJob(spec: NewJob): void {
  const missing = (["owner", "type", "queue"] as const).filter((k) => typeof spec[k] !== "string" || spec[k] === "");
  if (missing.length) throw new ValidationError(`missing required field(s): ${missing.join(", ")}`);
  if (!QUEUE_NAMES.includes(spec.queue)) throw new ValidationError(`unknown queue "${spec.queue}"; use one of ${QUEUE_NAMES.join(", ")}`);
  if (!Number.isInteger(spec.maxAttempts) || spec.maxAttempts < 1 || spec.maxAttempts > LIMITS.maxAttempts) {
    throw new ValidationError(`maxAttempts must be a whole number from 1 to ${LIMITS.maxAttempts}`);
  }
  if (!Number.isFinite(spec.timeoutMs) || spec.timeoutMs <= 0 || spec.timeoutMs > LIMITS.maxTimeoutSeconds * 1000) {
    throw new ValidationError(`timeout must be between 1 ms and ${LIMITS.maxTimeoutSeconds} s`);
  }
  if (spec.idempotencyKey !== undefined && (spec.idempotencyKey.length === 0 || spec.idempotencyKey.length > LIMITS.maxIdempotencyKeyChars)) {
    throw new ValidationError(`idempotencyKey must be 1 to ${LIMITS.maxIdempotencyKeyChars} characters`);
  }
  checkSize("the input", spec.input, LIMITS.maxInputBytes);
}

export function toJob(item: Record<string, unknown>): Job {
  const copy: Record<string, unknown> = { ...item };
  for (const k of INDEX_ONLY) delete copy[k];
  if (!Array.isArray(copy.history)) copy.history = [];
  return copy as unknown as Job;
}

export function encodeCursor(createdKey: string): string {
  return Buffer.from(JSON.stringify({ k: createdKey }), "utf8").toString("base64url");
}

export function decodeCursor(cursor: string): string {
  const bad = new ValidationError("cursor is not one this API gave out; pass nextCursor from a previous page unchanged");
  if (cursor.length > 300 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    const k = (parsed as { k?: unknown })?.k;
    if (typeof k !== "string" || !/^\d{4}-\d\d-\d\dT[\d:.]+Z#[0-9A-Z]{26}$/.test(k)) throw bad;
    return k;
  } catch {
    throw bad;
  }
}
