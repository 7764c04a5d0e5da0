/**
 * The items the gates (core/gates.ts) decide over, in the jobs table beside the jobs:
 *
 * - `@controls`: every pause and limit (ControlSettings), small, read by every claim through a
 *   one-second cache and written rarely, each write guarded on its version;
 * - `@slots#<key>`: a concurrency limit's holders, a map of job id → its slot (SlotEntry: when
 *   it was taken, and by which claim). A slot is taken by one UpdateItem whose condition is the
 *   limit (`size(holders) < limit` and the job holds none) or that the entry is the taker's own
 *   (the SDK's resend after a lost reply passes again) or one handed to the job by a waker; it is
 *   given back by a REMOVE conditional on its taker. Both idempotent, neither read first;
 * - `@rate#<key>`: a rate limit's log of the starts in its window, guarded on its version; a
 *   resend that finds its own start logged (same job, same instant) knows it landed.
 *
 * Held jobs are found through the sparse `byHold` index (partition `holdOn`, sort `holdRank`),
 * which only a held job has an entry in (core/store-write.ts).
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { TABLE } from "./config.js";
import { ConflictError } from "./errors.js";
import { Expr, isConditionFailure } from "./expr.js";
import {
  EMPTY_SETTINGS,
  GATE_LIMITS,
  pausePartition,
  rateDecision,
  slotPartition,
  type ControlSettings,
  type LimitDef,
  type LimitKey,
  type LoggedStart,
  type PauseTarget,
  type RateLimit,
  type SlotEntry,
  type SlotStamp,
} from "./gates.js";
import { itemBytes } from "./item-size.js";
import { newNonce } from "./store-write.js";

export const SETTINGS_ID = "@controls";
export const slotsId = (key: LimitKey): string => `@slots#${key}`;
export const rateId = (key: LimitKey): string => `@rate#${key}`;

/** The settings item's bound: about 1,000 short entries, and a read every claim can afford. */
const SETTINGS_MAX_BYTES = 128 * 1024;

/** Read-modify-write rounds before a settings change gives up (only another change can beat it). */
const SETTINGS_ROUNDS = 8;
/** Rate-log rounds: claims of one key race for its log; a loser reads again, and past these it is held for a moment. */
const RATE_ROUNDS = 6;

export type TakeStart = { ok: true; at: number } | { ok: false; until: number };

