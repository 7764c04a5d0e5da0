/**
 * What a sweep costs as the table fills with finished jobs: items read and time at 0, 2,000,
 * 20,000 (and, opt-in, 200,000) finished jobs, with 10 overdue jobs each time. Finished jobs are
 * not in the sparse `due` index, so the sweep's reads should follow the 10, not the table.
 */
import { BatchWriteCommand, ScanCommand } from "@aws-sdk/lib-dynamodb";
import { ulid } from "ulid";
import { dynamoClient } from "../core/aws.js";
import { TIMINGS } from "../core/config.js";
import { noMetrics } from "../core/metrics.js";
import { JobQueue } from "../core/queue.js";
import { JobStore } from "../core/store.js";
import { Sweeper } from "../core/sweeper.js";
import { CapacityMeter } from "./lib/capacity.js";
import { benchEnv, hr, manualClock, since, type BenchEnv } from "./lib/env.js";
import { fmt, summary, table } from "./lib/table.js";

export const OVERDUE = 10;
export const SIZES = [0, 2_000, 20_000] as const;
export const BIG_SIZE = 200_000;

export interface SweepPoint {
  finished: number;
  overdue: number;
  /** Overdue jobs the sweep acted on (their messages sent again). */
  found: number;
  itemsRead: number;
  rru: number;
  queries: number;
  ms: { median: number; p95: number; max: number };
  repeats: number;
  loadSeconds: number;
  /** The anchor: what a Scan-based reclaimer (the design Warden replaces) reads and takes for the same answer. */
  scan: { itemsRead: number; found: number; ms: number };
}

export interface SweepResult {
  method: string;
  points: SweepPoint[];
  bigSkipped: boolean;
  notes: string[];
}

export async function runSweep(opts: { big?: boolean; repeats?: number } = {}): Promise<SweepResult> {
  const sizes: number[] = [...SIZES, ...(opts.big ? [BIG_SIZE] : [])];
  const env = await benchEnv("bench-sweep");
  try {
    const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    const meter = new CapacityMeter(doc);
    // Each repetition moves the clock past the start deadline, so the same 10 jobs are overdue again.
    const clock = manualClock();
    const store = new JobStore(doc, { tableName: env.emu.tableName, now: clock.now });
    const sweeper = new Sweeper({ store, doc, cfg: { tableName: env.emu.tableName }, queue: new JobQueue(env.sqs, env.emu.queues), metrics: noMetrics, now: clock.now });
    for (let i = 0; i < OVERDUE; i++) {
      await store.create({ owner: "bench", type: "bench.sweep", queue: i % 2 ? "large" : "default", input: {}, maxAttempts: 3, timeoutMs: TIMINGS.defaultTimeoutMs });
    }
    const sweepOnce = async () => {
      clock.advance(TIMINGS.startDeadlineMs + 1_000);
      meter.reset();
      const t1 = hr();
      const report = await sweeper.sweep();
      return { ms: since(t1), found: report.counts.resent, itemsRead: report.read, rru: meter.totals.rru, queries: meter.totals.calls.QueryCommand ?? 0 };
    };
    const points: SweepPoint[] = [];
    let loaded = 0;
    for (const size of sizes) {
      const t = hr();
      await loadFinished(env, size - loaded);
      const loadSeconds = since(t) / 1000;
      loaded = size;
      const times: number[] = [];
      let last = { found: 0, itemsRead: 0, rru: 0, queries: 0 };
      const repeats = opts.repeats ?? 15;
      for (let w = 0; w < 3; w++) await sweepOnce(); // warm the connections and the JIT
      for (let r = 0; r < repeats; r++) {
        const one = await sweepOnce();
        times.push(one.ms);
        last = { found: one.found, itemsRead: one.itemsRead, rru: one.rru, queries: one.queries };
      }
      const s = summary(times);
      const scan = await scanSweep(env, clock.now() + TIMINGS.startDeadlineMs + 1_000);
      points.push({ finished: size, overdue: OVERDUE, ...last, ms: { median: s.median, p95: s.p95, max: s.max }, repeats, loadSeconds, scan });
    }
    doc.destroy();
    return {
      method: "Sweeper.sweep() (core/sweeper.ts): one Query per due-index partition and one per wait-index partition (the oldest unclaimed job of each queue), then a conditional write and a message per overdue job",
      points,
      bigSkipped: !opts.big,
      notes: [
        "finished jobs are written with BatchWrite as the store leaves them: no dueShard/dueAt, so outside the sparse index",
        `time is the median of repeated sweeps against dynalite on this machine; loading took ${points.map((p) => `${fmt(p.loadSeconds)} s`).join(", ")}`,
      ],
    };
  } finally {
    await env.close();
  }
}

