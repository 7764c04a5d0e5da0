/**
 * What the API does for a caller, free of HTTP: submit, read, list, cancel and retry jobs, each
 * confined to the caller's own jobs (another caller's job reads exactly like an unknown id).
 * Requests arrive already shaped by `requests.ts`; answers are in the contract's job shape.
 */
import { laneOf, LIMITS, QUEUE_NAMES, TIMINGS, type QueueName } from "../config.js";
import { errorMessage } from "../errors.js";
import { isTerminal, type Job } from "../job.js";
import type { ListFilter } from "../listing.js";
import type { JobLogLine, JobLogSource } from "../logs.js";
import { whyNotRunning } from "../why.js";
import type { Services } from "../services.js";
import { ApiError, jobNotFound } from "./errors.js";
import type { Caller } from "./identity.js";
import { MAX_RUN_AT_DAYS, type ChildrenQuery, type ListQuery, type SubmitRequest } from "./requests.js";
import { chainSpec, queueBeforeInput, roundSpecs } from "../child-specs.js";
import { SHOWN_VALUES } from "../values.js";
import type { TransactPut } from "../store-write.js";
import { retryAfterSeconds, toApiAttemptDetail, toApiJob, toApiWhy, type ApiAttemptDetail, type ApiJob, type ApiWhy } from "./view.js";

/** Structured log lines; callers never pass inputs, tokens or bodies. */
export interface ApiLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const silentLog: ApiLog = { info() {}, warn() {}, error() {} };

export interface Health {
  ok: boolean;
  checks: Record<string, "ok" | "unreachable">;
}

const HEALTH_TIMEOUT_MS = 3_000;
/** Log lines may be written a little before a job's record says it was created, and after it ended. */
const LOG_MARGIN_MS = 60_000;
const DEFAULT_LOG_LINES = 200;

export class JobsApi {
  constructor(
    private readonly s: Services,
    private readonly log: ApiLog = silentLog,
  ) {}

  private get now(): number {
    return this.s.now();
  }

  /** Reaches the table and every queue, each bounded in time, so a dead dependency cannot hang the check. */
  async health(): Promise<Health> {
    const probes: [string, () => Promise<unknown>][] = [
      ["table", () => this.s.workers.list()],
      ...QUEUE_NAMES.map((q): [string, () => Promise<unknown>] => [`queue:${q}`, () => this.s.queue.depth(q)]),
    ];
    const results = await Promise.all(
      probes.map(async ([name, probe]) => {
        try {
          await withTimeout(probe(), HEALTH_TIMEOUT_MS);
          return [name, "ok"] as const;
        } catch (e) {
          this.log.warn("health check failed", { check: name, error: errorMessage(e).slice(0, 200) });
          return [name, "unreachable"] as const;
        }
      }),
    );
    return { ok: results.every(([, r]) => r === "ok"), checks: Object.fromEntries(results) };
  }

  /**
   * Writes the job, then rings its queue. A failed send loses nothing: the job is queued in the
   * table with a start deadline, and the sweeper sends its message again when that passes.
   */
  async submit(caller: Caller, req: SubmitRequest): Promise<{ job: ApiJob; created: boolean }> {
    const spec = this.specOf(caller, req);
    const { queue, type: typeName } = spec;
    const now = this.now;
    // Every child and step is checked before anything is written (core/child-specs.ts): a bad one is a 400 that writes nothing.
    const { job, created } = req.children
      ? await this.s.store.createFlow(spec, roundSpecs(this.s.registry, req.children), req.policy ?? "collect")
      : req.after
        ? await this.s.store.createFlow(spec, [chainSpec(this.s.registry, req.after)], "failFast", { chain: true })
        : await this.s.store.create(spec);
    if (!created) {
      this.log.info("idempotent submit found the first job", { jobId: job.id, caller: caller.id });
      return { job: toApiJob(job, now), created };
    }
    this.s.metrics.emit("JobsSubmitted", 1, { Queue: queue, JobType: typeName });
    this.log.info("job submitted", { jobId: job.id, type: typeName, queue, caller: caller.id });
    await this.ring(job, now);
    return { job: toApiJob(job, now), created };
  }