export class Controls {
  private cached: { at: number; settings: ControlSettings } | undefined;
  /** Keys whose slots item this process has seen exist. */
  private readonly slotsMade = new Set<LimitKey>();

  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
    /** The cache's own clock: real time, whatever clock the store is given (a test's manual clock never moves on its own). */
    private readonly monotonic: () => number = () => performance.now(),
  ) {}

  // ─── settings ─────────────────────────────────────────────────────────────────────────────

  /** The settings, at most GATE_LIMITS.settingsCacheMs stale unless `fresh`. */
  async settings(o: { fresh?: boolean } = {}): Promise<ControlSettings> {
    const t = this.monotonic();
    if (!o.fresh && this.cached && t - this.cached.at < GATE_LIMITS.settingsCacheMs) return this.cached.settings;
    const out = await this.db.send(new GetCommand({ TableName: this.table, Key: { id: SETTINGS_ID }, ConsistentRead: true }));
    const settings = settingsOf(out.Item);
    this.cached = { at: t, settings };
    return settings;
  }

  async pause(target: PauseTarget, by: string, now: number): Promise<ControlSettings> {
    return this.change((s) => {
      if (s.pauses[target]) return undefined;
      // Paused again: the held jobs of the last resume stay held (the sweeper's wake pass leaves the partition).
      const { [pausePartition(target)]: _resumed, ...woken } = s.woken;
      return { ...s, pauses: { ...s.pauses, [target]: { since: now, by } }, woken };
    });
  }

  /** Ends a pause; the target is kept in `woken` for the sweeper's wake pass. */
  async resume(target: PauseTarget, now: number): Promise<ControlSettings> {
    return this.change((s) => {
      if (!s.pauses[target]) return undefined;
      const { [target]: _gone, ...pauses } = s.pauses;
      return { ...s, pauses, woken: freshWoken({ ...s.woken, [pausePartition(target)]: now }, now) };
    });
  }

  /** Sets a limit (`undefined`: removes it; its held jobs are woken). */
  async setLimit(key: LimitKey, def: Omit<LimitDef, "updatedAt" | "by"> | undefined, by: string, now: number): Promise<ControlSettings> {
    if (def?.concurrency !== undefined) await this.ensureSlots(key);
    return this.change((s) => {
      if (!def && !s.limits[key]) return undefined;
      if (def && !s.limits[key] && Object.keys(s.limits).length + Object.keys(s.pauses).length >= GATE_LIMITS.maxEntries) {
        throw new ConflictError(`at most ${GATE_LIMITS.maxEntries} limits and pauses may be set at once`);
      }
      const { [key]: _old, ...rest } = s.limits;
      const limits = def ? { ...rest, [key]: { ...def, updatedAt: now, by } } : rest;
      // A concurrency limit that goes leaves its held jobs with nothing to free them: the sweeper's wake pass finds them.
      const dropped = s.limits[key]?.concurrency !== undefined && def?.concurrency === undefined;
      const { [slotPartition(key)]: _gone, ...kept } = s.woken;
      return { ...s, limits, woken: dropped ? freshWoken({ ...s.woken, [slotPartition(key)]: now }, now) : def?.concurrency !== undefined ? kept : s.woken };
    });
  }

  /** Drops the wake tombstones older than GATE_LIMITS.wakeTombstoneMs (the sweeper, once it has woken them). */
  async forgetWoken(now: number): Promise<void> {
    await this.change((s) => {
      const woken = freshWoken(s.woken, now);
      return Object.keys(woken).length === Object.keys(s.woken).length ? undefined : { ...s, woken };
    });
  }

  private async change(apply: (s: ControlSettings) => ControlSettings | undefined): Promise<ControlSettings> {
    for (let round = 0; round < SETTINGS_ROUNDS; round++) {
      const current = await this.settings({ fresh: true });
      const next = apply(current);
      if (!next) return current;
      const nonce = newNonce();
      const item = { id: SETTINGS_ID, pauses: next.pauses, limits: next.limits, woken: next.woken, version: current.version + 1, lastWrite: nonce };
      // Every claim reads this item: it stays small (a 400 KB item would fail the write, and cost every claim).
      if (itemBytes(item) > SETTINGS_MAX_BYTES) throw new ConflictError(`the controls would be ${itemBytes(item)} bytes, over their ${SETTINGS_MAX_BYTES}; remove a limit or a pause first`);
      const x = new Expr();
      x.when(current.version === 0 ? `attribute_not_exists(${x.name("id")})` : `${x.name("version")} = ${x.value(current.version)}`);
      try {
        await this.db.send(new PutCommand({ TableName: this.table, Item: item, ...x.params() }));
      } catch (e) {
        if (!isConditionFailure(e)) throw e;
        const stored = await this.db.send(new GetCommand({ TableName: this.table, Key: { id: SETTINGS_ID }, ConsistentRead: true }));
        if (stored.Item?.lastWrite !== nonce) continue; // someone else's change came first: apply ours to theirs
      }
      const settings = settingsOf(item);
      this.cached = { at: this.monotonic(), settings };
      return settings;
    }
    throw new ConflictError("the controls kept changing under this request; try again");
  }

  // ─── concurrency slots ────────────────────────────────────────────────────────────────────

  private async ensureSlots(key: LimitKey): Promise<void> {
    const x = new Expr().setRaw("#h = if_not_exists(#h, :empty)");
    x.names["#h"] = "holders";
    x.values[":empty"] = {};
    await this.db.send(new UpdateCommand({ TableName: this.table, Key: { id: slotsId(key) }, ...x.params() }));
  }

  /**
   * Takes one of `limit` slots for `job`, stamped `slot`. Refused when the limit is full, or when
   * the job holds a slot another claim took (that claim may still land: a slot is not shared),
   * which the answer then carries. A claim adopts a slot a waker handed to the job; a waker's own
   * take (`handed`) adopts nothing.
   */
  async acquireSlot(key: LimitKey, limit: number, job: string, slot: SlotStamp, o: { handed?: true } = {}): Promise<SlotTake> {
    const entry: SlotEntry = { at: slot.at, by: slot.by, ...(o.handed ? { handed: true } : {}) };
    const free = "(attribute_not_exists(#h.#j) AND size(#h) < :limit) OR #h.#j.#by = :by";
    for (let round = 0; round < 2; round++) {
      try {
        await this.db.send(
          new UpdateCommand({
            TableName: this.table,
            Key: { id: slotsId(key) },
            UpdateExpression: "SET #h.#j = :entry",
            ConditionExpression: o.handed ? free : `${free} OR #h.#j.#handed = :yes`,
            ExpressionAttributeNames: { "#h": "holders", "#j": job, "#by": "by", ...(o.handed ? {} : { "#handed": "handed" }) },
            ExpressionAttributeValues: { ":entry": entry, ":limit": limit, ":by": slot.by, ...(o.handed ? {} : { ":yes": true }) },
            // Why it was refused comes back with the refusal (DynamoDB; an engine that does not is read).
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          }),
        );
        this.slotsMade.add(key);
        return { taken: true };
      } catch (e) {
        const missing = e instanceof Error && e.name === "ValidationException";
        if (!isConditionFailure(e) && !missing) throw e;
        // Full, or the item (or its map) is missing: some engines answer the latter as a failed
        // condition. Made once per process and key, so a full limit costs no extra call.
        if (round > 0 || (this.slotsMade.has(key) && !missing)) return this.refusal(key, job, e);
        await this.ensureSlots(key);
        this.slotsMade.add(key);
      }
    }
    return { taken: false };
  }

  /** Why a take was refused: the job's own slot if it has one (from the refusal's item, else read), none when the limit is full. */
  private async refusal(key: LimitKey, job: string, e: unknown): Promise<SlotTake> {
    const old = (e as { Item?: Record<string, AttributeValue> }).Item;
    const held = old ? entryOf(old.holders?.M?.[job]) : (await this.holders(key))[job];
    return held ? { taken: false, held } : { taken: false };
  }

  /** Gives `job`'s slot back if `by` took it (not another claim of the job, nor a later take). */
  async releaseSlot(key: LimitKey, job: string, by: string): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { id: slotsId(key) },
          UpdateExpression: "REMOVE #h.#j",
          ConditionExpression: "#h.#j.#by = :by",
          ExpressionAttributeNames: { "#h": "holders", "#j": job, "#by": "by" },
          ExpressionAttributeValues: { ":by": by },
        }),
      );
    } catch (e) {
      if (isConditionFailure(e) || (e instanceof Error && e.name === "ValidationException")) return; // not its taker's, or no such item
      throw e;
    }
  }

  /** The key's slot holders: job id → its slot. */
  async holders(key: LimitKey): Promise<Record<string, SlotEntry>> {
    const out = await this.db.send(new GetCommand({ TableName: this.table, Key: { id: slotsId(key) }, ConsistentRead: true }));
    return (out.Item?.holders as Record<string, SlotEntry> | undefined) ?? {};
  }

  // ─── rate log ─────────────────────────────────────────────────────────────────────────────

  /**
   * Logs a start of `job` at `at` (or at the log's latest start, when that is later: starts are
   * logged in order, so a window is never read past a start still in it) when the key's window
   * has room; otherwise answers when it will (spread from the other refused jobs' wakes), which
   * the caller holds the job until. Answers the time the start was logged at.
   */
  async takeStart(key: LimitKey, rate: RateLimit, job: string, at: number): Promise<TakeStart> {
    for (let round = 0; round < RATE_ROUNDS; round++) {
      const out = await this.db.send(new GetCommand({ TableName: this.table, Key: { id: rateId(key) }, ConsistentRead: true }));
      const version = Number(out.Item?.version ?? 0);
      const log = (out.Item?.log as LoggedStart[] | undefined) ?? [];
      // Ours already (a resend after a lost reply, or a round before this one).
      const own = log.find((e) => e.job === job && e.at >= at);
      if (own) return { ok: true, at: own.at };
      const now = Math.max(at, ...log.map((e) => e.at));
      const d = rateDecision(log, Number(out.Item?.nextWake ?? 0), rate, job, now);
      const x = new Expr();
      if (d.ok) x.set("log", d.log);
      else x.set("nextWake", d.nextWake);
      x.set("version", version + 1);
      x.when(version === 0 ? `attribute_not_exists(${x.name("version")})` : `${x.name("version")} = ${x.value(version)}`);
      try {
        await this.db.send(new UpdateCommand({ TableName: this.table, Key: { id: rateId(key) }, ...x.params() }));
      } catch (e) {
        if (!isConditionFailure(e)) throw e;
        // Another claim wrote first, or our own start landed and its reply was lost: read again.
        // A refusal's wake is only a hint for spreading: it is not fought for.
        if (d.ok) continue;
      }
      return d.ok ? { ok: true, at: now } : { ok: false, until: d.until };
    }
    // Claims of the key race hard for its log: this one waits its turn like a refused one, spread
    // over the next window so the racers do not come back together.
    return { ok: false, until: at + Math.ceil(rate.perMs / rate.starts) + Math.floor(Math.random() * rate.perMs) };
  }

  /** The starts logged in the key's current window (for a view and for tests). */
  async startsIn(key: LimitKey, rate: RateLimit, now: number): Promise<number> {
    const out = await this.db.send(new GetCommand({ TableName: this.table, Key: { id: rateId(key) }, ConsistentRead: true }));
    return ((out.Item?.log as LoggedStart[] | undefined) ?? []).filter((s) => s.at > now - rate.perMs).length;
  }

  // ─── held jobs ────────────────────────────────────────────────────────────────────────────

  /** The first `limit` jobs held on a partition (core/gates.ts holdPartition), longest held first. */
  async held(partition: string, limit: number): Promise<string[]> {
    const out = await this.db.send(new QueryCommand({ ...heldQuery(this.table, partition), Limit: limit }));
    return (out.Items ?? []).map((i) => String(i.id));
  }

  /** How many jobs are held on a partition: a COUNT of the keys-only index, at most 10 pages (1 MB each) counted. */
  async heldCount(partition: string): Promise<number> {
    let n = 0;
    let start: Record<string, unknown> | undefined;
    for (let page = 0; page < 10; page++) {
      const out = await this.db.send(new QueryCommand({ ...heldQuery(this.table, partition), Select: "COUNT", ...(start ? { ExclusiveStartKey: start } : {}) }));
      n += out.Count ?? 0;
      start = out.LastEvaluatedKey;
      if (!start) break;
    }
    return n;
  }
}

