/**
 * Schedules' I/O (the rules are core/schedule.ts). A schedule is an item `@schedule#<id>` in the
 * jobs table, in the due index's partition `@schedules` with its next tick as `dueAt` (a paused
 * one at the end of time), so the sweeper finds the due ones with one small Query and a listing
 * reads that one partition.
 *
 * Firing, in an order a kill cannot break: each tick's job is created first, with the tick as
 * its idempotency key (so a tick fired again finds its job), and rung; then the schedule moves
 * on with one write guarded on its version. A sweep killed between the two leaves the schedule on
 * the same ticks: the next sweep finds their jobs and only records them. Two sweeps at once make
 * the same jobs, and one of them moves the schedule on.
 *
 * Inputs: the store's create, read and cancel, a doorbell, the clock. Outputs: jobs, doorbells
 * and the schedule's write; a lost race is a ConflictError.
 */
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { batchGetAll } from "./aws.js";
import { laneOf, TABLE } from "./config.js";
import { ConflictError, NotFoundError } from "./errors.js";
import { Expr, isConditionFailure, putNew } from "./expr.js";
import { isTerminal, type Job } from "./job.js";
import type { NewJob } from "./lifecycle.js";
import type { Doorbell } from "./queue.js";
import { keptRuns, planTicks, resumedAt, SCHEDULE_LIMITS, tickAfter, tickKey, type PendingTick, type Schedule, type ScheduleRun } from "./schedule.js";
import { newNonce } from "./store-write.js";

export const SCHEDULES_PARTITION = "@schedules";
const scheduleKey = (id: string) => ({ id: `@schedule#${id}` });
/** A paused schedule's place in the due index: listed, never due. */
const NEVER = Number.MAX_SAFE_INTEGER;
/** Who a schedule's cancel of its previous run is recorded as. */
export const scheduleActor = (id: string): string => `warden:schedule:${id}`;

export interface SchedulesDeps {
  db: DynamoDBDocumentClient;
  table: string;
  now: () => number;
  doorbell?: Doorbell | undefined;
  create: (spec: NewJob) => Promise<{ job: Job; created: boolean }>;
  getRecord: (id: string) => Promise<Job | undefined>;
  requestCancel: (id: string, by: string) => Promise<Job>;
  idOf: (owner: string, key: string) => string;
}

export interface FireResult {
  fired: string[];
  skipped: number;
  missed: number;
}

export class Schedules {
  constructor(private readonly d: SchedulesDeps) {}

  async get(id: string): Promise<Schedule | undefined> {
    const out = await this.d.db.send(new GetCommand({ TableName: this.d.table, Key: scheduleKey(id), ConsistentRead: true }));
    return out.Item ? scheduleOf(out.Item) : undefined;
  }

  async mustGet(id: string): Promise<Schedule> {
    const s = await this.get(id);
    if (!s) throw new NotFoundError(`no schedule ${JSON.stringify(id)}`);
    return s;
  }

