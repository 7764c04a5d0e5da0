/**
 * What one job costs the store, over a matrix: inputs of 0.1, 10, 50 and 150 KB × checkpoints of
 * none, 16 and 64 KB (a checkpoint of that size that changes once a second) × jobs of 10 s, 60 s
 * and 600 s whose handler reports progress 100 times a second. For each cell: DynamoDB write
 * units (table, each index), read units, heartbeats and the write units of each heartbeat, SQS
 * requests and the cost per million jobs, beside the floor: one write per value (input, result,
 * each changed checkpoint written), each rounded up to whole KB, plus the least create, claim and
 * finish can cost by the index definitions, plus 3 units per heartbeat.
 *
 * Time is simulated: a manual clock drives the ReportBuffer 100×/s and a heartbeat every lease/3,
 * exactly what LeaseKeeper does on its timer, so a 600 s job takes about a second. The store is
 * driven only through its public methods (create, claim, heartbeat, succeed).
 */
import type { GlobalSecondaryIndex } from "@aws-sdk/client-dynamodb";
import { countCalls, dynamoClient } from "../core/aws.js";
import { FARGATE_WORKER, LAMBDA_WORKER, LIMITS, TIMINGS, laneOf } from "../core/config.js";
import { ReportBuffer } from "../core/coalescer.js";
import { JobQueue } from "../core/queue.js";
import { tableDefinition } from "../core/schema.js";
import { JobStore } from "../core/store.js";
import { CapacityMeter, emptyTotals, totalWru, type CapacityTotals } from "./lib/capacity.js";
import { benchEnv, manualClock } from "./lib/env.js";
import { fmt, table, usd } from "./lib/table.js";
import { PRICES, PRICES_CHECKED } from "./prices.js";

export const DURATIONS_S = [10, 60, 600] as const;
/** Input sizes, KB of JSON (1 KB = 1024 bytes). */
export const INPUT_KB = [0.1, 10, 50, 150] as const;
/** Checkpoint sizes, KB of JSON; 0: the handler makes none. */
export const CHECKPOINT_KB = [0, 16, 64] as const;
export const REPORTS_PER_SECOND = 100;
export const CHECKPOINTS_PER_SECOND = 1;
/** The cell the payload summary reads: the longest job. */
export const SUMMARY_SECONDS = 600;

export interface Phase {
  name: "submit" | "claim" | "run" | "finish";
  dynamo: CapacityTotals;
  sqs: Record<string, number>;
}

/** The least a cell can cost, in write units, and what it is made of. */
export interface Floor {
  /** One write per value: input, result, and each checkpoint written, each in whole KB (at least 1). */
  values: number;
  create: number;
  claim: number;
  finish: number;
  /** Heartbeats that must happen (intervals that end before the job does) × the least a heartbeat costs. */
  heartbeats: number;
  total: number;
}

export interface CellCost {
  seconds: number;
  inputKb: number;
  checkpointKb: number;
  /** JSON bytes of the input and of each checkpoint (0: none). */
  inputBytes: number;
  checkpointBytes: number;
  runsOn: "lambda" | "fargate";
  heartbeatIntervalMs: number;
  heartbeats: number;
  progressReports: number;
  /** Checkpoints the handler made (one per simulated second). */
  checkpoints: number;
  /** Checkpoints the store was handed changed: on heartbeats, plus the final write's if it changed. */
  checkpointWrites: number;
  floor: Floor;
  writes: number;
  reads: number;
  calls: number;
  tableWru: number;
  gsiWru: number;
  gsiWruByIndex: Record<string, number>;
  wru: number;
  rru: number;
  sqsRequests: number;
  /** Each heartbeat metered on its own, over the run phase. */
  wruPerHeartbeat: {
    max: number;
    mean: number;
    /** A heartbeat's units besides its value items (metered by key): what the record and its index entries cost it. */
    maxBeyondCheckpoint: number;
  };
  phases: Phase[];
  usdPerMillion: { dynamo: number; sqs: number; compute: number; total: number };
}

