/**
 * A write log of one DynamoDB client, taken on the wire (a client middleware), for runs where many
 * writers share the client at once (bench/fanin.ts). Each write the client sends becomes one
 * event: its key, when its answer came back, whether its condition refused it, the job status
 * before and after it, and what AWS would bill for it:
 *
 * - table units as the emulator reports them (ReturnConsumedCapacity TOTAL: 1 per KB of the
 *   larger of the old and new item, rounded up);
 * - a write refused by its condition: the size of the item it found, at least 1 (AWS bills those;
 *   the emulator reports nothing);
 * - index units from the item before and after the write, by core/schema.ts's index definitions
 *   (capacity.ts indexWrites; dynalite reports none).
 *
 * `CapacityMeter` (./capacity.ts) reads each item before and after a write, which is only right
 * when writes are sequential and would double the reads of a large run. This meter instead keeps
 * each item's image as the wire last answered it (a put's item, an update's ALL_NEW attributes,
 * which every job-record and fan-in write asks for) and serializes the writes to each job record
 * in the middleware, so the image a write starts from is exactly the record it changes, whatever
 * runs at once on other keys. The items beside the records (values, a flow's specs and fan-in
 * items) hold no index attribute, so their index units are nil whatever order their writes land
 * in; they are not serialized, and any write that finds one with an index attribute is counted
 * (`unserializedIndexed`). A record it has no image of is read (consistently, through a separate
 * client) before the write, unless the write is a put conditional on the record being absent and
 * it succeeds. One record write in `checkEvery` is also checked against such a read: `mismatches` counts
 * images that differed. The client's writers must be the item's only writers (true for one
 * process's store on an emulator of its own).
 *
 * Reads are counted by command and billed by AWS's rules (see ReadTotals).
 */
import { GetCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { TABLE } from "../../core/config.js";
import { tableDefinition } from "../../core/schema.js";
import { isJobId } from "../../core/store.js";
import { indexWrites, itemSize } from "./capacity.js";

type Item = Record<string, unknown>;

const WRITES = new Set(["PutItemCommand", "UpdateItemCommand", "DeleteItemCommand"]);
const READS = new Set(["GetItemCommand", "QueryCommand", "ScanCommand", "BatchGetItemCommand"]);
/** Writes this meter cannot attribute to one key: counted, and reported as unmetered. */
const MULTI_KEY_WRITES = new Set(["BatchWriteItemCommand", "TransactWriteItemsCommand"]);

export interface WriteEvent {
  key: string;
  command: "Put" | "Update" | "Delete";
  /** Epoch ms (sub-ms resolution) when the answer came back. */
  at: number;
  /** Refused by its condition. */
  refused: boolean;
  /** `status` of the item before and after the write (undefined: absent, or not a job record). */
  before?: string;
  after?: string;
  tableWru: number;
  gsiWru: number;
  gsiWruByIndex: Record<string, number>;
}

export interface ReadEvent {
  key: string;
  rru: number;
  at: number;
}

export interface ReadTotals {
  calls: Record<string, number>;
  /** By AWS's rules: each item of a GetItem or BatchGetItem rounded up to 4 KB on its own (a missing one still 1), halved when eventually consistent; a Query's as the emulator reports it (its items' sizes summed, then rounded). */
  rru: number;
  /** As dynalite reports them (it rounds a BatchGetItem's items together). */
  emulatorRru: number;
}

export const nowMs = (): number => performance.timeOrigin + performance.now();

export class WireMeter {
  events: WriteEvent[] = [];
  /** Each item a GetItem or BatchGetItem read (a Query or Scan as one, keyed by its command and index), with its units and when the answer came back. */
  readEvents: ReadEvent[] = [];
  reads: ReadTotals = { calls: {}, rru: 0, emulatorRru: 0 };
  /** Commands the meter cannot bill (multi-key writes), and writes that failed for another reason than their condition, by name. */
  unmetered: Record<string, number> = {};
  /** Images checked against a consistent read, and how many of them differed from it. */
  checked = 0;
  mismatches = 0;
  /** Items read because no image of them was known. */
  imageReads = 0;
  /** Writes to an item outside a job record (not serialized) that had an index attribute: their index units may be off. */
  unserializedIndexed = 0;
  private readonly images = new Map<string, Item | undefined>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private writes = 0;

  constructor(
    client: DynamoDBDocumentClient,
    private readonly snapshot: { doc: DynamoDBDocumentClient; table: string },
    private readonly checkEvery = 25,
  ) {
    client.middlewareStack.add(
      (next: (a: any) => Promise<any>, context: { commandName?: string }) => async (args: any) => {
        const name = context.commandName ?? "unknown";
        const input = args.input as Record<string, unknown>;
        input.ReturnConsumedCapacity ??= "TOTAL";
        if (MULTI_KEY_WRITES.has(name)) this.unmetered[name] = (this.unmetered[name] ?? 0) + 1;
        if (READS.has(name)) {
          this.reads.calls[name] = (this.reads.calls[name] ?? 0) + 1;
          const out = await next(args);
          const reported = consumed(out.output?.ConsumedCapacity);
          this.reads.emulatorRru += reported;
          const at = nowMs();
          const items = readUnits(name, input, out.output);
          if (items) for (const r of items) this.readEvents.push({ ...r, at });
          else this.readEvents.push({ key: `${name.replace(/Command$/, "")}:${String(input.IndexName ?? "table")}`, rru: reported, at });
          this.reads.rru += items ? items.reduce((a, r) => a + r.rru, 0) : reported;
          return out;
        }
        if (!WRITES.has(name)) return next(args);
        const key = String(writtenKey(input)?.[TABLE.partitionKey] ?? "?");
        // A job record is serialized; the items beside it (values, specs, fan-in) are not, since
        // they hold no index attribute (checked: `unserializedIndexed`), and a hot fan-in item
        // must take its concurrent writes as DynamoDB would, not one round trip after another.
        return isJobId(key) ? this.serialized(key, () => this.metered(name, key, input, next, args, true)) : this.metered(name, key, input, next, args, false);
      },
      { step: "initialize", name: `wireMeter${Math.random()}` },
    );
  }

  /** Forgets the events and reads counted so far (the item images stay: they are still true). */
  reset(): void {
    this.events = [];
    this.readEvents = [];
    this.reads = { calls: {}, rru: 0, emulatorRru: 0 };
    this.unmetered = {};
    this.checked = this.mismatches = this.imageReads = this.unserializedIndexed = 0;
  }

  /** Runs `fn` after every earlier write to `key` through this client has been answered. */
  private serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return run;
  }

  private async metered(name: string, key: string, input: Record<string, unknown>, next: (a: any) => Promise<any>, args: any, serialized: boolean): Promise<any> {
    const command = name.replace(/ItemCommand$/, "") as WriteEvent["command"];
    const createOnly = command === "Put" && onlyIfAbsent(input);
    const check = serialized && ++this.writes % this.checkEvery === 0;
    let known = this.images.has(key);
    let before = this.images.get(key);
    // An item beside the records is not read for its image: its writes overlap, and it has no index units to compute.
    if ((check && known) || (!known && !createOnly && serialized)) {
      const read = await this.read(key);
      if (known) {
        this.checked++;
        if (!same(before, read)) this.mismatches++;
      } else this.imageReads++;
      before = read;
      known = true;
    }
    try {
      const out = await next(args);
      const at = nowMs();
      const returned = out.output?.Attributes as Item | undefined;
      // A put that was conditional on absence and succeeded found nothing.
      if (!known) before = undefined;
      const after = command === "Delete" ? undefined : command === "Put" ? (input.Item as Item) : input.ReturnValues === "ALL_NEW" && returned ? returned : await this.read(key);
      this.images.set(key, after);
      if (!serialized && (hasIndexKey(before) || hasIndexKey(after))) this.unserializedIndexed++;
      const byIndex = indexWrites(before, after);
      this.events.push({
        key,
        command,
        at,
        refused: false,
        ...(typeof before?.status === "string" ? { before: before.status } : {}),
        ...(typeof after?.status === "string" ? { after: after.status } : {}),
        tableWru: consumed(out.output?.ConsumedCapacity),
        gsiWru: Object.values(byIndex).reduce((a, b) => a + b, 0),
        gsiWruByIndex: byIndex,
      });
      return out;
    } catch (e) {
      const at = nowMs();
      if ((e as Error)?.name !== "ConditionalCheckFailedException") {
        this.unmetered[`failed ${command} (${(e as Error)?.name})`] = (this.unmetered[`failed ${command} (${(e as Error)?.name})`] ?? 0) + 1;
        this.images.delete(key); // it may or may not have landed
        throw e;
      }
      if (!known && serialized) {
        before = await this.read(key);
        this.imageReads++;
        this.images.set(key, before);
      }
      this.events.push({
        key,
        command,
        at,
        refused: true,
        ...(typeof before?.status === "string" ? { before: before.status, after: before.status } : {}),
        // AWS bills a refused conditional write by the size of the item it found, at least 1 WRU.
        tableWru: before ? Math.max(1, Math.ceil(itemSize(before) / 1024)) : 1,
        gsiWru: 0,
        gsiWruByIndex: {},
      });
      throw e;
    }
  }

  private async read(key: string): Promise<Item | undefined> {
    const out = await this.snapshot.doc.send(new GetCommand({ TableName: this.snapshot.table, Key: { [TABLE.partitionKey]: key }, ConsistentRead: true }));
    return out.Item;
  }
}

