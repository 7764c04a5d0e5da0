/**
 * Which job ids a listing page holds, newest first, and the cursor to the next page: the index
 * reads behind `JobStore.list` (which batch-gets the jobs themselves).
 *
 * With an owner the page comes from that caller's partition of the owner index; without one
 * (the admin, the dashboard) from the status index, one partition per status, merged. Status
 * and type filters that are not the partition key apply after DynamoDB read the items, so a
 * read can come back with fewer matches than it read, or none. Two rules keep every match on
 * exactly one page:
 *
 * - A page that found fewer matches than the limit (even none) still hands out a cursor while
 *   any partition has unread items: "nothing here yet" is not "nothing left".
 * - A partition that stopped reading early (its page budget ran out, or it filled the page)
 *   has seen everything down to the position it stopped at, its boundary, and nothing below.
 *   Merged, a page may only hold keys at or above the highest boundary of the partitions that
 *   have more, and the cursor never goes below it; a key from a partition that read deeper is
 *   left for a later page, where it is read again. Otherwise the next page would start below
 *   items the early-stopping partition never read, and skip them for ever.
 *
 * Each request reads at most MAX_PAGES_PER_PARTITION pages from each partition, so a sparse
 * filter costs several requests, never one table-sized read. Every cursor is a position
 * strictly below the request's own, so following cursors always ends.
 */
import { QueryCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { LIMITS, TABLE, type QueueName } from "./config.js";
import { ValidationError } from "./errors.js";
import { STATUSES, type Status } from "./job.js";

export interface ListFilter {
  owner?: string;
  status?: Status;
  type?: string;
  /** Applied to the records, not here: the indexes do not project the queue (JobStore.list). */
  queue?: QueueName;
  /** Epoch ms, inclusive: created at or after. */
  createdAfter?: number;
  /** Epoch ms, exclusive: created before. */
  createdBefore?: number;
}

export interface KeyPage {
  /** Job ids, newest first. */
  ids: string[];
  /** Pass to the next call; null once nothing is left. */
  nextCursor: string | null;
}

/** Index pages one request may read from each partition. */
export const MAX_PAGES_PER_PARTITION = 10;

interface Key {
  id: string;
  createdKey: string;
}

interface PartitionRead {
  keys: Key[];
  /** The createdKey of the last item read when the partition has more: it saw everything at or above it. */
  boundary: string | undefined;
}

/**
 * One page of job ids matching `filter`, newest first, after `cursor` (a nextCursor from an
 * earlier page), at most `limit` of them. May be empty with a non-null cursor: keep following.
 */
export async function listJobKeys(
  db: DynamoDBDocumentClient,
  table: string,
  filter: ListFilter,
  cursor: string | null | undefined,
  limit: number,
): Promise<KeyPage> {
  if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.listMax) {
    throw new ValidationError(`limit must be a whole number from 1 to ${LIMITS.listMax}`);
  }
  // The time range is a range of createdKey (`<ISO time>#<ulid>`): a bare ISO time sorts below
  // every key created at that millisecond, so `< iso(before)` excludes them and `>= iso(after)` keeps them.
  const fromCursor = cursor ? decodeCursor(cursor) : undefined;
  const untilKey = filter.createdBefore !== undefined ? new Date(filter.createdBefore).toISOString() : undefined;
  const before = fromCursor !== undefined && untilKey !== undefined ? (fromCursor < untilKey ? fromCursor : untilKey) : (fromCursor ?? untilKey);
  const after = filter.createdAfter !== undefined ? new Date(filter.createdAfter).toISOString() : undefined;
  if (before !== undefined && after !== undefined && before <= after) return { ids: [], nextCursor: null };
  const reads = filter.owner
    ? [await readPartition(db, table, TABLE.ownerIndex.name, TABLE.ownerIndex.partitionKey, filter.owner, { before, after }, limit, filter)]
    : await Promise.all(
        (filter.status ? [filter.status] : STATUSES).map((s) =>
          readPartition(db, table, TABLE.statusIndex.name, TABLE.statusIndex.partitionKey, s, { before, after }, limit, filter),
        ),
      );

  // The highest position down to which every partition with more items has read.
  let boundary: string | undefined;
  for (const r of reads) if (r.boundary !== undefined && (boundary === undefined || r.boundary > boundary)) boundary = r.boundary;

  const eligible = reads
    .flatMap((r) => r.keys)
    .filter((k) => boundary === undefined || k.createdKey >= boundary)
    .sort((a, b) => (a.createdKey < b.createdKey ? 1 : a.createdKey > b.createdKey ? -1 : 0));
  const page = eligible.slice(0, limit);
  const last = page[page.length - 1];
  // More matches were read than fit: the next page starts right below this one's last key.
  if (eligible.length > limit && last) return { ids: page.map((k) => k.id), nextCursor: encodeCursor(last.createdKey) };
  // Everything at or above the boundary was read and every match there is on this page.
  if (boundary !== undefined) return { ids: page.map((k) => k.id), nextCursor: encodeCursor(boundary) };
  return { ids: page.map((k) => k.id), nextCursor: null };
}