/** The payload effect, read off the SUMMARY_SECONDS cells, each figure beside its bound. */
export interface PayloadEffect {
  seconds: number;
  /** total WRU with the largest input and no checkpoint, vs 1.1 × the smallest input's + the large input's KB. */
  largeInput: { inputKb: number; total: number; smallTotal: number; bound: number };
  /** Per input: what the largest checkpoint adds per heartbeat interval, vs its size in KB. */
  checkpoint: { checkpointKb: number; intervals: number; bound: number; byInput: { inputKb: number; wruPerInterval: number }[] };
  /** Across all cells: the most one heartbeat cost, and the most its record and index entries took (value items aside), vs 3. */
  heartbeat: { max: number; maxCell: string; maxBeyondCheckpoint: number; maxBeyondCell: string; bound: number };
}

export interface StoreCostResult {
  leaseMs: number;
  heartbeatIntervalMs: number;
  pricesChecked: string;
  prices: Record<string, { unit: string; source: string }>;
  /** The table's indexes, by name, as core/schema.ts defines them. */
  indexes: string[];
  /** The least each record write costs by the index definitions (see recordWriteFloor). */
  floorUnits: Record<RecordWrite, number>;
  cells: CellCost[];
  payload: PayloadEffect;
  notes: string[];
}

// ─── the floor, from the index definitions alone ──────────────────────────────────────────────

export type RecordWrite = "create" | "claim" | "heartbeat" | "finish";

/**
 * Which of the job record's index attributes each lifecycle write finds, leaves, and changes.
 * These are what any layout must do to keep the indexes true: create makes the record and its
 * index keys appear; claim moves it from queued to running (status, and the due index's shard
 * and deadline); a heartbeat moves the deadline; finish changes status and leaves the due index.
 */
const QUEUED = ["status", "owner", "createdKey", "dueShard", "dueAt"];
const RUNNING = [...QUEUED, "workerId"];
const LIFECYCLE: Record<RecordWrite, { before: string[]; after: string[]; changed: string[] }> = {
  create: { before: [], after: QUEUED, changed: [] },
  // A running job also names its worker (the byWorker index, for death events).
  claim: { before: QUEUED, after: RUNNING, changed: ["status", "dueShard", "dueAt"] },
  heartbeat: { before: RUNNING, after: RUNNING, changed: ["dueAt"] },
  finish: { before: RUNNING, after: ["status", "owner", "createdKey"], changed: ["status"] },
};

interface IndexDef {
  name: string;
  keys: string[];
  /** Whether a changed non-key attribute is copied into the index. */
  projects(attr: string): boolean;
}

const indexDefs = (): IndexDef[] =>
  (tableDefinition("x").GlobalSecondaryIndexes ?? []).map((g: GlobalSecondaryIndex) => {
    const keys = (g.KeySchema ?? []).map((k) => k.AttributeName!);
    const type = g.Projection?.ProjectionType ?? "ALL";
    const include = new Set(g.Projection?.NonKeyAttributes ?? []);
    return { name: g.IndexName!, keys, projects: (a) => type === "ALL" || (type === "INCLUDE" && include.has(a)) };
  });

/**
 * The least one write of the job record costs, with the record at most 1 KB: 1 table unit, and
 * for each index (AWS's rules, each entry ≤ 1 KB): an entry appearing or disappearing 1, an entry
 * whose key moved 2 (a delete and a put), an entry whose projected non-key attribute changed 1.
 */
export function recordWriteFloor(write: RecordWrite, indexes: IndexDef[] = indexDefs()): number {
  const w = LIFECYCLE[write];
  let units = 1; // the table
  for (const ix of indexes) {
    const was = ix.keys.every((k) => w.before.includes(k));
    const is = ix.keys.every((k) => w.after.includes(k));
    if (!was && !is) continue;
    if (was !== is) units += 1; // appears or disappears
    else if (ix.keys.some((k) => w.changed.includes(k))) units += 2; // moved
    else if (w.changed.some((a) => !ix.keys.includes(a) && ix.projects(a))) units += 1; // a projected attribute changed
  }
  return units;
}

