/**
 * Which workers are alive and what they hold, for `GET /admin/workers` and the dashboard. Each
 * worker (a Fargate task, a Lambda container, a local process) writes its entry into one small
 * item at most every `reportEveryMs`; entries not refreshed within `forgetAfterMs` are dropped.
 * It is advisory: correctness never depends on it (leases do that).
 */
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";

export type WorkerKind = "lambda" | "fargate" | "local";

export interface WorkerInfo {
  id: string;
  kind: WorkerKind;
  pid?: number;
  startedAt: number;
  lastSeenAt: number;
  jobs: string[];
}

/** The presence item's id; not a job id, so it never appears in job reads or indexes. */
const PRESENCE_ID = "@workers";

export class WorkerDirectory {
  private lastWrite = 0;

  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly opts: { reportEveryMs?: number; forgetAfterMs?: number; now?: () => number } = {},
  ) {}

  private get now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** Records this worker's presence; throttled unless `force` (start, stop, job set changed). */
  async report(info: Omit<WorkerInfo, "lastSeenAt">, force = false): Promise<void> {
    const now = this.now;
    if (!force && now - this.lastWrite < (this.opts.reportEveryMs ?? 10_000)) return;
    this.lastWrite = now;
    const entry: WorkerInfo = { ...info, lastSeenAt: now };
    await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { id: PRESENCE_ID },
        // A map entry per worker: the map itself is created on the first report.
        UpdateExpression: "SET #w = if_not_exists(#w, :empty)",
        ExpressionAttributeNames: { "#w": "workers" },
        ExpressionAttributeValues: { ":empty": {} },
      }),
    );
    await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { id: PRESENCE_ID },
        UpdateExpression: "SET #w.#id = :e",
        ExpressionAttributeNames: { "#w": "workers", "#id": info.id },
        ExpressionAttributeValues: { ":e": entry },
      }),
    );
  }

  async remove(id: string): Promise<void> {
    await this.db
      .send(
        new UpdateCommand({
          TableName: this.table,
          Key: { id: PRESENCE_ID },
          UpdateExpression: "REMOVE #w.#id",
          ConditionExpression: "attribute_exists(#w)",
          ExpressionAttributeNames: { "#w": "workers", "#id": id },
        }),
      )
      .catch(() => undefined);
  }

  /** Workers seen within `forgetAfterMs`, most recently seen first. */
  async list(): Promise<WorkerInfo[]> {
    const out = await this.db.send(new GetCommand({ TableName: this.table, Key: { id: PRESENCE_ID }, ConsistentRead: true }));
    const all = Object.values((out.Item?.workers ?? {}) as Record<string, WorkerInfo>);
    const cutoff = this.now - (this.opts.forgetAfterMs ?? 60_000);
    return all.filter((w) => w.lastSeenAt >= cutoff).sort((a, b) => b.lastSeenAt - a.lastSeenAt);
  }
}
