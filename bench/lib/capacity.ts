/**
 * Meters what a DynamoDB client consumes, the way AWS would bill it: request units on the table
 * as the emulator reports them (ReturnConsumedCapacity TOTAL), and the writes the global
 * secondary indexes take, which dynalite does not report, computed from the index definitions in
 * core/schema.ts by comparing each written item before and after the write (AWS's documented
 * rules: an item entering or leaving an index costs one index write, a changed index key costs
 * two, a changed projected attribute one; each rounded up to 1 KB).
 */
import type { GlobalSecondaryIndex } from "@aws-sdk/client-dynamodb";
import { GetCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { TABLE } from "../../core/config.js";
import { tableDefinition } from "../../core/schema.js";
import { isValueKey } from "../../core/values.js";

export interface CapacityTotals {
  /** Commands sent, by command name. */
  calls: Record<string, number>;
  /** Write request units the table itself consumed, as the emulator reported them. */
  tableWru: number;
  /** Of tableWru, what writes to value items took (core/values.ts: a job's large input, result or checkpoint, whose key has a `#`). */
  valueWru: number;
  /** Write units failed conditional writes consume (AWS bills them; the emulator reports none). */
  failedWriteWru: number;
  /** Index write units, computed from the index definitions. */
  gsiWru: number;
  /** Per index, for the curious. */
  gsiWruByIndex: Record<string, number>;
  /** Read request units, as the emulator reported them. */
  rru: number;
  /** Conditional writes refused by their condition. */
  conditionFailures: number;
}

export const emptyTotals = (): CapacityTotals => ({
  calls: {},
  tableWru: 0,
  valueWru: 0,
  failedWriteWru: 0,
  gsiWru: 0,
  gsiWruByIndex: {},
  rru: 0,
  conditionFailures: 0,
});

export const totalWru = (t: CapacityTotals): number => t.tableWru + t.failedWriteWru + t.gsiWru;
export const totalCalls = (t: CapacityTotals): number => Object.values(t.calls).reduce((a, b) => a + b, 0);
export const writeCalls = (t: CapacityTotals): number =>
  Object.entries(t.calls)
    .filter(([k]) => WRITES.has(k))
    .reduce((a, [, n]) => a + n, 0);

const WRITES = new Set(["PutItemCommand", "UpdateItemCommand", "DeleteItemCommand", "BatchWriteItemCommand"]);
const READS = new Set(["GetItemCommand", "QueryCommand", "ScanCommand", "BatchGetItemCommand"]);

type Item = Record<string, unknown>;

interface IndexShape {
  name: string;
  keys: string[];
  /** undefined: every attribute (projection ALL). */
  projected?: string[];
}

const INDEXES: IndexShape[] = (tableDefinition("x").GlobalSecondaryIndexes ?? []).map((g: GlobalSecondaryIndex) => {
  const keys = (g.KeySchema ?? []).map((k) => k.AttributeName!);
  const p = g.Projection;
  return {
    name: g.IndexName!,
    keys,
    ...(p?.ProjectionType === "ALL" ? {} : { projected: [TABLE.partitionKey, ...keys, ...(p?.NonKeyAttributes ?? [])] }),
  };
});

export class CapacityMeter {
  readonly totals: CapacityTotals = emptyTotals();
  /** Index writes are computed only when a snapshot client is given (sequential use: the before/after reads race otherwise). */
  constructor(
    client: DynamoDBDocumentClient,
    private readonly snapshot?: { doc: DynamoDBDocumentClient; table: string },
  ) {
    client.middlewareStack.add(
      (next: (a: any) => Promise<any>, context: { commandName?: string }) => async (args: any) => {
        const name = context.commandName ?? "unknown";
        this.totals.calls[name] = (this.totals.calls[name] ?? 0) + 1;
        const input = args.input as Record<string, unknown>;
        input.ReturnConsumedCapacity ??= "TOTAL";
        const key = this.snapshot && WRITES.has(name) && name !== "BatchWriteItemCommand" ? writtenKey(input) : undefined;
        const before = key ? await this.read(key) : undefined;
        try {
          const out = await next(args);
          const units = consumed(out.output?.ConsumedCapacity);
          if (WRITES.has(name)) this.totals.tableWru += units;
          if (WRITES.has(name) && isValueKey(String(writtenKey(input)?.[TABLE.partitionKey] ?? ""))) this.totals.valueWru += units;
          else if (READS.has(name)) this.totals.rru += units;
          if (key) this.addIndexWrites(before, await this.read(key));
          return out;
        } catch (e) {
          if ((e as Error).name === "ConditionalCheckFailedException") {
            this.totals.conditionFailures++;
            // AWS bills a refused conditional write by the size of the existing item, at least 1 WRU.
            this.totals.failedWriteWru += before ? Math.max(1, Math.ceil(itemSize(before) / 1024)) : 1;
          }
          throw e;
        }
      },
      { step: "initialize", name: `capacityMeter${Math.random()}` },
    );
  }

  reset(): CapacityTotals {
    const copy = structuredClone(this.totals);
    Object.assign(this.totals, emptyTotals());
    return copy;
  }

  private async read(key: Item): Promise<Item | undefined> {
    const out = await this.snapshot!.doc.send(new GetCommand({ TableName: this.snapshot!.table, Key: key, ConsistentRead: true }));
    return out.Item;
  }

  private addIndexWrites(before: Item | undefined, after: Item | undefined): void {
    for (const ix of INDEXES) {
      const units = indexWriteUnits(ix, before, after);
      if (!units) continue;
      this.totals.gsiWru += units;
      this.totals.gsiWruByIndex[ix.name] = (this.totals.gsiWruByIndex[ix.name] ?? 0) + units;
    }
  }
}

function writtenKey(input: Record<string, unknown>): Item | undefined {
  const k = (input.Key ?? undefined) as Item | undefined;
  if (k) return k;
  const item = input.Item as Item | undefined;
  return item ? { [TABLE.partitionKey]: item[TABLE.partitionKey] } : undefined;
}

function consumed(c: unknown): number {
  const list = Array.isArray(c) ? c : c ? [c] : [];
  return list.reduce((n: number, x: { CapacityUnits?: number }) => n + (x.CapacityUnits ?? 0), 0);
}

/** The index write units one item's change costs, by index (AWS's rules, as `CapacityMeter` applies them); empty when none. */
export function indexWrites(before: Item | undefined, after: Item | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const ix of INDEXES) {
    const units = indexWriteUnits(ix, before, after);
    if (units) out[ix.name] = units;
  }
  return out;
}