/** A value's write, in whole KB of its JSON, at least 1. */
const valueUnits = (bytes: number): number => Math.max(1, Math.ceil(bytes / 1024));
const jsonBytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v) ?? "", "utf8");

/** `fields` plus a pad, `bytes` bytes of JSON in all (or just `fields` when they are larger). */
function sized(bytes: number, fields: Record<string, unknown>): Record<string, unknown> {
  const bare = jsonBytes({ ...fields, pad: "" });
  return { ...fields, pad: "x".repeat(Math.max(0, bytes - bare)) };
}

// ─── the run ──────────────────────────────────────────────────────────────────────────────────

export async function runStoreCost(): Promise<StoreCostResult> {
  const env = await benchEnv("bench-cost");
  try {
    const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    const meter = new CapacityMeter(doc, { doc: env.doc, table: env.emu.tableName });
    const sqsCalls = countCalls(env.sqs);
    const clock = manualClock();
    const store = new JobStore(doc, { tableName: env.emu.tableName, now: clock.now });
    const queue = new JobQueue(env.sqs, env.emu.queues);
    const indexes = indexDefs();
    const floorUnits = Object.fromEntries((Object.keys(LIFECYCLE) as RecordWrite[]).map((w) => [w, recordWriteFloor(w, indexes)])) as Record<RecordWrite, number>;
    const cells: CellCost[] = [];
    for (const seconds of DURATIONS_S) {
      for (const inputKb of INPUT_KB) {
        for (const checkpointKb of CHECKPOINT_KB) {
          cells.push(await oneJob({ seconds, inputKb, checkpointKb }, { store, queue, meter, sqsCalls, clock, floorUnits }));
        }
      }
    }
    doc.destroy();
    const seen = new Set(cells.flatMap((c) => Object.keys(c.gsiWruByIndex)));
    const unmetered = [...new Set(cells.flatMap((c) => c.phases.flatMap((p) => Object.keys(p.dynamo.calls))))].filter((k) => !METERED.has(k));
    return {
      leaseMs: TIMINGS.leaseMs,
      heartbeatIntervalMs: heartbeatIntervalMs(),
      pricesChecked: PRICES_CHECKED,
      prices: Object.fromEntries(Object.entries(PRICES).map(([k, p]) => [k, { unit: p.unit, source: p.source }])),
      indexes: [...new Set([...indexes.map((i) => i.name), ...seen])],
      floorUnits,
      cells,
      payload: payloadEffect(cells),
      notes: [
        "table WRU/RRU: reported by dynalite (ReturnConsumedCapacity=TOTAL); index WRU: computed from core/schema.ts's index definitions (dynalite reports none)",
        `floor = values + create (${floorUnits.create}) + claim (${floorUnits.claim}) + finish (${floorUnits.finish}) + ${floorUnits.heartbeat} per heartbeat that must happen; values = input + result + each checkpoint written changed, each in whole KB (at least 1); the record writes' least cost is computed from core/schema.ts's index definitions (recordWriteFloor); a layout that carries a small value inside a record write can come in under it (× floor < 1)`,
        `progress ${REPORTS_PER_SECOND}×/s and, with a checkpoint, a new one ${CHECKPOINTS_PER_SECOND}×/s of simulated time, coalesced by ReportBuffer; heartbeat every lease/3`,
        "WRU per heartbeat: each heartbeat metered on its own (max and mean over the run phase)",
        "SQS: send (API), receive and delete (worker); Lambda's event source does the receive/delete for Lambda jobs and bills them the same",
        `compute: Lambda ${LAMBDA_WORKER.memoryMb} MB for jobs within its ${LAMBDA_WORKER.timeoutSeconds} s timeout, else a Fargate task (${FARGATE_WORKER.cpu / 1024} vCPU, ${FARGATE_WORKER.memoryMb / 1024} GB) shared by ${FARGATE_WORKER.concurrency} jobs`,
        "excluded: storage, the sweeper's fixed cost (see sweep), worker presence writes (a small item per shard of workers, written when a worker claims or lets go, coalesced over half a second, and every 10 s), API Gateway, CloudWatch",
        ...(unmetered.length ? [`WARNING: commands the capacity meter does not count: ${unmetered.join(", ")}; their units are missing from these figures`] : []),
      ],
    };
  } finally {
    await env.close();
  }
}