  /**
   * A submit as entries of the caller's own DynamoDB transaction (core/enqueue.ts), checked as
   * `submit` checks it; nothing is written here. It needs an idempotency key (the job's id is
   * derived from it, so a retried transaction makes one job) and has no children or chain step
   * (those are written in several steps, which a single transaction cannot hold).
   */
  transactEntries(caller: Caller, req: SubmitRequest): { job: ApiJob; entries: TransactPut[] } {
    if (req.idempotencyKey === undefined) throw new ApiError("invalid_request", "a job enqueued inside a transaction needs an idempotencyKey: its id derives from it, so a retried transaction makes one job");
    if (req.children || req.after) throw new ApiError("invalid_request", "a job enqueued inside a transaction cannot have children or be a chain's step; submit those through POST /jobs");
    const { job, entries } = this.s.store.createEntries({ ...this.specOf(caller, req), idempotencyKey: req.idempotencyKey });
    return { job: toApiJob(job, this.now), entries };
  }

  /**
   * Rings a job's doorbell after the transaction that wrote it committed. False when there is no
   * such job of the caller's (the transaction did not commit) or it is not queued any more.
   */
  async ringCommitted(caller: Caller, id: string): Promise<boolean> {
    const job = await this.s.store.getRecord(id);
    if (!job || job.owner !== caller.id || job.status !== "queued") return false;
    // Counted as submitted here, where the API would count it: a job never rung is not (its resend is the sweeper's).
    this.s.metrics.emit("JobsSubmitted", 1, { Queue: job.queue, JobType: job.type });
    this.log.info("job rung after its transaction", { jobId: job.id, type: job.type, queue: job.queue, caller: caller.id });
    await this.ring(job, this.now);
    return true;
  }

  /** What a submit asks for, checked: its type and input, queue, limits and keys (a 400 otherwise). */
  private specOf(caller: Caller, req: SubmitRequest) {
    // A chain's job takes its last step's result as its input: that is checked when it runs.
    const { type, input } = req.after ? { type: this.knownType(req.type), input: null } : this.s.registry.parseInput(req.type, req.input);
    // A chain's job has no input yet for an `auto` type's size estimate.
    const queue: QueueName = req.queue ?? (req.after ? queueBeforeInput(type) : this.s.registry.queueFor(type, input));
    const now = this.now;
    const runAt = req.runAt === undefined ? undefined : Date.parse(req.runAt);
    if (runAt !== undefined && runAt - now > MAX_RUN_AT_DAYS * 24 * 3600_000) {
      throw new ApiError("invalid_request", `runAt is more than ${MAX_RUN_AT_DAYS} days away; pick an earlier time`);
    }
    // The type's limit is a ceiling: a job may ask for less time, never more (registry.ts JobLimits).
    if (req.timeoutSeconds !== undefined && req.timeoutSeconds * 1000 > type.limits.timeoutMs) {
      throw new ApiError("invalid_request", `timeoutSeconds may be at most ${Math.floor(type.limits.timeoutMs / 1000)} for job type "${type.name}"`);
    }
    return {
      owner: caller.id,
      type: type.name,
      queue,
      input: req.after ? null : input,
      maxAttempts: req.maxAttempts ?? Math.min(type.limits.maxAttempts, LIMITS.maxAttempts),
      timeoutMs: req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : type.limits.timeoutMs,
      ...(runAt !== undefined ? { runAt } : {}),
      ...(req.idempotencyKey !== undefined ? { idempotencyKey: req.idempotencyKey } : {}),
      ...(req.concurrencyKey !== undefined ? { concurrencyKey: req.concurrencyKey } : {}),
      ...(req.priority !== undefined ? { priority: req.priority } : {}),
    };
  }

  private knownType(name: string) {
    const type = this.s.registry.get(name);
    if (!type) throw new ApiError("invalid_request", `unknown job type "${name}"; known types: ${this.s.registry.names().join(", ")}`);
    return type;
  }

