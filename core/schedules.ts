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
import { BatchGetCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { TABLE } from "./config.js";
import { ConflictError, NotFoundError } from "./errors.js";
import { Expr, isConditionFailure } from "./expr.js";
import { isTerminal, type Job } from "./job.js";
import type { NewJob } from "./lifecycle.js";
import type { Doorbell } from "./queue.js";
import { keptRuns, planTicks, SCHEDULE_LIMITS, tickAfter, tickKey, type Schedule, type ScheduleRun } from "./schedule.js";
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
    const out: Schedule[] = [];
    for (let i = 0; i < ids.length; i += 100) {
      const got = await this.d.db.send(new BatchGetCommand({ RequestItems: { [this.d.table]: { Keys: ids.slice(i, i + 100).map((k) => ({ id: k })), ConsistentRead: true } } }));
      out.push(...(got.Responses?.[this.d.table] ?? []).map(scheduleOf));
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The schedules whose next tick has come, oldest first. */
  async due(now: number, limit: number): Promise<Schedule[]> {
    const ids = (await this.ids(now)).slice(0, limit);
    const all = await Promise.all(ids.map((k) => this.get(k.slice("@schedule#".length))));
    return all.filter((s): s is Schedule => s !== undefined && !s.paused && s.nextAt <= now);
  }

  /** Creates the schedule; a ConflictError when the id is taken or there are too many. */
  async create(s: Omit<Schedule, "version">): Promise<Schedule> {
    if ((await this.ids(NEVER)).length >= SCHEDULE_LIMITS.maxSchedules) throw new ConflictError(`at most ${SCHEDULE_LIMITS.maxSchedules} schedules may exist; delete one first`);
    const next: Schedule = { ...s, version: 1 };
    try {
      await this.d.db.send(new PutCommand({ TableName: this.d.table, Item: itemOf(next, newNonce()), ConditionExpression: "attribute_not_exists(#id)", ExpressionAttributeNames: { "#id": "id" } }));
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      const found = await this.get(s.id);
      // A resend of our own create after a lost reply finds the same schedule.
      if (found && found.createdAt === s.createdAt && found.owner === s.owner) return found;
      throw new ConflictError(`a schedule ${JSON.stringify(s.id)} exists already; PUT /schedules/${s.id} changes it`);
    }
    return next;
  }

  /** Writes `next` over `prev` if nothing changed it since it was read. */
  async replace(prev: Schedule, next: Schedule): Promise<Schedule> {
    const nonce = newNonce();
    const written: Schedule = { ...next, version: prev.version + 1 };
    const x = new Expr().eq("version", prev.version);
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
    return this.replace(s, { ...s, paused, nextAt: paused ? s.nextAt : (tickAfter(s.cadence, s.anchor, now) ?? NEVER), updatedAt: now });
  }

  /**
   * Fires what has come of `s` by `now`: the catch-up policy picks the ticks, the overlap policy
   * decides each against the run before it, and the schedule moves on. Answers what it did.
   */
  async fire(s: Schedule, now: number): Promise<FireResult> {
    const plan = planTicks(s, now);
    const runs: ScheduleRun[] = plan.missed ? [{ tick: plan.missed.last, outcome: "missed", count: plan.missed.count }] : [];
    const out: FireResult = { fired: [], skipped: 0, missed: plan.missed?.count ?? 0 };
    let last = s.lastJobId;
    for (const tick of plan.fire) {
      const run = await this.tick(s, tick, last);
      runs.push(run);
      if (run.outcome === "skipped") out.skipped++;
      else {
        out.fired.push(run.jobId!);
        last = run.jobId;
      }
    }
    const counts = { fired: s.counts.fired + out.fired.length, skipped: s.counts.skipped + out.skipped, missed: s.counts.missed + out.missed };
    await this.replace(s, { ...s, nextAt: plan.nextAt ?? NEVER, ...(last ? { lastJobId: last } : {}), runs: keptRuns(s.runs, runs), counts, updatedAt: now });
    return out;
  }

  /** One tick: its job made (or found, fired before), unless the overlap policy skips it. */
  private async tick(s: Schedule, tick: number, last: string | undefined): Promise<ScheduleRun> {
    const key = tickKey(s.id, tick);
    // Fired already, by a sweep killed before it moved the schedule on (or racing this one).
    const fired = await this.d.getRecord(this.d.idOf(s.owner, key));
    if (fired) return { tick, outcome: "fired", jobId: fired.id };
    let outcome: ScheduleRun["outcome"] = "fired";
    if (s.overlap !== "allow" && last) {
      const prev = await this.d.getRecord(last);
      if (prev && !isTerminal(prev.status)) {
        if (s.overlap === "skip") return { tick, outcome: "skipped", jobId: last };
        await this.d.requestCancel(last, scheduleActor(s.id)).catch((e: unknown) => {
          if (!(e instanceof ConflictError)) throw e; // it finished meanwhile
        });
        outcome = "cancelledPrevious";
      }
    }
    const j = s.job;
    const { job, created } = await this.d.create({
      owner: s.owner,
      type: j.type,
      queue: j.queue,
      input: j.input,
      maxAttempts: j.maxAttempts,
      timeoutMs: j.timeoutMs,
      idempotencyKey: key,
      ...(j.concurrencyKey ? { concurrencyKey: j.concurrencyKey } : {}),
    });
    // A doorbell that is not sent is rung by the sweeper at the job's start deadline.
    if (created) await this.d.doorbell?.send(job.queue, [job.id], 0).catch(() => undefined);
    return { tick, outcome, jobId: job.id };
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
  const { id, ...rest } = s;
  return { ...scheduleKey(id), name: id, ...rest, [TABLE.dueIndex.partitionKey]: SCHEDULES_PARTITION, [TABLE.dueIndex.sortKey]: s.paused ? NEVER : s.nextAt, lastWrite: nonce };
}

function scheduleOf(item: Record<string, unknown>): Schedule {
  const { id: _key, name, dueShard: _s, dueAt: _d, lastWrite: _w, ...rest } = item;
  return { ...(rest as Omit<Schedule, "id">), id: String(name) };
}
