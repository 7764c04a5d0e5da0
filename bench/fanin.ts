/**
 * Fan-in at the limit: one parent (demo.combine) submitted with 10,000 trivial children
 * (demo.chunk, core/jobs/flows.ts), run through the emulators by in-process workers on the one
 * claim path (core/runner.ts), the store ringing the doorbells as in production (children when
 * written, the parent when resumed). No sweeper runs: nothing here needs a repair, so every write
 * counted is one the happy path makes. Every write is taken on the wire (./lib/wire-meter.ts):
 *
 * 1. last child's end (the answer to its terminal record write) → the parent running again (the
 *    answer to its claim);
 * 2. write units per child, split into the child's own record writes, its share of the fan-out
 *    (the spec items, one per 100 children) and the fan-in (its ADD, and its share of the parent's
 *    resume, refused tries included), beside the floor: what the same demo.chunk costs submitted
 *    alone (measured here too) + 1 for the fan-in;
 * 3. the hottest key (most writes any one item received), and how long the children took.
 */
import { loadavg } from "node:os";
import { dynamoClient } from "../core/aws.js";
import { LIMITS, TIMINGS, laneOf } from "../core/config.js";
import { childSpecs } from "../core/child-specs.js";
import { FANIN_SHARD_SIZE, fanInKey, shardCount } from "../core/flow.js";
import { demoChunk, demoCombine } from "../core/jobs/flows.js";
import { noMetrics } from "../core/metrics.js";
import { JobQueue } from "../core/queue.js";
import { Registry } from "../core/registry.js";
import { Runner } from "../core/runner.js";
import { isJobId, JobStore } from "../core/store.js";
import { WorkerDirectory } from "../core/workers.js";
import type { QueueName } from "../core/config.js";
import type { Job } from "../core/job.js";
import type { BenchEnv } from "./lib/env.js";
import { emulatorProcess } from "./lib/emulator-process.js";
import { fmt, summary, table } from "./lib/table.js";
import { waitFor } from "./lib/wait.js";
import { nowMs, WireMeter, type ReadEvent, type ReadTotals, type WriteEvent } from "./lib/wire-meter.js";

export const CHILDREN = 10_000;
/**
 * Runs of CHILDREN children each, one after another on the same emulators (a fresh parent each).
 * One: a run is about 100,000 requests to the emulators, minutes on 2 cores, and gives one
 * latency sample; `runFanin({ runs })` takes more.
 */
export const RUNS = 1;
/** Worker loops (each its own Runner, as separate Lambda environments would be) and jobs each runs at once. */
export const WORKERS = 4;
export const CONCURRENCY = 8;

/** The write units of one job's own writes, by write, per job. */
export interface OwnWrites {
  create: number;
  claim: number;
  heartbeats: number;
  finish: number;
  /** Value items of the job's own (a large input or result); 0 for these trivial jobs. */
  values: number;
  /** Any other write to its record, refused ones included. */
  other: number;
  total: number;
  /** Of total, what the indexes took. */
  index: number;
  /** Writes to its record, per job. */
  writes: number;
}

export interface PerChild {
  own: OwnWrites;
  /** Spec items' units, / children. */
  fanOut: number;
  fanIn: { add: number; resume: number; total: number };
  total: number;
  floor: { solo: number; fanIn: number; total: number };
  /** Read units per child over the whole run, by AWS's rules, by what was read (the parent's reads of its children's outcomes included). */
  rru: number;
  rruByWhat: Record<string, number>;
  /** As dynalite reports them (it rounds a batch's items together). */
  emulatorRru: number;
}

