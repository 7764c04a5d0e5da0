/**
 * How close a rate limit's pace comes to the limit: `jobs` trivial jobs on one key limited to
 * `starts` per second, submitted at once and run through ten Fargate-style pollers of four slots
 * each on dynalite and fauxqs, in real time (a held job's wake is a delayed SQS message, and SQS
 * delays in whole seconds, so the clock cannot be compressed). The figures come from each job's
 * record (its attempt's start, as its claim wrote it, the time the rate log counted), beside the
 * anchor, the limit itself:
 *
 * - the pace: starts per second from the first start to the last;
 * - the busiest and the quietest one-second window (sliding, from each start), and how many of the
 *   whole seconds from the first start reached the limit;
 *
 * The test (test/limits-load.test.ts) holds the ceiling; this measures the pace under it.
 */
import { z } from "zod";
import { laneOf, TIMINGS } from "../core/config.js";
import type { Job } from "../core/job.js";
import { noMetrics } from "../core/metrics.js";
import { defineJob, Registry } from "../core/registry.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { startFargateWorker, type FargateWorker } from "../functions/fargate.js";
import { benchEnv } from "./lib/env.js";
import { waitFor } from "./lib/wait.js";
import { fmt, table } from "./lib/table.js";

export const WORKERS = 10;
export const SLOTS = 4;
export const LIMIT = { starts: 10, perMs: 1_000 } as const;

export interface RatePaceResult {
  jobs: number;
  workers: number;
  slots: number;
  limit: { starts: number; perMs: number };
  /** Starts per second from the first start to the last. */
  pace: number;
  busiest: number;
  quietest: number;
  /** Whole seconds from the first start (the last, partial one left out), and those that reached the limit. */
  seconds: number;
  fullSeconds: number;
  /** Every job ended after one attempt: a hold spends none. */
  oneAttemptEach: boolean;
  notes: string[];
}

export async function runRatePace(o: { jobs?: number } = {}): Promise<RatePaceResult> {
  const jobs = o.jobs ?? 200;
  const env = await benchEnv("bench-pace");
  const workers: FargateWorker[] = [];
  try {
    const work = defineJob({ name: "bench.pace", input: z.object({}), runsOn: "lambda", handler: async () => ({ ok: true }) });
    const s = buildServices(loadRuntime(env.emu.env), { doc: env.doc, sqs: env.sqs, metrics: noMetrics, registry: new Registry().register(work) });
    const key = "bench-pace";
    await s.store.controls.setLimit(`key:${key}`, { rate: LIMIT }, "bench", Date.now());
    const ids: string[] = [];
    for (let i = 0; i < jobs; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(25, jobs - i) }, async () => (await s.store.create({ owner: "bench", type: "bench.pace", queue: "default", input: {}, maxAttempts: 3, timeoutMs: TIMINGS.defaultTimeoutMs, concurrencyKey: key })).job),
      );
      await s.queue.send(laneOf({ queue: "default" }), batch.map((j) => j.id));
      ids.push(...batch.map((j) => j.id));
    }
    const quiet = { info() {}, warn() {}, error() {} };
    for (let i = 0; i < WORKERS; i++) workers.push(startFargateWorker(s, { workerId: `pace-${i}`, queue: "default", concurrency: SLOTS, pollWaitSeconds: 1, log: quiet }));
    const done = await waitFor(`${jobs} rate-limited jobs to succeed`, jobs * 1_000, async () => {
      const records = await s.store.recordsOf(ids);
      return records.length === ids.length && records.every((j) => j.status === "succeeded") ? records : undefined;
    });
    return { jobs, workers: WORKERS, slots: SLOTS, limit: { ...LIMIT }, ...paceOf(done), notes: NOTES };
  } finally {
    await Promise.all(workers.map((w) => w.stop({ force: true })));
    await env.close();
  }
}

const NOTES = [
  "in real time on dynalite and fauxqs on this machine: a refused claim holds its job until the window frees (spread after the other refused jobs' wakes), and rings for it with a delayed message, which SQS delays in whole seconds",
];

function paceOf(done: Job[]): Omit<RatePaceResult, "jobs" | "workers" | "slots" | "limit" | "notes"> {
  const starts = done.map((j) => j.history[0]!.startedAt).sort((a, b) => a - b);
  const first = starts[0]!;
  const span = starts.at(-1)! - first;
  const inWindow = (from: number) => starts.filter((t) => t >= from && t < from + LIMIT.perMs).length;
  const windows = starts.filter((t) => t + LIMIT.perMs <= starts.at(-1)!).map(inWindow);
  const seconds = Math.floor(span / LIMIT.perMs);
  const whole = Array.from({ length: seconds }, (_, i) => inWindow(first + i * LIMIT.perMs));
  return {
    pace: span > 0 ? ((starts.length - 1) * 1_000) / span : NaN,
    busiest: Math.max(...starts.map(inWindow)),
    quietest: windows.length ? Math.min(...windows) : NaN,
    seconds,
    fullSeconds: whole.filter((n) => n >= LIMIT.starts).length,
    oneAttemptEach: done.every((j) => j.attempts === 1),
  };
}

/** The figures beside the limit, as the terminal's table and docs/reliability.md both show them. */
export function paceRows(r: RatePaceResult): [string, string | number, string | number][] {
  const lim = r.limit.starts;
  return [
    ["pace, starts per second (first start to last)", fmt(r.pace, 2), lim],
    ["busiest one-second window", r.busiest, lim],
    ["quietest one-second window", r.quietest, lim],
    ["whole seconds at the limit", `${r.fullSeconds} of ${r.seconds}`, `${r.seconds} of ${r.seconds}`],
    ["every job one attempt", r.oneAttemptEach ? "yes" : "NO", "yes"],
  ];
}

export function printRatePace(r: RatePaceResult): string {
  return table(`A rate limit of ${r.limit.starts} per ${r.limit.perMs / 1000} s: ${r.jobs} jobs on its key, ${r.workers} pollers × ${r.slots} slots`, ["", "measured", "anchor (the limit)"], paceRows(r), r.notes);
}
