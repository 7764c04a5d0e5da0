/**
 * What one job costs the store: DynamoDB calls, write and read units, and SQS requests per job
 * lifecycle, for jobs of 10 s, 60 s and 600 s whose handler reports progress 100 times a second,
 * beside the floor (create + claim + finish, plus one heartbeat per interval). Time is simulated:
 * a manual clock drives the ReportBuffer 100×/s and a heartbeat every lease/3, exactly what
 * LeaseKeeper does on its timer, so a 600 s job takes a second.
 */
import { countCalls } from "../core/aws.js";
import { FARGATE_WORKER, LAMBDA_WORKER, TIMINGS } from "../core/config.js";
import { ReportBuffer } from "../core/coalescer.js";
import { JobQueue } from "../core/queue.js";
import { JobStore } from "../core/store.js";
import { dynamoClient } from "../core/aws.js";
import { CapacityMeter, emptyTotals, totalWru, writeCalls, type CapacityTotals } from "./lib/capacity.js";
import { benchEnv, manualClock } from "./lib/env.js";
import { fmt, table, usd } from "./lib/table.js";
import { PRICES, PRICES_CHECKED } from "./prices.js";

export const DURATIONS_S = [10, 60, 600] as const;
export const REPORTS_PER_SECOND = 100;
export const CHECKPOINTS_PER_SECOND = 1;

export interface Phase {
  name: "submit" | "claim" | "run" | "finish";
  dynamo: CapacityTotals;
  sqs: Record<string, number>;
}

export interface LifecycleCost {
  seconds: number;
  runsOn: "lambda" | "fargate";
  heartbeatIntervalMs: number;
  heartbeats: number;
  progressReports: number;
  checkpoints: number;
  floorWrites: number;
  writes: number;
  reads: number;
  calls: number;
  tableWru: number;
  gsiWru: number;
  gsiWruByIndex: Record<string, number>;
  wru: number;
  rru: number;
  sqsRequests: number;
  /** Writes if every progress report went to the table (a design that starved the database's write lock with progress writes). */
  uncoalescedWrites: number;
  uncoalescedWru: number;
  phases: Phase[];
  usdPerMillion: { dynamo: number; sqs: number; compute: number; total: number; dynamoUncoalesced: number };
}

export interface StoreCostResult {
  leaseMs: number;
  pricesChecked: string;
  prices: Record<string, { unit: string; source: string }>;
  jobs: LifecycleCost[];
  notes: string[];
}

export async function runStoreCost(): Promise<StoreCostResult> {
  const env = await benchEnv("bench-cost");
  try {
    const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    const meter = new CapacityMeter(doc, { doc: env.doc, table: env.emu.tableName });
    const sqsCalls = countCalls(env.sqs);
    const clock = manualClock();
    const store = new JobStore(doc, { tableName: env.emu.tableName, now: clock.now });
    const queue = new JobQueue(env.sqs, env.emu.queues);
    const jobs: LifecycleCost[] = [];
    for (const seconds of DURATIONS_S) {
      jobs.push(await oneJob(seconds, { store, queue, meter, sqsCalls, clock }));
    }
    doc.destroy();
    return {
      leaseMs: TIMINGS.leaseMs,
      pricesChecked: PRICES_CHECKED,
      prices: Object.fromEntries(Object.entries(PRICES).map(([k, p]) => [k, { unit: p.unit, source: p.source }])),
      jobs,
      notes: [
        "table WRU/RRU: reported by dynalite (ReturnConsumedCapacity=TOTAL); index WRU: computed from core/schema.ts's index definitions (dynalite reports none)",
        "each heartbeat moves dueAt, the sort key of the sparse `due` index, so it costs 1 table WRU + 2 index WRU (delete + put)",
        `progress ${REPORTS_PER_SECOND}×/s and a checkpoint ${CHECKPOINTS_PER_SECOND}×/s of simulated time, coalesced by ReportBuffer; heartbeat every lease/3`,
        "SQS: send (API), receive and delete (worker); Lambda's event source does the receive/delete for Lambda jobs and bills them the same",
        `compute: Lambda ${LAMBDA_WORKER.memoryMb} MB for jobs within its ${LAMBDA_WORKER.timeoutSeconds} s timeout, else a Fargate task (${FARGATE_WORKER.cpu / 1024} vCPU, ${FARGATE_WORKER.memoryMb / 1024} GB) shared by ${FARGATE_WORKER.concurrency} jobs`,
        "excluded: storage, the sweeper's fixed cost (see sweep), worker presence writes (per worker, not per job), API Gateway, CloudWatch",
      ],
    };
  } finally {
    await env.close();
  }
}

