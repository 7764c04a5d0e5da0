/**
 * The one adapter from a lifecycle Change (core/lifecycle.ts) to DynamoDB: one conditional write
 * that sets exactly what changed, answers the state DynamoDB stored (ReturnValues ALL_NEW, so
 * what is returned and what is stored cannot drift apart), and recognizes its own write.
 *
 * Own-write recognition (invariant 9): the network loses replies to writes DynamoDB applied, and
 * the SDK resends them; the resend then fails its condition (the version or the state moved, by
 * our own hand). So every write carries a fresh nonce (`lastWrite`; a claim also as `claimId`,
 * a create as `origin`, which later writes do not overwrite), and after a condition failure the
 * adapter reads the item again: if it carries the nonce, the write was ours and landed, and it
 * answers as if the reply had arrived.
 *
 * Values too large for the record (core/values.ts) are written first, each as an item of its own
 * keyed by this write's nonce, and the record then points at them; the answer carries them.
 *
 * Inputs: a Change and how to recognize it. Output: `{applied: true, job}` (the stored state) or
 * `{applied: false, found}` (the state that refused it). Throws StoreRejectedError for a write
 * DynamoDB refuses for good, TooLargeError before sending an item over DynamoDB's limit.
 */
import { randomBytes } from "node:crypto";
import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { TooLargeError, StoreRejectedError } from "./errors.js";
import { Expr, isConditionFailure, putNew } from "./expr.js";
import { ITEM_LIMIT_BYTES, itemBytes } from "./item-size.js";
import type { Job } from "./job.js";
import type { Change } from "./lifecycle.js";
import { detailItem } from "./attempt-detail.js";
import { holdPartition, holdRank } from "./gates.js";
import { dueShard, waitShard } from "./shards.js";
import { carryValues, placeValues, recordValues, sameValue, ValueStore } from "./values.js";

/** Which stored attribute proves a write was ours: creates and claims keep theirs past later writes. */
export type Recognize = "origin" | "claim" | "write";
const NONCE_ATTR: Record<Recognize, string> = { origin: "origin", claim: "claimId", write: "lastWrite" };

/** Attributes only the store reads (indexes, nonces); they never leave it. */
export const STORE_ONLY = ["dueShard", "waitShard", "holdOn", "holdRank", "createdKey", "lastWrite", "claimId", "origin"] as const;

/** The sparse indexes' partition keys: each goes with the states that put a job in its index. */
const STATE_INDEX_KEYS: readonly string[] = ["dueShard", "waitShard", "holdOn", "holdRank"];

/** Every attribute a job may lack in some state: a write that changes the state removes those the new state has not. */
const OPTIONAL = [
  "runAt",
  "dueAt",
  "readyAt",
  "rings",
  "dueShard",
  "waitShard",
  "firstStartedAt",
  "startedAt",
  "heartbeatAt",
  "leaseExpiresAt",
  "workerId",
  "cancelRequested",
  "cancelRequestedAt",
  "finishedAt",
  "expiresAt",
  "result",
  "error",
  "progress",
  "checkpoint",
  "refs",
  "waitingSince",
  "hold",
  "slots",
] as const;

export interface WriteOptions {
  writeId?: string;
  /** Bounds the whole write (its value puts, the record write, a read-back), the SDK's retries included. */
  timeoutMs?: number;
}

/** One Put of a TransactWriteItems request, in the document client's shape. */
export interface TransactPut {
  Put: { TableName: string; Item: Record<string, unknown>; ConditionExpression?: string; ExpressionAttributeNames?: Record<string, string>; ExpressionAttributeValues?: Record<string, unknown> };
}

export type WriteResult<J extends Job> = { applied: true; job: J } | { applied: false; found: Job | undefined };

/** 72 random bits: unique among one job's writes, and short, since every record carries three (invariant 11). */
export const newNonce = (): string => randomBytes(9).toString("base64url");

export const createdKey = (createdAt: number, id: string): string => `${new Date(createdAt).toISOString()}#${id}`;

/** The stored form of a job's record: its own fields (large values by ref) plus what the indexes need. */
export function itemOf(job: Job): Record<string, unknown> {
  const item: Record<string, unknown> = { ...job, ...recordValues(job) };
  if (job.status === "queued" || job.status === "running" || job.status === "waiting") item.dueShard = dueShard(job.queue, job.status, job.id);
  // Only a queued job waits for a claim; with readyAt (a job field) it makes the wait index's entry.
  // A job held by a pause or a concurrency limit is not claimable: it is in the held index instead.
  const holdOn = job.status === "queued" && job.hold ? holdPartition(job.hold) : undefined;
  if (job.status === "queued" && !holdOn) item.waitShard = waitShard(job.queue, job.id);
  if (holdOn && job.status === "queued") {
    item.holdOn = holdOn;
    item.holdRank = holdRank(job.hold!, job.priority);
  }
  return item;
}