export interface RunRow {
  children: number;
  /** createFlow: specs, the parent's record, every child, their doorbells. */
  submitMs: number;
  /** First child's claim → last child's end. */
  childrenMs: number;
  /** Submit → last child's end. */
  submitToLastEndMs: number;
  /** Last child's end (its terminal write answered) → parent's claim answered. */
  latencyMs: number;
  /** From the last child's end: its ADD... → the last ADD answered, → the resume answered, → the parent's claim answered. */
  steps: { lastAddMs: number; resumeMs: number; claimMs: number };
  /** Items read between the last ADD's answer and the resume's (the round being decided), by what. */
  decideReads: Record<string, number>;
  /** Submit → the parent's final write. */
  totalMs: number;
  parentResult: unknown;
  hottest: { key: string; what: string; writes: number };
  fanInItems: { items: number; writesMin: number; writesMax: number; writesMean: number };
  parentWrites: { total: number; refused: number; byWhat: Record<string, number> };
  childWritesMax: number;
  /** Refused writes to child records (none expected: no duplicate doorbells, no sweeper). */
  childRefused: number;
  loadAverage: number[];
}

export interface FaninResult {
  children: number;
  shardSize: number;
  workers: number;
  concurrency: number;
  leaseMs: number;
  runs: RunRow[];
  latency: { n: number; median: number; min: number; max: number; samplesMs: number[] };
  /** The same job submitted alone: its writes, and its reads (RRU, AWS's rules). */
  solo: OwnWrites & { rru: number };
  /** Over every run's children. */
  perChild: PerChild;
  /** The parent's own writes (create waiting, claim, finish), per run, not shared out. */
  parentOwn: Record<string, number>;
  /** Every write of the runs by what it was: count and units, per run. */
  unitsByWhat: Record<string, { writes: number; wru: number }>;
  meterCheck: { checked: number; mismatches: number; imageReads: number; unserializedIndexed: number };
  unmetered: string[];
  notes: string[];
}

const quiet = { info() {}, warn() {}, error() {} };

interface System {
  env: BenchEnv;
  meter: WireMeter;
  store: JobStore;
  /** Unmetered reads for polling. */
  probe: JobStore;
  queue: JobQueue;
  registry: Registry;
  stop(): Promise<void>;
}

/** The emulators, a store on a metered client, and WORKERS loops of Runner on the default queue. */
export async function startSystem(env: BenchEnv): Promise<System> {
  const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
  const meter = new WireMeter(doc, { doc: env.doc, table: env.emu.tableName });
  const queue = new JobQueue(env.sqs, env.emu.queues);
  const store = new JobStore(doc, { tableName: env.emu.tableName, doorbell: queue });
  const registry = new Registry().register(demoChunk, demoCombine);
  // Presence writes are per worker, not per job: through an uncounted client.
  const workers = new WorkerDirectory(env.doc, env.emu.tableName);
  const loops = Array.from({ length: WORKERS }, (_, i) => {
    const runner = new Runner({ store, queue, registry, metrics: noMetrics, workers, now: Date.now }, { workerId: `bench-fanin-${i}`, kind: "local", log: quiet });
    return workerLoop(runner, queue, "default", CONCURRENCY);
  });
  return {
    env,
    meter,
    store,
    probe: new JobStore(env.doc, { tableName: env.emu.tableName }),
    queue,
    registry,
    async stop() {
      await Promise.all(loops.map((l) => l.stop()));
      doc.destroy();
    },
  };
}