const METERED = new Set(["PutItemCommand", "UpdateItemCommand", "DeleteItemCommand", "BatchWriteItemCommand", "GetItemCommand", "QueryCommand", "ScanCommand", "BatchGetItemCommand"]);

interface Deps {
  store: JobStore;
  queue: JobQueue;
  meter: CapacityMeter;
  sqsCalls: Map<string, number>;
  clock: ReturnType<typeof manualClock>;
  floorUnits: Record<RecordWrite, number>;
}

/** LeaseKeeper's default. */
const heartbeatIntervalMs = () => Math.max(50, Math.floor(TIMINGS.leaseMs / 3));

async function oneJob(cell: { seconds: number; inputKb: number; checkpointKb: number }, d: Deps): Promise<CellCost> {
  const { seconds, inputKb, checkpointKb } = cell;
  const runsOn = seconds * 1000 < LAMBDA_WORKER.timeoutSeconds * 1000 - LAMBDA_WORKER.deadlineMarginMs ? "lambda" : "fargate";
  const queueName = runsOn === "lambda" ? "default" : "large";
  const intervalMs = heartbeatIntervalMs();
  const inputBytes = Math.min(Math.round(inputKb * 1024), LIMITS.maxInputBytes);
  const checkpointBytes = checkpointKb ? Math.min(Math.round(checkpointKb * 1024), LIMITS.maxCheckpointBytes) : 0;
  const input = sized(inputBytes, { seconds });
  const phases: Phase[] = [];
  const phase = (name: Phase["name"], dynamo = d.meter.reset()) => {
    phases.push({ name, dynamo, sqs: Object.fromEntries(d.sqsCalls) });
    d.sqsCalls.clear();
  };
  d.meter.reset();
  d.sqsCalls.clear();

  const { job } = await d.store.create({
    owner: "bench",
    type: "bench.sleep",
    queue: queueName,
    input,
    maxAttempts: 3,
    timeoutMs: TIMINGS.defaultTimeoutMs,
  });
  await d.queue.send(laneOf({ queue: queueName }), [job.id]);
  phase("submit");

  const [msg] = await d.queue.receive(laneOf({ queue: queueName }), { waitSeconds: 1, max: 1 });
  if (!msg || msg.jobId !== job.id) throw new Error("bench: the job's message did not arrive");
  const claim = await d.store.claim(job.id, "bench-worker", TIMINGS.leaseMs);
  if (!claim.ok) throw new Error(`bench: claim refused: ${claim.reason}`);
  await d.queue.delete(msg.lane, msg.receiptHandle);
  phase("claim");

  const lease = claim.lease;
  const buffer = new ReportBuffer();
  const tickMs = 1000 / REPORTS_PER_SECOND;
  const ticks = seconds * REPORTS_PER_SECOND;
  let run = emptyTotals();
  const beats: number[] = [];
  let maxBeyondCheckpoint = 0;
  let checkpoints = 0;
  let checkpointWrites = 0;
  let checkpointUnits = 0; // the floor's share for checkpoints
  let lastWritten: string | undefined;
  /** A checkpoint a write carries counts toward the floor once, when it changed since the last one written. */
  const countCheckpoint = (checkpoint: unknown): void => {
    if (checkpoint === undefined) return;
    const text = JSON.stringify(checkpoint);
    if (text === lastWritten) return;
    checkpointWrites++;
    checkpointUnits += valueUnits(Buffer.byteLength(text));
    lastWritten = text;
  };
  let nextBeat = intervalMs;
  for (let i = 1; i <= ticks; i++) {
    d.clock.advance(tickMs);
    const elapsed = i * tickMs;
    buffer.progress(i, ticks, "working");
    if (checkpointBytes && elapsed % (1000 / CHECKPOINTS_PER_SECOND) === 0) {
      buffer.checkpoint(sized(checkpointBytes, { offset: i }));
      checkpoints++;
    }
    // The job ends at `seconds`; a beat due at that same instant would race the final write, which carries it instead.
    if (elapsed >= nextBeat && i < ticks) {
      const report = buffer.take();
      countCheckpoint(report.checkpoint);
      await d.store.heartbeat(lease, report);
      const beat = d.meter.reset();
      run = add(run, beat);
      beats.push(totalWru(beat));
      // The record and its index entries: what the beat cost besides the checkpoint's own value item.
      maxBeyondCheckpoint = Math.max(maxBeyondCheckpoint, totalWru(beat) - beat.valueWru);
      nextBeat += intervalMs;
    }
  }
  phase("run", add(run, d.meter.reset()));

  const result = { ok: true, seconds };
  const final = buffer.all();
  countCheckpoint(final.checkpoint);
  await d.store.succeed(lease, result, final);
  phase("finish");

  const all = phases.reduce((acc, p) => add(acc, p.dynamo), emptyTotals());
  const sqsRequests = phases.reduce((n, p) => n + Object.values(p.sqs).reduce((a, b) => a + b, 0), 0);
  const writes = Object.entries(all.calls).filter(([k]) => isWrite(k)).reduce((n, [, c]) => n + c, 0);
  const reads = Object.entries(all.calls).filter(([k]) => !isWrite(k)).reduce((n, [, c]) => n + c, 0);
  // Heartbeats that must happen: one per interval that ends before the job does.
  const mustBeat = Math.ceil((seconds * 1000) / intervalMs) - 1;
  const values = valueUnits(jsonBytes(input)) + valueUnits(jsonBytes(result)) + checkpointUnits;
  const u = d.floorUnits;
  const floor: Floor = {
    values,
    create: u.create,
    claim: u.claim,
    finish: u.finish,
    heartbeats: mustBeat * u.heartbeat,
    total: values + u.create + u.claim + u.finish + mustBeat * u.heartbeat,
  };
  const dynamo = totalWru(all) * PRICES.dynamoWriteRequestUnit.usd + all.rru * PRICES.dynamoReadRequestUnit.usd;
  const sqs = sqsRequests * PRICES.sqsRequest.usd;
  const compute = computeUsd(seconds, runsOn);
  const M = 1e6;
  return {
    seconds,
    inputKb,
    checkpointKb,
    inputBytes: jsonBytes(input),
    checkpointBytes,
    runsOn,
    heartbeatIntervalMs: intervalMs,
    heartbeats: beats.length,
    progressReports: ticks,
    checkpoints,
    checkpointWrites,
    floor,
    writes,
    reads,
    calls: writes + reads,
    tableWru: all.tableWru + all.failedWriteWru,
    gsiWru: all.gsiWru,
    gsiWruByIndex: all.gsiWruByIndex,
    wru: totalWru(all),
    rru: all.rru,
    sqsRequests,
    wruPerHeartbeat: {
      max: beats.length ? Math.max(...beats) : 0,
      mean: beats.length ? beats.reduce((a, b) => a + b, 0) / beats.length : 0,
      maxBeyondCheckpoint,
    },
    phases,
    usdPerMillion: { dynamo: dynamo * M, sqs: sqs * M, compute: compute * M, total: (dynamo + sqs + compute) * M },
  };
}