/** A refusal's take: `held`, the slot the job holds already when that is why (another claim's, or a handed one). */
export type SlotTake = { taken: true } | { taken: false; held?: SlotEntry };

/** One holder's entry from the item a refused write answered with (plain DynamoDB JSON: the document client does not convert errors). */
function entryOf(v: AttributeValue | undefined): SlotEntry | undefined {
  const m = v?.M;
  if (!m?.at?.N || m.by?.S === undefined) return undefined;
  return { at: Number(m.at.N), by: m.by.S, ...(m.handed?.BOOL ? { handed: true as const } : {}) };
}

const heldQuery = (table: string, partition: string) => ({
  TableName: table,
  IndexName: TABLE.holdIndex.name,
  KeyConditionExpression: "#p = :p",
  ExpressionAttributeNames: { "#p": TABLE.holdIndex.partitionKey },
  ExpressionAttributeValues: { ":p": partition },
});

function settingsOf(item: Record<string, unknown> | undefined): ControlSettings {
  if (!item) return EMPTY_SETTINGS;
  return {
    pauses: (item.pauses as ControlSettings["pauses"]) ?? {},
    limits: (item.limits as ControlSettings["limits"]) ?? {},
    woken: (item.woken as ControlSettings["woken"]) ?? {},
    version: Number(item.version ?? 0),
  };
}

const freshWoken = (woken: Record<string, number>, now: number): Record<string, number> =>
  Object.fromEntries(Object.entries(woken).filter(([, at]) => now - at < GATE_LIMITS.wakeTombstoneMs));
