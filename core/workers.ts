/**
 * Which workers are alive and what they hold, for `GET /admin/workers` and the dashboard. Each
 * worker (a Fargate task, a Lambda container, a local process) writes its entry every
 * `reportEveryMs` while it runs, and when its jobs change, into one of a few small presence items; entries not refreshed within
 * `forgetAfterMs` are not listed, and are deleted by the next worker that reports to the same
 * item. It is advisory: correctness never depends on it (leases do that).
 *
 * Why this shape: one item for every worker would be a hot key whose every write pays for the
 * whole item (a write unit per KB), and workers that die without saying goodbye (SIGKILL, OOM, a
 * Lambda container reclaimed) would grow it toward DynamoDB's 400 KB limit. Spreading workers over
 * PRESENCE_SHARDS items keeps each write small, and pruning on write keeps each item bounded by
 * the workers seen within `forgetAfterMs`, with no scheduler and no extra read: the report's own
 * UpdateItem returns the item.
 */
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { batchGetAll } from "./aws.js";
import { isConditionFailure } from "./expr.js";

export type WorkerKind = "lambda" | "fargate" | "local";

export interface WorkerInfo {
  id: string;
  kind: WorkerKind;
  pid?: number;
  startedAt: number;
  lastSeenAt: number;
  jobs: string[];
  /** Set by a death event (core/deaths.ts); a report from the worker afterwards clears it. */
  diedAt?: number;
  deathReason?: string;
}

/** How often a worker writes its presence unless something changes (core/runner.ts). */
export const PRESENCE_REPORT_MS = 10_000;

export type PresenceState = "alive" | "unresponsive" | "dead";

/**
 * A worker not heard from within its reporting interval (and half again, for a slow write) is
 * unresponsive: frozen, cut off, or dead unreported. A Lambda environment between invocations
 * is frozen by design, so one that holds no job is not called unresponsive for it.
 */
export function presenceState(w: WorkerInfo, now: number, reportEveryMs: number = PRESENCE_REPORT_MS): PresenceState {
  if (w.diedAt !== undefined) return "dead";
  return silentSince(w.lastSeenAt, now, reportEveryMs) && (w.kind !== "lambda" || w.jobs.length > 0) ? "unresponsive" : "alive";
}

/** Not heard from (a presence report, a heartbeat) within one and a half reporting intervals. */
export const silentSince = (lastHeardAt: number, now: number, reportEveryMs: number = PRESENCE_REPORT_MS): boolean =>
  now - lastHeardAt > reportEveryMs * 1.5;

/** When an entry was last heard of, alive or dead: what listing and pruning go by. */
const heardAt = (w: WorkerInfo): number => Math.max(w.lastSeenAt, w.diedAt ?? 0);

/** How many presence items the workers are spread over; `list` reads them all in one batch. */
export const PRESENCE_SHARDS = 8;

/** Presence items' ids are not job ids (ULIDs), so they never appear in job reads or indexes. */
const presenceKey = (shard: number) => ({ id: `@workers#${shard}` });

/** Each worker is one top-level attribute of its shard's item, so one SET writes it, item or not. */
const ATTRIBUTE_PREFIX = "w:";

/** At most this many stale entries removed per report: the rest go on the next one. */
const PRUNE_BATCH = 25;

export function presenceShard(workerId: string): number {
  let h = 2166136261; // FNV-1a
  for (let i = 0; i < workerId.length; i++) h = Math.imul(h ^ workerId.charCodeAt(i), 16777619);
  return (h >>> 0) % PRESENCE_SHARDS;
}