/** The naive sweep: Scan the table for live jobs past their deadline. Only here, as the anchor. */
async function scanSweep(env: BenchEnv, now: number): Promise<SweepPoint["scan"]> {
  const t = hr();
  let itemsRead = 0;
  let found = 0;
  let start: Record<string, unknown> | undefined;
  do {
    const out = await env.doc.send(
      new ScanCommand({
        TableName: env.emu.tableName,
        FilterExpression: "#s IN (:q, :r) AND #d <= :now",
        ExpressionAttributeNames: { "#s": "status", "#d": "dueAt" },
        ExpressionAttributeValues: { ":q": "queued", ":r": "running", ":now": now },
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    itemsRead += out.ScannedCount ?? 0;
    found += out.Count ?? 0;
    start = out.LastEvaluatedKey;
  } while (start);
  return { itemsRead, found, ms: since(t) };
}

/** Finished jobs as the store leaves them (no due-index attributes), 25 per BatchWrite, a few in flight. */
async function loadFinished(env: BenchEnv, count: number): Promise<void> {
  const t0 = Date.now() - 24 * 3600_000;
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const start = next;
      next = Math.min(count, next + 25);
      let items: Record<string, unknown>[] = Array.from({ length: next - start }, (_, k) => finishedItem(t0 + start + k));
      for (let round = 0; items.length && round < 10; round++) {
        const out = await env.doc.send(
          new BatchWriteCommand({ RequestItems: { [env.emu.tableName]: items.map((Item) => ({ PutRequest: { Item } })) } }),
        );
        items = (out.UnprocessedItems?.[env.emu.tableName] ?? []).map((r) => r.PutRequest!.Item as Record<string, unknown>);
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

function finishedItem(at: number): Record<string, unknown> {
  const id = ulid(at);
  return {
    id,
    owner: `owner-${at % 50}`,
    type: "bench.done",
    queue: "default",
    status: "succeeded",
    input: { n: at % 1000 },
    result: { ok: true },
    createdAt: at,
    updatedAt: at + 1000,
    finishedAt: at + 1000,
    firstStartedAt: at + 10,
    attempts: 1,
    maxAttempts: 3,
    timeoutMs: TIMINGS.defaultTimeoutMs,
    token: 1,
    history: [{ attempt: 1, worker: "w", startedAt: at + 10, endedAt: at + 1000, outcome: "succeeded" }],
    expiresAt: Math.floor(at / 1000) + TIMINGS.retentionDays * 86400,
    createdKey: `${new Date(at).toISOString()}#${id}`,
  };
}

export function printSweep(r: SweepResult): string {
  const base = r.points[0];
  return table(
    `Sweep cost vs table size (${OVERDUE} overdue jobs) — ${r.method}`,
    ["finished jobs", "overdue acted on", "items read", "vs empty", "queries", "RRU", "time p50 ms", "p95 ms", "anchor: Scan reads", "Scan ms"],
    r.points.map((p) => [
      fmt(p.finished),
      p.found,
      p.itemsRead,
      base && base.itemsRead ? `${fmt(((p.itemsRead - base.itemsRead) / base.itemsRead) * 100, 0)} %` : "–",
      p.queries,
      fmt(p.rru),
      fmt(p.ms.median),
      fmt(p.ms.p95),
      fmt(p.scan.itemsRead),
      fmt(p.scan.ms, 0),
    ]),
    [
      ...r.notes,
      "anchor: a Scan for live overdue jobs (what a table-scanning reclaimer reads for the same answer); never on Warden's path",
      ...(r.bigSkipped ? [`${fmt(BIG_SIZE)} finished jobs skipped (--quick); loading them into dynalite takes about a minute`] : []),
    ],
  );
}
