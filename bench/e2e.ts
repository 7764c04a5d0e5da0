/**
 * Through the local system (emulators, Fargate-style worker processes running functions/fargate.ts,
 * a Lambda process running functions/worker.ts behind the local event source, the sweeper):
 * end-to-end throughput of trivial jobs, and the time from a SIGKILL of the worker holding a job
 * to that job running again, over at least 50 kills. Both reuse the chaos harness (local/chaos.ts)
 * with every fault but the kills switched off, and its checks must still pass.
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
  kills: {
    count: number;
    samples: number;
    median: number;
    p95: number;
    max: number;
    leaseSeconds: number;
    sweepSeconds: number;
    violations: number;
    /** Sorted samples (ms), for the report's plot. */
    samplesMs: number[];
  };
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

  const leaseSeconds = 3;
  const k = await runChaos({
    jobs: opts.quick ? 50 : 150,
    minutes: opts.quick ? 1 : 2.5,
    workers: 4,
    leaseSeconds,
    stepMs: 200,
    faultRate: 0,
    killEveryMs: 2_000,
    restart: "immediate",
    lambdaKillShare: 0,
    sigkillShare: 1,
    sweeperKillEveryMs: 0,
    dropEnqueueRate: 0,
    duplicatesPerSecond: 0,
    mix: { "chaos.long": 1 },
    save: false,
    log: quiet,
  });
  const d = k.verdict.deathToRunning.SIGKILL;
  return {
    workers,
    throughput,
    throughputViolations: t.verdict.violations.length,
    kills: {
      count: Object.values(k.verdict.kills).reduce((a, b) => a + b, 0),
      samples: d.n,
      median: d.median,
      p95: d.p95,
      max: d.max,
      leaseSeconds,
      sweepSeconds: 1,
      violations: k.verdict.violations.length,
      samplesMs: d.samples,
    },
    notes: [
      `throughput: every job submitted at once through the API's submit path; ${workers} Fargate processes (4 jobs each) and one Lambda process (8 concurrent invocations), all on this machine with the emulators`,
      "trivial jobs: 3–10 steps that do nothing; latency is submit → succeeded",
      `kills: SIGKILL of a random Fargate worker (4 processes, each restarted 0.3 s after it dies) every ~2 s while they run 8–25-step jobs; a sample is one job the killed process held, timed from the kill to its next accepted claim by any worker`,
      `death → running again = what is left of the lease (${leaseSeconds} s here, 60 s by default) + up to one sweep interval (1 s here, 10 s by default) + message delivery and claim`,
    ],
  };
}

export function printE2e(r: E2eResult): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  return [
    table(
      "End-to-end throughput of trivial jobs (local system)",
      ["queue", "jobs", "seconds", "jobs/s", "latency p50", "p95", "max"],
      r.throughput.map((x) => [x.queue, x.jobs, fmt(x.seconds), fmt(x.jobsPerSecond), s(x.latencyMs.median), s(x.latencyMs.p95), s(x.latencyMs.max)]),
      [`chaos checks on this run: ${r.throughputViolations} violations`],
    ),
    table(
      `SIGKILL → the job running again (lease ${r.kills.leaseSeconds} s, sweep every ${r.kills.sweepSeconds} s)`,
      ["kills", "jobs interrupted", "median", "p95", "max"],
      [[r.kills.count, r.kills.samples, s(r.kills.median), s(r.kills.p95), s(r.kills.max)]],
      [...r.notes, `chaos checks on this run: ${r.kills.violations} violations`],
    ),
  ].join("\n");
}