  /** Sends the job's message unless its start is further out than SQS can delay (the sweeper sends those). */
  private async ring(job: Job, now: number): Promise<void> {
    // A parent waits on its children: they were rung when written, and it is rung when it resumes.
    if (job.status !== "queued") return;
    const delayMs = job.status === "queued" && job.runAt !== undefined ? Math.max(0, job.runAt - now) : 0;
    if (delayMs > TIMINGS.maxMessageDelaySeconds * 1000) return;
    try {
      await this.s.queue.send(laneOf(job), [job.id], delayMs);
    } catch (e) {
      this.log.warn("enqueue failed; the job is stored and the sweeper will send its message", {
        jobId: job.id,
        queue: job.queue,
        error: errorMessage(e).slice(0, 200),
      });
    }
  }

  /** The caller's job, or the admin's view of anyone's; with how long to wait before asking again. */
  async get(caller: Caller, id: string): Promise<{ job: ApiJob; retryAfterSeconds?: number }> {
    const job = await this.readable(caller, id);
    const now = this.now;
    const retryAfter = retryAfterSeconds(job, now);
    const counts = job.flow ? await this.s.store.childCounts(job) : undefined;
    return { job: toApiJob(job, now, counts), ...(retryAfter !== undefined ? { retryAfterSeconds: retryAfter } : {}) };
  }

  /**
   * A page of the job's last round of children, by their place, optionally of one status (the
   * page read is filtered, so it may hold fewer than `limit` and still have a next cursor). They
   * are the parent's owner's: whoever may read the parent may read them, nobody else.
   */
  async children(caller: Caller, id: string, q: ChildrenQuery): Promise<{ children: ApiJob[]; nextCursor: string | null; total: number }> {
    const parent = await this.readableRecord(caller, id);
    if (!parent.flow) return { children: [], nextCursor: null, total: 0 };
    const page = await this.s.store.childOutcomes(parent, {
      from: q.cursor !== undefined ? Number(q.cursor) : 0,
      limit: q.limit ?? LIMITS.listDefault,
      ...(q.status ? { status: q.status } : {}),
      consistent: false,
      values: SHOWN_VALUES,
    });
    return { children: page.children.map((j) => toApiJob(j, this.now)), nextCursor: page.next === null ? null : String(page.next), total: parent.flow.total };
  }

  /**
   * Newest first. A caller lists its own jobs; the admin lists everyone's, or one caller's with
   * `owner`. A caller naming another owner gets no jobs, as if that owner had none.
   */
  async list(caller: Caller, q: ListQuery): Promise<{ jobs: ApiJob[]; nextCursor: string | null }> {
    const now = this.now;
    if (!caller.admin && q.owner !== undefined && q.owner !== caller.id) return { jobs: [], nextCursor: null };
    const owner = caller.admin ? q.owner : caller.id;
    const filter: ListFilter = {
      ...(owner !== undefined ? { owner } : {}),
      ...(q.status ? { status: q.status } : {}),
      ...(q.type ? { type: q.type } : {}),
      ...(q.queue ? { queue: q.queue } : {}),
      ...(q.createdAfter ? { createdAfter: Date.parse(q.createdAfter) } : {}),
      ...(q.createdBefore ? { createdBefore: Date.parse(q.createdBefore) } : {}),
    };
    if (q.id !== undefined) return { jobs: (await this.findOne(caller, q.id, filter)).map((j) => toApiJob(j, now)), nextCursor: null };
    const page = await this.s.store.list(filter, q.cursor, q.limit ?? LIMITS.listDefault);
    return { jobs: page.jobs.map((j) => toApiJob(j, now)), nextCursor: page.nextCursor };
  }

  /** A search by id: the job, when the caller may read it and it matches the rest of the filter. */
  private async findOne(caller: Caller, id: string, f: ListFilter): Promise<Job[]> {
    const job = await this.s.store.get(id, SHOWN_VALUES);
    if (!job || (job.owner !== caller.id && !caller.admin)) return [];
    const matches =
      (f.owner === undefined || job.owner === f.owner) &&
      (f.status === undefined || job.status === f.status) &&
      (f.type === undefined || job.type === f.type) &&
      (f.queue === undefined || job.queue === f.queue) &&
      (f.createdAfter === undefined || job.createdAt >= f.createdAfter) &&
      (f.createdBefore === undefined || job.createdAt < f.createdBefore);
    return matches ? [job] : [];
  }

