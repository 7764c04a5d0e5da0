/**
 * The DynamoDB job store: the one place that reads and writes jobs. DynamoDB is the truth
 * (invariant 1). Every transition is computed by core/lifecycle.ts from the state it read (or a
 * worker's lease) and written by one conditional write (core/store-write.ts) that bumps the
 * job's version and recognizes its own applied write after a lost reply (invariants 2 and 9).
 * Writes decided from a read that lost a race read again and decide again, a bounded number of
 * times; a worker's fenced write that lost its fence raises LeaseLostError with what it found.
 */
import { createHash } from "node:crypto";
import { QueryCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { ulid } from "ulid";
import { attemptsWithDetail } from "./attempt-detail.js";
import { batchGetAll } from "./aws.js";
import { laneOf, LIMITS, QUEUE_NAMES, TABLE, TIMINGS, type QueueName } from "./config.js";
import { ConflictError, LeaseLostError, NotFoundError, StoreRejectedError, TooLargeError, ValidationError } from "./errors.js";
import { unstorable } from "./item-size.js";
import { isTerminal, type CancelledJob, type FailedJob, type FinishedJob, type Job, type JobError, type Lease, type LiveJob, type QueuedJob, type RunningJob, type SucceededJob, type WaitingJob } from "./job.js";
import { countChildren, endedCounts, FANIN_SHARD_SIZE, orphanReason, type ChildCounts, type ChildSpec, type Flow, type FlowPolicy } from "./flow.js";
import { Controls } from "./controls.js";
import { checkConcurrencyKey } from "./gates.js";
import { Gatekeeper } from "./gatekeeper.js";
import { LimitsSweep, type LimitsReport } from "./limits-sweep.js";
import { Schedules } from "./schedules.js";
import { Flows, type FlowRepair } from "./flows.js";
import type { Doorbell } from "./queue.js";
import * as life from "./lifecycle.js";
import type { AttemptFailure, Change, ClaimRefusal, Clock, FailOptions, NewJob, Report, WorkerDeath } from "./lifecycle.js";
import { listJobKeys, type ListFilter } from "./listing.js";
import { allDueShards } from "./shards.js";
import { ChangeWriter, newNonce, toJob, type Recognize, type TransactPut, type WriteOptions, type WriteResult } from "./store-write.js";
import { needsRefresh, SHOWN_VALUES, type LoadedValues, type ValueField } from "./values.js";

export type { ClaimRefusal, NewJob, Report, WorkerDeath } from "./lifecycle.js";

/** Who a cancel or retry is recorded as when the caller did not say. */
export const UNATTRIBUTED = "unattributed";
export { allDueShards, dueShard, shardOf } from "./shards.js";
export { toJob } from "./store-write.js";
export { decodeCursor, encodeCursor, type ListFilter } from "./listing.js";

export interface StoreOptions {
  tableName: string;
  now?: () => number;
  retentionDays?: number;
  startDeadlineMs?: number;
  cancelGraceMs?: number;
  /** Rings the doorbells of the jobs a flow queues (children written, a parent resumed); without it the sweeper rings them at their start deadline. */
  doorbell?: Doorbell;
}

export type ClaimResult = { ok: true; lease: Lease } | { ok: false; reason: ClaimRefusal; job?: Job };

export interface HeartbeatResult {
  job: RunningJob;
  cancelRequested: boolean;
}

/**
 * A parent's children by status. Exact (`exact`) up to one fan-in shard of children, read from
 * their records; beyond that, the ended ones from the fan-in items (one read per 100 children),
 * and queued, running and waiting left out: telling them apart would read every child.
 */
export type ChildCountsView =
  | (ChildCounts & { exact: true })
  | (Pick<ChildCounts, "total" | "succeeded" | "failed" | "cancelled"> & { exact: false });

export interface Page {
  jobs: Job[];
  nextCursor: string | null;
}

export interface OverdueResult {
  jobs: LiveJob[];
  /** Items DynamoDB read for the query: proof the cost follows the overdue count, not the table. */
  scanned: number;
  /** True when some partition had more overdue items than the limit let through, or did not answer. */
  more: boolean;
}

/** How often a write decided from a read is decided again after losing a race to another writer. */
const REDECIDE_ROUNDS = 4;

export const jsonBytes = (v: unknown): number => (v === undefined ? 0 : Buffer.byteLength(JSON.stringify(v) ?? "", "utf8"));

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
  private readonly writer: ChangeWriter;
  readonly flows: Flows;
  readonly controls: Controls;
  readonly gates: Gatekeeper;
  private readonly limitsSweep: LimitsSweep;
  readonly schedules: Schedules;

  constructor(
    private readonly db: DynamoDBDocumentClient,
    opts: StoreOptions,
  ) {
    this.table = opts.tableName;
    this.now = opts.now ?? Date.now;
    this.retentionDays = opts.retentionDays ?? TIMINGS.retentionDays;
    this.startDeadlineMs = opts.startDeadlineMs ?? TIMINGS.startDeadlineMs;
    this.cancelGraceMs = opts.cancelGraceMs ?? TIMINGS.cancelGraceMs;
    this.writer = new ChangeWriter(db, this.table, { now: this.now, retentionDays: this.retentionDays }, unsafeUnfencedSucceed);
    this.controls = new Controls(db, this.table);
    this.gates = new Gatekeeper({
      controls: this.controls,
      clock: () => this.clock(),
      doorbell: opts.doorbell,
      write: (change, recognize) => this.write(change, recognize),
      getRecord: (id) => this.getRecord(id),
    });
    this.limitsSweep = new LimitsSweep({
      controls: this.controls,
      gates: this.gates,
      clock: () => this.clock(),
      write: (change, recognize) => this.write(change, recognize),
      records: (ids, consistent) => this.records(ids, consistent),
      resend: async (job) => {
        const pushed = await this.pushStartDeadline(job);
        await opts.doorbell?.send(laneOf(pushed), [pushed.id], 0).catch(() => undefined);
      },
      refreshed: (job) => this.refreshed(job),
    });
    this.schedules = new Schedules({
      db,
      table: this.table,
      now: this.now,
      doorbell: opts.doorbell,
      create: (spec) => this.create(spec),
      getRecord: (id) => this.getRecord(id),
      requestCancel: (id, by) => this.requestCancel(id, by),
      idOf: idempotentId,
    });
    this.flows = new Flows({
      db,
      table: this.table,
      values: this.writer.values,
      clock: () => this.clock(),
      doorbell: opts.doorbell,
      write: (change, recognize) => this.write(change, recognize),
      getRecord: (id) => this.getRecord(id),
      records: (ids, consistent) => this.records(ids, consistent),
      retry: (id, by) => this.retry(id, by),
      requestCancel: (id, by) => this.requestCancel(id, by),
    });
  }

  /**
   * Every write goes through here: a job that lands in a terminal state is counted by its parent
   * (core/flows.ts), and a parent that ends while it waits cancels its live children. Both are
   * best effort after the job's own write: what they miss, the sweeper's look at the waiting
   * parent repairs (and a child of an ended parent is cancelled at its claim).
   */
  private async write<J extends Job>(change: Change<J>, recognize: Recognize, o: WriteOptions = {}): Promise<WriteResult<J>> {
    const w = await this.writer.write(change, recognize, o);
    if (!w.applied) return w;
    // A run that ended, was handed back or taken back gives its concurrency slots back (core/gatekeeper.ts).
    if (change.prev?.status === "running" && change.prev.slots && w.job.status !== "running") await this.gates.released(change.prev).catch(() => undefined);
    if (isTerminal(w.job.status)) await this.landed(change, w.job as unknown as FinishedJob);
    return w;
  }

  private async landed(change: Change, job: FinishedJob): Promise<void> {
    try {
      if (change.prev?.status === "waiting" && job.flow) await this.flows.cascade(job as FinishedJob & { flow: Flow });
      if (job.parent) await this.flows.childEnded(job);
    } catch {
      /* repaired at the parent's deadline (Flows.check) */
    }
  }

  private clock(): Clock {
    return { now: this.now(), startDeadlineMs: this.startDeadlineMs, cancelGraceMs: this.cancelGraceMs, retentionDays: this.retentionDays };
  }

  // ─── reads ────────────────────────────────────────────────────────────────────────────────

  /**
   * A job with its values: one read for the record, one batched read for the large ones among
   * `fields` (all by default; the API asks for input and result, never the checkpoint).
   */
  async get(id: string, fields?: readonly ValueField[]): Promise<Job | undefined> {
    const job = await this.getRecord(id);
    return job ? this.withValues(job, fields) : undefined;
  }

  async mustGet(id: string, fields?: readonly ValueField[]): Promise<Job> {
    const job = await this.get(id, fields);
    if (!job) throw new NotFoundError(id);
    return job;
  }

  /** The job's record alone: its state, without the values kept outside it (enough to decide any transition). */
  async getRecord(id: string): Promise<Job | undefined> {
    if (!isJobId(id)) return undefined;
    const item = await this.writer.read(id);
    return item ? toJob(item) : undefined;
  }

  /** Every attempt `job` keeps, with the full message and stack of those that left one (core/attempt-detail.ts). */
  async attempts(job: Job): ReturnType<typeof attemptsWithDetail> {
    return attemptsWithDetail(this.writer.values, job);
  }

  /** Fills in the values `job`'s record names but does not hold; one that expired stays undefined. */
  async withValues<J extends Job>(job: J, fields?: readonly ValueField[]): Promise<J> {
    if (!job.refs) return job;
    return (await this.writer.values.load([job], fields)).jobs[0] as J;
  }

  // ─── create ───────────────────────────────────────────────────────────────────────────────

  /**
   * Writes a new queued job. With an idempotency key the id is derived from owner and key, so a
   * repeated submit finds the first job (`created: false`). A create whose reply was lost is
   * recognized as new, so its caller still rings the doorbell.
   */
  async create(spec: NewJob): Promise<{ job: Job; created: boolean }> {
    validateNewJob(spec);
    const c = this.clock();
    const id = spec.idempotencyKey ? idempotentId(spec.owner, spec.idempotencyKey) : ulid(c.now);
    // A repeated submit is found before its input is written again as a value nobody will read.
    const first = spec.idempotencyKey ? await this.getRecord(id) : undefined;
    if (first) return this.existing(first, spec);
    const w = await this.write(life.create(spec, id, c), "origin");
    if (w.applied) return { job: w.job, created: true };
    if (!w.found) throw new ConflictError("the job was deleted while it was being created; try again");
    return this.existing(w.found, spec);
  }

  /**
   * A new queued job as entries of the caller's own TransactWriteItems (core/enqueue.ts), nothing
   * written here. Its id derives from owner and idempotency key, so a transaction retried after
   * it committed makes no second job (it is refused, as the key is taken). A job whose doorbell
   * is never rung is found by the sweeper at its start deadline, like any queued job.
   */
  createEntries(spec: NewJob & { idempotencyKey: string }): { job: Job; entries: TransactPut[] } {
    validateNewJob(spec);
    return this.writer.createEntries(life.create(spec, idempotentId(spec.owner, spec.idempotencyKey), this.clock()));
  }

  /**
   * Writes a new job that waits on `children` before it first runs (a submit with children, or
   * a chain: one child, itself waiting on the step before it). Its specs first, then its record,
   * then the children (core/flows.ts); idempotent like `create`.
   */
  async createFlow(spec: NewJob, children: readonly ChildSpec[], policy: FlowPolicy, o: { chain?: true } = {}): Promise<{ job: Job; created: boolean }> {
    validateNewJob(spec);
    const c = this.clock();
    const id = spec.idempotencyKey ? idempotentId(spec.owner, spec.idempotencyKey) : ulid(c.now);
    const first = spec.idempotencyKey ? await this.getRecord(id) : undefined;
    if (first) return this.existing(first, spec);
    const w = await this.flows.createParent(spec, id, children, policy, { nonce: newNonce(), ...o });
    if (w.applied) return { job: w.job, created: true };
    if (!w.found) throw new ConflictError("the job was deleted while it was being created; try again");
    return this.existing(w.found, spec);
  }

  private async existing(found: Job, spec: NewJob): Promise<{ job: Job; created: false }> {
    if (found.owner !== spec.owner) throw new ConflictError("idempotency key collision");
    return { job: await this.withValues(found), created: false };
  }

  // ─── claim ────────────────────────────────────────────────────────────────────────────────

  /**
   * Claims a job for `workerId`: a queued job whose runAt has come, or a running job whose lease
   * has expired. Conditional on the version it read, so of any number of concurrent claimers
   * exactly one wins; every claim bumps the fencing token. With `queue`, a job that waits on
   * another queue is refused (`wrong_queue`): its doorbell belongs there.
   */
  async claim(jobId: string, workerId: string, leaseMs: number, o: { queue?: QueueName } = {}): Promise<ClaimResult> {
    for (let round = 0; ; round++) {
      const job = await this.getRecord(jobId);
      const c = this.clock();
      const d = life.claim(job, { workerId, leaseMs, ...(o.queue ? { queue: o.queue } : {}) }, c);
      // A child runs only while its parent waits on its round: one of a parent that ended (a
      // failFast, a cancel whose cascade missed it) is cancelled here instead of run.
      if (d.ok && job?.parent) {
        // Eventually consistent first: 10,000 children starting together read one item, and a
        // cancel this read misses is on its way to the child as a cancel request (Flows.cascade).
        // A stale read may also miss a parent written a moment ago: an orphan is confirmed by a
        // consistent read before the child is cancelled.
        const seen = orphanReason(job, (await this.records([job.parent.id], false))[0]);
        const orphan = seen && orphanReason(job, await this.getRecord(job.parent.id));
        if (orphan) return { ok: false, reason: "finished", job: await this.cancelOrphan(job as QueuedJob | RunningJob, orphan).catch(() => job) };
      }
      if (!d.ok) {
        const reason = d.reason as ClaimRefusal;
        await this.settleUnclaimable(job, reason);
        return { ok: false, reason, ...(job ? { job } : {}) };
      }
      // A queued job passes its pauses and limits first; a takeover of an expired lease its pause and rate.
      const gate = job?.status === "queued" ? await this.gates.pass(job, c.now) : undefined;
      if (gate && !gate.ok && "contended" in gate) {
        await this.gates.ringAgain(job as QueuedJob);
        return { ok: false, reason: "leased", job: job! };
      }
      if (gate && !gate.ok) return { ok: false, reason: "held", job: await this.gates.hold(job as QueuedJob, gate) };
      const takeover = job?.status === "running" ? await this.gates.passRunning(job, c.now) : undefined;
      // Refused, it is left running for the sweeper's reclaim, which queues it where the gates hold it.
      if (takeover && !takeover.ok) return { ok: false, reason: "held", job: job! };
      const startAt = gate?.ok ? gate.startAt : takeover?.ok ? takeover.at : c.now;
      const slots = gate?.ok && gate.slots.length ? gate.slots : undefined;
      // The start its rate logs recorded is the attempt's (a log may have had a later start than this clock).
      const decided = startAt > c.now ? life.claim(job, { workerId, leaseMs, ...(o.queue ? { queue: o.queue } : {}) }, { ...c, now: startAt }) : d;
      if (!decided.ok) {
        if (slots) await this.gates.undo(jobId, slots);
        return { ok: false, reason: decided.reason as ClaimRefusal, ...(job ? { job } : {}) };
      }
      const change = slots ? life.claimWith(decided.change, slots) : decided.change;
      const w = await this.write(change, "claim");
      if (w.applied && w.job.status === "running") return this.leased(w.job, leaseMs);
      // Not ours: the slots this claim took go back (its own only: another claim's of the job is not touched).
      if (slots) await this.gates.undo(jobId, slots);
      // Someone moved first (or our own claim landed and was already taken back): decide again.
      if (round >= REDECIDE_ROUNDS - 1) {
        const found = w.applied ? w.job : w.found;
        return { ok: false, reason: life.claimRefusal(found, this.clock(), o.queue) ?? "leased", ...(found ? { job: found } : {}) };
      }
    }
  }

  /**
   * The lease, with what the handler needs: its input and the checkpoint to resume from. An input
   * that is gone (past its TTL, core/values.ts) ends the job, recorded, instead of running it on
   * nothing; a checkpoint that is gone only means starting from the beginning. If the values
   * cannot be read at all, the job is handed back at once, its attempt not spent.
   */
  private async leased(job: RunningJob, leaseMs: number): Promise<ClaimResult> {
    let loaded: LoadedValues;
    try {
      loaded = await this.writer.values.load([job], ["input", "checkpoint"], Math.floor(this.now() / 1000));
    } catch (e) {
      await this.release(leaseOf(job, leaseMs)).catch(() => undefined); // else the lease runs out: it costs an attempt
      throw e;
    }
    const lease = leaseOf(loaded.jobs[0] as RunningJob, leaseMs);
    if (!loaded.missing.get(job.id)?.includes("input")) return { ok: true, lease };
    const ended = await this.fail(lease, { code: "invalid_input", message: "the job's input expired before this attempt could read it" }, { retryable: false });
    return { ok: false, reason: "finished", job: ended };
  }

  /** An expired job with nothing left to try is settled at its claim instead of waiting for the sweeper. */
  private async settleUnclaimable(job: Job | undefined, reason: ClaimRefusal): Promise<void> {
    if (job?.status === "running" && (reason === "attempts_exhausted" || reason === "timed_out")) await this.expire(job).catch(ignoreConflict);
    if (job?.status === "queued" && reason === "timed_out") await this.expireQueued(job).catch(ignoreConflict);
  }

  // ─── a worker's fenced writes ─────────────────────────────────────────────────────────────

  /**
   * Renews the lease and writes the coalesced progress and checkpoint. Answers whether a cancel
   * was requested; throws LeaseLostError when the token no longer matches. `timeoutMs` bounds the
   * call (retries included), so a hung connection cannot outlive the lease.
   */
  async heartbeat(lease: Lease, report: Report = {}, o: { timeoutMs?: number } = {}): Promise<HeartbeatResult> {
    checkReport(report);
    const beat = () => this.fenced(lease, life.beat(lease.job, { leaseMs: lease.leaseMs, report }, this.clock()), o);
    let job: RunningJob;
    try {
      job = await beat();
    } catch (e) {
      // A cancel request this worker had not heard of: beat again, now keeping its grace deadline.
      const found = cancelUnheard(e, lease);
      if (!found) throw e;
      lease.job = found;
      job = await beat();
    }
    lease.job = job;
    return { job, cancelRequested: job.cancelRequested === true };
  }

  async succeed(lease: Lease, result: unknown, report: Report = {}, o: WriteOptions = {}): Promise<SucceededJob> {
    checkSize("the result", result, LIMITS.maxResultBytes);
    checkStorable("the result", result);
    checkReport(report);
    return this.fenced(lease, life.succeed(lease.job, { result, report }, this.clock()), o);
  }

  /**
   * Records a failed attempt. With `retryable` and attempts left the job is queued again after
   * `backoffMs` (on `queue` when given: a job that ran out of memory moves to the large queue);
   * otherwise it ends failed, `attempts_exhausted` when its budget ran out.
   */
  async fail(lease: Lease, error: AttemptFailure, opts: FailOptions, o: WriteOptions = {}): Promise<QueuedJob | FailedJob | CancelledJob> {
    checkReport(opts.report);
    return this.unlessCancelled(lease, opts.report, o, () => this.fenced(lease, life.fail(lease.job, error, opts, this.clock()), o));
  }

  /** Hands the job back (see lifecycle.release): another worker resumes it from its checkpoint. */
  async release(
    lease: Lease,
    opts: { report?: Report; queue?: QueueName; spendAttempt?: boolean; error?: JobError } = {},
    o: WriteOptions = {},
  ): Promise<QueuedJob | FailedJob | CancelledJob> {
    checkReport(opts.report);
    return this.unlessCancelled(lease, opts.report, o, () => this.fenced(lease, life.release(lease.job, opts, this.clock()), o));
  }

  /**
   * A hand-back is conditional on no cancel request (lifecycle's `notCancelled`): one that lands
   * meanwhile, unseen by the worker, turns the hand-back into the cancel's acknowledgement, so the
   * job ends cancelled as its caller was told, instead of running again.
   */
  private async unlessCancelled<J extends Job>(lease: Lease, report: Report | undefined, o: WriteOptions, write: () => Promise<J>): Promise<J | CancelledJob> {
    try {
      return await write();
    } catch (e) {
      const found = cancelUnheard(e, lease);
      if (!found) throw e;
      lease.job = found;
      return this.acknowledgeCancel(lease, report ?? {}, o.writeId ? { ...o, writeId: `${o.writeId}:cancel` } : o);
    }
  }

  /** The worker saw the cancel request and stopped. */
  async acknowledgeCancel(lease: Lease, report: Report = {}, o: WriteOptions = {}): Promise<CancelledJob> {
    checkReport(report);
    return this.fenced(lease, life.acknowledgeCancel(lease.job, { report }, this.clock()), o);
  }

  /**
   * The handler spawned `children` and asked to wait: the round's specs, then the fenced write
   * that makes the job a waiting parent (core/flows.ts). The children are written after, by
   * `spawnRound`. Retried by the completer with one write id, the specs are the same items.
   */
  async wait(lease: Lease, children: readonly ChildSpec[], policy: FlowPolicy, report: Report = {}, o: WriteOptions = {}): Promise<WaitingJob | CancelledJob> {
    checkReport(report);
    const nonce = o.writeId ?? newNonce();
    const change = life.wait(lease.job, { total: children.length, policy, spec: nonce, keyed: children.some((c) => c.key !== undefined), report }, this.clock());
    await this.flows.writeSpecs(lease.jobId, change.next.flow.round, nonce, children);
    return this.unlessCancelled(lease, report, o, () => this.fenced(lease, change, { ...o, writeId: nonce }));
  }

  /** Writes a waiting parent's children and rings them; what a crash leaves unwritten the sweeper writes. */
  async spawnRound(parent: WaitingJob, children: readonly ChildSpec[]): Promise<number> {
    return this.flows.spawn(parent, children);
  }

  private async fenced<J extends Job>(lease: Lease, change: Change<J>, o: WriteOptions): Promise<J> {
    const w = await this.write(change, "write", o);
    if (w.applied) return w.job;
    throw new LeaseLostError(lease.jobId, describeLoss(w.found, lease), w.found);
  }

  // ─── requests from callers ────────────────────────────────────────────────────────────────

  /**
   * A queued job is cancelled at once; a running one is marked, and its worker stops when its
   * next heartbeat sees the mark (or the sweeper cancels it after a grace period).
   */
  /** `by`: who asked (the API always says; a direct call from code or a test is unattributed). */
  async requestCancel(jobId: string, by: string = UNATTRIBUTED): Promise<Job> {
    return this.decideAndWrite(jobId, "cancelled", (job, c) => {
      const d = life.requestCancel(job, c, by);
      if (!d.ok) throw new ConflictError(d.message, d.reason);
      return d.change;
    });
  }

  /**
   * A failed or cancelled job queued again with a fresh attempt budget, keeping its history. A
   * parent (a job with a flow) waits on its last round again instead: its failed and cancelled
   * children are retried, its succeeded ones keep their results, and it resumes once they have
   * all ended. Not while one of its children has yet to end (a cancel on its way to a running
   * child): that child's end would count for the new wait without being retried.
   */
  async retry(jobId: string, by: string = UNATTRIBUTED): Promise<QueuedJob | WaitingJob> {
    // A child's end comes out of its parent's fan-in first: else the round could look complete,
    // and the parent resume, while the retried child runs. (If the retry then fails, the fan-in
    // is one short, which the sweeper's recount repairs; never one over.)
    const before = await this.getRecord(jobId);
    if (before?.parent && (before.status === "failed" || before.status === "cancelled")) {
      // A child of a parent that no longer waits on it would be cancelled at its claim: say so now.
      const orphan = orphanReason(before, await this.getRecord(before.parent.id));
      if (orphan) throw new ConflictError(`job ${jobId} is a child that would not run again: ${orphan}; retry the parent instead, which retries its failed and cancelled children`, before.status);
      await this.flows.forget(before.parent);
    }
    if (before?.flow && (before.status === "failed" || before.status === "cancelled")) {
      const live = (await this.flows.children(before as Job & { flow: Flow })).filter((j) => j !== undefined && !isTerminal(j.status)).length;
      if (live) throw new ConflictError(`job ${jobId} still has ${live} child(ren) that have not ended (a cancel on its way to them); retry it once they have`, before.status);
    }
    const job = (await this.decideAndWrite(jobId, "retried", (job, c) => {
      const d = life.retry(job, c, by);
      if (!d.ok) throw new ConflictError(d.message, d.reason);
      return d.change;
    })) as QueuedJob | WaitingJob;
    // Best effort: the sweeper's look at the parent retries what this misses (Flow.retriedAt).
    if (job.status === "waiting") await this.flows.retried(job).catch(() => undefined);
    return job;
  }

  /** Read, decide, write; decided again on a lost race (a heartbeat, a sweep) a bounded number of times. */
  private async decideAndWrite(jobId: string, what: string, decide: (job: Job, c: Clock) => Change | undefined): Promise<Job> {
    // With its input: the caller is answered with it, and a retry may have to copy it.
    const r = await this.redecide(jobId, what, () => this.mustGet(jobId, ["input"]), decide);
    return "written" in r ? r.written : r.left;
  }

  /**
   * Read, decide, write, decided again from a fresh read when the write loses a race, a bounded
   * number of times. A decision of nothing leaves the job as it was read.
   */
  private async redecide<J extends Job | undefined>(
    jobId: string,
    what: string,
    read: () => Promise<J>,
    decide: (job: J, c: Clock) => Change | undefined,
  ): Promise<{ written: Job } | { left: J }> {
    for (let round = 0; round < REDECIDE_ROUNDS; round++) {
      const job = await read();
      const change = decide(job, this.clock());
      if (!change) return { left: job };
      const w = await this.write(change, "write");
      if (w.applied) return { written: w.job };
    }
    throw new ConflictError(`job ${jobId} kept changing while it was being ${what}; try again`);
  }

  // ─── the sweeper's writes: conditional on exactly what the sweep read ──────────────────────

  /**
   * A running job whose lease expired: back to queued keeping its checkpoint, or failed when it
   * has no attempts left. Conditional on the version the sweep read, so a concurrent sweep, a
   * late heartbeat or a cancel that landed since makes it a lost race (ConflictError).
   */
  async reclaim(job: RunningJob): Promise<QueuedJob | FailedJob> {
    return this.swept(life.reclaim(job, this.clock()));
  }

  /** Ends a running job as failed: lease expired with no attempts left, or past its total runtime limit. */
  async expire(job: RunningJob): Promise<FailedJob> {
    return this.swept(life.expire(job, this.clock()));
  }

  /** A queued job past its total runtime limit since its first start: no attempt may begin. */
  async expireQueued(job: QueuedJob): Promise<FailedJob> {
    return this.swept(life.expireQueued(job, this.clock()));
  }

  /** A cancel that no worker acknowledged within the grace period. */
  async cancelSilent(job: RunningJob): Promise<CancelledJob> {
    return this.swept(life.cancelSilent(job, this.clock()));
  }

  /**
   * A queued job past its start deadline gets a new one before its message is sent again; of two
   * sweeps only one sends. A job that has waited so long that its input would expire before it
   * could run gets a copy of it with a later TTL (core/values.ts).
   */
  async pushStartDeadline(job: QueuedJob): Promise<QueuedJob> {
    return this.swept(life.resend(await this.refreshed(job), this.clock()));
  }

  /** The sweeper's look at a waiting parent whose deadline passed (core/flows.ts Flows.check). */
  /** The job with its values read when one would expire while it waits, so the write made from it copies them on. */
  private async refreshed(job: QueuedJob): Promise<QueuedJob> {
    return needsRefresh(job, this.now(), this.retentionDays) ? this.withValues(job) : job;
  }

  /** The sweeper's look at a held job past its deadline (core/limits-sweep.ts). */
  async lookAtHold(job: QueuedJob): Promise<"unheld" | "held"> {
    return this.limitsSweep.look(job);
  }

  /** The sweeper's per-sweep recount of the limits that have jobs waiting, and its wakes of resumed pauses. */
  async sweepLimits(): Promise<LimitsReport> {
    return this.limitsSweep.sweep();
  }

  async checkFlow(job: WaitingJob): Promise<FlowRepair> {
    return this.flows.check(job);
  }

  /**
   * A child whose parent is gone, finished or on a later round, cancelled instead of run: at its
   * claim, or by the sweeper. Conditional on the version read.
   */
  async cancelOrphan(job: LiveJob, why: string): Promise<CancelledJob> {
    const c = this.clock();
    const message = `cancelled: ${why}`;
    // A waiting one (a chain's step) cancels its own live children after it, like any parent.
    const change =
      job.status === "queued"
        ? life.cancelOrphanQueued(job, c, message)
        : job.status === "waiting"
          ? (life.endFlow(job, "cancelled", { code: "cancelled", message }, c) as Change<CancelledJob>)
          : life.cancelSilent(job, c, message);
    return this.swept(change);
  }

  private async swept<J extends Job>(change: Change<J>, recognize: Recognize = "write"): Promise<J> {
    const w = await this.write(change, recognize);
    if (w.applied) return w.job;
    throw new ConflictError("the job changed during the sweep", w.found?.status);
  }

  // ─── a worker the platform reported dead ─────────────────────────────────────────────────

  /**
   * The ids of the running jobs `workerId` holds: one Query of the sparse, keys-only byWorker
   * index (eventually consistent, so a claim made a moment before the death may be missing; its
   * lease is the backstop).
   */
  async jobsHeldBy(workerId: string): Promise<string[]> {
    const ids: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.db.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: TABLE.workerIndex.name,
          KeyConditionExpression: "#w = :w",
          ExpressionAttributeNames: { "#w": TABLE.workerIndex.partitionKey },
          ExpressionAttributeValues: { ":w": workerId },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      ids.push(...(out.Items ?? []).map((it) => it.id as string));
      start = out.LastEvaluatedKey;
    } while (start);
    return ids;
  }

  /**
   * The attempt the dead worker started, reclaimed at once (lifecycle.reclaimDead), decided from
   * a fresh read and written conditional on it; undefined when the job is not that attempt any
   * more (moved to another worker, finished, or claimed after the death).
   */
  async reclaimDead(jobId: string, death: WorkerDeath): Promise<QueuedJob | FailedJob | CancelledJob | undefined> {
    const r = await this.redecide(jobId, "reclaimed from its dead worker", () => this.getRecord(jobId), (job, c) => {
      const d = life.reclaimDead(job, death, c);
      return d.ok ? d.change : undefined;
    });
    return "written" in r ? (r.written as QueuedJob | FailedJob | CancelledJob) : undefined;
  }

  // ─── queries ──────────────────────────────────────────────────────────────────────────────

  /**
   * Live jobs whose deadline has passed: a Query per due-index partition, never a Scan, so the
   * cost follows the number of overdue jobs and not the size of the table (invariant 4).
   */
  async listOverdue(now: number, limit: number): Promise<OverdueResult> {
    const settled = await Promise.allSettled(
      allDueShards().map((shard) =>
        this.db.send(new QueryCommand({ ...this.overdueQuery(shard, now), Limit: limit })),
      ),
    );
    // A partition that keeps failing (throttled, timing out) must not stop the repair of the
    // others: its jobs are left for the next sweep (`more`). Only when none answers does it throw.
    const results = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (!results.length && failed) throw failed.reason;
    // The index holds keys only (a heartbeat then rewrites a few bytes there, not the job): the
    // records are read for the decision, and being consistent they are newer than the index.
    const due = results.flatMap((r) => (r.Items ?? []).map((it) => ({ id: it.id as string, dueAt: it[TABLE.dueIndex.sortKey] as number })));
    due.sort((a, b) => a.dueAt - b.dueAt);
    const records = await this.records(due.slice(0, limit).map((d) => d.id), true);
    const jobs = records.filter((j): j is LiveJob => (j.status === "queued" || j.status === "running" || j.status === "waiting") && j.dueAt <= now);
    return {
      jobs,
      scanned: results.reduce((n, r) => n + (r.ScannedCount ?? 0), 0),
      more: due.length > limit || results.some((r) => r.LastEvaluatedKey !== undefined) || failed !== undefined,
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
   * A page of jobs, newest first: a caller's own (filter.owner) or everybody's (the admin). A
   * filtered page may hold fewer jobs than `limit`, even none, and still carry a cursor while
   * DynamoDB has more (core/listing.ts), so a match is never hidden behind a page of others.
   */
  async list(filter: ListFilter, cursor: string | null | undefined, limit: number): Promise<Page> {
    const { ids, nextCursor } = await listJobKeys(this.db, this.table, filter, cursor, limit);
    const jobs = (await this.records(ids, false)).filter((j) => filter.queue === undefined || j.queue === filter.queue);
    return { jobs: (await this.writer.values.load(jobs, SHOWN_VALUES)).jobs, nextCursor };
  }

  /** The parents of the children among `jobs`, read in one consistent batch: what the sweeper's plan needs for an overdue child. */
  async parentsOf(jobs: readonly Job[]): Promise<Map<string, Job | undefined>> {
    const ids = [...new Set(jobs.flatMap((j) => (j.parent ? [j.parent.id] : [])))];
    const found = new Map((await this.records(ids, true)).map((j) => [j.id, j]));
    return new Map(ids.map((id) => [id, found.get(id)]));
  }

  /**
   * A page of a parent's last round of children, by index from `from`, with their results (for
   * the handler's ctx.children and GET /jobs/{id}/children). A status filter applies to the page
   * read, so a page may hold fewer than `limit`; `next` is where the next page starts, or null.
   */
  async childOutcomes(
    parent: Job,
    o: { from?: number; limit: number; status?: Job["status"]; consistent?: boolean; values?: readonly ValueField[] },
  ): Promise<{ children: Job[]; next: number | null }> {
    if (!parent.flow) return { children: [], next: null };
    const flowParent = parent as Job & { flow: Flow };
    const from = Math.max(0, o.from ?? 0);
    const to = Math.min(parent.flow.total, from + o.limit);
    const read = (await this.flows.children(flowParent, undefined, { from, to }, o.consistent ?? true)).slice(from, to);
    const jobs = read.filter((j): j is Job => j !== undefined && (o.status === undefined || j.status === o.status));
    // One batched read for the page's values (their results by default).
    const withValues = (await this.writer.values.load(jobs, o.values ?? ["result"])).jobs;
    return { children: withValues, next: to < parent.flow.total ? to : null };
  }

  /** A parent's last round counted by status: from the children's records up to one shard, from the fan-in items beyond. */
  async childCounts(parent: Job, o: { consistent?: boolean } = {}): Promise<ChildCountsView | undefined> {
    if (!parent.flow) return undefined;
    const flowParent = parent as Job & { flow: Flow };
    // Consistent for a resumed parent's handler, which must see its last child's end.
    if (parent.flow.total <= FANIN_SHARD_SIZE) return { ...countChildren(parent.flow.total, await this.flows.children(flowParent, undefined, undefined, o.consistent ?? false)), exact: true };
    const ended = endedCounts((await this.flows.readFanIn(parent.flow, parent.id)).map((s) => s ?? { s: new Set(), f: new Set(), c: new Set() }));
    return { total: parent.flow.total, ...ended, exact: false };
  }

  /** The records of `ids` that exist, in one consistent batched read (no values). */
  async recordsOf(ids: string[]): Promise<Job[]> {
    return this.records(ids, true);
  }

  private async records(ids: string[], consistent: boolean): Promise<Job[]> {
    if (!ids.length) return [];
    const items = await batchGetAll(this.db, this.table, ids.map((id) => ({ id })), consistent);
    const byId = new Map(items.map((it) => [it.id as string, toJob(it)]));
    // A job deleted by TTL between the index read and this read simply drops out of the page.
    return ids.map((id) => byId.get(id)).filter((j): j is Job => j !== undefined);
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

function leaseOf(job: RunningJob, leaseMs: number): Lease {
  return { jobId: job.id, token: job.token, workerId: job.workerId, leaseMs, runtimeDeadline: life.runtimeDeadline(job, job.startedAt), job };
}

/**
 * The job a fenced write found, when it was refused only because a cancel was requested that the
 * worker had not heard of: still running under the worker's own lease, now with the mark.
 */
function cancelUnheard(e: unknown, lease: Lease): RunningJob | undefined {
  const found = e instanceof LeaseLostError ? (e.found as Job | undefined) : undefined;
  return found?.status === "running" && found.token === lease.token && found.cancelRequested ? found : undefined;
}

function describeLoss(job: Job | undefined, lease: Lease): string {
  if (!job) return "the job no longer exists";
  if (job.status !== "running") return `the job is ${job.status} now`;
  if (job.token !== lease.token) return `worker ${job.workerId} claimed it after this lease expired`;
  return "the job changed";
}

/** A value DynamoDB could not hold is refused before any write, with where and why. */
export function checkStorable(what: string, value: unknown): void {
  const why = unstorable(value, what);
  if (why) throw new StoreRejectedError(`${why}; return plain JSON`);
}

/** A checkpoint is bounded on its own and must be plain JSON; it is stored apart from the rest of the job (core/values.ts). */
export function checkCheckpoint(value: unknown): void {
  checkSize("the checkpoint", value, LIMITS.maxCheckpointBytes);
  checkStorable("the checkpoint", value);
}

function checkReport(report: Report | undefined): void {
  if (report?.checkpoint !== undefined) checkCheckpoint(report.checkpoint);
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
  if (spec.concurrencyKey !== undefined) {
    const bad = checkConcurrencyKey(spec.concurrencyKey);
    if (bad) throw new ValidationError(bad);
  }
  if (spec.idempotencyKey !== undefined && (spec.idempotencyKey.length === 0 || spec.idempotencyKey.length > LIMITS.maxIdempotencyKeyChars)) {
    throw new ValidationError(`idempotencyKey must be 1 to ${LIMITS.maxIdempotencyKeyChars} characters`);
  }
  checkSize("the input", spec.input, LIMITS.maxInputBytes);
  const why = unstorable(spec.input, "the input");
  if (why) throw new ValidationError(why);
}