/** Up to MAX_PAGES_PER_PARTITION index pages of one partition, below `before`, newest first, until `limit` matches. */
async function readPartition(
  db: DynamoDBDocumentClient,
  table: string,
  index: string,
  pkName: string,
  pk: string,
  bounds: { before: string | undefined; after: string | undefined },
  limit: number,
  filter: ListFilter,
): Promise<PartitionRead> {
  const { before, after } = bounds;
  const names: Record<string, string> = { "#p": pkName };
  const values: Record<string, unknown> = { ":p": pk };
  const filters: string[] = [];
  // On the status index the status is the partition; on the owner index it is a filter.
  if (filter.owner && filter.status) {
    names["#s"] = "status";
    values[":s"] = filter.status;
    filters.push("#s = :s");
  }
  if (filter.type) {
    names["#t"] = "type";
    values[":t"] = filter.type;
    filters.push("#t = :t");
  }
  if (before || after) names["#k"] = "createdKey";
  if (before) values[":before"] = before;
  if (after) values[":after"] = after;
  // One condition on the sort key at most: with both bounds BETWEEN, whose upper end is
  // inclusive, so the key equal to `before` (a cursor's own) is dropped below.
  const range = before && after ? "#p = :p AND #k BETWEEN :after AND :before" : before ? "#p = :p AND #k < :before" : after ? "#p = :p AND #k >= :after" : "#p = :p";
  const keys: Key[] = [];
  let start: Record<string, unknown> | undefined;
  for (let page = 0; page < MAX_PAGES_PER_PARTITION && keys.length < limit; page++) {
    const r = await db.send(
      new QueryCommand({
        TableName: table,
        IndexName: index,
        KeyConditionExpression: range,
        ...(filters.length ? { FilterExpression: filters.join(" AND ") } : {}),
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ScanIndexForward: false,
        Limit: limit + 1,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    for (const it of r.Items ?? []) if (!before || (it.createdKey as string) < before) keys.push({ id: it.id as string, createdKey: it.createdKey as string });
    start = r.LastEvaluatedKey;
    if (!start) break;
  }
  if (!start) return { keys, boundary: undefined };
  // An index's LastEvaluatedKey holds the index's keys, createdKey among them: the last item read.
  const boundary = start.createdKey;
  if (typeof boundary !== "string") throw new Error(`the ${index} index's LastEvaluatedKey has no createdKey`);
  return { keys, boundary };
}

const CREATED_KEY = /^\d{4}-\d\d-\d\dT[\d:.]+Z#[0-9A-Z]{26}$/;

/** A cursor is base64url of `{"k": createdKey}`; the format cursors have always had. */
export function encodeCursor(createdKey: string): string {
  return Buffer.from(JSON.stringify({ k: createdKey }), "utf8").toString("base64url");
}

/** The createdKey in a cursor this API gave out; anything else is a ValidationError. */
export function decodeCursor(cursor: string): string {
  const bad = new ValidationError("cursor is not one this API gave out; pass nextCursor from a previous page unchanged");
  if (cursor.length > 300 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    const k = (parsed as { k?: unknown })?.k;
    if (typeof k !== "string" || !CREATED_KEY.test(k)) throw bad;
    return k;
  } catch {
    throw bad;
  }
}