/** Receives doorbells and runs each job through the runner, at most `cap` at once; deletes a message once its run ends. */
function workerLoop(runner: Runner, queue: JobQueue, q: QueueName, cap: number): { stop(): Promise<void> } {
  let stopped = false;
  let inflight = 0;
  let wake: (() => void) | undefined;
  const running = new Set<Promise<unknown>>();
  const loop = (async () => {
    while (!stopped) {
      if (inflight >= cap) {
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      const messages = await queue.receive(laneOf({ queue: q }), { max: Math.min(10, cap - inflight), waitSeconds: 1, visibilitySeconds: 300 }).catch(() => []);
      for (const m of messages) {
        inflight++;
        const p = runner
          .run(m.jobId, q)
          .then(() => queue.delete(m.lane, m.receiptHandle))
          .catch(() => undefined)
          .finally(() => {
            inflight--;
            running.delete(p);
            wake?.();
            wake = undefined;
          });
        running.add(p);
      }
    }
  })();
  return {
    async stop() {
      stopped = true;
      wake?.();
      runner.shutdown();
      await loop;
      await Promise.all(running);
    },
  };
}

const finished = (j: Job | undefined): j is Job => j !== undefined && ["succeeded", "failed", "cancelled"].includes(j.status);

// ─── what each write was ──────────────────────────────────────────────────────────────────────

type What =
  | "child create"
  | "child claim"
  | "child heartbeat"
  | "child finish"
  | "child value"
  | "child other"
  | "child refused"
  | "spec item"
  | "fan-in ADD"
  | "fan-in other"
  | "parent create"
  | "parent resume"
  | "parent resume refused"
  | "parent claim"
  | "parent heartbeat"
  | "parent finish"
  | "parent value"
  | "parent other"
  | "other";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** A job record's write, by the status it left (`before`) and the one it answered (`after`). */
function recordWrite(e: WriteEvent): "create" | "claim" | "heartbeat" | "finish" | "resume" | "refused" | "other" {
  if (e.refused) return "refused";
  if (e.command === "Put" && e.before === undefined) return "create";
  if (e.after === "running") return e.before === "running" ? "heartbeat" : "claim";
  if (e.after && TERMINAL.has(e.after)) return "finish";
  if (e.after === "queued" && (e.before === "waiting" || e.before === undefined)) return "resume";
  return "other";
}

function classify(e: WriteEvent, parentId: string): What {
  if (e.key === parentId) {
    const w = recordWrite(e);
    if (w === "refused") return e.before === "waiting" ? "parent resume refused" : "parent other";
    if (w === "create") return "parent create";
    if (w === "claim" || w === "heartbeat" || w === "finish" || w === "resume") return `parent ${w}`;
    return "parent other";
  }
  if (e.key.startsWith(`${parentId}#spec#`)) return "spec item";
  if (e.key.startsWith(`${parentId}#fanin#`)) return e.command === "Update" && !e.refused ? "fan-in ADD" : "fan-in other";
  if (e.key.startsWith(`${parentId}#`)) return "parent value";
  if (e.key.includes("#")) return e.key.startsWith("@") ? "other" : "child value";
  const w = recordWrite(e);
  if (w === "resume") return "child other";
  return `child ${w}` as What;
}

const units = (e: WriteEvent): number => e.tableWru + e.gsiWru;

function ownWrites(events: WriteEvent[], jobs: number, whatOf: (e: WriteEvent) => What | undefined, prefix: "child" | "parent"): OwnWrites {
  const sum = (w: What) => events.filter((e) => whatOf(e) === w).reduce((n, e) => n + units(e), 0) / jobs;
  const mine = events.filter((e) => whatOf(e)?.startsWith(prefix));
  const own: OwnWrites = {
    create: sum(`${prefix} create` as What),
    claim: sum(`${prefix} claim` as What),
    heartbeats: sum(`${prefix} heartbeat` as What),
    finish: sum(`${prefix} finish` as What),
    values: sum(`${prefix} value` as What),
    other: sum(`${prefix} other` as What) + (prefix === "child" ? sum("child refused") : 0),
    total: mine.reduce((n, e) => n + units(e), 0) / jobs,
    index: mine.reduce((n, e) => n + e.gsiWru, 0) / jobs,
    writes: mine.filter((e) => !e.key.includes("#")).length / jobs,
  };
  return own;
}

// ─── one run ──────────────────────────────────────────────────────────────────────────────────

export interface RunOutput {
  row: RunRow;
  events: WriteEvent[];
  reads: ReadTotals;
  readsByWhat: Record<string, number>;
  parentId: string;
  unmetered: Record<string, number>;
  check: { checked: number; mismatches: number; imageReads: number; unserializedIndexed: number };
}

export async function oneRun(sys: System, children: number): Promise<RunOutput> {
  const specs = childSpecs(
    sys.registry,
    Array.from({ length: children }, (_, i) => ({ type: demoChunk.name, input: { from: i * 10, to: i * 10 + 10 } })),
  );
  sys.meter.reset();
  const t0 = nowMs();
  const { job: parent } = await sys.store.createFlow(
    { owner: "bench", type: demoCombine.name, queue: "default", input: {}, maxAttempts: Math.min(demoCombine.limits.maxAttempts, LIMITS.maxAttempts), timeoutMs: demoCombine.limits.timeoutMs },
    specs,
    "collect",
  );
  const submitted = nowMs();
  const done = await waitFor(`parent ${parent.id} to finish`, 20 * 60_000, async () => {
    const j = await sys.probe.getRecord(parent.id);
    return finished(j) ? j : undefined;
  });
  // The poll can see the parent's last write a moment before the meter has logged its answer.
  await new Promise((r) => setTimeout(r, 200));
  const m = sys.meter;
  const events = [...m.events];
  const whatOf = (e: WriteEvent) => classify(e, parent.id);

  const childRecord = events.filter((e) => e.key !== parent.id && !e.key.includes("#"));
  const childEnds = childRecord.filter((e) => whatOf(e) === "child finish");
  const childClaims = childRecord.filter((e) => whatOf(e) === "child claim");
  const parentEvents = events.filter((e) => e.key === parent.id);
  const parentClaim = parentEvents.find((e) => whatOf(e) === "parent claim");
  const resume = parentEvents.find((e) => whatOf(e) === "parent resume");
  const adds = events.filter((e) => whatOf(e) === "fan-in ADD");
  if (childEnds.length !== children) throw new Error(`bench: ${childEnds.length} of ${children} children ended on the wire`);
  if (!parentClaim || !resume) throw new Error("bench: the parent's resume or claim was not seen on the wire");
  const lastEnd = Math.max(...childEnds.map((e) => e.at));
  const lastAdd = Math.max(...adds.map((e) => e.at));

  const perKey = new Map<string, number>();
  for (const e of events) perKey.set(e.key, (perKey.get(e.key) ?? 0) + 1);
  const [hotKey, hotWrites] = [...perKey].reduce((a, b) => (b[1] > a[1] ? b : a));
  const fanInCounts = Array.from({ length: shardCount(children) }, (_, k) => perKey.get(fanInKey(parent.id, 0, k)) ?? 0);
  const byWhat: Record<string, number> = {};
  for (const e of parentEvents) byWhat[whatOf(e)] = (byWhat[whatOf(e)] ?? 0) + 1;
  const childKeys = new Set(childRecord.map((e) => e.key));

  return {
    parentId: parent.id,
    events,
    reads: structuredClone(m.reads),
    readsByWhat: readsByWhat(m.readEvents, parent.id),
    unmetered: { ...m.unmetered },
    check: { checked: m.checked, mismatches: m.mismatches, imageReads: m.imageReads, unserializedIndexed: m.unserializedIndexed },
    row: {
      children,
      submitMs: submitted - t0,
      childrenMs: lastEnd - Math.min(...childClaims.map((e) => e.at)),
      submitToLastEndMs: lastEnd - t0,
      latencyMs: parentClaim.at - lastEnd,
      steps: { lastAddMs: lastAdd - lastEnd, resumeMs: resume.at - lastEnd, claimMs: parentClaim.at - lastEnd },
      decideReads: readsByWhat(m.readEvents.filter((r) => r.at > lastAdd && r.at < resume.at), parent.id, () => 1),
      totalMs: Math.max(...parentEvents.map((e) => e.at)) - t0,
      parentResult: "result" in done ? done.result : done.status,
      hottest: { key: hotKey, what: whatOf(events.find((e) => e.key === hotKey)!), writes: hotWrites },
      fanInItems: {
        items: fanInCounts.length,
        writesMin: Math.min(...fanInCounts),
        writesMax: Math.max(...fanInCounts),
        writesMean: fanInCounts.reduce((a, b) => a + b, 0) / fanInCounts.length,
      },
      parentWrites: { total: parentEvents.length, refused: parentEvents.filter((e) => e.refused).length, byWhat },
      childWritesMax: Math.max(...[...childKeys].map((k) => perKey.get(k) ?? 0)),
      childRefused: childRecord.filter((e) => e.refused).length,
      loadAverage: loadavg().map((x) => Math.round(x * 10) / 10),
    },
  };
}

/** Read units by what was read. */
function readsByWhat(reads: ReadEvent[], parentId: string, count: (r: ReadEvent) => number = (r) => r.rru): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of reads) {
    const what =
      r.key === parentId
        ? "the parent's record"
        : r.key.startsWith(`${parentId}#fanin#`)
          ? "fan-in items"
          : r.key.startsWith(`${parentId}#spec#`)
            ? "spec items"
            : r.key.startsWith(`${parentId}#`)
              ? "the parent's values"
              : isJobId(r.key)
                ? "child records"
                : r.key.includes("#")
                  ? "child values"
                  : r.key;
    out[what] = (out[what] ?? 0) + count(r);
  }
  return out;
}

