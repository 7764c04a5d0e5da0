/**
 * Through the local system (emulators, Fargate-style worker processes running functions/fargate.ts,
 * a Lambda process running functions/worker.ts behind the local event source, the sweeper):
 * end-to-end throughput of trivial jobs, through the chaos harness (local/chaos.ts) with every
 * fault switched off; its checks must still pass. The time from a kill to the job running again
 * is the recovery section's (bench/recovery.ts), at the production lease and sweep interval.
 */
import { runChaos } from "../local/chaos.js";
import { fmt, summary, table } from "./lib/table.js";

export interface ThroughputRow {
  queue: string;
  jobs: number;
  seconds: number;
  jobsPerSecond: number;
  latencyMs: { median: number; p95: number; max: number };
}

export interface E2eResult {
  workers: number;
  throughput: ThroughputRow[];
  throughputViolations: number;
  notes: string[];
}

export async function runE2e(opts: { quick?: boolean } = {}): Promise<E2eResult> {
  const quiet = () => {};
  const workers = 2;
  const t = await runChaos({
    jobs: opts.quick ? 80 : 300,
    minutes: 0,
    burst: true,
    workers,
    stepMs: 0,
    faultRate: 0,
    killEveryMs: 0,
    sweeperKillEveryMs: 0,
    dropEnqueueRate: 0,
    duplicatesPerSecond: 0,
    mix: { "chaos.steps": 1, "chaos.long": 1 },
    save: false,
    log: quiet,
  });
  const throughput: ThroughputRow[] = [];
  for (const [queue, type] of [["default (Lambda)", "chaos.steps"], ["large (Fargate)", "chaos.long"]] as const) {
    const jobs = [...t.jobs.values()].filter((j) => j?.type === type && j.status === "succeeded");
    const ends = jobs.map((j) => (j as { finishedAt: number }).finishedAt);
    const seconds = (Math.max(...ends) - Math.min(...jobs.map((j) => j!.createdAt))) / 1000;
    const lat = summary(jobs.map((j) => (j as { finishedAt: number }).finishedAt - j!.createdAt));
    throughput.push({ queue, jobs: jobs.length, seconds, jobsPerSecond: jobs.length / seconds, latencyMs: { median: lat.median, p95: lat.p95, max: lat.max } });
  }

  return {
    workers,
    throughput,
    throughputViolations: t.verdict.violations.length,
    notes: [
      `throughput: every job submitted at once through the API's submit path; ${workers} Fargate processes (4 jobs each) and one Lambda process (8 concurrent invocations), all on this machine with the emulators`,
      "trivial jobs: 3–10 steps that do nothing; latency is submit → succeeded",
      "kill → running again: the recovery section (bench/recovery.ts), at the production lease and sweep interval",
    ],
  };
}

export function printE2e(r: E2eResult): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  return table(
    "End-to-end throughput of trivial jobs (local system)",
    ["queue", "jobs", "seconds", "jobs/s", "latency p50", "p95", "max"],
    r.throughput.map((x) => [x.queue, x.jobs, fmt(x.seconds), fmt(x.jobsPerSecond), s(x.latencyMs.median), s(x.latencyMs.p95), s(x.latencyMs.max)]),
    [...r.notes, `chaos checks on this run: ${r.throughputViolations} violations`],
  );
}
