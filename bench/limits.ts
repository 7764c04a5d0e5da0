/**
 * What the controls (core/gates.ts, core/controls.ts, core/gatekeeper.ts) cost per job start,
 * through the real store: jobs created, claimed and succeeded one after another (sequential, so
 * every item's image before and after each write is exact), each start metered on the wire
 * (./lib/capacity.ts: table units as dynalite reports them, index units from core/schema.ts's
 * index definitions, a refused conditional write billed as AWS bills it), beside its floor:
 *
 * 1. no control: the anchor (the job carries a concurrency key no limit names, so every row's
 *    record is the same size);
 * 2. a concurrency limit (10, never full): what it adds per start;
 * 3. a rate limit of 100 starts a second, never full, and one of 500 starts per 100 s whose window
 *    is filled first (its log holds ~500 entries): what each adds per start, the log's size with it;
 * 4. a refused start: a concurrency limit of 1 held by a running job, a second job claimed and
 *    held (the refusal), and the holder's end handing the slot on (the wake), beside the same end
 *    with nobody waiting; a rate refusal too;
 * 5. the settings: how many reads of `@controls` the claims of one process made (a one-second cache).
 *
 * The store's clock is a manual one (20 ms a start, 50 a second: under the rate limit), so the
 * rate windows hold what the row says whatever this machine's speed; the settings cache runs on
 * real time, as in production.
 */
