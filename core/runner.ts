/**
 * The one claim path (invariant 3): the Lambda worker, the Fargate worker and local processes all
 * claim, heartbeat and settle jobs through `Runner.run`, so no worker kind is invisible to the
 * sweeper. A run claims the job through the store, runs its handler under a LeaseKeeper (progress
 * and checkpoints coalesced onto heartbeats, invariant 6), aborts the handler's signal on cancel,
 * lost lease, shutdown, deadline, soft limit or critical memory, and after the abort grace settles
 * the job whether or not the handler stopped. Every settle is a fenced write; a handler that
 * throws, or a store that fails while settling, never crashes the worker.
 */

import { effectKey, FencedOutError } from "./fence.js";
import { boundedStack } from "./attempt-detail.js";
import { LAMBDA_WORKER, laneOf, type Lane, type QueueName } from "./config.js";
import { ReportBuffer } from "./coalescer.js";
import { LeaseLostError, PermanentError, StoreRejectedError, TooLargeError, ValidationError, errorMessage } from "./errors.js";
import type { Job, JobError, Lease } from "./job.js";
import { defaultLogger, jobLogger } from "./job-log.js";
import { LeaseKeeper } from "./lease.js";
import type { AttemptFailure } from "./lifecycle.js";
import type { MemoryGuard } from "./memory.js";
import type { Dims, MetricName } from "./metrics.js";
import { backoffMs, WaitRequest, type AbortReason, type ChildrenView, type JobContext, type JobLimits, type JobLogger, type JobType } from "./registry.js";
import { checkRound, childSpecs } from "./child-specs.js";
import { CHILD_OUTCOMES_PAGE, countChildren, MAX_CHILDREN, type ChildOutcome, type ChildSpec, type FlowPolicy } from "./flow.js";
import type { Services } from "./services.js";
import { checkCheckpoint, type ClaimRefusal } from "./store.js";
import { newNonce, type WriteOptions } from "./store-write.js";
import type { WorkerStore } from "./store-ports.js";
import type { WorkerKind } from "./workers.js";

export type { AbortReason } from "./registry.js";

/** The completer's longest pause between two tries of an attempt's last write. */
const COMPLETER_MAX_BACKOFF_MS = 2_000;
/** How soon the worker directory hears that this worker claimed or let go of a job (GET /admin/workers within a second). */
const PRESENCE_LAG_MS = 500;

/** The services a runner uses; a benchmark can pass a store on a call-counting client. */
export type RunnerServices = Pick<Services, "queue" | "registry" | "metrics" | "workers" | "now"> & { store: WorkerStore };

export interface RunnerOptions {
  workerId: string;
  kind: WorkerKind;
  leaseMs?: number;
  /** Defaults to a third of the lease. */
  heartbeatMs?: number;
  /** Epoch ms the host must stop by (Lambda's end); each run may also bring its own. */
  deadline?: () => number;
  /** How long before the host's deadline the handler is told to stop (`deadline`). */
  deadlineMarginMs?: number;
  /** Overrides every type's limits (tests and demos shorten the soft limit or the abort grace). */
  limits?: Partial<JobLimits>;
  memory?: MemoryGuard;
  log?: JobLogger;
  pid?: number;
}

export interface RunOptions {
  /** Epoch ms this invocation's host must stop by; overrides the runner's `deadline`. */
  deadline?: number;
  /** Called once the job is claimed, before its handler starts (the Fargate worker deletes its message here). */
  onClaimed?: () => Promise<void> | void;
}

export type Settled = "succeeded" | "failed" | "retried" | "released" | "cancelled" | "lease_lost" | "settle_error" | "waiting";

export type RunOutcome =
  | { claimed: false; jobId: string; reason: ClaimRefusal | "shutting_down" | "already_running"; job?: Job }
  | {
      claimed: true;
      jobId: string;
      outcome: Settled;
      /** Why the handler's signal fired, when it did. */
      abort?: AbortReason;
      /** The queue a requeued job now waits on. */
      queue?: QueueName;
      error?: JobError;
      /** True when the handler had not stopped by the end of the abort grace. */
      abandoned?: boolean;
      durationMs: number;
    };

