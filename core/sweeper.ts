/**
 * The sweeper: repairs whatever falls through the cracks (invariants 4, 5 and 8). It reads only
 * the sparse `due` index, so a sweep costs what is overdue, never what the table holds, and
 * every repair is a conditional write on the exact state and fencing token the sweep read: two
 * sweeps at once, or a sweep racing a worker, cannot both act on a job. The loser counts the
 * job as "skipped", which is not an error: someone else already moved it.
 *
 * A resend is a repair that may not help (every worker of the queue frozen or broken), and it
 * pushes the job's deadline, so the due index cannot say how long a job has gone unclaimed. Each
 * sweep therefore also reads the head of the sparse wait index (core/waiting.ts) and publishes,
 * per queue, how long the oldest claimable job has waited (OldestUnclaimedSeconds) and how many
 * of its re-rings were for a job already rung once in vain (UnhelpedRepairs).
 */
import { eachBounded } from "./bounded.js";
import { laneOf, QUEUE_NAMES, type Lane, type QueueName } from "./config.js";
import { ConflictError, errorMessage } from "./errors.js";
import { orphanReason } from "./flow.js";
import { ringsOf, type Job, type LiveJob, type QueuedJob, type RunningJob, type WaitingJob } from "./job.js";
import { batchDoorbells, type Doorbell } from "./queue.js";
import type { RuntimeConfig } from "./runtime.js";
import { goneWorkerRepair } from "./lifecycle.js";
import type { Services } from "./services.js";
import type { SweeperStore } from "./store-ports.js";
import { oldestWaiting, type UnclaimedJob } from "./waiting.js";

export const SWEEP_ACTIONS = [
  "reclaimed",
  "failedExhausted",
  "failedTimeout",
  "cancelled",
  "resent",
  /** A waiting parent whose children had all ended was resumed (a lost fan-in write or resume). */
  "resumed",
  /** A waiting parent failed: a child failed under failFast and the child's own write of it was lost. */
  "flowFailed",
  /** A waiting parent's flow was repaired: children written from the spec, retried, or its counts rewritten. */
  "flowRepaired",
  /** A waiting parent whose children still run: its next look was pushed on. */
  "rechecked",
  /** A child whose parent is gone or ended, cancelled instead of run. */
  "orphanCancelled",
  /** A job held by a pause or a limit woken: what held it had freed up, and the wake was lost (core/limits-sweep.ts). */
  "unheld",
  /** A held job looked at and still held: its next look was pushed on. */
  "reheld",
  /** A concurrency slot given back whose holder no longer ran (a crash between its end and the release). */
  "slotFreed",
  /** A schedule's tick made its job (core/schedules.ts); touched lists the jobs. */
  "scheduled",
  /** A schedule's tick skipped: its previous run was still live and its overlap policy is skip. */
  "scheduleSkipped",
  /** A schedule's ticks that came while nothing fired them and its catch-up policy does not fire (one entry per schedule). */
  "scheduleMissed",
  "skipped",
] as const;
export type SweepAction = (typeof SWEEP_ACTIONS)[number];

export interface SweepReport {
  startedAt: string;
  durationMs: number;
  /** Items the due-index queries read (DynamoDB's ScannedCount): follows the overdue count, not the table. */
  read: number;
  counts: Record<SweepAction, number>;
  touched: Partial<Record<SweepAction, string[]>>;
  /** True when the sweep stopped at its page or time bound with overdue jobs left for the next one. */
  more: boolean;
  /** Jobs whose repair failed for a reason other than a lost race; the next sweep tries them again. */
  errors?: { jobId: string; message: string }[];
  /** The wait-index read failed: this sweep published no OldestUnclaimedSeconds (its repairs are done). */
  waitError?: string;
}

export interface SweeperOptions {
  /** Overdue jobs read per page (per due-index partition at most, and in total). */
  pageSize?: number;
  maxPages?: number;
  /** Wall-clock time after which a sweep starts no new page. */
  budgetMs?: number;
  /** Conditional writes in flight at once. */
  concurrency?: number;
}

/** The states the stuck report uses. */
export const STUCK_STATES = ["queued", "running", "cancelling", "waiting", "orphaned", "held"] as const;
export type StuckStateName = (typeof STUCK_STATES)[number];

