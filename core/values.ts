/**
 * The cold half of a job (invariant 11): its input, result and checkpoint when they are too
 * large for the record the lease loop rewrites on every heartbeat.
 *
 * DynamoDB bills a write by the whole item, so a heartbeat on a record that carried a 150 KB
 * input would rewrite 150 KB. A value larger than INLINE_VALUE_BYTES is instead written once, as
 * its own item (`<jobId>#<field>#<token>#<nonce>`, its JSON text in `json`), before the record
 * write that points at it (`refs.<field>`). The order makes a crash between the two harmless: a
 * value nobody points at expires by TTL. The key names the attempt's fencing token and the
 * write's nonce, and is written only if absent, so a worker that lost its lease can add values
 * but never change one a record points at: the next attempt resumes from the checkpoint the
 * record names, which only a fenced record write can change.
 *
 * A value's own TTL (`exp`, epoch seconds, kept in its ref too) is set once, when it is written
 * (`horizon`): changing it later would cost the value's size again. A value that would expire
 * while its job still needs it is copied instead (a retry, a job that waits very long to start,
 * a checkpoint kept for hours), which costs its size once per horizon.
 *
 * Stored as JSON text, a value's stored size is its JSON size, so a value within its own limit
 * (LIMITS in config.ts) always fits its item, whatever else the job holds.
 */
import { PutCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { batchGetAll } from "./aws.js";
import { TABLE, TIMINGS } from "./config.js";
import { isConditionFailure, putNew } from "./expr.js";
import { valueBytes } from "./item-size.js";
import type { Job } from "./job.js";

export const VALUE_FIELDS = ["input", "checkpoint", "result"] as const;
export type ValueField = (typeof VALUE_FIELDS)[number];
/** The values a job object shows its callers (core/api/view.ts); the checkpoint is for workers only. */
export const SHOWN_VALUES: readonly ValueField[] = ["input", "result"];

/** Where one value lives. `exp` is the value item's TTL, epoch seconds. */
export interface ValueRef {
  key: string;
  exp: number;
}
export type ValueRefs = Partial<Record<ValueField, ValueRef>>;

/**
 * Values up to this size (by DynamoDB's rules) stay in the record: most inputs are a few ids, and
 * an item of their own would cost a write and a read for nothing. Three of them at most (300
 * bytes) leave the record's other fields room within 1 KB (invariant 11).
 */
export const INLINE_VALUE_BYTES = 100;

const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;

/**
 * How long past its runAt a job that has not started may wait before its input needs a copy with
 * a later TTL (the sweeper's resend makes it, core/store.ts). Short, because a finished job's
 * input outlives its record by up to this much; a job that waits longer (a stage without workers,
 * whose StuckJobs alarm is firing) pays its input's size once per half of it.
 */
export const START_WAIT_MS = DAY_MS;
/**
 * A checkpoint item lives at most this long, and is copied while its job runs (by a heartbeat,
 * or the sweeper's resend of a job waiting with it) once it has less than half of it left. So a
 * superseded checkpoint is gone within CHECKPOINT_HORIZON_MS, however long its job runs, and the
 * one the record names is copied once every few hours, not rewritten on every beat.
 */
export const CHECKPOINT_HORIZON_MS = 6 * HOUR_MS;

const SEP = "#";
export const valueKey = (jobId: string, field: ValueField, token: number, nonce: string): string =>
  [jobId, field, token, nonce].join(SEP);
/** Value items share the table with records; their ids are never job ids (isJobId). */
export const isValueKey = (id: string): boolean => id.includes(SEP);

export const fitsInline = (v: unknown): boolean => valueBytes(v) <= INLINE_VALUE_BYTES;

const sec = (ms: number): number => Math.ceil(ms / 1000);

/** When a value's item must expire (`exp`), and the moment before which a ref to it is too short-lived and is copied (`renewBelow`); epoch ms. */
interface Horizon {
  exp: number;
  renewBelow: number;
}

/**
 * How long a job may still need each of its values:
 * - a result: as long as the finished job is kept (the record's own `expiresAt`);
 * - a checkpoint: only its run resumes from it (a retry starts from the beginning), so at most
 *   until the runtime limit has passed, plus an hour for the sweeper to end the job, and never
 *   more than CHECKPOINT_HORIZON_MS ahead;
 * - an input: until the runtime limit has passed (counted from the first start, or from when the
 *   job may first start plus START_WAIT_MS), plus the retention in which it may be retried; for a
 *   finished job, as long as it is kept.
 */
function horizon(field: ValueField, job: Job, nowMs: number, retentionDays: number): Horizon {
  const kept = "expiresAt" in job && typeof job.expiresAt === "number" ? job.expiresAt * 1000 : undefined;
  if (field === "result") return { exp: kept ?? nowMs + retentionDays * DAY_MS, renewBelow: 0 };
  if (field === "checkpoint") {
    // A waiting parent's run is paused for as long as its children take: its checkpoint is copied
    // by the sweeper's look at the flow (core/flows.ts) while it waits, like a long run's by a heartbeat.
    const runEnd = job.status === "waiting" ? Infinity : (job.firstStartedAt ?? nowMs) + (job.waitedMs ?? 0) + job.timeoutMs + HOUR_MS;
    return { exp: Math.min(runEnd, nowMs + CHECKPOINT_HORIZON_MS), renewBelow: Math.min(runEnd, nowMs + CHECKPOINT_HORIZON_MS / 2) };
  }
  if (kept !== undefined) return { exp: kept + DAY_MS, renewBelow: kept };
  const start =
    job.status === "waiting"
      ? nowMs + START_WAIT_MS
      : job.firstStartedAt !== undefined
        ? job.firstStartedAt + (job.waitedMs ?? 0)
        : Math.max(nowMs, job.status === "queued" ? (job.runAt ?? 0) : 0) + START_WAIT_MS;
  const exp = start + job.timeoutMs + (retentionDays + 1) * DAY_MS;
  return { exp, renewBelow: exp - START_WAIT_MS / 2 };
}

const lasts = (ref: ValueRef, h: Horizon): boolean => ref.exp * 1000 >= h.renewBelow;

/** True when a value of `job` would expire before the job stops needing it: it must be copied (with the value read). */
export function needsRefresh(job: Job, nowMs: number, retentionDays: number = TIMINGS.retentionDays): boolean {
  return VALUE_FIELDS.some((f) => {
    const ref = job.refs?.[f];
    return ref !== undefined && !lasts(ref, horizon(f, job, nowMs, retentionDays));
  });
}

/** A value item as stored. */
export interface ValueItem {
  id: string;
  json: string;
  expiresAt: number;
}

/** What a write must put before its record write, and the record fields it then points at. */
export interface PlacedValues<J extends Job> {
  next: J;
  puts: ValueItem[];
}

/**
 * Decides, for each value the change carries, where it goes: unchanged values keep their place;
 * a new small one goes inline; a new large one gets an item of its own. A value that is
 * undefined in `next` was not read (its ref stays) or never existed: the lifecycle never removes
 * a value, it only replaces one.
 */
export function placeValues<J extends Job>(prev: Job | undefined, next: J, nonce: string, nowMs: number, retentionDays: number): PlacedValues<J> {
  const refs: ValueRefs = { ...(next.refs ?? {}) };
  const placed = { ...next } as J & Record<ValueField, unknown>;
  const puts: ValueItem[] = [];
  for (const f of VALUE_FIELDS) {
    const v = next[f as keyof Job] as unknown;
    if (v === undefined) continue;
    const before = prev?.[f as keyof Job] as unknown;
    const ref = refs[f];
    const h = horizon(f, next, nowMs, retentionDays);
    if (before !== undefined && sameValue(before, v) && (ref === undefined || lasts(ref, h))) continue;
    if (fitsInline(v)) {
      delete refs[f];
      continue;
    }
    const key = valueKey(next.id, f, next.token, nonce);
    const exp = sec(h.exp);
    puts.push({ id: key, json: JSON.stringify(v), expiresAt: exp });
    refs[f] = { key, exp };
  }
  if (Object.keys(refs).length) placed.refs = refs;
  else delete placed.refs;
  return { next: placed, puts };
}

/** The record's attributes for a job's values: inline ones as they are, the others only by ref. */
export function recordValues(job: Job): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of VALUE_FIELDS) {
    const v = job[f as keyof Job] as unknown;
    if (job.refs?.[f] === undefined && v !== undefined) out[f] = v;
    else out[f] = undefined;
  }
  return out;
}