export class WorkerDirectory {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly opts: { reportEveryMs?: number; forgetAfterMs?: number; now?: () => number } = {},
  ) {}

  private get now(): number {
    return (this.opts.now ?? Date.now)();
  }

  get reportEveryMs(): number {
    return this.opts.reportEveryMs ?? PRESENCE_REPORT_MS;
  }

  private get cutoff(): number {
    return this.now - (this.opts.forgetAfterMs ?? 60_000);
  }

  /**
   * Records this worker's presence. Not throttled here: the runner writes on its interval and
   * coalesces job changes itself (core/runner.ts), so every call is one it means.
   */
  async report(info: Omit<WorkerInfo, "lastSeenAt">): Promise<void> {
    const now = this.now;
    const entry: WorkerInfo = { ...info, lastSeenAt: now };
    const key = presenceKey(presenceShard(info.id));
    const out = await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: key,
        UpdateExpression: "SET #me = :e",
        ExpressionAttributeNames: { "#me": ATTRIBUTE_PREFIX + info.id },
        ExpressionAttributeValues: { ":e": entry },
        ReturnValues: "ALL_NEW",
      }),
    );
    await this.prune(key, entriesOf(out.Attributes));
  }

  /**
   * Deletes entries not refreshed within `forgetAfterMs`, each only if it is still the entry
   * that was read: a worker that reported meanwhile is back, and must not be removed.
   */
  private async prune(key: { id: string }, entries: WorkerInfo[]): Promise<void> {
    const stale = entries.filter((w) => heardAt(w) < this.cutoff).slice(0, PRUNE_BATCH);
    if (stale.length === 0) return;
    const names: Record<string, string> = {};
    const values: Record<string, number> = {};
    const conditions: string[] = [];
    stale.forEach((w, i) => {
      names[`#s${i}`] = ATTRIBUTE_PREFIX + w.id;
      values[`:s${i}`] = w.lastSeenAt;
      conditions.push(`#s${i}.lastSeenAt = :s${i}`);
    });
    await this.db
      .send(
        new UpdateCommand({
          TableName: this.table,
          Key: key,
          UpdateExpression: `REMOVE ${Object.keys(names).join(", ")}`,
          ConditionExpression: conditions.join(" AND "),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      )
      // Lost a race with a returning worker: the next report prunes what is still stale.
      .catch((e: unknown) => {
        if (!isConditionFailure(e)) throw e;
      });
  }

  async remove(id: string): Promise<void> {
    await this.updateEntry(id, "REMOVE #me").catch(() => undefined);
  }

  /** One worker's entry (one read of its presence item), if it was seen within `forgetAfterMs`. */
  async get(id: string): Promise<WorkerInfo | undefined> {
    const out = await this.db.send(new GetCommand({ TableName: this.table, Key: presenceKey(presenceShard(id)), ConsistentRead: true }));
    const w = out.Item?.[ATTRIBUTE_PREFIX + id] as WorkerInfo | undefined;
    return w && heardAt(w) >= this.cutoff ? w : undefined;
  }

  /** Workers seen within `forgetAfterMs`, most recently seen first. */
  async list(): Promise<WorkerInfo[]> {
    const keys = Array.from({ length: PRESENCE_SHARDS }, (_, i) => presenceKey(i));
    const items = await batchGetAll(this.db, this.table, keys, true);
    const cutoff = this.cutoff;
    return items
      .flatMap(entriesOf)
      .filter((w) => heardAt(w) >= cutoff)
      .sort((a, b) => b.lastSeenAt - a.lastSeenAt);
  }

  /**
   * Marks a worker dead at its death event: it holds nothing any more (its jobs were reclaimed),
   * and is listed as dead until forgotten. A worker never seen is not added, nor one that started
   * after the death (a restarted Lambda runtime in the same environment has the same id).
   */
  async markDead(id: string, at: number, reason: string): Promise<void> {
    await this.updateEntry(id, "SET #me.diedAt = :at, #me.deathReason = :why, #me.jobs = :none", { ":at": at, ":why": reason.slice(0, 200), ":none": [] }, "#me.startedAt <= :at").catch(
      (e: unknown) => {
        if (!isConditionFailure(e)) throw e;
      },
    );
  }

  /** One update of a worker's own entry, only if it has one (and `condition` holds). */
  private async updateEntry(id: string, expression: string, values?: Record<string, unknown>, condition?: string): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: presenceKey(presenceShard(id)),
        UpdateExpression: expression,
        ConditionExpression: condition ? `attribute_exists(#me) AND ${condition}` : "attribute_exists(#me)",
        ExpressionAttributeNames: { "#me": ATTRIBUTE_PREFIX + id },
        ...(values ? { ExpressionAttributeValues: values } : {}),
      }),
    );
  }
}

function entriesOf(item: Record<string, unknown> | undefined): WorkerInfo[] {
  return Object.entries(item ?? {})
    .filter(([name]) => name.startsWith(ATTRIBUTE_PREFIX))
    .map(([, value]) => value as WorkerInfo);
}