/**
 * The states the StuckJobs metric counts. Not queued: the same sweep that finds a queued job
 * overdue resends it and pushes its deadline a whole start deadline on, so the count drops to 0
 * at the next sweep whether or not the resend helped, and a queue whose workers are all frozen
 * read 0 in most samples. OldestUnclaimedSeconds measures that instead. A running or
 * cancelling job is different: reclaiming or cancelling it ends that state, so its count stays
 * up only while the repair itself fails, sweep after sweep.
 */
export const STUCK_METRIC_STATES: readonly Exclude<StuckStateName, "queued">[] = ["running", "cancelling", "waiting", "orphaned", "held"];

/**
 * The figure OldestUnclaimedSeconds publishes for a queue: its oldest waiting job's wait, 0 when
 * none waits. To the millisecond, not whole seconds: the alarm compares it with a threshold that
 * may be a few seconds locally, and a floor would delay the page by up to a second there.
 */
export const oldestUnclaimedSeconds = (waiting: readonly UnclaimedJob[]): number => waiting.reduce((max, w) => Math.max(max, w.waitedMs), 0) / 1000;

/**
 * A resend that repeats a repair which did not help: the job's doorbell was already rung again
 * since it became claimable, and still nobody claimed it (a doorbell rung twice with no claim).
 */
export const unhelpedRepair = (job: QueuedJob): boolean => ringsOf(job) >= 1;

/** What the sweeper does with an overdue job, decided from what it read alone. */
export type Plan =
  | { do: "expire"; job: RunningJob; state: "running" }
  | { do: "cancel"; job: RunningJob; state: "cancelling" }
  | { do: "reclaim"; job: RunningJob; state: "running" }
  | { do: "resend"; job: QueuedJob; state: "queued" }
  | { do: "flow"; job: WaitingJob; state: "waiting" }
  | { do: "hold"; job: QueuedJob; state: "held" }
  | { do: "orphan"; job: LiveJob; state: "orphaned"; why: string }
  | { do: "wait"; job: Job };

/** The parents of the overdue children a sweep read (undefined: not found); a job not in it has no parent to check. */
export type Parents = ReadonlyMap<string, Job | undefined>;

/**
 * The order is lifecycle.goneWorkerRepair's, which the death reaper shares: the runtime limit
 * (a claim/fail/re-claim cycle must not keep a job alive forever), then an unacknowledged cancel,
 * then a dead worker. An overdue running job with a cancel request has either an expired lease or a passed grace
 * period, because requestCancel and heartbeats fold the grace deadline into dueAt.
 */
export function plan(job: LiveJob, now: number, parents: Parents = new Map()): Plan {
  if (job.dueAt > now) return { do: "wait", job };
  // An overdue child whose parent no longer waits on it is cancelled, not resent, reclaimed or
  // rechecked (a waiting one, a chain's step, cancels its own children in turn).
  const why = job.parent && parents.has(job.parent.id) ? orphanReason(job, parents.get(job.parent.id)) : undefined;
  if (why) return { do: "orphan", job, state: "orphaned", why };
  // A waiting parent's deadline is its flow's next look: a recount from its children (core/flows.ts).
  if (job.status === "waiting") return { do: "flow", job, state: "waiting" };
  // A held job's deadline is a look at what holds it (core/limits-sweep.ts); a rate hold's comes after its window.
  if (job.status === "queued") return job.hold ? { do: "hold", job, state: "held" } : { do: "resend", job, state: "queued" };
  const repair = goneWorkerRepair(job, now);
  if (repair === "expire") return { do: "expire", job, state: "running" };
  if (repair === "cancel") return { do: "cancel", job, state: "cancelling" };
  if (job.leaseExpiresAt <= now) return { do: "reclaim", job, state: "running" };
  return { do: "wait", job };
}

/** A doorbell a repair asks for: rung in batches per lane and delay once the page is done. */
interface Doorbelled {
  lane: Lane;
  id: string;
  delayMs: number;
}

/** `doc` and the table name: the wait index is read directly (core/waiting.ts), not through the store. */
type SweepServices = Pick<Services, "metrics" | "now" | "doc"> & { store: SweeperStore; queue: Doorbell; cfg: Pick<RuntimeConfig, "tableName"> };