interface Deps {
  store: JobStore;
  queue: JobQueue;
  meter: CapacityMeter;
  sqsCalls: Map<string, number>;
  clock: ReturnType<typeof manualClock>;
}

async function oneJob(seconds: number, d: Deps): Promise<LifecycleCost> {
  const runsOn = seconds * 1000 < LAMBDA_WORKER.timeoutSeconds * 1000 - LAMBDA_WORKER.deadlineMarginMs ? "lambda" : "fargate";
  const queueName = runsOn === "lambda" ? "default" : "large";
  const intervalMs = Math.max(50, Math.floor(TIMINGS.leaseMs / 3)); // LeaseKeeper's default
  const phases: Phase[] = [];
  const phase = (name: Phase["name"]) => {
    phases.push({ name, dynamo: d.meter.reset(), sqs: Object.fromEntries(d.sqsCalls) });
    d.sqsCalls.clear();
  };
  d.meter.reset();
  d.sqsCalls.clear();

  const { job } = await d.store.create({
    owner: "bench",
    type: "bench.sleep",
    queue: queueName,
    input: { seconds },
    maxAttempts: 3,
    timeoutMs: TIMINGS.defaultTimeoutMs,
  });
  await d.queue.send(queueName, [job.id]);
  phase("submit");

  const [msg] = await d.queue.receive(queueName, { waitSeconds: 1, max: 1 });
  if (!msg || msg.jobId !== job.id) throw new Error("bench: the job's message did not arrive");
  const claim = await d.store.claim(job.id, "bench-worker", TIMINGS.leaseMs);
  if (!claim.ok) throw new Error(`bench: claim refused: ${claim.reason}`);
  await d.queue.delete(queueName, msg.receiptHandle);
  phase("claim");

  const lease = claim.lease;
  const buffer = new ReportBuffer();
  const tickMs = 1000 / REPORTS_PER_SECOND;
  const ticks = seconds * REPORTS_PER_SECOND;
  let heartbeats = 0;
  let checkpoints = 0;
  let nextBeat = intervalMs;
  for (let i = 1; i <= ticks; i++) {
    d.clock.advance(tickMs);
    const elapsed = i * tickMs;
    buffer.progress(i, ticks, "working");
    if (elapsed % (1000 / CHECKPOINTS_PER_SECOND) === 0) {
      buffer.checkpoint({ offset: i });
      checkpoints++;
    }
    // The job ends at `seconds`; a beat due at that same instant would race the final write, which carries it instead.
    if (elapsed >= nextBeat && i < ticks) {
      await d.store.heartbeat(lease, buffer.take());
      heartbeats++;
      nextBeat += intervalMs;
    }
  }
  phase("run");

  await d.store.succeed(lease, { ok: true, seconds }, buffer.all());
  phase("finish");

  const all = phases.reduce((acc, p) => add(acc, p.dynamo), emptyTotals());
  const sqsRequests = phases.reduce((n, p) => n + Object.values(p.sqs).reduce((a, b) => a + b, 0), 0);
  const run = phases.find((p) => p.name === "run")!.dynamo;
  const wruPerBeat = heartbeats ? totalWru(run) / heartbeats : 3;
  const writes = writeCalls(all);
  const reads = Object.entries(all.calls).filter(([k]) => !isWrite(k)).reduce((n, [, c]) => n + c, 0);
  const uncoalescedWrites = writes - heartbeats + ticks;
  const uncoalescedWru = totalWru(all) - totalWru(run) + ticks * wruPerBeat;
  const dynamo = totalWru(all) * PRICES.dynamoWriteRequestUnit.usd + all.rru * PRICES.dynamoReadRequestUnit.usd;
  const sqs = sqsRequests * PRICES.sqsRequest.usd;
  const compute = computeUsd(seconds, runsOn);
  const M = 1e6;
  return {
    seconds,
    runsOn,
    heartbeatIntervalMs: intervalMs,
    heartbeats,
    progressReports: ticks,
    checkpoints,
    floorWrites: 3 + Math.ceil((seconds * 1000) / intervalMs) - 1,
    writes,
    reads,
    calls: writes + reads,
    tableWru: all.tableWru + all.failedWriteWru,
    gsiWru: all.gsiWru,
    gsiWruByIndex: all.gsiWruByIndex,
    wru: totalWru(all),
    rru: all.rru,
    sqsRequests,
    uncoalescedWrites,
    uncoalescedWru,
    phases,
    usdPerMillion: {
      dynamo: dynamo * M,
      sqs: sqs * M,
      compute: compute * M,
      total: (dynamo + sqs + compute) * M,
      dynamoUncoalesced: (uncoalescedWru * PRICES.dynamoWriteRequestUnit.usd + all.rru * PRICES.dynamoReadRequestUnit.usd) * M,
    },
  };
}