function indexWriteUnits(ix: IndexShape, before: Item | undefined, after: Item | undefined): number {
  const inIndex = (it: Item | undefined): it is Item => !!it && ix.keys.every((k) => it[k] !== undefined);
  const entry = (it: Item): Item => (ix.projected ? pick(it, ix.projected) : it);
  const units = (it: Item): number => Math.max(1, Math.ceil(itemSize(entry(it)) / 1024));
  const was = inIndex(before);
  const is = inIndex(after);
  if (!was && !is) return 0;
  if (!was) return units(after!);
  if (!is) return units(before!);
  const keyChanged = ix.keys.some((k) => !same(before![k], after![k]));
  if (keyChanged) return units(before!) + units(after!);
  return same(entry(before!), entry(after!)) ? 0 : units(after!);
}

const pick = (it: Item, attrs: string[]): Item => Object.fromEntries(attrs.filter((a) => it[a] !== undefined).map((a) => [a, it[a]]));
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** DynamoDB's item size: attribute names plus values, as AWS documents it. */
export function itemSize(item: Item): number {
  return Object.entries(item).reduce((n, [k, v]) => n + Buffer.byteLength(k) + valueSize(v), 0);
}

function valueSize(v: unknown): number {
  if (v === null || v === undefined || typeof v === "boolean") return 1;
  if (typeof v === "string") return Buffer.byteLength(v);
  if (typeof v === "number") {
    const digits = String(Math.abs(v)).replace(/e.*$/, "").replace(".", "").replace(/^0+/, "").replace(/0+$/, "");
    return Math.ceil(Math.max(1, digits.length) / 2) + 1;
  }
  if (Array.isArray(v)) return 3 + v.reduce((n: number, x) => n + 1 + valueSize(x), 0);
  // A number or string set (a flow's fan-in item): the sum of its members, as dynalite sizes it.
  if (v instanceof Set) return [...v].reduce((n: number, x) => n + valueSize(x), 0);
  if (typeof v === "object") {
    const o = v as Item;
    return 3 + Object.keys(o).length + itemSize(o);
  }
  return 0;
}