  /** Every schedule (at most SCHEDULE_LIMITS.maxSchedules), by id. */
  async list(): Promise<Schedule[]> {
    const ids = await this.ids(NEVER);
    const items = await batchGetAll(this.d.db, this.d.table, ids.map((k) => ({ id: k })), true);
    return items.map(scheduleOf).sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The schedules whose next tick has come (or whose decision is pending), oldest first. */
  async due(now: number, limit: number): Promise<Schedule[]> {
    const ids = (await this.ids(now)).slice(0, limit);
    const all = await Promise.all(ids.map((k) => this.get(k.slice("@schedule#".length))));
    return all.filter((s): s is Schedule => s !== undefined && (Boolean(s.pending?.length) || (!s.paused && s.nextAt <= now)));
  }

  /** Creates the schedule; a ConflictError when the id is taken or there are too many. */
  async create(s: Omit<Schedule, "version">): Promise<Schedule> {
    if ((await this.ids(NEVER)).length >= SCHEDULE_LIMITS.maxSchedules) throw new ConflictError(`at most ${SCHEDULE_LIMITS.maxSchedules} schedules may exist; delete one first`);
    const nonce = newNonce();
    const next: Schedule = { ...s, version: 1, writeId: nonce };
    try {
      await this.d.db.send(new PutCommand(putNew(this.d.table, itemOf(next, nonce))));
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      const found = await this.get(s.id);
      // A resend of our own create after a lost reply finds the same schedule.
      if (found?.writeId === nonce) return found;
      throw new ConflictError(`a schedule ${JSON.stringify(s.id)} exists already; PUT /schedules/${s.id} changes it`);
    }
    return next;
  }

  /**
   * Writes `next` over `prev` if nothing changed it since it was read: guarded on the nonce of
   * the write `prev` was read from, so a schedule deleted and made again (its version from 1
   * again) is not overwritten by a write decided on the old one.
   */
  async replace(prev: Schedule, next: Schedule): Promise<Schedule> {
    const nonce = newNonce();
    const { lastError: _e, ...clean } = next;
    const written: Schedule = { ...clean, version: prev.version + 1, writeId: nonce };
    const x = new Expr().eq("version", prev.version).eq("lastWrite", prev.writeId ?? "");
    try {
      await this.d.db.send(new PutCommand({ TableName: this.d.table, Item: itemOf(written, nonce), ...x.params() }));
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      const stored = await this.d.db.send(new GetCommand({ TableName: this.d.table, Key: scheduleKey(prev.id), ConsistentRead: true }));
      if (stored.Item?.lastWrite === nonce) return written; // ours, its reply lost
      throw new ConflictError(`schedule ${prev.id} changed meanwhile; read it again`);
    }
    return written;
  }

  async delete(id: string): Promise<void> {
    await this.d.db.send(new DeleteCommand({ TableName: this.d.table, Key: scheduleKey(id) }));
  }

  /** Pauses (no tick fires) or resumes (from the next tick after now: ticks that came while paused are not fired). */
  async setPaused(s: Schedule, paused: boolean): Promise<Schedule> {
    if (s.paused === paused) return s;
    const now = this.d.now();
    return this.replace(s, { ...s, paused, nextAt: paused ? s.nextAt : resumedAt(s, now), updatedAt: now });
  }

  /**
   * Fires what has come of `s` by `now`, in three steps so a kill anywhere loses and repeats
   * nothing: (1) decide the ticks (catch-up picks them, the overlap policy decides each, at most
   * firePerLook) and write the decision with the schedule moved on, guarded on the schedule as it
   * was read, so of two looks one decides and a pause or delete that came first decides nothing;
   * (2) make each fired tick's job (keyed by its tick: a repeat finds it) and ring it; (3) record
   * them. A look that finds a decision pending does (2) and (3) for it first, whatever its clock.
   */
  async fire(s: Schedule, now: number): Promise<FireResult> {
    const decided = s.pending ? s : await this.decide(s, now);
    const pending = decided.pending ?? [];
    for (const p of pending) {
      if (p.outcome === "skipped") continue;
      if (p.cancels) {
        await this.d.requestCancel(p.cancels, scheduleActor(s.id)).catch((e: unknown) => {
          if (!(e instanceof ConflictError)) throw e; // it finished meanwhile
        });
      }
      await this.make(decided, p);
    }
    const recorded = pending.map((p): ScheduleRun => ({ tick: p.tick, outcome: p.outcome, jobId: p.jobId }));
    const fired = recorded.filter((r) => r.outcome !== "skipped").map((r) => r.jobId!);
    const { pending: _done, ...rest } = decided;
    await this.replace(decided, { ...rest, runs: keptRuns(decided.runs, recorded), counts: { ...decided.counts, fired: decided.counts.fired + fired.length }, updatedAt: now });
    return { fired, skipped: recorded.length - fired.length, missed: decided === s ? 0 : decided.counts.missed - s.counts.missed };
  }

  /** Step (1): the ticks that have come, decided and written as pending, the schedule moved past them. */
  private async decide(s: Schedule, now: number): Promise<Schedule> {
    const plan = planTicks(s, now);
    const fire = plan.fire.slice(0, SCHEDULE_LIMITS.firePerLook);
    // A catch-up longer than a look goes on from the tick after the last one decided here.
    const nextAt = fire.length < plan.fire.length ? (tickAfter(s.cadence, s.anchor, fire.at(-1)!) ?? NEVER) : (plan.nextAt ?? NEVER);
    let last = s.lastJobId;
    let live = last ? await this.isLive(last) : false;
    const pending: PendingTick[] = [];
    for (const tick of fire) {
      const jobId = this.d.idOf(s.owner, tickKey(s.id, tick));
      if (live && last && s.overlap === "skip") {
        pending.push({ tick, outcome: "skipped", jobId: last });
        continue;
      }
      pending.push(live && last && s.overlap === "cancelPrevious" ? { tick, outcome: "cancelledPrevious", jobId, cancels: last } : { tick, outcome: "fired", jobId });
      last = jobId;
      live = true; // the job this tick makes has not ended
    }
    const missed: ScheduleRun[] = plan.missed ? [{ tick: plan.missed.last, outcome: "missed", count: plan.missed.count }] : [];
    const skipped = pending.filter((p) => p.outcome === "skipped").length;
    return this.replace(s, {
      ...s,
      nextAt,
      pending,
      ...(last ? { lastJobId: last } : {}),
      runs: keptRuns(s.runs, missed),
      counts: { ...s.counts, skipped: s.counts.skipped + skipped, missed: s.counts.missed + (plan.missed?.count ?? 0) },
      updatedAt: now,
    });
  }

  /** Step (2) for one tick: its job made (or found, made before) and rung when new. */
  private async make(s: Schedule, p: PendingTick): Promise<void> {
    const j = s.job;
    const { job, created } = await this.d.create({
      owner: s.owner,
      type: j.type,
      queue: j.queue,
      input: j.input,
      maxAttempts: j.maxAttempts,
      timeoutMs: j.timeoutMs,
      idempotencyKey: tickKey(s.id, p.tick),
      ...(j.concurrencyKey ? { concurrencyKey: j.concurrencyKey } : {}),
      ...(j.priority ? { priority: j.priority } : {}),
    });
    // A doorbell that is not sent is rung by the sweeper at the job's start deadline.
    if (created) await this.d.doorbell?.send(laneOf(job), [job.id], 0).catch(() => undefined);
  }

  private async isLive(id: string): Promise<boolean> {
    const job = await this.d.getRecord(id);
    return job !== undefined && !isTerminal(job.status);
  }

  /**
   * A look that failed (not a lost race): the schedule's next look backs off (10 s doubling to an
   * hour) and its error is kept for its view; its ticks stay where they are.
   */
  async failed(s: Schedule, message: string, now: number): Promise<void> {
    const count = (s.lastError?.count ?? 0) + 1;
    const retryAt = now + Math.min(3_600_000, 10_000 * 2 ** Math.min(count - 1, 12));
    await this.d.db
      .send(
        new UpdateCommand({
          TableName: this.d.table,
          Key: scheduleKey(s.id),
          UpdateExpression: "SET #d = :at, #e = :e",
          ConditionExpression: "#w = :w",
          ExpressionAttributeNames: { "#d": TABLE.dueIndex.sortKey, "#e": "lastError", "#w": "lastWrite" },
          ExpressionAttributeValues: { ":at": retryAt, ":e": { at: now, message: message.slice(0, 500), count }, ":w": s.writeId ?? "" },
        }),
      )
      .catch(() => undefined);
  }

  /** The keys in the schedules' partition of the due index with dueAt ≤ `upTo`, oldest first. */
  private async ids(upTo: number): Promise<string[]> {
    const { dueIndex } = TABLE;
    const ids: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.d.db.send(
        new QueryCommand({
          TableName: this.d.table,
          IndexName: dueIndex.name,
          KeyConditionExpression: "#p = :p AND #d <= :upTo",
          ExpressionAttributeNames: { "#p": dueIndex.partitionKey, "#d": dueIndex.sortKey },
          ExpressionAttributeValues: { ":p": SCHEDULES_PARTITION, ":upTo": upTo },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      ids.push(...(out.Items ?? []).map((i) => String(i.id)));
      start = out.LastEvaluatedKey;
    } while (start);
    return ids;
  }
}

function itemOf(s: Schedule, nonce: string): Record<string, unknown> {
  const { id, writeId: _w, ...rest } = s;
  // A pending decision is due at once (its jobs may not be made); a paused schedule never.
  const dueAt = s.pending?.length ? 0 : s.paused ? NEVER : s.nextAt;
  return { ...scheduleKey(id), name: id, ...rest, [TABLE.dueIndex.partitionKey]: SCHEDULES_PARTITION, [TABLE.dueIndex.sortKey]: dueAt, lastWrite: nonce };
}

function scheduleOf(item: Record<string, unknown>): Schedule {
  const { id: _key, name, dueShard: _s, dueAt: _d, lastWrite, ...rest } = item;
  return { ...(rest as Omit<Schedule, "id">), id: String(name), ...(typeof lastWrite === "string" ? { writeId: lastWrite } : {}) };
}
