/**
 * Recovery in seconds (invariant 10): when the platform reports a worker dead (an ECS task
 * stopped, a Lambda runtime that crashed or timed out, a local worker process that exited), its
 * jobs run again at once instead of when their leases run out.
 *
 * Input: a WorkerDeath (core/lifecycle.ts), from whichever event reported it (core/death-events.ts
 * parses the cloud's). Output: what was done, per job. Steps: find the jobs the worker holds with
 * one Query of the byWorker index (never a Scan); reclaim each with a write conditional on the
 * version it read, decided by lifecycle.reclaimDead (only the attempt that worker started before
 * it died, so a job that moved to a live worker is never touched); ring the doorbells of those
 * queued again; mark the worker dead in the directory. Idempotent: a repeated or late event finds
 * nothing of that worker's left to reclaim. The lease stays the backstop for deaths no event
 * reports (a frozen process, a lost host).
 */
import { laneOf } from "./config.js";
import { errorMessage } from "./errors.js";
import type { CancelledJob, FailedJob, QueuedJob } from "./job.js";
import type { WorkerDeath } from "./lifecycle.js";
import type { Services } from "./services.js";

export type { WorkerDeath } from "./lifecycle.js";

export interface DeathReport {
  workerId: string;
  /** Jobs the index named. */
  found: number;
  /** Queued again (their doorbells rung). */
  requeued: string[];
  /** Ended (no attempts left, past the runtime limit, or a cancel it had not acknowledged). */
  ended: string[];
  /** No longer that worker's attempt: moved, finished, or claimed after the death. */
  untouched: string[];
  /** Jobs the reaper could not act on (a store error): the sweeper takes them when their lease runs out. */
  errors: { jobId: string; error: string }[];
}

type DeathServices = Pick<Services, "store" | "queue" | "workers" | "metrics">;

const CONCURRENCY = 8;
/** When a reclaimed job's doorbells ring: at once, and again after a dead worker's poll has taken the first. */
const DOORBELL_DELAYS_MS = [0, 2_000] as const;

export class DeathReaper {
  constructor(private readonly s: DeathServices) {}

  async onDeath(death: WorkerDeath): Promise<DeathReport> {
    const r: DeathReport = { workerId: death.workerId, found: 0, requeued: [], ended: [], untouched: [], errors: [] };
    const ids = await this.s.store.jobsHeldBy(death.workerId);
    r.found = ids.length;
    // A task that stopped cleanly (a deploy, a scale-in) held nothing: not a death worth counting.
    if (ids.length) this.s.metrics.emit("WorkerDeaths", 1);
    for (let i = 0; i < ids.length; i += CONCURRENCY) {
      await Promise.all(ids.slice(i, i + CONCURRENCY).map((id) => this.reclaimOne(id, death, r)));
    }
    // Advisory, after the jobs: presence never decides anything.
    await this.s.workers.markDead(death.workerId, death.at, death.reason).catch(() => undefined);
    return r;
  }

  private async reclaimOne(id: string, death: WorkerDeath, r: DeathReport): Promise<void> {
    let job: QueuedJob | FailedJob | CancelledJob | undefined;
    try {
      job = await this.s.store.reclaimDead(id, death);
    } catch (e) {
      r.errors.push({ jobId: id, error: errorMessage(e) });
      return;
    }
    if (!job) return void r.untouched.push(id);
    this.s.metrics.emit("DeadWorkerJobs", 1, { Queue: job.queue });
    if (job.status !== "queued") return void r.ended.push(id);
    r.requeued.push(id);
    // Twice: the dead worker's own long poll may still be open at the queue, and SQS hands the
    // first doorbell to it (measured: 11 of 27 kills lost one that way, and the job then waited
    // for its message's visibility timeout). That poll is spent once it has taken one, so a
    // second doorbell a moment later reaches a live worker; a duplicate is harmless (invariant 1).
    // A doorbell that fails is not a lost job either: the sweeper resends it at its start deadline.
    for (const delayMs of DOORBELL_DELAYS_MS) {
      await this.s.queue.send(laneOf(job), [id], delayMs).catch((e: unknown) => r.errors.push({ jobId: id, error: `doorbell: ${errorMessage(e)}` }));
    }
  }
}