/** The same trivial job submitted alone (the API's create, then its doorbell), run by the same workers. */
async function soloJob(sys: System): Promise<OwnWrites & { rru: number }> {
  sys.meter.reset();
  const { job } = await sys.store.create({ owner: "bench", type: demoChunk.name, queue: "default", input: { from: 0, to: 10 }, maxAttempts: Math.min(demoChunk.limits.maxAttempts, LIMITS.maxAttempts), timeoutMs: demoChunk.limits.timeoutMs });
  await sys.queue.send(laneOf({ queue: "default" }), [job.id]);
  await waitFor(`job ${job.id} to finish`, 60_000, async () => {
    const j = await sys.probe.getRecord(job.id);
    return finished(j) ? j : undefined;
  });
  await new Promise((r) => setTimeout(r, 200));
  const mine = (e: WriteEvent) => (e.key === job.id || e.key.startsWith(`${job.id}#`) ? classify(e, "-") : undefined);
  return { ...ownWrites(sys.meter.events, 1, mine, "child"), rru: sys.meter.readEvents.filter((r) => r.key === job.id || r.key.startsWith(`${job.id}#`)).reduce((a, r) => a + r.rru, 0) };
}

// ─── the benchmark ────────────────────────────────────────────────────────────────────────────

export async function runFanin(opts: { quick?: boolean; children?: number; runs?: number } = {}): Promise<FaninResult> {
  const children = opts.children ?? (opts.quick ? 1_000 : CHILDREN);
  const runCount = opts.runs ?? (opts.quick ? 1 : RUNS);
  // The emulators in a process of their own: a run is CPU-bound, and this gives them the second core.
  const env = await emulatorProcess("bench-fanin");
  const sys = await startSystem(env);
  const outs: RunOutput[] = [];
  let solo: OwnWrites & { rru: number };
  try {
    solo = await soloJob(sys);
    for (let i = 0; i < runCount; i++) outs.push(await oneRun(sys, children));
  } finally {
    await sys.stop();
    await env.close();
  }

  const unitsByWhat: Record<string, { writes: number; wru: number }> = {};
  const all: { e: WriteEvent; what: What }[] = outs.flatMap((o) => o.events.map((e) => ({ e, what: classify(e, o.parentId) })));
  for (const { e, what } of all) {
    unitsByWhat[what] ??= { writes: 0, wru: 0 };
    unitsByWhat[what].writes++;
    unitsByWhat[what].wru += units(e);
  }
  for (const v of Object.values(unitsByWhat)) {
    v.writes /= runCount;
    v.wru /= runCount;
  }
  const n = children * runCount;
  const byEvent = new Map(all.map((x) => [x.e, x.what]));
  const own = ownWrites(all.map((x) => x.e), n, (e) => byEvent.get(e), "child");
  const per = (...ws: What[]) => ws.reduce((sum, w) => sum + (unitsByWhat[w]?.wru ?? 0), 0) / children;
  const fanOut = per("spec item");
  const add = per("fan-in ADD", "fan-in other");
  const resume = per("parent resume", "parent resume refused");
  const parentOwn = Object.fromEntries(
    (["parent create", "parent claim", "parent heartbeat", "parent finish", "parent value", "parent other"] as const).filter((w) => unitsByWhat[w]).map((w) => [w, unitsByWhat[w]!.wru]),
  );
  const rows = outs.map((o) => o.row);
  const lat = summary(rows.map((r) => r.latencyMs));
  const unmetered: Record<string, number> = {};
  for (const o of outs) for (const [k, v] of Object.entries(o.unmetered)) unmetered[k] = (unmetered[k] ?? 0) + v;
  const sumCheck = (k: keyof RunOutput["check"]) => outs.reduce((a, o) => a + o.check[k], 0);
  return {
    children,
    shardSize: FANIN_SHARD_SIZE,
    workers: WORKERS,
    concurrency: CONCURRENCY,
    leaseMs: TIMINGS.leaseMs,
    runs: rows,
    latency: { n: lat.n, median: lat.median, min: lat.min, max: lat.max, samplesMs: rows.map((r) => r.latencyMs).sort((a, b) => a - b) },
    solo,
    perChild: {
      own,
      fanOut,
      fanIn: { add, resume, total: add + resume },
      total: own.total + fanOut + add + resume,
      floor: { solo: solo.total, fanIn: 1, total: solo.total + 1 },
      rru: outs.reduce((a, o) => a + o.reads.rru, 0) / n,
      rruByWhat: Object.fromEntries(
        [...new Set(outs.flatMap((o) => Object.keys(o.readsByWhat)))].map((k) => [k, outs.reduce((a, o) => a + (o.readsByWhat[k] ?? 0), 0) / n]),
      ),
      emulatorRru: outs.reduce((a, o) => a + o.reads.emulatorRru, 0) / n,
    },
    parentOwn,
    unitsByWhat,
    meterCheck: { checked: sumCheck("checked"), mismatches: sumCheck("mismatches"), imageReads: sumCheck("imageReads"), unserializedIndexed: sumCheck("unserializedIndexed") },
    unmetered: Object.entries(unmetered).map(([k, v]) => `${v} × ${k}`),
    notes: [
      `one parent (${demoCombine.name}) submitted with ${fmt(children)} ${demoChunk.name} children through JobStore.createFlow (the API's submit path after validation), ${runCount} time(s) on the same emulators; ${WORKERS} worker loops, each a Runner (core/runner.ts) running up to ${CONCURRENCY} jobs at once off the default queue, as Lambda environments would; the workers in this process, dynalite and fauxqs in one of their own (bench/lib/emulator-process.ts), on this machine; default lease (${TIMINGS.leaseMs / 1000} s); no sweeper`,
      `every write of the store's client taken on the wire (bench/lib/wire-meter.ts) and billed as AWS would: table units as dynalite reports them (1 per KB of the larger item image), a refused conditional write by the size of the item it found (at least 1), index units from the item's images before and after, by core/schema.ts's index definitions; writes to each job record are serialized in the meter so its images are exact (no extra reads; 1 record write in 25 checked against a consistent read); the fan-in, spec and value items beside the records hold no index attribute and are not serialized, so a hot fan-in item takes its concurrent ADDs as DynamoDB would`,
      `latency: the last child's end (its terminal record write answered) → the parent's claim answered, one sample per run (median over runs); in between: the last fan-in ADDs (→ last ADD), the completing child's reads that decide the round (the parent, all ${shardCount(children)} fan-in items, and whatever else core/flows.ts decide reads) and the resume, a write conditional on the parent's version (→ resume), then its doorbell, a worker's receive and the claim`,
      `floor per child = the same ${demoChunk.name} submitted alone (create, claim, finish; measured in this run) + 1 for its fan-in ADD; the fan-out's spec items (one per ${FANIN_SHARD_SIZE} children, holding ${FANIN_SHARD_SIZE} specs) and the resume's share come on top`,
      "children: the first child's claim → the last child's end; a round's children are rung only once all of them are written (core/flows.ts spawn), so the submit is its own figure",
      "worker presence writes (per worker, not per job) go through an uncounted client; the machine's load average is in each run's row (a shared machine slows every figure here)",
    ],
  };
}