/** Two item images alike, whatever their key order (sets compared by their members). */
function same(a: Item | undefined, b: Item | undefined): boolean {
  return canonical(a) === canonical(b);
}
const canonical = (v: unknown): string =>
  JSON.stringify(v, (_k, x) => (x instanceof Set ? [...x].sort() : x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([p], [q]) => (p < q ? -1 : 1))) : x)) ?? "undefined";

const INDEX_KEYS = [...new Set((tableDefinition("x").GlobalSecondaryIndexes ?? []).flatMap((g) => (g.KeySchema ?? []).map((k) => k.AttributeName!)))];
const hasIndexKey = (item: Item | undefined): boolean => !!item && INDEX_KEYS.some((k) => item[k] !== undefined);

/** A put conditional on nothing but the item's absence (attribute_not_exists of its partition key): if it succeeds, it found nothing. */
function onlyIfAbsent(input: Record<string, unknown>): boolean {
  const m = /^\(*attribute_not_exists\(([#\w]+)\)\)*$/.exec(String(input.ConditionExpression ?? "").trim());
  if (!m) return false;
  const names = (input.ExpressionAttributeNames ?? {}) as Record<string, string>;
  return (names[m[1]!] ?? m[1]) === TABLE.partitionKey;
}

function writtenKey(input: Record<string, unknown>): Item | undefined {
  const k = input.Key as Item | undefined;
  if (k) return k;
  const item = input.Item as Item | undefined;
  return item ? { [TABLE.partitionKey]: item[TABLE.partitionKey] } : undefined;
}

/** Each item a GetItem or BatchGetItem read, with its units by AWS's rules; undefined for other reads. */
function readUnits(name: string, input: Record<string, unknown>, output: Record<string, unknown> | undefined): { key: string; rru: number }[] | undefined {
  const pk = TABLE.partitionKey;
  const perItem = (item: Item | undefined) => (item ? Math.max(1, Math.ceil(itemSize(item) / 4096)) : 1);
  if (name === "GetItemCommand") {
    const key = String((input.Key as Item | undefined)?.[pk] ?? "?");
    return [{ key, rru: perItem(output?.Item as Item | undefined) * (input.ConsistentRead ? 1 : 0.5) }];
  }
  if (name !== "BatchGetItemCommand") return undefined;
  const out: { key: string; rru: number }[] = [];
  for (const [table, req] of Object.entries((input.RequestItems ?? {}) as Record<string, { Keys?: Item[]; ConsistentRead?: boolean }>)) {
    const found = new Map((((output?.Responses as Record<string, Item[]> | undefined)?.[table] ?? []) as Item[]).map((it) => [String(it[pk]), it]));
    const unprocessed = new Set(((output?.UnprocessedKeys as Record<string, { Keys?: Item[] }> | undefined)?.[table]?.Keys ?? []).map((k) => String(k[pk])));
    const factor = req.ConsistentRead ? 1 : 0.5;
    for (const k of req.Keys ?? []) {
      const key = String(k[pk]);
      if (!unprocessed.has(key)) out.push({ key, rru: perItem(found.get(key)) * factor });
    }
  }
  return out;
}

function consumed(c: unknown): number {
  const list = Array.isArray(c) ? c : c ? [c] : [];
  return list.reduce((n: number, x: { CapacityUnits?: number }) => n + (x.CapacityUnits ?? 0), 0);
}