const cellName = (c: { seconds: number; inputKb: number; checkpointKb: number }) => `${c.seconds} s, ${c.inputKb} KB input, ${cpLabel(c.checkpointKb)}`;
const cpLabel = (kb: number) => (kb ? `${kb} KB checkpoint` : "no checkpoint");

function payloadEffect(cells: CellCost[]): PayloadEffect {
  const at = (inputKb: number, checkpointKb: number) => cells.find((c) => c.seconds === SUMMARY_SECONDS && c.inputKb === inputKb && c.checkpointKb === checkpointKb)!;
  const small = INPUT_KB[0];
  const large = INPUT_KB[INPUT_KB.length - 1]!;
  const bigCp = CHECKPOINT_KB[CHECKPOINT_KB.length - 1]!;
  const intervals = Math.ceil((SUMMARY_SECONDS * 1000) / heartbeatIntervalMs());
  const top = cells.reduce((a, c) => (c.wruPerHeartbeat.max > a.wruPerHeartbeat.max ? c : a), cells[0]!);
  const topBeyond = cells.reduce((a, c) => (c.wruPerHeartbeat.maxBeyondCheckpoint > a.wruPerHeartbeat.maxBeyondCheckpoint ? c : a), cells[0]!);
  return {
    seconds: SUMMARY_SECONDS,
    largeInput: { inputKb: large, total: at(large, 0).wru, smallTotal: at(small, 0).wru, bound: 1.1 * at(small, 0).wru + large },
    checkpoint: {
      checkpointKb: bigCp,
      intervals,
      bound: bigCp,
      byInput: INPUT_KB.map((kb) => ({ inputKb: kb, wruPerInterval: (at(kb, bigCp).wru - at(kb, 0).wru) / intervals })),
    },
    heartbeat: { max: top.wruPerHeartbeat.max, maxCell: cellName(top), maxBeyondCheckpoint: topBeyond.wruPerHeartbeat.maxBeyondCheckpoint, maxBeyondCell: cellName(topBeyond), bound: 3 },
  };
}

