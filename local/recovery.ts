/**
 * After a restart on a kept data directory, DynamoDB still holds the queued jobs but fauxqs (in
 * memory) has lost their messages. Rather than leave each to its start deadline, ring every
 * queued job's doorbell once. Duplicates are harmless (invariant 1): the claim is conditional.
 * Running jobs are left alone; their leases expire and the sweeper takes them back.
 */
import { laneOf } from "../core/config.js";
import type { QueuedJob } from "../core/job.js";
import { byLane } from "../core/queue.js";
import type { Services } from "../core/services.js";

export async function ringQueuedJobs(services: Services): Promise<number> {
  const now = services.now();
  let cursor: string | null = null;
  let rung = 0;
  do {
    const page = await services.store.list({ status: "queued" }, cursor, 100);
    const due: QueuedJob[] = [];
    for (const job of page.jobs) {
      if (job.status !== "queued") continue;
      const delayMs = (job.runAt ?? 0) - now;
      if (delayMs > 0) {
        await services.queue.send(laneOf(job), [job.id], delayMs);
      } else {
        due.push(job);
      }
      rung++;
    }
    for (const { lane, ids } of byLane(due)) await services.queue.send(lane, ids);
    cursor = page.nextCursor;
  } while (cursor);
  return rung;
}