/** Schedules fired per sweep at most; the rest (still due) are the next sweep's. */
const SCHEDULES_PER_SWEEP = 100;

const DEFAULTS: Required<SweeperOptions> = { pageSize: 100, maxPages: 10, budgetMs: 5_000, concurrency: 8 };

export class Sweeper {
  private readonly opts: Required<SweeperOptions>;

  constructor(
    private readonly services: SweepServices,
    opts: SweeperOptions = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  /** One bounded sweep: at most maxPages pages, and no new page after budgetMs. */
  async sweep(): Promise<SweepReport> {
    const { store, metrics } = this.services;
    const startedWall = Date.now();
    const startedAt = this.services.now();
    const r = new ReportBuilder(startedAt);
    const stuck = Object.fromEntries(STUCK_STATES.map((s) => [s, 0])) as Record<StuckStateName, number>;
    const seen = new Set<string>();
    let more = false;
    for (let page = 0; page < this.opts.maxPages; page++) {
      // Out of time: `more` is still true from the page before, so the next sweep continues.
      if (page > 0 && Date.now() - startedWall >= this.opts.budgetMs) break;
      const now = this.services.now();
      const out = await store.listOverdue(now, this.opts.pageSize);
      r.read += out.scanned;
      // Jobs already tried this sweep (a lost race that left them overdue) are the next sweep's.
      const fresh = out.jobs.filter((j) => !seen.has(j.id));
      for (const j of fresh) seen.add(j.id);
      const parents = await store.parentsOf(fresh);
      const plans = fresh.map((j) => plan(j, now, parents)).filter((p): p is Exclude<Plan, { do: "wait" }> => p.do !== "wait");
      // A waiting parent or a held job is stuck only if its look finds something to repair (counted in apply).
      for (const p of plans) if (p.do !== "flow" && p.do !== "hold") stuck[p.state]++;
      await this.act(plans, r, stuck);
      more = out.more;
      if (!out.more || fresh.length === 0) break;
    }
    const paused = await this.sweepLimits(r, stuck);
    const lag = await this.fireSchedules(r);
    const waiting = await this.readWaiting(r);
    const report = r.build(Date.now() - startedWall, more);
    for (const state of STUCK_METRIC_STATES) metrics.emit("StuckJobs", stuck[state], { State: state });
    for (const queue of QUEUE_NAMES) {
      if (waiting) metrics.emit("OldestUnclaimedSeconds", oldestUnclaimedSeconds(waiting[queue]), { Queue: queue });
      metrics.emit("UnhelpedRepairs", r.unhelped[queue], { Queue: queue });
    }
    if (paused !== undefined) metrics.emit("PausedSeconds", paused);
    if (lag !== undefined) metrics.emit("ScheduleLagSeconds", lag);
    metrics.emit("SweepDuration", report.durationMs);
    metrics.emit("SweeperHeartbeat", 1);
    return report;
  }

  /**
   * Fires the schedules whose tick has come (core/schedules.ts); answers how late the latest
   * fired schedule was, in seconds (0 when none was due), for ScheduleLagSeconds.
   */
  private async fireSchedules(r: ReportBuilder): Promise<number | undefined> {
    const { store } = this.services;
    const now = this.services.now();
    let due;
    try {
      due = await store.schedules.due(now, SCHEDULES_PER_SWEEP);
    } catch (e) {
      r.error("@schedules", e);
      return undefined;
    }
    let lag = 0;
    const deadline = Date.now() + this.opts.budgetMs;
    await eachBounded(due, this.opts.concurrency, async (s) => {
      lag = Math.max(lag, Math.max(0, now - s.nextAt) / 1000);
      // Past the sweep's budget the rest are the next sweep's (each look is bounded to firePerLook ticks).
      if (Date.now() >= deadline) return;
      try {
        const out = await store.schedules.fire(s, now);
        for (const id of out.fired) r.add("scheduled", id);
        for (let i = 0; i < out.skipped; i++) r.add("scheduleSkipped", `@schedule#${s.id}`);
        if (out.missed) r.add("scheduleMissed", `@schedule#${s.id}`);
      } catch (e) {
        if (e instanceof ConflictError) return r.add("skipped", `@schedule#${s.id}`);
        r.error(`@schedule#${s.id}`, e);
        // Its next look backs off, so a schedule that fails every time does not crowd out the rest.
        await store.schedules.failed(s, errorMessage(e), now);
      }
    });
    return lag;
  }

  /**
   * The limits' recount and the wakes a resume left (core/limits-sweep.ts); answers the longest
   * pause for its metric. A failure is reported and leaves the repairs done.
   */
  private async sweepLimits(r: ReportBuilder, stuck: Record<StuckStateName, number>): Promise<number | undefined> {
    try {
      const out = await this.services.store.sweepLimits();
      for (const id of out.freed) r.add("slotFreed", id);
      for (const id of out.woken) r.add("unheld", id);
      stuck.held += out.woken.length;
      return out.pausedSeconds;
    } catch (e) {
      r.error("@controls", e);
      return undefined;
    }
  }

  /**
   * After the repairs, so a job this sweep reclaimed counts from now. A failure (the index
   * throttled, or missing on a table made before it) must not undo the repairs or stop the
   * invocation's later sweeps: the report says so, and the metric has no point this sweep.
   */
  private async readWaiting(r: ReportBuilder): Promise<Record<QueueName, UnclaimedJob[]> | undefined> {
    try {
      return await oldestWaiting(this.services.doc, this.services.cfg.tableName, this.services.now());
    } catch (e) {
      r.waitError = errorMessage(e);
      return undefined;
    }
  }

  /**
   * Sweeps at most every `intervalMs` (wall clock) from now until `stopAt` (epoch ms, Date.now),
   * as one scheduled invocation does, so a dead worker is found within its lease plus one
   * interval. The sweeps are spread evenly so the last one runs at `stopAt` itself: that keeps
   * the gap to the next invocation as short as the schedule allows. With no time at all it
   * still sweeps once, so the heartbeat metric never goes silent while the function runs.
   */
  async runUntil(stopAt: number, intervalMs: number, onReport?: (r: SweepReport) => void): Promise<SweepReport[]> {
    const start = Date.now();
    const window = Math.max(0, stopAt - start);
    const n = Math.ceil(window / Math.max(1, intervalMs));
    const spacing = n ? window / n : 0;
    const reports: SweepReport[] = [];
    for (let i = 0; i <= n; i++) {
      const at = start + i * spacing;
      // A sweep that overran skips the slots it missed, but the last one always runs.
      if (i < n && Date.now() > at + spacing) continue;
      const wait = at - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const report = await this.sweep();
      reports.push(report);
      onReport?.(report);
    }
    return reports;
  }

  private async act(plans: Exclude<Plan, { do: "wait" }>[], r: ReportBuilder, stuck: Record<StuckStateName, number>): Promise<void> {
    const doorbells: Doorbelled[] = [];
    // Each repair catches its own failure, so every plan is tried.
    await eachBounded(plans, this.opts.concurrency, async (p) => {
      try {
        const rings = await this.apply(p, r, stuck);
        if (rings) doorbells.push(rings);
      } catch (e) {
        if (e instanceof ConflictError) r.add("skipped", p.job.id);
        else r.error(p.job.id, e);
      }
    });
    await this.ring(doorbells, r);
  }

  /** One conditional write; answers the doorbell to ring once it has succeeded. */
  private async apply(
    p: Exclude<Plan, { do: "wait" }>,
    r: ReportBuilder,
    stuck: Record<StuckStateName, number>,
  ): Promise<Doorbelled | undefined> {
    const { store, metrics } = this.services;
    const dims = { Queue: p.job.queue, JobType: p.job.type };
    switch (p.do) {
      case "flow": {
        // The flow rings what it queues itself (children written or retried, the parent resumed).
        const repair = await store.checkFlow(p.job);
        if (repair.stuck) stuck.waiting++;
        if (repair.written || repair.retried || repair.recounted) r.add("flowRepaired", p.job.id);
        if (repair.did === "resumed") r.add("resumed", p.job.id);
        else if (repair.did === "failed") r.add("flowFailed", p.job.id);
        else if (repair.did === "rechecked") r.add("rechecked", p.job.id);
        else r.add("skipped", p.job.id);
        return undefined;
      }
      case "hold": {
        // The look rings the doorbell of a job it wakes itself.
        const did = await store.lookAtHold(p.job);
        if (did === "unheld") stuck.held++;
        r.add(did === "unheld" ? "unheld" : "reheld", p.job.id);
        return undefined;
      }
      case "orphan":
        await store.cancelOrphan(p.job, p.why);
        r.add("orphanCancelled", p.job.id);
        return undefined;
      case "expire": {
        const failed = await store.expire(p.job);
        r.add(failed.error.code === "timeout" ? "failedTimeout" : "failedExhausted", p.job.id);
        metrics.emit("JobsFailed", 1, { ...dims, ErrorCode: failed.error.code });
        return undefined;
      }
      case "cancel":
        await store.cancelSilent(p.job);
        r.add("cancelled", p.job.id);
        return undefined;
      case "reclaim": {
        const after = await store.reclaim(p.job);
        if (after.status === "failed") {
          r.add("failedExhausted", p.job.id);
          metrics.emit("JobsFailed", 1, { ...dims, ErrorCode: after.error.code });
          return undefined;
        }
        r.add("reclaimed", p.job.id);
        metrics.emit("Reclaimed", 1, { Queue: after.queue });
        return { lane: laneOf(after), id: after.id, delayMs: 0 };
      }
      case "resend": {
        // The deadline moves first, conditionally: of two sweeps only the winner sends.
        const pushed = await store.pushStartDeadline(p.job);
        r.add("resent", p.job.id);
        if (unhelpedRepair(p.job)) r.unhelped[pushed.queue]++;
        metrics.emit("Requeued", 1, { Queue: pushed.queue });
        const delayMs = pushed.runAt !== undefined ? Math.max(0, pushed.runAt - this.services.now()) : 0;
        return { lane: laneOf(pushed), id: pushed.id, delayMs };
      }
    }
  }

  /**
   * Sends the doorbells in batches. A send that fails leaves the job queued with its pushed
   * deadline, so the next sweep after that deadline sends it again: nothing is lost.
   */
  private async ring(doorbells: Doorbelled[], r: ReportBuilder): Promise<void> {
    for (const g of batchDoorbells(doorbells)) {
      try {
        await this.services.queue.send(g.lane, g.ids, g.delayMs);
      } catch (e) {
        for (const id of g.ids) r.error(id, e);
      }
    }
  }
}

class ReportBuilder {
  read = 0;
  /** UnhelpedRepairs per queue: counted for the metric, not part of the report. */
  readonly unhelped = Object.fromEntries(QUEUE_NAMES.map((q) => [q, 0])) as Record<QueueName, number>;
  waitError: string | undefined;
  private readonly counts = Object.fromEntries(SWEEP_ACTIONS.map((a) => [a, 0])) as Record<SweepAction, number>;
  private readonly touched: Partial<Record<SweepAction, string[]>> = {};
  private readonly errors: { jobId: string; message: string }[] = [];