interface ActiveRun {
  jobId: string;
  /** The attempt's tagged logger: the runner's lines about it are the job's lines too. */
  log: JobLogger;
  startedAt: number;
  estimateMb: number;
  abort(reason: AbortReason): void;
  aborted(): boolean;
  giveUp(): void;
}

type HandlerEnd = { kind: "returned"; value: unknown } | { kind: "threw"; error: unknown } | { kind: "abandoned" };

/** Errors that retrying cannot fix: the job fails at once instead of spending its attempts. */
export function isPermanentError(type: JobType | undefined, e: unknown): boolean {
  return e instanceof PermanentError || e instanceof ValidationError || e instanceof TooLargeError || type?.isPermanent?.(e) === true;
}

export class Runner {
  readonly workerId: string;
  readonly kind: WorkerKind;
  readonly leaseMs: number;
  /** Runs by attempt (`jobId#token`), so an old run's cleanup can never remove a newer run of the same job. */
  private readonly runs = new Map<string, ActiveRun>();
  /** Jobs whose claim is in flight or whose run has not ended: a worker never claims a job it holds. */
  private readonly holding = new Set<string>();
  /** Each running attempt's lease keeper, for the completer to know how long the lease lasts. */
  private readonly keepers = new WeakMap<Lease, LeaseKeeper>();
  /** Doorbells a settle asked for, rung once the run has ended (see `run`). */
  private readonly rings = new Map<string, { lane: Lane; delayMs: number; log: JobLogger }>();
  private readonly log: JobLogger;
  private readonly startedAt: number;
  private stopping = false;
  /** Runs from the start of their claim to their last write: what `idle()` waits for. */
  private pending = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly s: RunnerServices & { cfg?: { leaseMs: number } },
    private readonly o: RunnerOptions,
  ) {
    this.workerId = o.workerId;
    this.kind = o.kind;
    this.leaseMs = o.leaseMs ?? s.cfg?.leaseMs ?? 60_000;
    // Powertools JSON lines (core/job-log.ts): CloudWatch Logs and the local runtime both read them.
    this.log = o.log ?? defaultLogger();
    this.startedAt = s.now();
    o.memory?.onCritical((percent) => this.abortForMemory(percent));
  }

  /** Ids of the jobs this runner holds now. */
  active(): string[] {
    return [...new Set([...this.runs.values()].map((r) => r.jobId))];
  }

  /** Announces the worker and starts the memory guard. */
  async start(): Promise<void> {
    this.o.memory?.start();
    await this.presence();
    // A worker that is alive says so every interval, busy or idle: GET /admin/workers and `warden
    // why` call one unheard of for longer unresponsive (core/workers.ts presenceState). A frozen
    // Lambda environment runs no timers, which is why an idle one is never called unresponsive.
    this.reportTimer = setInterval(() => void this.presence(), this.s.workers.reportEveryMs);
    this.reportTimer.unref?.();
  }
  private reportTimer: NodeJS.Timeout | undefined;

  /** Stops the memory guard and takes the worker out of the directory. */
  async stop(): Promise<void> {
    this.o.memory?.stop();
    clearInterval(this.reportTimer);
    clearTimeout(this.presenceTimer);
    await this.s.workers.remove(this.workerId).catch(() => undefined);
  }

  /**
   * The jobs this worker holds changed (a claim, an end): the directory hears of it within
   * PRESENCE_LAG_MS, in one write for every change in that window (a Lambda batch claims five).
   */
  private jobsChanged(): void {
    if (this.presenceTimer) return;
    this.presenceTimer = setTimeout(() => {
      this.presenceTimer = undefined;
      void this.presence();
    }, PRESENCE_LAG_MS);
    this.presenceTimer.unref?.();
  }
  private presenceTimer: NodeJS.Timeout | undefined;

  /** Writes a pending change of presence now: a Lambda environment is frozen once its handler returns. */
  async flushPresence(): Promise<void> {
    if (!this.presenceTimer) return;
    clearTimeout(this.presenceTimer);
    this.presenceTimer = undefined;
    await this.presence();
  }

  /** Writes this worker's presence; advisory, so failures are only logged. */
  async presence(): Promise<void> {
    await this.s.workers
      .report({ id: this.workerId, kind: this.kind, ...(this.o.pid !== undefined ? { pid: this.o.pid } : {}), startedAt: this.startedAt, jobs: this.active() })
      .catch((e) => this.log.warn("worker presence not recorded", { workerId: this.workerId, error: errorMessage(e) }));
  }

  /** Aborts every handler with `shutdown`; their jobs are released as they stop. No new claims. */
  shutdown(): void {
    this.stopping = true;
    for (const r of this.runs.values()) r.abort("shutdown");
  }

  /** Settles every run now without waiting for its handler (the shutdown grace ran out). */
  abandonAll(): void {
    this.stopping = true;
    for (const r of this.runs.values()) {
      r.abort("shutdown"); // a no-op for a run already told why it stops
      r.giveUp();
    }
  }

  /** Resolves when no run is in progress. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * The memory guard's choice: the job with the largest size estimate, and among equals the one
   * that started last (it most likely caused the growth, and stopping it loses the least work).
   * A job already told to stop is left to finish stopping.
   */
  abortForMemory(percent: number): string | undefined {
    const candidates = [...this.runs.values()];
    if (candidates.some((r) => r.aborted())) return undefined;
    const victim = candidates.sort((a, b) => b.estimateMb - a.estimateMb || b.startedAt - a.startedAt)[0];
    if (!victim) return undefined;
    victim.log.warn("memory critical: aborting a job", { percent });
    victim.abort("memory");
    return victim.jobId;
  }

  /**
   * Claims and runs one job. Throws only when the claim itself could not be made (the store
   * unreachable): the caller keeps its message for another try. Everything after the claim is
   * settled here and reported in the outcome.
   */
  async run(jobId: string, from?: QueueName, ro: RunOptions = {}): Promise<RunOutcome> {
    if (this.stopping) return { claimed: false, jobId, reason: "shutting_down" };
    // A duplicate doorbell for a job this worker already holds: claiming it again would start a
    // second run beside the first (its lease not yet expired, the claim would be refused anyway,
    // but after an abort grace the old run may still be stopping).
    if (this.holding.has(jobId)) return { claimed: false, jobId, reason: "already_running" };
    this.holding.add(jobId);
    this.pending++;
    try {
      return await this.claimAndRun(jobId, from, ro);
    } finally {
      this.holding.delete(jobId);
      // Rung only now that this worker no longer holds the job: a doorbell heard before would be
      // refused as `already_running`, and the message lost until the start deadline.
      await this.ringDeferred(jobId);
      if (--this.pending === 0) this.idleWaiters.splice(0).forEach((w) => w());
    }
  }

  private async claimAndRun(jobId: string, from: QueueName | undefined, ro: RunOptions): Promise<RunOutcome> {
    const claim = await this.s.store.claim(jobId, this.workerId, this.leaseMs, from ? { queue: from } : {});
    if (!claim.ok) {
      if (claim.reason === "leased") this.emit("ClaimConflicts", 1, { Queue: claim.job?.queue ?? from ?? "default" });
      // Heard on the wrong queue (a duplicate, a redrive, a job moved to `large`): ring its own
      // queue instead of running it here, where it may not fit.
      // A forward that fails throws, so the caller keeps the message for another try.
      if (claim.reason === "wrong_queue" && claim.job) await this.s.queue.send(laneOf(claim.job), [jobId], 0);
      return { claimed: false, jobId, reason: claim.reason, ...(claim.job ? { job: claim.job } : {}) };
    }
    const log = this.jobLog(claim.lease.job);
    try {
      await ro.onClaimed?.();
    } catch (e) {
      log.warn("after-claim hook failed; the lease still guards the job", { error: errorMessage(e) });
    }
    // A worker paused between sending its claim and hearing the answer (GC, a frozen container)
    // may hold a lease that has already run out: another worker may own the job by now, so
    // starting the handler could repeat side effects. Hand nothing to the handler; the sweeper
    // or the next claim takes the job back.
    if (this.s.now() >= claim.lease.job.leaseExpiresAt) {
      log.warn("the lease ran out before the handler could start; not starting it");
      this.emit("LeaseLost", 1, { Queue: claim.lease.job.queue });
      return { claimed: true, jobId, outcome: "lease_lost", durationMs: 0 };
    }
    return this.execute(claim.lease, ro, log);
  }

  /** This attempt's lines, tagged so that `warden logs` finds them (core/job-log.ts). */
  private jobLog(job: Job): JobLogger {
    return jobLogger(this.log, { jobId: job.id, type: job.type, attempt: job.attempts, workerId: this.workerId });
  }

  private async execute(lease: Lease, ro: RunOptions, log: JobLogger): Promise<RunOutcome> {
    const job = lease.job;
    const dims = { Queue: job.queue, JobType: job.type };
    const started = this.s.now();
    this.emit("JobsStarted", 1, dims);
    const type = this.s.registry.get(job.type);
    const buffer = new ReportBuffer();
    const finish = async (outcome: Omit<Extract<RunOutcome, { claimed: true }>, "claimed" | "jobId" | "durationMs">) => {
      this.emit("JobDuration", this.s.now() - started, dims);
      return { claimed: true as const, jobId: job.id, durationMs: this.s.now() - started, ...outcome };
    };
    if (!type) {
      const error: JobError = { code: "handler_error", message: `unknown job type "${job.type}"; this worker runs: ${this.s.registry.names().join(", ")}` };
      return finish(await this.settleFail(lease, error, { retryable: false }, buffer, log));
    }
    const parsed = type.input.safeParse(job.input ?? {});
    if (!parsed.success) {
      const message = `the stored input does not match job type "${job.type}": ${parsed.error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`).join("; ")}`;
      return finish(await this.settleFail(lease, { code: "invalid_input", message }, { retryable: false }, buffer, log));
    }
    const limits: JobLimits = { ...type.limits, ...this.o.limits };
    const hostDeadline = ro.deadline ?? this.o.deadline?.();
    const margin = this.o.deadlineMarginMs ?? LAMBDA_WORKER.deadlineMarginMs;

    const ac = new AbortController();
    let lost: string | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    let limitTimer: NodeJS.Timeout | undefined;
    let giveUp!: () => void;
    const gaveUp = new Promise<HandlerEnd>((resolve) => (giveUp = () => resolve({ kind: "abandoned" })));
    const abort = (reason: AbortReason) => {
      if (ac.signal.aborted) return;
      log.info("aborting the handler", { reason });
      ac.abort(reason);
      // On the Lambda deadline the grace must also leave time for the hand-back write.
      const grace = reason === "deadline" && hostDeadline !== undefined
        ? Math.max(0, Math.min(limits.abortGraceMs, hostDeadline - this.s.now() - margin / 2))
        : limits.abortGraceMs;
      graceTimer = setTimeout(giveUp, grace);
    };

    const keeper = new LeaseKeeper(
      this.s.store,
      lease,
      buffer,
      {
        onCancel: () => abort("cancelled"),
        onLost: (why) => {
          lost = why;
          abort("lease_lost");
        },
        onHeartbeatError: (e) => log.warn("heartbeat failed; retrying on the next beat", { error: errorMessage(e) }),
      },
      this.o.heartbeatMs ?? Math.max(50, Math.floor(lease.leaseMs / 3)),
      this.s.now,
    );

    // The earliest of: the soft limit for this attempt (never past the total runtime limit) and the host's deadline.
    const softAt = started + Math.min(limits.softLimitMs, lease.runtimeDeadline - started);
    const deadlineAt = hostDeadline !== undefined ? hostDeadline - margin : Infinity;
    const stopAt = Math.min(softAt, deadlineAt);
    limitTimer = setTimeout(() => abort(deadlineAt <= softAt ? "deadline" : "soft_limit"), Math.max(0, stopAt - this.s.now()));

    let closed = false;
    const specs: ChildSpec[] = [];
    const keys = new Set<string>();
    const ctx: JobContext = {
      jobId: job.id,
      attempt: job.attempts,
      fence: { jobId: job.id, token: lease.token },
      effectKey: (step) => effectKey(job.id, step),
      progress: (done, total, message) => {
        if (!closed) buffer.progress(done, total, message);
      },
      checkpoint: (value) => {
        if (closed) return;
        // Refused here, while the handler can still act on it, if it is too large or not plain JSON.
        checkCheckpoint(value);
        buffer.checkpoint(value);
      },
      resumeFrom: job.checkpoint,
      signal: ac.signal,
      remainingMs: () => Math.max(0, stopAt - this.s.now()),
      log,
      spawn: (children) => {
        if (closed) return;
        if (specs.length + children.length > MAX_CHILDREN) throw new ValidationError(`a job may have at most ${MAX_CHILDREN} children in a round`);
        // Each child checked once, its key against every earlier call's; the round as a whole at wait().
        specs.push(...childSpecs(this.s.registry, children, keys, specs.length));
      },
      wait: (o = {}) => {
        if (specs.length) checkRound(specs);
        return new WaitRequest(o.policy ?? "collect");
      },
      children: (o = {}) => this.childrenOf(job, o.from ?? 0),
    };

    const run: ActiveRun = {
      jobId: job.id,
      log,
      startedAt: started,
      estimateMb: safeEstimate(type, parsed.data),
      abort,
      aborted: () => ac.signal.aborted,
      giveUp: () => giveUp(),
    };
    const runKey = `${job.id}#${lease.token}`;
    this.runs.set(runKey, run);
    // A claim that was in flight when shutdown began: hand it straight back.
    if (this.stopping) abort("shutdown");
    this.jobsChanged();
    this.keepers.set(lease, keeper);
    keeper.start();

    let end: HandlerEnd;
    try {
      const handled = Promise.resolve()
        .then(() => type.handler(parsed.data, ctx))
        .then(
          (value): HandlerEnd => ({ kind: "returned", value }),
          (error): HandlerEnd => ({ kind: "threw", error }),
        );
      end = await Promise.race([handled, gaveUp]);
    } finally {
      closed = true;
      clearTimeout(limitTimer);
      clearTimeout(graceTimer);
      await keeper.stop();
      this.runs.delete(runKey);
      this.jobsChanged();
    }

    const reason = ac.signal.aborted ? (ac.signal.reason as AbortReason) : undefined;
    const abandoned = end.kind === "abandoned" ? { abandoned: true } : {};
    if (end.kind === "abandoned") log.warn("the handler did not stop within its abort grace; settling without it", { reason, graceMs: limits.abortGraceMs });
    if (lost !== undefined || keeper.isLost) {
      log.warn("lease lost; writing nothing more", { why: lost });
      this.emit("LeaseLost", 1, { Queue: job.queue });
      return finish({ outcome: "lease_lost", ...(reason ? { abort: reason } : {}), ...abandoned });
    }
    let settled: Awaited<ReturnType<Runner["settleFail"]>>;
    if (end.kind === "returned" && end.value instanceof WaitRequest && reason !== "cancelled") {
      settled = specs.length
        ? await this.settleWait(lease, specs, end.value.policy, buffer, log)
        : await this.settleFail(lease, { code: "handler_error", message: "the handler returned ctx.wait() without spawning any child (ctx.spawn)" }, { retryable: false }, buffer, log);
    } else if (end.kind === "returned" && reason !== "cancelled") {
      settled = await this.settleSucceed(lease, end.value, buffer, log, dims);
    } else if (reason) {
      settled = await this.settleAbort(lease, type, reason, buffer, log, limits);
    } else {
      settled = await this.settleError(lease, type, (end as { error: unknown }).error, buffer, log, limits);
    }
    if (reason === "memory") this.o.memory?.reclaim();
    return finish({ ...settled, ...(reason ? { abort: reason } : {}), ...abandoned });
  }

  // ─── settling: one fenced write each, through the completer; errors logged and never thrown ──

  /** Until when this attempt surely holds its lease (the keeper's view, or the claim's before it started). */
  private leaseEnd(lease: Lease): number {
    return this.keepers.get(lease)?.expiresAt ?? lease.job.leaseExpiresAt;
  }

  /**
   * The completer of an attempt's last write: retried while the lease lasts, with one write id
   * for every try, so a try that landed unheard is recognized as ours (invariant 9). A refusal
   * DynamoDB makes for good (`rejected`) is returned for the caller to settle with the real
   * reason; it is never retried, and the work is never re-run for it. A lost lease throws.
   */
  private async complete<T>(lease: Lease, write: (o: WriteOptions) => Promise<T>, log: JobLogger): Promise<{ ok: true; value: T } | { ok: false; rejected: Error }> {
    const writeId = newNonce();
    for (let attempt = 1; ; attempt++) {
      try {
        // Each try is bounded by what is left of the lease: nothing may land after it ends.
        return { ok: true, value: await write({ writeId, timeoutMs: Math.max(1, this.leaseEnd(lease) - this.s.now()) }) };
      } catch (e) {
        if (e instanceof StoreRejectedError || e instanceof TooLargeError) return { ok: false, rejected: e };
        if (e instanceof LeaseLostError) throw e;
        const waitMs = Math.min(COMPLETER_MAX_BACKOFF_MS, 50 * 2 ** attempt);
        if (this.s.now() + waitMs >= this.leaseEnd(lease)) throw e;
        log.warn("the job's final write failed; retrying while the lease lasts", { attempt, error: errorMessage(e) });
        await new Promise((r) => setTimeout(r, waitMs));
      }
    }
  }

  private async settleSucceed(lease: Lease, result: unknown, buffer: ReportBuffer, log: JobLogger, dims: Dims) {
    try {
      const r = await this.complete(lease, (o) => this.s.store.succeed(lease, result ?? null, buffer.all(), o), log);
      if (r.ok) {
        this.emit("JobsSucceeded", 1, dims);
        return { outcome: "succeeded" as const };
      }
      log.warn("the handler's result cannot be stored; failing the job without re-running it", { error: r.rejected.message });
      return this.settleFail(lease, { code: "invalid_result", message: `the handler's result cannot be stored: ${r.rejected.message}` }, { retryable: false }, buffer, log);
    } catch (e) {
      return this.settleWriteError(lease, e, log);
    }
  }

  /**
   * The handler spawned children and asked to wait: the round's specs and the job's move to
   * waiting (one fenced write, through the completer), then its children. A crash after the move
   * leaves children unwritten, which the sweeper writes from the specs at the parent's deadline.
   */
  private async settleWait(lease: Lease, specs: ChildSpec[], policy: FlowPolicy, buffer: ReportBuffer, log: JobLogger): Promise<{ outcome: Settled; error?: JobError }> {
    try {
      const r = await this.complete(lease, (o) => this.s.store.wait(lease, specs, policy, buffer.all(), o), log);
      if (!r.ok) return this.settleRejected(lease, r.rejected, log);
      if (r.value.status === "cancelled") return { outcome: "cancelled" };
      const parent = r.value;
      log.info("waiting for its children", { round: parent.flow.round, children: specs.length, policy });
      await this.s.store.spawnRound(parent, specs).catch((e) => log.warn("not every child was written; the sweeper writes the rest", { error: errorMessage(e) }));
      return { outcome: "waiting" };
    } catch (e) {
      return this.settleWriteError(lease, e, log);
    }
  }

  /** ctx.children(): the last round's counts and a page of its children's outcomes, read when the handler asks. */
  private async childrenOf(job: Job, from: number): Promise<ChildrenView | undefined> {
    if (!job.flow) return undefined;
    const page = await this.s.store.childOutcomes(job, { from, limit: CHILD_OUTCOMES_PAGE });
    const view = await this.s.store.childCounts(job, { consistent: true });
    // A round of more than one shard is counted from its fan-in, which has only the ended; a
    // resumed parent's round has ended whole, so none is queued, running or waiting.
    const { exact: _e, ...counts } = view ?? { ...countChildren(0, []), exact: true as const };
    return { round: job.flow.round, counts: { ...countChildren(0, []), ...counts }, children: page.children.map(outcomeOf), next: page.next };
  }

  private async settleAbort(lease: Lease, type: JobType, reason: AbortReason, buffer: ReportBuffer, log: JobLogger, limits: JobLimits) {
    const now = this.s.now();
    const job = lease.job;
    switch (reason) {
      case "cancelled":
        try {
          const r = await this.complete(lease, (o) => this.s.store.acknowledgeCancel(lease, buffer.all(), o), log);
          if (r.ok) return { outcome: "cancelled" as const };
          return this.settleRejected(lease, r.rejected, log);
        } catch (e) {
          return this.settleWriteError(lease, e, log);
        }
      case "shutdown":
        return this.settleRelease(lease, job.queue, false, buffer, log);
      case "memory": {
        const queue = type.canMoveToLarge ? "large" : job.queue;
        this.emit("MemoryAborts", 1, { Queue: job.queue });
        const message = `the worker ran short of memory and stopped the job${queue !== job.queue ? "; it will retry on the large queue" : ""}`;
        return this.settleFail(lease, { code: "memory", message }, { retryable: true, queue }, buffer, log);
      }
      case "deadline":
      case "soft_limit": {
        if (now >= lease.runtimeDeadline) {
          const message = `total runtime limit of ${Math.round(job.timeoutMs / 1000)} s reached, counted from its first start at ${new Date(job.firstStartedAt).toISOString()}`;
          return this.settleFail(lease, { code: "timeout", message }, { retryable: false }, buffer, log);
        }
        if (buffer.checkpoints > 0) return this.settleRelease(lease, job.queue, false, buffer, log);
        if (this.kind === "lambda" && type.canMoveToLarge && job.queue !== "large") {
          // No checkpoint in a whole invocation: this job has outgrown Lambda (an import that a request-time limit kept killing).
          return this.settleRelease(lease, "large", true, buffer, log);
        }
        const what = reason === "deadline" ? "the Lambda deadline" : `its soft time limit of ${Math.round(limits.softLimitMs / 1000)} s`;
        const message = `attempt ${job.attempts} reached ${what} without saving a checkpoint`;
        return this.settleFail(lease, { code: "timeout", message }, { retryable: true, backoffMs: backoffMs(limits, job.attempts) }, buffer, log);
      }
      case "lease_lost":
        // Only reached if the abort came without the keeper marking the loss; write nothing either way.
        this.emit("LeaseLost", 1, { Queue: job.queue });
        return { outcome: "lease_lost" as const };
    }
  }

  private async settleError(lease: Lease, type: JobType, e: unknown, buffer: ReportBuffer, log: JobLogger, limits: JobLimits) {
    const message = errorText(e);
    // The stack goes with the attempt (core/attempt-detail.ts), bounded there; the log line gets it too.
    const stack = e instanceof Error && typeof e.stack === "string" ? e.stack : undefined;
    const failure: AttemptFailure = { code: "handler_error", message, ...(stack !== undefined ? { stack } : {}) };
    if (isPermanentError(type, e)) {
      log.warn("the handler failed permanently", { error: message, stack: boundedStack(stack) });
      return this.settleFail(lease, failure, { retryable: false }, buffer, log);
    }
    if (e instanceof FencedOutError) log.warn("a fenced write of the handler was refused: a later attempt holds the job; settling, which its token refuses if so", { token: e.fence.token });
    else log.warn("the handler failed; retrying if attempts remain", { error: message, stack: boundedStack(stack) });
    return this.settleFail(lease, failure, { retryable: true, backoffMs: backoffMs(limits, lease.job.attempts) }, buffer, log);
  }

  private async settleFail(
    lease: Lease,
    failure: AttemptFailure,
    opts: { retryable: boolean; backoffMs?: number; queue?: QueueName },
    buffer: ReportBuffer,
    log: JobLogger,
  ): Promise<{ outcome: Settled; error?: JobError; queue?: QueueName }> {
    const dims = { Queue: lease.job.queue, JobType: lease.job.type };
    const error: JobError = { code: failure.code, message: failure.message };
    try {
      const r = await this.complete(lease, (o) => this.s.store.fail(lease, failure, { ...opts, report: buffer.all() }, o), log);
      if (!r.ok) return this.settleRejected(lease, r.rejected, log);
      const after = r.value;
      if (after.status === "cancelled") return { outcome: "cancelled" };
      this.emit("JobsFailed", 1, { ...dims, ErrorCode: after.status === "failed" ? after.error.code : error.code });
      if (after.status === "queued") {
        this.ring(after, after.runAt !== undefined ? after.runAt - this.s.now() : 0, log);
        return { outcome: "retried", error, queue: after.queue };
      }
      return { outcome: "failed", error: after.error };
    } catch (e) {
      return this.settleWriteError(lease, e, log);
    }
  }

  private async settleRelease(lease: Lease, queue: QueueName, spendAttempt: boolean, buffer: ReportBuffer, log: JobLogger) {
    try {
      const r = await this.complete(lease, (o) => this.s.store.release(lease, { report: buffer.all(), queue, ...(spendAttempt ? { spendAttempt } : {}) }, o), log);
      if (!r.ok) return this.settleRejected(lease, r.rejected, log);
      const after = r.value;
      if (after.status === "cancelled") return { outcome: "cancelled" as const };
      if (after.status === "failed") {
        this.emit("JobsFailed", 1, { Queue: lease.job.queue, JobType: lease.job.type, ErrorCode: after.error.code });
        return { outcome: "failed" as const, error: after.error };
      }
      this.ring(after, 0, log);
      return { outcome: "released" as const, queue: after.queue };
    } catch (e) {
      return this.settleWriteError(lease, e, log);
    }
  }

  /**
   * A settle DynamoDB refused for good (what the handler left cannot be stored with the job): the
   * job fails now with the real reason, carrying nothing of what was refused.
   */
  private async settleRejected(lease: Lease, rejected: Error, log: JobLogger): Promise<{ outcome: Settled; error?: JobError }> {
    const error: JobError = { code: "store_rejected", message: `the job's last write was refused for good: ${rejected.message}`.slice(0, 1000) };
    log.error("the job's last write was refused for good; failing the job", { error: rejected.message });
    try {
      const r = await this.complete(lease, (o) => this.s.store.fail(lease, error, { retryable: false }, o), log);
      if (!r.ok) return this.settleWriteError(lease, r.rejected, log);
      this.emit("JobsFailed", 1, { Queue: lease.job.queue, JobType: lease.job.type, ErrorCode: error.code });
      return { outcome: "failed", error };
    } catch (e) {
      return this.settleWriteError(lease, e, log);
    }
  }

  private settleWriteError(lease: Lease, e: unknown, log: JobLogger): { outcome: Settled } {
    if (e instanceof LeaseLostError) {
      log.warn("lease lost while settling; writing nothing more", { why: e.reason });
      this.emit("LeaseLost", 1, { Queue: lease.job.queue });
      return { outcome: "lease_lost" };
    }
    // The lease will expire and the sweeper will take the job back: nothing is lost, only delayed.
    log.error("could not record the job's outcome; the sweeper will repair it after the lease expires", { error: errorMessage(e) });
    return { outcome: "settle_error" };
  }

  /** Asks for the requeued job's doorbell, rung when its run ends. */
  private ring(job: Job, delayMs: number, log: JobLogger): void {
    this.rings.set(job.id, { lane: laneOf(job), delayMs, log });
  }

  /** Rings a requeued job's doorbell; if SQS refuses, the sweeper re-sends after the start deadline. */
  private async ringDeferred(jobId: string): Promise<void> {
    const r = this.rings.get(jobId);
    if (!r) return;
    this.rings.delete(jobId);
    const { lane, log } = r;
    try {
      await this.s.queue.send(lane, [jobId], Math.max(0, r.delayMs));
    } catch (e) {
      log.warn("could not send the job's message; the sweeper will send it after the start deadline", { queue: lane.queue, priority: lane.priority, error: errorMessage(e) });
    }
  }

  private emit(name: MetricName, value: number, dims: Dims): void {
    try {
      this.s.metrics.emit(name, value, dims);
    } catch {
      /* metrics never break a run */
    }
  }
}

/** A child as its parent's handler sees it. */
export function outcomeOf(j: Job): ChildOutcome {
  return {
    index: j.parent?.index ?? 0,
    ...(j.parent?.key !== undefined ? { key: j.parent.key } : {}),
    id: j.id,
    status: j.status,
    ...(j.status === "succeeded" ? { result: j.result } : {}),
    ...(j.error ? { error: j.error } : {}),
  };
}

function safeEstimate(type: JobType, input: unknown): number {
  try {
    return type.estimateMb?.(input) ?? 0;
  } catch {
    return 0;
  }
}

/** A readable error line for the job record: the name when it says something, then the message. */
function errorText(e: unknown): string {
  if (e instanceof Error) {
    const name = e.name && e.name !== "Error" ? `${e.name}: ` : "";
    return `${name}${e.message}`.slice(0, 1000);
  }
  return String(e).slice(0, 1000);
}