/**
 * Values the record names but `job` does not hold, taken from `known` (the job as the writer
 * computed it) when the ref is the same: what a write's returned record lacks, it wrote itself.
 */
export function carryValues<J extends Job>(job: J, known: Job | undefined): J {
  if (!job.refs || !known) return job;
  const out = { ...job } as J & Record<ValueField, unknown>;
  for (const f of VALUE_FIELDS) {
    const ref = job.refs[f];
    const v = known[f as keyof Job] as unknown;
    if (ref && out[f] === undefined && v !== undefined && known.refs?.[f]?.key === ref.key) out[f] = v;
  }
  return out;
}

export interface LoadedValues {
  jobs: Job[];
  /** Ref'd values that were not found, per job id. */
  missing: Map<string, ValueField[]>;
}

/** Reads and writes value items. Reads are consistent: a value is read right after the record that names it. */
export class ValueStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  /** Write-once: a resend of a put that landed finds its own item, which is as good as the reply. */
  async put(items: ValueItem[], signal?: AbortSignal): Promise<void> {
    await Promise.all(
      items.map(async (item) => {
        try {
          await this.db.send(new PutCommand(putNew(this.table, item)), signal ? { abortSignal: signal } : undefined);
        } catch (e) {
          // The key carries this write's nonce: an item already there is this write's own.
          if (!isConditionFailure(e)) throw e;
        }
      }),
    );
  }

  /** Fills in the ref'd values of `jobs` (only `fields`), one batched read for all of them. */
  async load(jobs: Job[], fields: readonly ValueField[] = VALUE_FIELDS, nowSeconds?: number): Promise<LoadedValues> {
    const wanted = new Map<string, { job: number; field: ValueField }[]>();
    const missing = new Map<string, ValueField[]>();
    const miss = (job: Job, f: ValueField) => missing.set(job.id, [...(missing.get(job.id) ?? []), f]);
    jobs.forEach((job, i) => {
      for (const f of fields) {
        const ref = job.refs?.[f];
        if (!ref || job[f as keyof Job] !== undefined) continue;
        // Past its TTL a value may or may not still be there; it counts as gone either way.
        if (nowSeconds !== undefined && ref.exp < nowSeconds) miss(job, f);
        else wanted.set(ref.key, [...(wanted.get(ref.key) ?? []), { job: i, field: f }]);
      }
    });
    const out = jobs.map((j) => ({ ...j }) as Job & Record<string, unknown>);
    if (wanted.size) {
      const found = await this.read([...wanted.keys()]);
      for (const [key, uses] of wanted) {
        const json = found.get(key);
        for (const u of uses) {
          if (json === undefined) miss(jobs[u.job]!, u.field);
          else out[u.job]![u.field] = JSON.parse(json);
        }
      }
    }
    return { jobs: out, missing };
  }

  /** The JSON text of each value item found, by key (consistent). */
  async readJson(keys: string[]): Promise<Map<string, string>> {
    return this.read(keys);
  }

  private async read(keys: string[]): Promise<Map<string, string>> {
    const items = await batchGetAll(this.db, this.table, keys.map((id) => ({ [TABLE.partitionKey]: id })), true);
    return new Map(items.map((it) => [it[TABLE.partitionKey] as string, it.json as string]));
  }
}

/** Deep equality of plain JSON values, whatever the key order DynamoDB hands back. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((v, i) => sameValue(v, (b as unknown[])[i]));
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