/** A stored item as a job: store-only attributes dropped, defaults for items older than them. */
export function toJob(item: Record<string, unknown>): Job {
  const copy: Record<string, unknown> = { ...item };
  for (const k of STORE_ONLY) delete copy[k];
  if (!Array.isArray(copy.history)) copy.history = [];
  if (typeof copy.version !== "number") copy.version = 0;
  return copy as unknown as Job;
}

export interface WriterClock {
  now: () => number;
  retentionDays: number;
}

export class ChangeWriter {
  readonly values: ValueStore;

  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly clock: WriterClock,
    /** TEST-ONLY: drops the condition from `succeed` (see unsafeUnfencedSucceed in store.ts). */
    private readonly unfencedSucceed: () => boolean = () => false,
  ) {
    this.values = new ValueStore(db, table);
  }

  async read(id: string, signal?: AbortSignal): Promise<Record<string, unknown> | undefined> {
    const out = await this.db.send(new GetCommand({ TableName: this.table, Key: { id }, ConsistentRead: true }), within(signal));
    return out.Item;
  }

  /**
   * `o.writeId` is the nonce: a caller that retries the same logical write (the completer of an
   * attempt's last write) passes the same one each time, so an earlier try that landed is still
   * recognized as its own.
   */
  async write<J extends Job>(change: Change<J>, recognize: Recognize, o: WriteOptions = {}): Promise<WriteResult<J>> {
    const nonce = o.writeId ?? newNonce();
    // One deadline for every call the write makes: a heartbeat bounded to a third of its lease stays so.
    const signal = o.timeoutMs !== undefined ? AbortSignal.timeout(o.timeoutMs) : undefined;
    const placed = placeValues(change.prev, change.next, nonce, this.clock.now(), this.clock.retentionDays);
    const c: Change<J> = { ...change, next: placed.next };
    const extra: Record<string, unknown> = { lastWrite: nonce, ...(recognize === "write" ? {} : { [NONCE_ATTR[recognize]]: nonce }) };
    try {
      checkRecordSize({ ...(c.prev ? itemOf(c.prev) : {}), ...itemOf(c.next), ...extra });
      // Before the record that names them: a record never points at a value that is not there.
      const puts = change.detail ? [...placed.puts, detailItem(c.next, change.detail, this.clock.now(), this.clock.retentionDays)] : placed.puts;
      if (puts.length) await this.values.put(puts, signal);
      const job = c.guard.kind === "absent" ? await this.put(c, extra, signal) : await this.update(c, extra, signal);
      return { applied: true, job: carryValues(job, c.next) };
    } catch (e) {
      if (!isConditionFailure(e)) throw asPermanent(e);
    }
    const stored = await this.read(c.next.id, signal);
    if (stored && stored[NONCE_ATTR[recognize]] === nonce) return { applied: true, job: carryValues(toJob(stored) as J, c.next) };
    return { applied: false, found: stored ? carryValues(toJob(stored), c.prev) : undefined };
  }

  private async put<J extends Job>(c: Change<J>, extra: Record<string, unknown>, signal?: AbortSignal): Promise<J> {
    await this.db.send(new PutCommand(this.putOf(c, extra)), within(signal));
    return c.next;
  }

  /** A new job's record as one conditional Put: the item `write` would create, never over another. */
  private putOf(c: Change, extra: Record<string, unknown>): TransactPut["Put"] {
    return putNew(this.table, { ...itemOf(c.next), createdKey: createdKey(c.next.createdAt, c.next.id), ...extra });
  }

  /**
   * A create as TransactWriteItems entries, written by the caller inside its own transaction
   * (core/enqueue.ts): the job's value items first (an input too large for the record), then the
   * record, each a Put conditional on its key being new. The same record `write` would make, so
   * the store reads, claims and sweeps it like any other. No I/O.
   */
  createEntries<J extends Job>(change: Change<J>): { job: J; entries: TransactPut[] } {
    if (change.guard.kind !== "absent") throw new Error("only a create can be written inside a caller's transaction");
    const nonce = newNonce();
    const placed = placeValues(change.prev, change.next, nonce, this.clock.now(), this.clock.retentionDays);
    const c: Change<J> = { ...change, next: placed.next };
    const extra = { lastWrite: nonce, [NONCE_ATTR.origin]: nonce };
    checkRecordSize({ ...itemOf(c.next), ...extra });
    const values: TransactPut[] = placed.puts.map((item) => ({ Put: putNew(this.table, { ...item }) }));
    return { job: carryValues(c.next, change.next), entries: [...values, { Put: this.putOf(c, extra) }] };
  }

  private async update<J extends Job>(c: Change<J>, extra: Record<string, unknown>, signal?: AbortSignal): Promise<J> {
    const next = itemOf(c.next);
    const x = diff(c, next);
    for (const [k, v] of Object.entries(extra)) x.set(k, v);
    x.add("version", 1);
    this.condition(c, x);
    // The SDK's resend of a write that landed must fail, so its nonce is recognized and it is
    // applied once: a fenced write's resend would otherwise pass its condition again.
    x.when(`attribute_not_exists(${x.name("lastWrite")}) OR ${x.name("lastWrite")} <> ${x.value(extra.lastWrite)}`);
    const out = await this.db.send(
      new UpdateCommand({ TableName: this.table, Key: { id: c.next.id }, ...x.params(), ReturnValues: "ALL_NEW" }),
      within(signal),
    );
    return toJob(out.Attributes ?? {}) as J;
  }

  private condition(c: Change, x: Expr): void {
    const g = c.guard;
    if (c.transition === "succeed" && this.unfencedSucceed()) return;
    if (g.kind === "fence") {
      x.eq("token", g.token).eq("status", "running");
      if (g.notCancelled) x.when(`attribute_not_exists(${x.name("cancelRequested")})`);
    } else if (g.kind === "version") {
      // Items written before versions existed count as version 0.
      if (g.version === 0) x.when(`attribute_not_exists(${x.name("version")}) OR ${x.name("version")} = ${x.value(0)}`);
      else x.eq("version", g.version);
    }
  }
}

