/**
 * How long claimable jobs have waited without a claim: the reads behind the sweeper's
 * OldestUnclaimedSeconds and UnhelpedRepairs metrics and the stuck report's `notStarting`.
 *
 * The due index cannot answer this: a resend pushes a queued job's deadline, so it is overdue
 * for a moment and then looks fine again for a whole start deadline, however long it has waited.
 * The sparse, keys-only wait index (TABLE.waitIndex) holds each queued job once, sorted by
 * `readyAt`, which a resend keeps: the head of each partition is its oldest waiting job. One
 * Query per partition, ascending, with a small Limit, then one consistent batch read of those
 * records, because the index lags the table: an entry whose job was claimed (or moved queue, or
 * requeued with a new readyAt) a moment ago is dropped, and only the record's own figures count.
 */
import { QueryCommand, type DynamoDBDocumentClient, type QueryCommandOutput } from "@aws-sdk/lib-dynamodb";
import { batchGetAll } from "./aws.js";
import { QUEUE_NAMES, TABLE, type QueueName } from "./config.js";
import { readyAtOf, ringsOf, type Job } from "./job.js";
import { waitShards } from "./shards.js";
import { toJob } from "./store-write.js";

/** A queued job nobody has claimed since it became claimable. */
export interface UnclaimedJob {
  id: string;
  queue: QueueName;
  readyAt: number;
  /** now - readyAt, in ms. */
  waitedMs: number;
  /** Doorbells the sweeper re-rang since readyAt. */
  rings: number;
}

export interface WaitingOptions {
  /** Index entries read per partition and round: the sample each partition can give. */
  perShard?: number;
  /**
   * Rounds a partition reads on when every entry it gave was stale (claimed since the index was
   * written): its oldest job still waiting is further along. Bounded, so a sweep stays bounded.
   */
  rounds?: number;
}

const DEFAULTS: Required<WaitingOptions> = { perShard: 3, rounds: 3 };

/** Whole seconds waited, as the metric and the report show them. */
export const waitSeconds = (waitedMs: number): number => Math.max(0, Math.floor(waitedMs / 1000));

/**
 * Per queue, the oldest claimable (readyAt <= now) queued jobs, oldest first: up to
 * `perShard` from each of the queue's partitions, each confirmed by its record. An empty list:
 * nothing waits on that queue.
 */
export async function oldestWaiting(
  db: DynamoDBDocumentClient,
  table: string,
  now: number,
  opts: WaitingOptions = {},
): Promise<Record<QueueName, UnclaimedJob[]>> {
  const o = { ...DEFAULTS, ...opts };
  const found = new Map<string, UnclaimedJob>();
  let pending: { queue: QueueName; shard: string; start?: Record<string, unknown> }[] = QUEUE_NAMES.flatMap((queue) =>
    waitShards(queue).map((shard) => ({ queue, shard })),
  );
  for (let round = 0; round < o.rounds && pending.length; round++) {
    const pages: QueryCommandOutput[] = await Promise.all(
      pending.map((p) =>
        db.send(
          new QueryCommand({
            TableName: table,
            IndexName: TABLE.waitIndex.name,
            KeyConditionExpression: "#p = :p AND #r <= :now",
            ExpressionAttributeNames: { "#p": TABLE.waitIndex.partitionKey, "#r": TABLE.waitIndex.sortKey },
            ExpressionAttributeValues: { ":p": p.shard, ":now": now },
            Limit: o.perShard,
            ...(p.start ? { ExclusiveStartKey: p.start } : {}),
          }),
        ),
      ),
    );
    const ids = [...new Set(pages.flatMap((pg) => (pg.Items ?? []).map((it) => it[TABLE.partitionKey] as string)))];
    const records = ids.length ? await batchGetAll(db, table, ids.map((id) => ({ [TABLE.partitionKey]: id })), true) : [];
    const byId = new Map(records.map((it) => [it[TABLE.partitionKey] as string, toJob(it)]));
    const next: typeof pending = [];
    pending.forEach((p, i) => {
      const page = pages[i]!;
      let confirmed = 0;
      for (const it of page.Items ?? []) {
        const job = byId.get(it[TABLE.partitionKey] as string);
        const w = job && waitingOn(job, p.queue, now);
        if (!w) continue;
        confirmed++;
        found.set(w.id, w);
      }
      if (!confirmed && page.LastEvaluatedKey) next.push({ ...p, start: page.LastEvaluatedKey });
    });
    pending = next;
  }
  const out = Object.fromEntries(QUEUE_NAMES.map((q) => [q, [] as UnclaimedJob[]])) as Record<QueueName, UnclaimedJob[]>;
  for (const w of found.values()) out[w.queue].push(w);
  for (const q of QUEUE_NAMES) out[q].sort((a, b) => a.readyAt - b.readyAt || a.id.localeCompare(b.id));
  return out;
}

/**
 * The record's word on an index entry: still queued, on the partition's queue (a job moved to
 * another queue is counted there, under its new entry), and claimable by now.
 */
function waitingOn(job: Job, queue: QueueName, now: number): UnclaimedJob | undefined {
  if (job.status !== "queued" || job.queue !== queue) return undefined;
  const readyAt = readyAtOf(job);
  if (readyAt > now) return undefined;
  return { id: job.id, queue, readyAt, waitedMs: now - readyAt, rings: ringsOf(job) };
}