const shortName = (k: string): string => k.replace(/(Item)?Command$/, "");

const isWrite = (name: string) => ["PutItemCommand", "UpdateItemCommand", "DeleteItemCommand", "BatchWriteItemCommand", "TransactWriteItemsCommand"].includes(name);

function add(a: CapacityTotals, b: CapacityTotals): CapacityTotals {
  const calls = { ...a.calls };
  for (const [k, n] of Object.entries(b.calls)) calls[k] = (calls[k] ?? 0) + n;
  const byIndex = { ...a.gsiWruByIndex };
  for (const [k, n] of Object.entries(b.gsiWruByIndex)) byIndex[k] = (byIndex[k] ?? 0) + n;
  return {
    calls,
    tableWru: a.tableWru + b.tableWru,
    valueWru: a.valueWru + b.valueWru,
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

// ─── printing ─────────────────────────────────────────────────────────────────────────────────

export const kbLabel = (kb: number): string => `${kb} KB`;
export const checkpointLabel = (kb: number): string => (kb ? `${kb} KB` : "none");

/** The cost-per-million table: a row per input and checkpoint, DynamoDB and total per duration. */
export const COST_HEAD = ["input", "checkpoint", ...DURATIONS_S.flatMap((s) => [`${s} s DynamoDB`, `${s} s total`])];
export function costRows(r: StoreCostResult, money: (x: number) => string): string[][] {
  return INPUT_KB.flatMap((inputKb) =>
    CHECKPOINT_KB.map((checkpointKb) => [
      kbLabel(inputKb),
      checkpointLabel(checkpointKb),
      ...DURATIONS_S.flatMap((seconds) => {
        const c = r.cells.find((x) => x.seconds === seconds && x.inputKb === inputKb && x.checkpointKb === checkpointKb);
        return c ? [money(c.usdPerMillion.dynamo), money(c.usdPerMillion.total)] : ["–", "–"];
      }),
    ]),
  );
}

/** The columns the bench's tables and docs/reliability.md share for one cell. */
export const CELL_HEAD = (indexes: string[]): string[] => ["input", "checkpoint", "floor WRU", "total WRU", "× floor", "table WRU", ...indexes.map((i) => `${i} WRU`)];
export function cellColumns(c: CellCost, indexes: string[], num: (x: number) => string): string[] {
  return [
    kbLabel(c.inputKb),
    checkpointLabel(c.checkpointKb),
    num(c.floor.total),
    num(c.wru),
    `${(c.wru / c.floor.total).toFixed(2)}×`,
    num(c.tableWru),
    ...indexes.map((i) => num(c.gsiWruByIndex[i] ?? 0)),
  ];
}

export function printStoreCost(r: StoreCostResult): string {
  const out: string[] = [];
  for (const seconds of DURATIONS_S) {
    const cells = r.cells.filter((c) => c.seconds === seconds);
    if (!cells.length) continue;
    const first = cells[0]!;
    out.push(
      table(
        `Store cost of one ${seconds} s job (${first.runsOn}; lease ${r.leaseMs / 1000} s, heartbeat every ${r.heartbeatIntervalMs / 1000} s, ${first.heartbeats} heartbeats)`,
        [...CELL_HEAD(r.indexes), "max WRU/beat", "mean WRU/beat", "reads", "RRU"],
        cells.map((c) => [
          ...cellColumns(c, r.indexes, fmt),
          c.heartbeats ? fmt(c.wruPerHeartbeat.max) : "–",
          c.heartbeats ? fmt(c.wruPerHeartbeat.mean) : "–",
          c.reads,
          fmt(c.rru),
        ]),
      ),
    );
  }
  const p = r.payload;
  out.push(
    `\nPayload effect (${p.seconds} s job; figures beside their bounds)`,
    `  · ${p.largeInput.inputKb} KB input, no checkpoint: total ${fmt(p.largeInput.total)} WRU; bound 1.1 × ${fmt(p.largeInput.smallTotal)} (${INPUT_KB[0]} KB input) + ${p.largeInput.inputKb} = ${fmt(p.largeInput.bound)}`,
    ...p.checkpoint.byInput.map(
      (x) => `  · ${p.checkpoint.checkpointKb} KB checkpoint, ${x.inputKb} KB input: ${fmt(x.wruPerInterval)} WRU per heartbeat interval (${p.checkpoint.intervals} intervals) beyond no checkpoint; bound ${p.checkpoint.bound} (its size in KB)`,
    ),
    `  · max WRU of one heartbeat across all cells: ${fmt(p.heartbeat.max)} (${p.heartbeat.maxCell}); for the record and its index entries (its checkpoint's value item aside): ${fmt(p.heartbeat.maxBeyondCheckpoint)} (${p.heartbeat.maxBeyondCell}); bound ${p.heartbeat.bound}`,
  );
  const phaseRows = r.cells
    .filter((c) => (c.inputKb === INPUT_KB[0] && c.checkpointKb === 0) || (c.inputKb === INPUT_KB[INPUT_KB.length - 1] && c.checkpointKb === CHECKPOINT_KB[CHECKPOINT_KB.length - 1]))
    .map((c) => [
      `${c.seconds} s, ${kbLabel(c.inputKb)}, cp ${checkpointLabel(c.checkpointKb)}`,
      ...(["submit", "claim", "run", "finish"] as const).map((name) => {
        const ph = c.phases.find((x) => x.name === name)!;
        const calls = Object.entries(ph.dynamo.calls).map(([k, n]) => `${n} ${shortName(k)}`).join(", ");
        return `${calls || "–"} · ${fmt(totalWru(ph.dynamo))} WRU`;
      }),
    ]);
  out.push(table("DynamoDB calls by lifecycle phase", ["cell", "submit", "claim", "run", "finish"], phaseRows));
  out.push(
    table(
      "Estimated AWS cost per million jobs (on-demand, us-east-1): DynamoDB / total",
      COST_HEAD,
      costRows(r, usd),
      [
        ...DURATIONS_S.map((s) => {
          const c = r.cells.find((x) => x.seconds === s);
          return c ? `${s} s (${c.runsOn}): SQS ${usd(c.usdPerMillion.sqs)}, compute ${usd(c.usdPerMillion.compute)} per million jobs in every cell` : `${s} s: not run`;
        }),
        ...r.notes,
        ...Object.values(r.prices).map((x) => `${x.unit} — ${x.source}`),
        `prices: ${r.pricesChecked}`,
      ],
    ),
  );
  return out.join("\n");
}