import type { GlobalSecondaryIndex } from "@aws-sdk/client-dynamodb";
import { GetCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { dynamoClient } from "../core/aws.js";
import { TIMINGS } from "../core/config.js";
import { rateId, SETTINGS_ID } from "../core/controls.js";
import { GATE_LIMITS, type LimitKey } from "../core/gates.js";
import type { Lease } from "../core/job.js";
import type { Doorbell } from "../core/queue.js";
import { tableDefinition } from "../core/schema.js";
import { isJobId, JobStore } from "../core/store.js";
import { CapacityMeter, itemSize, totalWru, type CapacityTotals } from "./lib/capacity.js";
import { benchEnv, manualClock } from "./lib/env.js";
import { fmt, table } from "./lib/table.js";
import { recordWriteFloor } from "./store-cost.js";

export const JOBS = 200;
/** Simulated time between starts: 50 a second, half the rate limit. */
export const STEP_MS = 20;
export const CONCURRENCY = 10;
export const RATE = { starts: 100, perMs: 1_000 } as const;
/** The log at its bound (GATE_LIMITS.maxRateStarts): 500 starts per 100 s, a start every 201 ms keeps ~497 in the window. */
export const RATE_FULL = { starts: 500, perMs: 100_000 } as const;
export const RATE_FULL_STEP_MS = 201;
/** Refusals (and wakes) measured, each a fresh pair of jobs. */
export const REFUSALS = 40;

const TYPE = "bench.limits";
const OWNER = "bench";

// ─── metering ─────────────────────────────────────────────────────────────────────────────────

/** What an item kind took: table write units, read units, calls, refused conditional writes. */
export interface KindUnits {
  wru: number;
  rru: number;
  calls: number;
  refused: number;
}

/** One metered stretch: totals (capacity.ts) and the table's units by the item they went to. */
export interface Units {
  /** Table + index + refused-write units. */
  wru: number;
  tableWru: number;
  gsiWru: number;
  failedWriteWru: number;
  rru: number;
  calls: number;
  /** By item: record, @controls, @slots, @rate, value, and each index Query. */
  byItem: Record<string, KindUnits>;
  settingsReads: number;
}

const emptyUnits = (): Units => ({ wru: 0, tableWru: 0, gsiWru: 0, failedWriteWru: 0, rru: 0, calls: 0, byItem: {}, settingsReads: 0 });

function addUnits(a: Units, b: Units, scale = 1): Units {
  const byItem: Record<string, KindUnits> = structuredClone(a.byItem);
  for (const [k, v] of Object.entries(b.byItem)) {
    const o = (byItem[k] ??= { wru: 0, rru: 0, calls: 0, refused: 0 });
    o.wru += v.wru * scale;
    o.rru += v.rru * scale;
    o.calls += v.calls * scale;
    o.refused += v.refused * scale;
  }
  return {
    wru: a.wru + b.wru * scale,
    tableWru: a.tableWru + b.tableWru * scale,
    gsiWru: a.gsiWru + b.gsiWru * scale,
    failedWriteWru: a.failedWriteWru + b.failedWriteWru * scale,
    rru: a.rru + b.rru * scale,
    calls: a.calls + b.calls * scale,
    byItem,
    settingsReads: a.settingsReads + b.settingsReads * scale,
  };
}
const diffUnits = (a: Units, b: Units): Units => addUnits(a, b, -1);
const meanUnits = (xs: Units[]): Units => xs.reduce((acc, x) => addUnits(acc, x, 1 / xs.length), emptyUnits());

/** Read units of a start, the settings reads aside (those are per process and second, not per start: row 5). */
export const startRru = (u: Units): number => u.rru - (u.byItem["@controls read"]?.rru ?? 0);

/** "1 record write, 1 @slots write", per start, from a stretch's calls by item (the settings reads aside). */
export function callsOf(u: Units): string {
  return Object.entries(u.byItem)
    .filter(([k, v]) => k !== "@controls read" && Math.abs(v.calls) > 0.005)
    .map(([k, v]) => `${v.calls > 0 ? "" : "−"}${fmt(Math.round(Math.abs(v.calls) * 100) / 100, 2)} ${k}${v.refused ? ` (${fmt(Math.round(v.refused * 100) / 100, 2)} refused)` : ""}`)
    .join(", ");
}

const WRITES = new Set(["PutItemCommand", "UpdateItemCommand", "DeleteItemCommand"]);
const READS = new Set(["GetItemCommand", "QueryCommand", "ScanCommand", "BatchGetItemCommand"]);

const kindOf = (id: string): string =>
  id === SETTINGS_ID ? "@controls" : id.startsWith("@slots#") ? "@slots" : id.startsWith("@rate#") ? "@rate" : isJobId(id) ? "record" : id.includes("#") ? "value" : `other`;

/**
 * The table's units by item kind, beside CapacityMeter's totals on the same client (it bills
 * the refused writes and the index writes; this one says where the table's units went).
 */
class KindMeter {
  byItem: Record<string, KindUnits> = {};
  settingsReads = 0;
  constructor(client: DynamoDBDocumentClient) {
    client.middlewareStack.add(
      (next: (a: any) => Promise<any>, context: { commandName?: string }) => async (args: any) => {
        const name = context.commandName ?? "unknown";
        const input = args.input as Record<string, unknown>;
        input.ReturnConsumedCapacity ??= "TOTAL";
        const id = String((input.Key as Record<string, unknown> | undefined)?.id ?? (input.Item as Record<string, unknown> | undefined)?.id ?? "");
        const kind = name === "QueryCommand" || name === "ScanCommand" ? `${name.replace(/Command$/, "")} ${String(input.IndexName ?? "table")}` : name === "BatchGetItemCommand" ? "BatchGet" : `${kindOf(id)} ${WRITES.has(name) ? "write" : "read"}`;
        const k = (this.byItem[kind] ??= { wru: 0, rru: 0, calls: 0, refused: 0 });
        k.calls++;
        if (name === "GetItemCommand" && id === SETTINGS_ID) this.settingsReads++;
        try {
          const out = await next(args);
          const units = consumed(out.output?.ConsumedCapacity);
          if (WRITES.has(name)) k.wru += units;
          else if (READS.has(name)) k.rru += units;
          return out;
        } catch (e) {
          if ((e as Error).name === "ConditionalCheckFailedException") k.refused++;
          throw e;
        }
      },
      { step: "initialize", name: `kindMeter${Math.random()}` },
    );
  }
  reset(): { byItem: Record<string, KindUnits>; settingsReads: number } {
    const out = { byItem: this.byItem, settingsReads: this.settingsReads };
    this.byItem = {};
    this.settingsReads = 0;
    return out;
  }
}

function consumed(c: unknown): number {
  const list = Array.isArray(c) ? c : c ? [c] : [];
  return list.reduce((n: number, x: { CapacityUnits?: number }) => n + (x.CapacityUnits ?? 0), 0);
}

interface Meter {
  take(): Units;
}

function meterOn(client: DynamoDBDocumentClient, snapshot: { doc: DynamoDBDocumentClient; table: string }): Meter {
  const capacity = new CapacityMeter(client, snapshot);
  const kinds = new KindMeter(client);
  return {
    take(): Units {
      const t: CapacityTotals = capacity.reset();
      const k = kinds.reset();
      return {
        wru: totalWru(t),
        tableWru: t.tableWru,
        gsiWru: t.gsiWru,
        failedWriteWru: t.failedWriteWru,
        rru: t.rru,
        calls: Object.values(t.calls).reduce((a, b) => a + b, 0),
        byItem: k.byItem,
        settingsReads: k.settingsReads,
      };
    },
  };
}

// ─── floors, from the index definitions ───────────────────────────────────────────────────────

/** A queued job's index attributes; a held one's (pause or concurrency: in the held index, out of the wait index). */
const QUEUED = ["status", "owner", "createdKey", "type", "dueShard", "dueAt", "waitShard", "readyAt"];
const HELD = ["status", "owner", "createdKey", "type", "dueShard", "dueAt", "holdOn", "holdRank"];

/**
 * The least one record write costs by core/schema.ts's index definitions, the record at most
 * 1 KB (store-cost.ts recordWriteFloor's rules): 1 table unit; per index, 1 for an entry that
 * appears or leaves, 2 for one whose key moved, 1 for a changed projected attribute.
 */
export function writeFloor(before: string[], after: string[], changed: string[]): number {
  let units = 1;
  for (const g of tableDefinition("x").GlobalSecondaryIndexes ?? ([] as GlobalSecondaryIndex[])) {
    const keys = (g.KeySchema ?? []).map((k) => k.AttributeName!);
    const type = g.Projection?.ProjectionType ?? "ALL";
    const include = new Set(g.Projection?.NonKeyAttributes ?? []);
    const was = keys.every((k) => before.includes(k));
    const is = keys.every((k) => after.includes(k));
    if (!was && !is) continue;
    if (was !== is) units += 1;
    else if (keys.some((k) => changed.includes(k))) units += 2;
    else if (changed.some((a) => !keys.includes(a) && (type === "ALL" || (type === "INCLUDE" && include.has(a))))) units += 1;
  }
  return units;
}

// ─── the run ──────────────────────────────────────────────────────────────────────────────────

/** A start's units, by its three writes' stretches. */
export interface PerStart {
  jobs: number;
  create: Units;
  claim: Units;
  finish: Units;
  total: Units;
  /** Spread of the whole start's write units over the jobs. */
  wruMin: number;
  wruMax: number;
}

export interface Row {
  what: string;
  /** Per start (the anchor), or what the control adds per start over the anchor (or over the row named in `over`). */
  wru: number;
  rru: number;
  extra: boolean;
  floor: { wru: number; rru: number; text: string };
  /** The calls behind the figures, per start, by item (the settings reads aside). */
  calls: string;
}

export interface LimitsResult {
  jobs: number;
  stepMs: number;
  leaseMs: number;
  anchor: PerStart;
  concurrency: PerStart & { limit: number };
  rate: PerStart & { starts: number; perMs: number; logEntries: number; logBytes: number };
  rateFull: PerStart & { starts: number; perMs: number; stepMs: number; filled: number; logEntries: number; logBytes: number };
  refusal: {
    n: number;
    /** The held claim (the refusal), whole. */
    refused: Units;
    /** The holder's end with a held job to hand its slot to, and the same end with nobody waiting. */
    wakeEnd: Units;
    loneEnd: Units;
    /** The woken job's own claim (its slot handed to it already). */
    wokenClaim: Units;
    doorbells: { wake: number };
  };
  rateRefusal: { n: number; refused: Units; doorbells: number };
  settings: { claims: number; reads: number; seconds: number; floor: number; cacheMs: number; runReads: number; runClaims: number; runSeconds: number };
  floors: { anchor: number; hold: number; unhold: number; rateHold: number };
  rows: Row[];
  notes: string[];
}

export async function runLimits(o: { jobs?: number; refusals?: number } = {}): Promise<LimitsResult> {
  const jobs = o.jobs ?? JOBS;
  const refusals = o.refusals ?? REFUSALS;
  const env = await benchEnv("bench-limits");
  try {
    const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    const meter = meterOn(doc, { doc: env.doc, table: env.emu.tableName });
    const clock = manualClock();
    const rings: { jobIds: string[]; delayMs: number }[] = [];
    const doorbell: Doorbell = { send: async (_q, jobIds, delayMs = 0) => void rings.push({ jobIds, delayMs }) };
    const store = new JobStore(doc, { tableName: env.emu.tableName, now: clock.now, doorbell });
    // Fills a rate window without metering (its own client, its own settings cache).
    const filler = new JobStore(env.doc, { tableName: env.emu.tableName, now: clock.now, doorbell });
    const t0 = performance.now();
    let runClaims = 0;
    let runReads = 0;

    const create = (s: JobStore, key: string) => s.create({ owner: OWNER, type: TYPE, queue: "default", input: { n: 1 }, maxAttempts: 3, timeoutMs: TIMINGS.defaultTimeoutMs, concurrencyKey: key });
    const claim = async (s: JobStore, id: string): Promise<Lease> => {
      const c = await s.claim(id, "bench-worker", TIMINGS.leaseMs);
      if (s === store) runClaims++;
      if (!c.ok) throw new Error(`bench: claim of ${id} refused: ${c.reason}`);
      return c.lease;
    };
    const take = (): Units => {
      const u = meter.take();
      runReads += u.settingsReads;
      return u;
    };

    /** `n` jobs of `key`, each created, claimed and succeeded, `step` ms of the store's clock apart. */
    const startsOf = async (key: string, n: number, step = STEP_MS): Promise<PerStart & { seconds: number }> => {
      const rows: { create: Units; claim: Units; finish: Units }[] = [];
      const t = performance.now();
      for (let i = 0; i < n; i++) {
        clock.advance(step);
        take();
        const { job } = await create(store, key);
        const c = take();
        const lease = await claim(store, job.id);
        const cl = take();
        await store.succeed(lease, { ok: true });
        rows.push({ create: c, claim: cl, finish: take() });
      }
      const seconds = (performance.now() - t) / 1000;
      const create_ = meanUnits(rows.map((r) => r.create));
      const claim_ = meanUnits(rows.map((r) => r.claim));
      const finish_ = meanUnits(rows.map((r) => r.finish));
      const totals = rows.map((r) => r.create.wru + r.claim.wru + r.finish.wru);
      return {
        jobs: n,
        create: create_,
        claim: claim_,
        finish: finish_,
        total: addUnits(addUnits(create_, claim_), finish_),
        wruMin: Math.min(...totals),
        wruMax: Math.max(...totals),
        seconds,
      };
    };
    /** `n` starts of `key` through the unmetered store, `step` ms apart: a rate window filled. */
    const fill = async (key: string, n: number, step: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        clock.advance(step);
        const { job } = await create(filler, key);
        await filler.succeed(await claim(filler, job.id), { ok: true });
      }
      take();
    };
    const logOf = async (key: LimitKey, perMs: number): Promise<{ entries: number; bytes: number }> => {
      const out = await env.doc.send(new GetCommand({ TableName: env.emu.tableName, Key: { id: rateId(key) }, ConsistentRead: true }));
      const log = (out.Item?.log as { at: number }[] | undefined) ?? [];
      return { entries: log.filter((e) => e.at > clock.now() - perMs).length, bytes: out.Item ? itemSize(out.Item) : 0 };
    };

    // 1. No control (and 5: the settings reads its claims made).
    const { seconds: anchorSeconds, ...anchor } = await startsOf("bench-free", jobs);

    // 2. A concurrency limit, never full (the jobs run one at a time).
    const concKey: LimitKey = "key:bench-conc";
    await store.controls.setLimit(concKey, { concurrency: CONCURRENCY }, "bench", clock.now());
    take();
    const { seconds: _c, ...conc } = await startsOf("bench-conc", jobs);

    // 3. A rate limit, never full; then one at the log's bound, its window filled first.
    const rateKey: LimitKey = "key:bench-rate";
    await store.controls.setLimit(rateKey, { rate: RATE }, "bench", clock.now());
    take();
    // Its window filled first, so every metered start finds the log at its steady size.
    await fill("bench-rate", Math.ceil(RATE.perMs / STEP_MS) + 5, STEP_MS);
    const { seconds: _r, ...rate } = await startsOf("bench-rate", jobs);
    const rateLog = await logOf(rateKey, RATE.perMs);

    const fullKey: LimitKey = "key:bench-rate500";
    await store.controls.setLimit(fullKey, { rate: RATE_FULL }, "bench", clock.now());
    const filled = Math.ceil(RATE_FULL.perMs / RATE_FULL_STEP_MS) + 20;
    await fill("bench-rate500", filled, RATE_FULL_STEP_MS);
    const before = await logOf(fullKey, RATE_FULL.perMs);
    const { seconds: _f, ...rateFull } = await startsOf("bench-rate500", jobs, RATE_FULL_STEP_MS);
    const after = await logOf(fullKey, RATE_FULL.perMs);

    // 4. Refusals: a concurrency limit of 1 held by a running job; and a full rate window.
    const oneKey: LimitKey = "key:bench-one";
    await store.controls.setLimit(oneKey, { concurrency: 1 }, "bench", clock.now());
    take();
    const refused: Units[] = [];
    const wakeEnd: Units[] = [];
    const loneEnd: Units[] = [];
    const wokenClaim: Units[] = [];
    let wakeRings = 0;
    for (let i = 0; i < refusals; i++) {
      clock.advance(STEP_MS);
      // The same end with nobody waiting: the pair's baseline.
      const lone = await create(store, "bench-one");
      const loneLease = await claim(store, lone.job.id);
      take();
      await store.succeed(loneLease, { ok: true });
      loneEnd.push(take());
      clock.advance(STEP_MS);
      const holder = await create(store, "bench-one");
      const holderLease = await claim(store, holder.job.id);
      const waiter = await create(store, "bench-one");
      take();
      const held = await store.claim(waiter.job.id, "bench-worker", TIMINGS.leaseMs);
      runClaims++;
      refused.push(take());
      if (held.ok || held.reason !== "held") throw new Error(`bench: the second job of a full limit was not held (${held.ok ? "claimed" : held.reason})`);
      clock.advance(STEP_MS);
      const ringsBefore = rings.length;
      await store.succeed(holderLease, { ok: true });
      wakeEnd.push(take());
      wakeRings += rings.slice(ringsBefore).filter((r) => r.jobIds.includes(waiter.job.id)).length;
      const wokenLease = await claim(store, waiter.job.id);
      wokenClaim.push(take());
      await store.succeed(wokenLease, { ok: true });
      take();
    }

    const slowKey: LimitKey = "key:bench-slow";
    const slowRate = { starts: 1, perMs: 60_000 };
    await store.controls.setLimit(slowKey, { rate: slowRate }, "bench", clock.now());
    take();
    const rateRefused: Units[] = [];
    let rateRings = 0;
    for (let i = 0; i < refusals; i++) {
      clock.advance(slowRate.perMs + STEP_MS);
      const first = await create(store, "bench-slow");
      await store.succeed(await claim(store, first.job.id), { ok: true });
      const second = await create(store, "bench-slow");
      take();
      const ringsBefore = rings.length;
      const held = await store.claim(second.job.id, "bench-worker", TIMINGS.leaseMs);
      runClaims++;
      rateRefused.push(take());
      rateRings += rings.length - ringsBefore;
      if (held.ok || held.reason !== "held") throw new Error(`bench: the second start of a full rate window was not held (${held.ok ? "claimed" : held.reason})`);
    }
    take();
    const runSeconds = (performance.now() - t0) / 1000;
    doc.destroy();

    // ─── the figures beside their floors ─────────────────────────────────────────────────────
    const floors = {
      anchor: recordWriteFloor("create") + recordWriteFloor("claim") + recordWriteFloor("finish"),
      hold: writeFloor(QUEUED, HELD, ["dueAt"]),
      unhold: writeFloor(HELD, QUEUED, ["dueAt", "readyAt"]),
      rateHold: writeFloor(QUEUED, QUEUED, ["dueAt", "readyAt"]),
    };
    const over = (x: PerStart) => diffUnits(x.total, anchor.total);
    const ref = meanUnits(refused);
    const wake = meanUnits(wakeEnd);
    const lone = meanUnits(loneEnd);
    const woken = meanUnits(wokenClaim);
    const rateRef = meanUnits(rateRefused);
    const kb = (bytes: number) => Math.max(1, Math.ceil(bytes / 1024));
    const kb4 = (bytes: number) => Math.max(1, Math.ceil(bytes / 4096));
    const fullBytes = (before.bytes + after.bytes) / 2;
    const settingsFloor = Math.max(1, Math.ceil(anchorSeconds));
    const anchorReads = Math.round(anchor.total.settingsReads * anchor.jobs);
    const rows: Row[] = [
      {
        what: "no control (anchor): create + claim + succeed",
        wru: anchor.total.wru,
        rru: startRru(anchor.total),
        calls: callsOf(anchor.total),
        extra: false,
        floor: { wru: floors.anchor, rru: 1, text: `anchor; store-cost's floor for create + claim + finish ${floors.anchor} WRU, 1 RRU (the claim's read of the record)` },
      },
      {
        what: `concurrency limit ${CONCURRENCY}, never full`,
        wru: over(conc).wru,
        rru: startRru(over(conc)),
        calls: callsOf(over(conc)),
        extra: true,
        floor: { wru: 2, rru: 0, text: "2 WRU: one slot write at the claim, one at the end; 0 RRU: a slot is taken and given back unread (whether anyone waits could ride on the release's answer)" },
      },
      {
        what: `rate limit ${RATE.starts}/${RATE.perMs / 1000} s, never full, window filled (log of ${rateLog.entries} starts, ${fmt(rateLog.bytes / 1024)} KB)`,
        wru: over(rate).wru,
        rru: startRru(over(rate)),
        calls: callsOf(over(rate)),
        extra: true,
        floor: { wru: kb(rateLog.bytes), rru: kb4(rateLog.bytes), text: `one read and one write of the log at its size: ${kb(rateLog.bytes)} WRU (1 per KB) + ${kb4(rateLog.bytes)} RRU (1 per 4 KB); 1 + 1 for a log under 1 KB (about 20 starts in the window)` },
      },
      {
        what: `rate limit ${RATE_FULL.starts}/${RATE_FULL.perMs / 1000} s, window filled (log of ~${Math.round((before.entries + after.entries) / 2)} starts, ${fmt(fullBytes / 1024)} KB)`,
        wru: over(rateFull).wru,
        rru: startRru(over(rateFull)),
        calls: callsOf(over(rateFull)),
        extra: true,
        floor: { wru: kb(fullBytes), rru: kb4(fullBytes), text: `one read and one write of the log at its size: ${kb(fullBytes)} WRU (1 per KB) + ${kb4(fullBytes)} RRU (1 per 4 KB); a counter instead of a log would be 1 + 1` },
      },
      {
        what: "refused start (concurrency 1 held): the held claim, whole",
        wru: ref.wru,
        rru: startRru(ref),
        calls: callsOf(ref),
        extra: false,
        floor: { wru: 1 + floors.hold, rru: 1, text: `${1 + floors.hold} WRU: the refused slot take 1 + the hold ${floors.hold} (table 1, byWait entry leaves 1, byHold entry appears 1, due deadline moves 2); 1 RRU: the record` },
      },
      {
        what: "its wake: the holder's succeed, over the same succeed with nobody waiting",
        wru: diffUnits(wake, lone).wru,
        rru: startRru(diffUnits(wake, lone)),
        calls: callsOf(diffUnits(wake, lone)),
        extra: true,
        floor: { wru: 1 + floors.unhold, rru: 1.5, text: `${1 + floors.unhold} WRU: the slot handed on 1 + the unhold ${floors.unhold}; 1.5 RRU: the held job found (a byHold Query, 0.5) and its record read (1); + 1 doorbell` },
      },
      {
        what: "the woken job's claim, over a claim under concurrency 10",
        wru: woken.wru - conc.claim.wru,
        rru: startRru(diffUnits(woken, conc.claim)),
        calls: callsOf(diffUnits(woken, conc.claim)),
        extra: true,
        floor: { wru: 0, rru: 0, text: "0: its slot, handed to it, is taken again by the same one write" },
      },
      {
        what: `refused start (rate ${slowRate.starts}/${slowRate.perMs / 1000} s full): the held claim, whole`,
        wru: rateRef.wru,
        rru: startRru(rateRef),
        calls: callsOf(rateRef),
        extra: false,
        floor: { wru: 1 + floors.rateHold, rru: 2, text: `${1 + floors.rateHold} WRU: the log's spread (nextWake) 1 + the hold ${floors.rateHold} (table 1, due deadline moves 2, wait index entry moves 2); 2 RRU: the record and the log` },
      },
      {
        what: `settings reads: ${anchor.jobs} claims in ${fmt(anchorSeconds)} s, one process`,
        wru: 0,
        rru: anchorReads,
        calls: `${anchorReads} GetItem of ${SETTINGS_ID} (without the cache: ${anchor.jobs})`,
        extra: false,
        floor: { wru: 0, rru: settingsFloor, text: `${settingsFloor} reads: one per second of claiming (a ${GATE_LIMITS.settingsCacheMs} ms cache), whatever the number of claims` },
      },
    ];
    return {
      jobs,
      stepMs: STEP_MS,
      leaseMs: TIMINGS.leaseMs,
      anchor,
      concurrency: { ...conc, limit: CONCURRENCY },
      rate: { ...rate, ...RATE, logEntries: rateLog.entries, logBytes: rateLog.bytes },
      rateFull: { ...rateFull, ...RATE_FULL, stepMs: RATE_FULL_STEP_MS, filled, logEntries: Math.round((before.entries + after.entries) / 2), logBytes: fullBytes },
      refusal: { n: refusals, refused: ref, wakeEnd: wake, loneEnd: lone, wokenClaim: woken, doorbells: { wake: wakeRings / refusals } },
      rateRefusal: { n: refusals, refused: rateRef, doorbells: rateRings / refusals },
      settings: { claims: anchor.jobs, reads: anchorReads, seconds: anchorSeconds, floor: settingsFloor, cacheMs: GATE_LIMITS.settingsCacheMs, runReads, runClaims, runSeconds },
      floors,
      rows,
      notes: [
        `${jobs} jobs per row, each created, claimed and succeeded one after another, ${STEP_MS} ms of the store's clock apart (${1000 / STEP_MS} starts a second; the ${RATE_FULL.starts}-start row ${RATE_FULL_STEP_MS} ms apart, its window filled first by ${filled} unmetered starts, the ${RATE.starts}/s row's by ${Math.ceil(RATE.perMs / STEP_MS) + 5}); ${refusals} refusals and wakes, each with its own pair of jobs`,
        "table WRU/RRU: reported by dynalite (ReturnConsumedCapacity=TOTAL; a consistent read 1 per 4 KB, a missing item's too; an index Query 0.5 per 4 KB it returns, 0 when it returns nothing); index WRU: computed from core/schema.ts's index definitions; a refused conditional write: the size of the item it found, at least 1 (AWS bills it, dynalite reports none)",
        "every job carries a concurrency key (the anchor's names no limit), so the records are alike across rows; the extra figures are the row's mean per start minus the anchor's (or the row named)",
        `settings: the claims read \`${SETTINGS_ID}\` through a ${GATE_LIMITS.settingsCacheMs} ms cache on real time; over the whole run ${runReads} reads for ${runClaims} claims (and the ends that gave slots back) in ${fmt(runSeconds)} s`,
        "doorbells: counted, not sent (a stand-in for the SQS queue); a wake rings the woken job once; a rate refusal rings its doorbell delayed to when its window has room",
        "not measured: what AWS bills for an index Query that returns nothing (dynalite: 0); every end of a run under a concurrency limit makes one (the byHold Query for a held job to hand its slot to): at a read's minimum, 0.5 RRU (eventually consistent), it would add 0.5 RRU per start to the concurrency row",
        "excluded: the sweeper's passes over held jobs and slots (core/limits-sweep.ts), setting a limit (a write of the settings item, rare)",
      ],
    };
  } finally {
    await env.close();
  }
}

