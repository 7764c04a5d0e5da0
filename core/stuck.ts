/**
 * The stuck report (GET /admin/stuck): what the sweeper would act on now, without acting. It
 * reads the same sparse `due` index and classifies with the same `plan` as the sweeper, so the
 * report and the repair cannot disagree. Plus, per queue, the jobs that are not starting (read
 * from the wait index as the sweeper's OldestUnclaimedSeconds is), and each dead-letter queue's
 * depth.
 */
import { QUEUE_NAMES, type QueueName } from "./config.js";
import type { LiveJob } from "./job.js";
import type { RuntimeConfig } from "./runtime.js";
import type { Services } from "./services.js";
import { plan, STUCK_STATES, type StuckStateName } from "./sweeper.js";
import { oldestWaiting, waitSeconds } from "./waiting.js";

export interface StuckState {
  count: number;
  /** Seconds the longest-overdue job of this state has been past its deadline. */
  oldestAgeSeconds: number;
  sample: string[];
}

/** One queue's claimable jobs nobody has claimed. */
export interface NotStarting {
  /** How long the oldest claimable job has waited without a claim (OldestUnclaimedSeconds); 0 when none waits. */
  oldestWaitSeconds: number;
  /**
   * The oldest of those that have waited a whole start deadline or more, oldest first: their
   * first doorbell went unanswered, and `rings` says how often the sweeper has rung again since.
   */
  jobs: { id: string; waitedSeconds: number; rings: number }[];
}

export interface StuckReport {
  generatedAt: string;
  /**
   * `waiting`: parents whose flow check is due (a recount from their children, core/flows.ts);
   * `orphaned`: overdue children whose parent is gone or ended.
   */
  states: Record<StuckStateName, StuckState>;
  notStarting: Record<QueueName, NotStarting>;
  deadLetters: Record<QueueName, number>;
}

/** Overdue jobs read to classify them; past this the counts come from COUNT queries. */
const READ_LIMIT = 1_000;

export async function stuckReport(
  services: Pick<Services, "queue" | "now" | "doc"> & { store: Pick<Services["store"], "listOverdue" | "countOverdue" | "parentsOf"> } & { cfg: Pick<RuntimeConfig, "tableName" | "startDeadlineMs"> },
  opts: { sampleSize?: number; readLimit?: number } = {},
): Promise<StuckReport> {
  const sampleSize = opts.sampleSize ?? 10;
  const now = services.now();
  const [overdue, waiting, deadLetters] = await Promise.all([
    services.store.listOverdue(now, opts.readLimit ?? READ_LIMIT),
    // Each partition's head: a sample of sampleSize per queue whichever partitions hold its oldest.
    oldestWaiting(services.doc, services.cfg.tableName, now, { perShard: sampleSize }),
    dlqDepths(services.queue),
  ]);
  const notStarting = Object.fromEntries(
    QUEUE_NAMES.map((q): [QueueName, NotStarting] => [
      q,
      {
        // Oldest first: the head's wait is what OldestUnclaimedSeconds publishes, in whole seconds.
        oldestWaitSeconds: waitSeconds(waiting[q][0]?.waitedMs ?? 0),
        jobs: waiting[q]
          .filter((w) => w.waitedMs >= services.cfg.startDeadlineMs)
          .slice(0, sampleSize)
          .map((w) => ({ id: w.id, waitedSeconds: waitSeconds(w.waitedMs), rings: w.rings })),
      },
    ]),
  ) as Record<QueueName, NotStarting>;
  const states = Object.fromEntries(STUCK_STATES.map((s) => [s, { count: 0, oldestAgeSeconds: 0, sample: [] as string[] }])) as StuckReport["states"];
  // listOverdue answers oldest first, so the first of each state is its oldest.
  const parents = await services.store.parentsOf(overdue.jobs);
  for (const job of overdue.jobs) {
    const p = plan(job, now, parents);
    if (p.do === "wait") continue;
    const s = states[p.state];
    if (s.count === 0) s.oldestAgeSeconds = ageSeconds(job, now);
    s.count++;
    if (s.sample.length < sampleSize) s.sample.push(job.id);
  }
  if (overdue.more) await countBeyondTheRead(services, now, states);
  return { generatedAt: new Date(now).toISOString(), states, notStarting, deadLetters };
}

/**
 * More overdue jobs than one read holds: the per-partition COUNT queries give the totals. A
 * running partition holds both dead workers and ignored cancels; the cancels seen in the read
 * are kept, the rest counted as running.
 */
async function countBeyondTheRead(
  services: { store: Pick<Services["store"], "countOverdue"> },
  now: number,
  states: Record<StuckStateName, StuckState>,
): Promise<void> {
  const perShard = await services.store.countOverdue(now);
  let queued = 0;
  let running = 0;
  let waiting = 0;
  for (const [shard, n] of Object.entries(perShard)) {
    const state = shard.split("#")[1];
    if (state === "queued") queued += n;
    else if (state === "waiting") waiting += n;
    else running += n;
  }
  states.queued.count = Math.max(states.queued.count, queued);
  states.waiting.count = Math.max(states.waiting.count, waiting);
  states.running.count = Math.max(states.running.count, running - states.cancelling.count);
}

const ageSeconds = (job: LiveJob, now: number): number => Math.max(0, Math.floor((now - job.dueAt) / 1000));

async function dlqDepths(queue: Services["queue"]): Promise<Record<QueueName, number>> {
  const depths = await Promise.all(
    QUEUE_NAMES.map(async (q) => {
      const d = await queue.depth(q, { dlq: true });
      return d.visible + d.inFlight + d.delayed;
    }),
  );
  return Object.fromEntries(QUEUE_NAMES.map((q, i) => [q, depths[i] ?? 0])) as Record<QueueName, number>;
}
