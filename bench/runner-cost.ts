/**
 * The runner's own writes per job (core/runner.ts, the code every worker runs), beside the floor.
 * Real timers, compressed 100×: a 600 s job runs 6 s with a 600 ms lease and a heartbeat every
 * 200 ms, while its handler reports progress 100 times per simulated second. The counts are what
 * the same job makes at full scale, since every interval shrinks by the same factor.
 */
import { dynamoClient } from "../core/aws.js";
import { TIMINGS } from "../core/config.js";
import { noMetrics } from "../core/metrics.js";
import { JobQueue } from "../core/queue.js";
import { defineJob, Registry } from "../core/registry.js";
import { Runner } from "../core/runner.js";
import { JobStore } from "../core/store.js";
import { WorkerDirectory } from "../core/workers.js";
import { z } from "zod";
import { CapacityMeter, totalWru, writeCalls } from "./lib/capacity.js";
import { benchEnv } from "./lib/env.js";
import { fmt, table } from "./lib/table.js";
import { DURATIONS_S, REPORTS_PER_SECOND } from "./store-cost.js";

export const COMPRESSION = 100;

export interface RunnerCostRow {
  seconds: number;
  outcome: string;
  realMs: number;
  progressReports: number;
  floorWrites: number;
  writes: number;
  reads: number;
  wru: number;
  calls: Record<string, number>;
}

export interface RunnerCostResult {
  compression: number;
  leaseMs: number;
  heartbeatMs: number;
  rows: RunnerCostRow[];
  notes: string[];
}

const benchJob = defineJob<{ seconds: number }, { reports: number }>({
  name: "bench.progress",
  input: z.object({ seconds: z.number() }),
  runsOn: "fargate",
  limits: { softLimitMs: 24 * 3600_000 },
  async handler(input, ctx) {
    const realMs = (input.seconds * 1000) / COMPRESSION;
    const perTick = REPORTS_PER_SECOND / (1000 / COMPRESSION / 10); // 10 ms real ticks
    const total = input.seconds * REPORTS_PER_SECOND;
    let reports = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < realMs) {
      await new Promise((r) => setTimeout(r, 10));
      for (let i = 0; i < perTick && reports < total; i++) ctx.progress(++reports, total);
      ctx.checkpoint({ reports });
    }
    while (reports < total) ctx.progress(++reports, total);
    return { reports };
  },
});

export async function runRunnerCost(): Promise<RunnerCostResult> {
  const env = await benchEnv("bench-runner");
  const leaseMs = TIMINGS.leaseMs / COMPRESSION;
  const heartbeatMs = Math.floor(leaseMs / 3);
  try {
    const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    const meter = new CapacityMeter(doc, { doc: env.doc, table: env.emu.tableName });
    const store = new JobStore(doc, { tableName: env.emu.tableName });
    const registry = new Registry().register(benchJob);
    const queue = new JobQueue(env.sqs, env.emu.queues);
    // Presence writes are per worker, not per job: they go through an uncounted client.
    const workers = new WorkerDirectory(env.doc, env.emu.tableName);
    const quiet = { info() {}, warn() {}, error() {} };
    const runner = new Runner({ store, queue, registry, metrics: noMetrics, workers, now: Date.now }, { workerId: "bench-runner", kind: "fargate", leaseMs, heartbeatMs, log: quiet });
    const rows: RunnerCostRow[] = [];
    for (const seconds of DURATIONS_S) {
      const { job } = await new JobStore(env.doc, { tableName: env.emu.tableName }).create({
        owner: "bench", type: benchJob.name, queue: "large", input: { seconds }, maxAttempts: 3, timeoutMs: TIMINGS.defaultTimeoutMs,
      });
      meter.reset();
      const t0 = Date.now();
      const out = await runner.run(job.id, "large");
      const realMs = Date.now() - t0;
      const t = meter.reset();
      const writes = writeCalls(t);
      rows.push({
        seconds,
        outcome: out.claimed ? out.outcome : `not claimed: ${out.reason}`,
        realMs,
        progressReports: seconds * REPORTS_PER_SECOND,
        floorWrites: 2 + Math.ceil((seconds * 1000) / (heartbeatMs * COMPRESSION)) - 1,
        writes,
        reads: Object.entries(t.calls).reduce((n, [k, c]) => n + (k.startsWith("Get") || k.startsWith("Query") ? c : 0), 0),
        wru: totalWru(t),
        calls: t.calls,
      });
    }
    doc.destroy();
    return {
      compression: COMPRESSION,
      leaseMs,
      heartbeatMs,
      rows,
      notes: [
        "the runner's writes: claim + heartbeats + the final write (the create is the API's, so the floor here is claim + finish + one per interval)",
        "heartbeats ride on real timers, so a slow emulator response can shift one by a tick: ±1 write is timing, not coalescing",
        "worker presence (/admin/workers) writes are per worker, at most every 10 s, and not counted here",
      ],
    };
  } finally {
    await env.close();
  }
}

export function printRunnerCost(r: RunnerCostResult): string {
  return table(
    `Runner writes per job (core/runner.ts, time compressed ${r.compression}×: lease ${r.leaseMs} ms, heartbeat ${r.heartbeatMs} ms)`,
    ["job", "outcome", "progress reports", "floor writes", "runner writes", "reads", "WRU (table + index)", "real ms"],
    r.rows.map((x) => [`${x.seconds} s`, x.outcome, fmt(x.progressReports), x.floorWrites, x.writes, x.reads, fmt(x.wru), fmt(x.realMs)]),
    r.notes,
  );
}