  /** The owner's request, or the admin's on anyone's job; recorded with the job as `by`. */
  async cancel(caller: Caller, id: string): Promise<{ job: ApiJob }> {
    const before = await this.readableRecord(caller, id);
    const job = await this.s.store.requestCancel(id, caller.id);
    this.log.info("cancel requested", { jobId: id, caller: caller.id, owner: before.owner, status: job.status });
    return { job: toApiJob(job, this.now) };
  }

  async retry(caller: Caller, id: string): Promise<{ job: ApiJob }> {
    const before = await this.readableRecord(caller, id);
    const job = await this.s.store.retry(id, caller.id);
    this.log.info("job retried", { jobId: id, caller: caller.id, owner: before.owner });
    await this.ring(job, this.now);
    return { job: toApiJob(job, this.now) };
  }

  /** Every attempt the job keeps, each with its whole error and stack trace. */
  async attempts(caller: Caller, id: string): Promise<{ attempts: ApiAttemptDetail[] }> {
    const job = await this.readableRecord(caller, id);
    return { attempts: (await this.s.store.attempts(job)).map(toApiAttemptDetail) };
  }

  /** Why the job is not running now (core/why.ts), with its worker's presence when it has one. */
  async why(caller: Caller, id: string): Promise<{ why: ApiWhy }> {
    const job = await this.readableRecord(caller, id);
    const worker = job.status === "running" ? await this.s.workers.get(job.workerId) : undefined;
    const counts = job.status === "waiting" ? await this.s.store.childCounts(job) : undefined;
    const children = counts?.exact ? counts : undefined;
    const why = whyNotRunning(job, { now: this.now, cancelGraceMs: this.s.cfg.cancelGraceMs, reportEveryMs: this.s.workers.reportEveryMs, ...(worker ? { worker } : {}), ...(children ? { children } : {}) });
    return { why: toApiWhy(why) };
  }

  /** The job's log lines (core/logs.ts), from its creation to its end plus a margin for late lines. */
  async logs(caller: Caller, id: string, q: { limit?: number | undefined }): Promise<{ lines: JobLogLine[]; source: JobLogSource["name"]; complete: boolean }> {
    const job = await this.readableRecord(caller, id);
    const end = isTerminal(job.status) ? (job as { finishedAt?: number }).finishedAt ?? job.updatedAt : undefined;
    const until = end !== undefined ? Math.min(this.now, end + LOG_MARGIN_MS) : this.now;
    // From its oldest kept attempt: lines of attempts it no longer keeps would be dropped anyway, and
    // a Logs Insights query is billed by the span of logs it scans.
    const since = (job.history[0]?.startedAt ?? job.createdAt) - LOG_MARGIN_MS;
    const out = await this.s.logs.lines({ jobId: job.id, since, until, limit: q.limit ?? DEFAULT_LOG_LINES });
    return { lines: out.lines.filter((l) => fromItsAttempts(job, l)), source: this.s.logs.name, complete: out.complete };
  }

  /** Reading: the owner, or the admin. */
  private async readable(caller: Caller, id: string): Promise<Job> {
    const job = await this.s.store.get(id, SHOWN_VALUES);
    if (!job || (job.owner !== caller.id && !caller.admin)) throw jobNotFound(id);
    return job;
  }

  /**
   * The record alone (no values), for the owner or the admin: reading, and acting too (cancel,
   * retry): the admin may act on anyone's job, an on-call person stopping a runaway one.
   */
  private async readableRecord(caller: Caller, id: string): Promise<Job> {
    const job = await this.s.store.getRecord(id);
    if (!job || (job.owner !== caller.id && !caller.admin)) throw jobNotFound(id);
    return job;
  }
}

/**
 * A line the job's own attempts wrote: tagged with an attempt the job made and that attempt's
 * worker. A worker's output is JSON lines anyone's handler can print, so a line that merely names
 * the job id (a handler echoing its input) is not the job's; forging one would also take the
 * attempt's worker id. The lines of attempts the history no longer keeps (the last 10) are not
 * shown: nothing vouches for them.
 */
function fromItsAttempts(job: Job, line: JobLogLine): boolean {
  if (line.attempt === null || line.workerId === null) return false;
  return job.history.some((h) => h.attempt === line.attempt && h.worker === line.workerId);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]);
}