/**
 * SET what differs from what the writer believes is stored; REMOVE what the new state lacks. A
 * write that leaves the state removes every optional attribute the new state has not (a worker's
 * view may miss a cancel mark someone else added); one that stays in its state (a heartbeat)
 * removes only what it knew of, so it never wipes another writer's mark.
 */
function diff(c: Change, next: Record<string, unknown>): Expr {
  const prev = c.prev ? itemOf(c.prev) : {};
  const x = new Expr();
  for (const [k, v] of Object.entries(next)) {
    if (k === "id" || k === "version" || v === undefined) continue;
    if (!sameValue(prev[k], v)) x.set(k, v);
  }
  const leaving = c.prev?.status !== c.next.status;
  const candidates = leaving || c.guard.kind === "version" ? [...new Set([...OPTIONAL, ...Object.keys(prev)])] : Object.keys(prev);
  for (const k of candidates) {
    // The key, the version (ADDed) and the nonces are never removed; an index key goes with its state.
    const kept = k === "id" || k === "version" || (!STATE_INDEX_KEYS.includes(k) && (STORE_ONLY as readonly string[]).includes(k));
    if (kept) continue;
    if (next[k] === undefined && (leaving || prev[k] !== undefined)) x.remove(k);
  }
  return x;
}

/** The record holds no large value, so only a runaway of its small fields could reach the limit. */
function checkRecordSize(item: Record<string, unknown>): void {
  const bytes = itemBytes(item);
  if (bytes > ITEM_LIMIT_BYTES) {
    throw new TooLargeError(`the job's record would be ${bytes} bytes by DynamoDB's rules; its limit is ${ITEM_LIMIT_BYTES}`, bytes, ITEM_LIMIT_BYTES);
  }
}

/** A write's deadline on top of the client's own per-request bound (a heartbeat gets at most a third of its lease). */
const within = (signal: AbortSignal | undefined) => (signal ? { abortSignal: signal } : undefined);

/**
 * DynamoDB's permanent refusals (ValidationException) and the document client's marshalling
 * errors become StoreRejectedError; anything else (throttles, 5xx, timeouts) stays as it is.
 */
function asPermanent(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const marshalling = /^(Unsupported type passed|Special numeric value|Number .* (greater|lesser) than)/.test(e.message);
  if (e.name === "ValidationException" || marshalling) return new StoreRejectedError(`DynamoDB refused the write: ${e.message}`);
  return e;
}
