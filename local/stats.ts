/**
 * Numbers only the dashboard needs: jobs per state over time and the queues' depths and ages.
 * Job counts come from COUNT queries on the status index (local-only; the cloud dashboard uses
 * the metrics). Queue ages come from fauxqs's inspection endpoint, because the age of the oldest
 * message is a CloudWatch metric that SQS's own API does not return.
 */
import { QueryCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { QUEUE_NAMES, TABLE, type QueueName } from "../core/config.js";
import { STATUSES, type Status } from "../core/job.js";
import type { JobQueue } from "../core/queue.js";
import { laneUrls } from "../core/runtime.js";

export type StateCounts = Record<Status, number>;

export async function countByState(db: DynamoDBDocumentClient, table: string): Promise<StateCounts> {
  const counts = await Promise.all(
    STATUSES.map(async (status) => {
      let n = 0;
      let start: Record<string, unknown> | undefined;
      do {
        const r = await db.send(
          new QueryCommand({
            TableName: table,
            IndexName: TABLE.statusIndex.name,
            KeyConditionExpression: "#s = :s",
            ExpressionAttributeNames: { "#s": TABLE.statusIndex.partitionKey },
            ExpressionAttributeValues: { ":s": status },
            Select: "COUNT",
            ...(start ? { ExclusiveStartKey: start } : {}),
          }),
        );
        n += r.Count ?? 0;
        start = r.LastEvaluatedKey;
      } while (start);
      return n;
    }),
  );
  return Object.fromEntries(STATUSES.map((s, i) => [s, counts[i] ?? 0])) as StateCounts;
}

export interface QueueStats {
  queue: QueueName;
  visible: number;
  inFlight: number;
  delayed: number;
  /** Seconds since the oldest message still on the queue was sent; 0 when empty. */
  oldestAgeSeconds: number;
  dlq: { visible: number; inFlight: number; oldestAgeSeconds: number };
}

export async function queueStats(queue: JobQueue, sqsEndpoint: string, now: number = Date.now()): Promise<QueueStats[]> {
  return Promise.all(
    QUEUE_NAMES.map(async (name) => {
      const [main, dlq, mainAge, dlqAge] = await Promise.all([
        queue.depth(name),
        queue.depth(name, { dlq: true }),
        // The oldest on any lane: a stuck high or low message shows as the queue's age, as the cloud alarm's MAX across lanes does.
        Promise.all(laneUrls(queue.urls[name]).map((url) => oldestAge(sqsEndpoint, url, now))).then((ages) => Math.max(...ages)),
        oldestAge(sqsEndpoint, queue.urls[name].dlq, now),
      ]);
      return {
        queue: name,
        ...main,
        oldestAgeSeconds: mainAge,
        dlq: { visible: dlq.visible, inFlight: dlq.inFlight, oldestAgeSeconds: dlqAge },
      };
    }),
  );
}

interface Inspected {
  messages?: { ready?: { sentTimestamp?: number }[]; delayed?: { sentTimestamp?: number }[]; inflight?: { message?: { sentTimestamp?: number } }[] };
}

async function oldestAge(endpoint: string, queueUrl: string, now: number): Promise<number> {
  const name = queueUrl.split("/").pop() ?? "";
  const res = await fetch(`${endpoint}/_fauxqs/queues/${encodeURIComponent(name)}`);
  if (!res.ok) return 0;
  const q = (await res.json()) as Inspected;
  const sent = [
    ...(q.messages?.ready ?? []).map((m) => m.sentTimestamp),
    ...(q.messages?.inflight ?? []).map((m) => m.message?.sentTimestamp),
  ].filter((t): t is number => typeof t === "number");
  return sent.length ? Math.max(0, Math.round((now - Math.min(...sent)) / 1000)) : 0;
}

/** A bounded series of samples for the chart. */
export class Series<T> {
  readonly points: { at: number; value: T }[] = [];
  constructor(private readonly max = 900) {}
  add(at: number, value: T): void {
    this.points.push({ at, value });
    if (this.points.length > this.max) this.points.shift();
  }
}