// ─── printing ─────────────────────────────────────────────────────────────────────────────────

const signed = (x: number, extra: boolean): string => (extra ? `${x >= 0 ? "+" : ""}${fmt(round(x), 2)}` : fmt(round(x), 2));
const round = (x: number): number => Math.round(x * 1000) / 1000 || 0;

export function printLimits(r: LimitsResult): string {
  const out: string[] = [];
  out.push(
    table(
      `What the controls cost per job start (${r.jobs} starts a row, sequential; figures beside their floor or anchor)`,
      ["", "WRU", "RRU", "floor WRU", "floor RRU", "calls per start", "floor / anchor"],
      r.rows.map((x) => [x.what, signed(x.wru, x.extra), signed(x.rru, x.extra), x.extra ? `+${fmt(x.floor.wru)}` : fmt(x.floor.wru), x.extra ? `+${fmt(x.floor.rru)}` : fmt(x.floor.rru), x.calls, x.floor.text]),
      [
        `anchor, by write: create ${fmt(round(r.anchor.create.wru), 2)}, claim ${fmt(round(r.anchor.claim.wru), 2)}, succeed ${fmt(round(r.anchor.finish.wru), 2)} WRU (per job ${r.anchor.wruMin}–${r.anchor.wruMax}); reads: claim ${fmt(round(startRru(r.anchor.claim)), 3)} RRU; RRU columns leave out the settings reads (the last row: per process and second, not per start)`,
        `wake: ${fmt(r.refusal.doorbells.wake, 2)} doorbell per wake; rate refusal: ${fmt(r.rateRefusal.doorbells, 2)} doorbell (delayed)`,
        ...r.notes,
      ],
    ),
  );
  const kinds = (u: Units): string =>
    Object.entries(u.byItem)
      .filter(([, v]) => v.calls)
      .map(([k, v]) => `${k} ${fmt(round(v.calls), 2)}×${v.wru ? ` ${fmt(round(v.wru), 2)} WRU` : ""}${v.rru ? ` ${fmt(round(v.rru), 2)} RRU` : ""}${v.refused ? ` (${fmt(round(v.refused), 2)} refused)` : ""}`)
      .join(", ");
  const detail: [string, Units][] = [
    ["no control: claim", r.anchor.claim],
    ["no control: succeed", r.anchor.finish],
    ["concurrency: claim", r.concurrency.claim],
    ["concurrency: succeed", r.concurrency.finish],
    ["rate: claim", r.rate.claim],
    [`rate ${r.rateFull.starts}: claim`, r.rateFull.claim],
    ["refused claim (concurrency)", r.refusal.refused],
    ["holder's succeed, a job held", r.refusal.wakeEnd],
    ["the same, nobody waiting", r.refusal.loneEnd],
    ["woken job's claim", r.refusal.wokenClaim],
    ["refused claim (rate)", r.rateRefusal.refused],
  ];
  out.push(
    table(
      "Where the units go, per call (table units by item; index units and refused writes beside)",
      ["", "WRU", "table", "index", "refused", "RRU", "calls by item"],
      detail.map(([what, u]) => [what, fmt(round(u.wru), 2), fmt(round(u.tableWru), 2), fmt(round(u.gsiWru), 2), fmt(round(u.failedWriteWru), 2), fmt(round(u.rru), 2), kinds(u)]),
    ),
  );
  return out.join("\n");
}
