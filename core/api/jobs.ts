/**
 * What the API does for a caller, free of HTTP: submit, read, list, cancel and retry jobs, each
 * confined to the caller's own jobs (another caller's job reads exactly like an unknown id).
 * Requests arrive already shaped by `requests.ts`; answers are in the contract's job shape.
 */
import { LIMITS, QUEUE_NAMES, TIMINGS, type QueueName } from "../config.js";
import { errorMessage } from "../errors.js";
import type { Job } from "../job.js";
import type { Services } from "../services.js";
import { ApiError, jobNotFound } from "./errors.js";
import type { Caller } from "./identity.js";
import { MAX_RUN_AT_DAYS, type ListQuery, type SubmitRequest } from "./requests.js";
import { SHOWN_VALUES } from "../values.js";
import { retryAfterSeconds, toApiJob, type ApiJob } from "./view.js";

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
    const { type, input } = this.s.registry.parseInput(req.type, req.input);
    const queue: QueueName = req.queue ?? this.s.registry.queueFor(type, input);
    const now = this.now;
    const runAt = req.runAt === undefined ? undefined : Date.parse(req.runAt);
    if (runAt !== undefined && runAt - now > MAX_RUN_AT_DAYS * 24 * 3600_000) {
      throw new ApiError("invalid_request", `runAt is more than ${MAX_RUN_AT_DAYS} days away; pick an earlier time`);
    }
    // The type's limit is a ceiling: a job may ask for less time, never more (registry.ts JobLimits).
    if (req.timeoutSeconds !== undefined && req.timeoutSeconds * 1000 > type.limits.timeoutMs) {
      throw new ApiError("invalid_request", `timeoutSeconds may be at most ${Math.floor(type.limits.timeoutMs / 1000)} for job type "${type.name}"`);
    }
    const { job, created } = await this.s.store.create({
      owner: caller.id,
      type: type.name,
      queue,
      input,
      maxAttempts: req.maxAttempts ?? Math.min(type.limits.maxAttempts, LIMITS.maxAttempts),
      timeoutMs: req.timeoutSeconds !== undefined ? req.timeoutSeconds * 1000 : type.limits.timeoutMs,
      ...(runAt !== undefined ? { runAt } : {}),
      ...(req.idempotencyKey !== undefined ? { idempotencyKey: req.idempotencyKey } : {}),
    });
    if (!created) {
      this.log.info("idempotent submit found the first job", { jobId: job.id, caller: caller.id });
      return { job: toApiJob(job, now), created };
    }
    this.s.metrics.emit("JobsSubmitted", 1, { Queue: queue, JobType: type.name });
    this.log.info("job submitted", { jobId: job.id, type: type.name, queue, caller: caller.id });
    await this.ring(job, now);
    return { job: toApiJob(job, now), created };
  }

  /** Sends the job's message unless its start is further out than SQS can delay (the sweeper sends those). */
  private async ring(job: Job, now: number): Promise<void> {
    const delayMs = job.status === "queued" && job.runAt !== undefined ? Math.max(0, job.runAt - now) : 0;
    if (delayMs > TIMINGS.maxMessageDelaySeconds * 1000) return;
    try {
      await this.s.queue.send(job.queue, [job.id], delayMs);
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
    return { job: toApiJob(job, now), ...(retryAfter !== undefined ? { retryAfterSeconds: retryAfter } : {}) };
  }

  /** Newest first. A caller lists its own jobs; the admin lists everyone's. */
  async list(caller: Caller, q: ListQuery): Promise<{ jobs: ApiJob[]; nextCursor: string | null }> {
    const page = await this.s.store.list(
      { ...(caller.admin ? {} : { owner: caller.id }), ...(q.status ? { status: q.status } : {}), ...(q.type ? { type: q.type } : {}) },
      q.cursor,
      q.limit ?? LIMITS.listDefault,
    );
    const now = this.now;
    return { jobs: page.jobs.map((j) => toApiJob(j, now)), nextCursor: page.nextCursor };
  }

  async cancel(caller: Caller, id: string): Promise<{ job: ApiJob }> {
    await this.owned(caller, id);
    const job = await this.s.store.requestCancel(id);
    this.log.info("cancel requested", { jobId: id, caller: caller.id, status: job.status });
    return { job: toApiJob(job, this.now) };
  }

  async retry(caller: Caller, id: string): Promise<{ job: ApiJob }> {
    await this.owned(caller, id);
    const job = await this.s.store.retry(id);
    this.log.info("job retried", { jobId: id, caller: caller.id });
    await this.ring(job, this.now);
    return { job: toApiJob(job, this.now) };
  }

  /** Reading: the owner, or the admin. */
  private async readable(caller: Caller, id: string): Promise<Job> {
    const job = await this.s.store.get(id, SHOWN_VALUES);
    if (!job || (job.owner !== caller.id && !caller.admin)) throw jobNotFound(id);
    return job;
  }

  /** Acting: the owner only (the contract lets the admin read any job, not act on it). */
  private async owned(caller: Caller, id: string): Promise<Job> {
    const job = await this.s.store.getRecord(id);
    if (!job || job.owner !== caller.id) throw jobNotFound(id);
    return job;
  }
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