  constructor(private readonly startedAt: number) {}

  add(action: SweepAction, id: string): void {
    this.counts[action]++;
    (this.touched[action] ??= []).push(id);
  }

  error(jobId: string, e: unknown): void {
    this.errors.push({ jobId, message: errorMessage(e) });
  }

  build(durationMs: number, more: boolean): SweepReport {
    return {
      startedAt: new Date(this.startedAt).toISOString(),
      durationMs,
      read: this.read,
      counts: { ...this.counts },
      touched: { ...this.touched },
      more,
      ...(this.errors.length ? { errors: [...this.errors] } : {}),
      ...(this.waitError !== undefined ? { waitError: this.waitError } : {}),
    };
  }
}

/** Sums a list of reports: what one scheduled invocation did. */
export function totals(reports: SweepReport[]): { sweeps: number; read: number; counts: Record<SweepAction, number>; more: boolean; errors: number } {
  const counts = Object.fromEntries(SWEEP_ACTIONS.map((a) => [a, 0])) as Record<SweepAction, number>;
  for (const r of reports) for (const a of SWEEP_ACTIONS) counts[a] += r.counts[a];
  return {
    sweeps: reports.length,
    read: reports.reduce((n, r) => n + r.read, 0),
    counts,
    more: reports.at(-1)?.more ?? false,
    errors: reports.reduce((n, r) => n + (r.errors?.length ?? 0) + (r.waitError !== undefined ? 1 : 0), 0),
  };
}
