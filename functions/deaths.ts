/**
 * The reaper's Lambda: invoked by EventBridge for every stopped task of the stage's ECS cluster,
 * and by a CloudWatch Logs subscription for every `Runtime exited` / `Task timed out` line of the
 * Lambda worker's log group. Each death it reads (core/death-events.ts) has its worker's jobs
 * reclaimed at once (core/deaths.ts). A delivery it cannot act on throws, so the platform retries
 * it; the jobs' leases are the backstop either way.
 */
import { DeathReaper, type DeathReport } from "../core/deaths.js";
import { deathsOf } from "../core/death-events.js";
import { emfMetrics } from "../core/metrics-emf.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";

export function makeHandler(services: Pick<Services, "store" | "queue" | "workers" | "metrics">): (event: unknown) => Promise<DeathReport[]> {
  const reaper = new DeathReaper(services);
  return async (event) => {
    try {
      let deaths;
      try {
        deaths = deathsOf(event);
      } catch (e) {
        // A retry cannot make it readable; the leases are the backstop.
        console.log(JSON.stringify({ level: "ERROR", message: "unreadable death event", error: String(e) }));
        return [];
      }
      const reports: DeathReport[] = [];
      for (const death of deaths) reports.push(await reaper.onDeath(death));
      // Only a reclaim that failed is worth the platform's retry; a lost doorbell is the sweeper's.
      const failed = reports.flatMap((r) => r.errors).filter((f) => !f.error.startsWith("doorbell:"));
      console.log(JSON.stringify({ level: "INFO", message: "death events handled", reports: reports.map(({ workerId, found, requeued, ended, untouched }) => ({ workerId, found, requeued: requeued.length, ended: ended.length, untouched: untouched.length })) }));
      if (failed.length) throw new Error(`could not reclaim ${failed.length} job(s) of a dead worker: ${failed.map((f) => `${f.jobId}: ${f.error}`).join("; ")}`);
      return reports;
    } finally {
      await services.metrics.flush();
    }
  };
}

let built: ReturnType<typeof makeHandler> | undefined;

export const handler = (event: unknown): Promise<DeathReport[]> => {
  if (!built) {
    const cfg = loadRuntime();
    built = makeHandler(buildServices(cfg, { metrics: emfMetrics(cfg.stage) }));
  }
  return built(event);
};