// ─── printing ─────────────────────────────────────────────────────────────────────────────────

const ms = (x: number) => `${fmt(Math.round(x))} ms`;
const s = (x: number) => `${(x / 1000).toFixed(1)} s`;
const u = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(3));

export function printFanin(r: FaninResult): string {
  const out: string[] = [];
  const pc = r.perChild;
  out.push(
    table(
      `Fan-in of ${fmt(r.children)} children: the last child's end → the parent running again (${r.latency.n} run(s))`,
      ["run", "last end → parent claim", "→ last ADD", "→ resume", "children (1st claim → last end)", "children/s", "submit", "hottest key", "its writes", "fan-in item writes min/mean/max", "load avg"],
      r.runs.map((x, i) => [
        String(i + 1),
        ms(x.latencyMs),
        ms(x.steps.lastAddMs),
        ms(x.steps.resumeMs),
        s(x.childrenMs),
        fmt(x.children / (x.childrenMs / 1000)),
        s(x.submitMs),
        x.hottest.what,
        x.hottest.writes,
        `${x.fanInItems.writesMin} / ${fmt(x.fanInItems.writesMean)} / ${x.fanInItems.writesMax}`,
        x.loadAverage[0] ?? "",
      ]),
      [
        `latency median ${ms(r.latency.median)} (min ${ms(r.latency.min)}, max ${ms(r.latency.max)}) over ${r.latency.n} run(s), one sample each`,
        ...r.runs.map((x, i) => `run ${i + 1}, items read between the last ADD and the resume (deciding the round): ${Object.entries(x.decideReads).map(([k, v]) => `${fmt(v)} ${k}`).join(", ") || "none"}`),
        `hottest key: the most writes any one item received in a run (${fmt(r.children / r.shardSize)} fan-in items of ${r.shardSize} children); the parent's record got ${r.runs.map((x) => `${x.parentWrites.total} (${x.parentWrites.refused} refused)`).join(", ")}; a child's record at most ${Math.max(...r.runs.map((x) => x.childWritesMax))}`,
      ],
    ),
  );
  out.push(
    table(
      "Write units per child, beside the floor",
      ["", "WRU per child", "floor"],
      [
        ["own: create", u(pc.own.create), u(r.solo.create)],
        ["own: claim", u(pc.own.claim), u(r.solo.claim)],
        ["own: heartbeats", u(pc.own.heartbeats), u(r.solo.heartbeats)],
        ["own: finish", u(pc.own.finish), u(r.solo.finish)],
        ["own: values, other", u(pc.own.values + pc.own.other), u(r.solo.values + r.solo.other)],
        ["own (of which indexes)", `${u(pc.own.total)} (${u(pc.own.index)})`, `${u(r.solo.total)} (${u(r.solo.index)})`],
        [`fan-out: spec items (1 per ${r.shardSize})`, u(pc.fanOut), "–"],
        ["fan-in: ADD", u(pc.fanIn.add), "1"],
        ["fan-in: the parent's resume (share)", u(pc.fanIn.resume), "–"],
        ["total", u(pc.total), `${u(pc.floor.total)} (alone ${u(pc.floor.solo)} + 1)`],
        ["× floor", `${(pc.total / pc.floor.total).toFixed(3)}×`, ""],
      ],
      [
        `floor: the same job submitted alone (${u(r.solo.total)} WRU: create ${u(r.solo.create)}, claim ${u(r.solo.claim)}, finish ${u(r.solo.finish)}; ${u(r.solo.index)} of them index units) + 1 for the fan-in`,
        `the parent's own writes, per run, not shared out: ${Object.entries(r.parentOwn).map(([k, v]) => `${k.replace("parent ", "")} ${u(v)}`).join(", ")} WRU`,
        `reads: ${u(pc.rru)} RRU per child by AWS's rules (each item of a batch rounded up to 4 KB on its own; dynalite reports ${u(pc.emulatorRru)}): ${Object.entries(pc.rruByWhat).map(([k, v]) => `${k} ${u(v)}`).join(", ")}; alone the job reads ${u(r.solo.rru)} (its record, at its claim)`,
        `meter: ${r.meterCheck.checked} record images checked against a consistent read, ${r.meterCheck.mismatches} differed; ${r.meterCheck.imageReads} items read for want of an image; ${r.meterCheck.unserializedIndexed} writes to a non-record item that had an index attribute`,
        ...(r.unmetered.length ? [`WARNING: not metered: ${r.unmetered.join(", ")}`] : []),
        ...r.notes,
      ],
    ),
  );
  return out.join("\n");
}