const shortName = (k: string): string => k.replace(/(Item)?Command$/, "");

const isWrite = (name: string) => ["PutItemCommand", "UpdateItemCommand", "DeleteItemCommand", "BatchWriteItemCommand"].includes(name);

function add(a: CapacityTotals, b: CapacityTotals): CapacityTotals {
  const calls = { ...a.calls };
  for (const [k, n] of Object.entries(b.calls)) calls[k] = (calls[k] ?? 0) + n;
  const byIndex = { ...a.gsiWruByIndex };
  for (const [k, n] of Object.entries(b.gsiWruByIndex)) byIndex[k] = (byIndex[k] ?? 0) + n;
  return {
    calls,
    tableWru: a.tableWru + b.tableWru,
    failedWriteWru: a.failedWriteWru + b.failedWriteWru,
    gsiWru: a.gsiWru + b.gsiWru,
    gsiWruByIndex: byIndex,
    rru: a.rru + b.rru,
    conditionFailures: a.conditionFailures + b.conditionFailures,
  };
}

/** Compute for one job: Lambda GB-s plus its invocation, or a quarter of a Fargate task's time. */
export function computeUsd(seconds: number, runsOn: "lambda" | "fargate"): number {
  if (runsOn === "lambda") {
    // One invocation per batch of up to batchSize messages; a single job pays a whole request at worst.
    return seconds * (LAMBDA_WORKER.memoryMb / 1024) * PRICES.lambdaGbSecond.usd + PRICES.lambdaRequest.usd;
  }
  const perTaskSecond = ((FARGATE_WORKER.cpu / 1024) * PRICES.fargateVcpuHour.usd + (FARGATE_WORKER.memoryMb / 1024) * PRICES.fargateGbHour.usd) / 3600;
  return (seconds * perTaskSecond) / FARGATE_WORKER.concurrency;
}

export function printStoreCost(r: StoreCostResult): string {
  const rows = r.jobs.map((j) => [
    `${j.seconds} s (${j.runsOn})`,
    fmt(j.progressReports),
    j.heartbeats,
    j.floorWrites,
    j.writes,
    j.reads,
    fmt(j.tableWru),
    fmt(j.gsiWru),
    fmt(j.wru),
    fmt(j.rru),
    j.sqsRequests,
    fmt(j.uncoalescedWrites),
  ]);
  const cost = r.jobs.map((j) => [
    `${j.seconds} s (${j.runsOn})`,
    usd(j.usdPerMillion.dynamo),
    usd(j.usdPerMillion.sqs),
    usd(j.usdPerMillion.compute),
    usd(j.usdPerMillion.total),
    usd(j.usdPerMillion.dynamoUncoalesced),
  ]);
  const phases = r.jobs.map((j) => [
    `${j.seconds} s`,
    ...(["submit", "claim", "run", "finish"] as const).map((name) => {
      const p = j.phases.find((x) => x.name === name)!;
      const calls = Object.entries(p.dynamo.calls).map(([k, n]) => `${n} ${shortName(k)}`).join(", ");
      return `${calls || "–"} · ${fmt(totalWru(p.dynamo))} WRU`;
    }),
  ]);
  return [
    table(
      `Store cost per job lifecycle (lease ${r.leaseMs / 1000} s, heartbeat every ${r.jobs[0]?.heartbeatIntervalMs! / 1000} s)`,
      ["job", "progress reports", "heartbeats", "floor writes", "writes", "reads", "table WRU", "index WRU", "total WRU", "RRU", "SQS req", "uncoalesced writes"],
      rows,
      ["floor = create + claim + finish + one heartbeat per interval that elapses before the job ends", ...r.notes],
    ),
    table("DynamoDB calls by lifecycle phase", ["job", "submit", "claim", "run", "finish"], phases),
    table(
      "Estimated AWS cost per million jobs (on-demand, us-east-1)",
      ["job", "DynamoDB", "SQS", "compute", "total", "DynamoDB if uncoalesced"],
      cost,
      [...Object.values(r.prices).map((p) => `${p.unit} — ${p.source}`), `prices: ${r.pricesChecked}`],
    ),
  ].join("\n");
}
