/**
 * The typed client for Warden's HTTP API (`docs/contract.md`). It runs anywhere `fetch` does (Node
 * 20, browsers, the CLI) and imports nothing at run time from the rest of the tree, only types.
 *
 * Authentication (`auth`): a bearer token (the local runtime's tokens, or a JWT where a stage
 * configures a JWT authorizer), or SigV4 signing for stages behind API Gateway's IAM authorizer
 * (the default on deployed stages). The signing code loads only when a sigv4 client first calls.
 *
 * Polling is bounded: `wait` backs off, honours `Retry-After`, and gives up with a typed error
 * when the job is stale (its worker died) or the wait runs past its time limit, so nothing polls
 * a dead job forever (a client that polled a job whose worker had died, for hours).
 */
import type { ApiErrorCode } from "../core/api/errors.js";
import type { ApiAction, ApiAttempt, ApiAttemptDetail, ApiChildren, ApiHold, ApiJob, ApiWhy, ApiWorker } from "../core/api/view.js";
import type { LimitRequest, ScheduleUpdate, SubmitRequest } from "../core/api/requests.js";
import type { FlowPolicy } from "../core/flow.js";
import type { Priority, QueueName } from "../core/config.js";
import type { Status } from "../core/job.js";
import type { JobLogLine, JobLogSource } from "../core/logs.js";
import type { ApiQueue } from "../core/api/admin.js";
import type { ApiControls, ApiLimit, ApiPause } from "../core/api/controls.js";
import type { ApiSchedule } from "../core/api/schedules.js";
import type { BulkAnswer } from "../core/api/bulk.js";
import type { NotStarting, StuckReport } from "../core/stuck.js";
import type { WhyReason } from "../core/why.js";
import type { SweepReport } from "../core/sweeper.js";
import type { DeadLetterSample } from "../core/deadletters.js";

import { sigV4Signer, type RequestSigner, type SigV4Auth } from "./sigv4.js";

export type {
  ApiAction,
  ApiAttempt,
  ApiAttemptDetail,
  ApiChildren,
  ApiControls,
  ApiHold,
  ApiJob,
  ApiLimit,
  ApiPause,
  ApiQueue,
  ApiSchedule,
  ApiWhy,
  ApiWorker,
  DeadLetterSample,
  FlowPolicy,
  JobLogLine,
  NotStarting,
  Priority,
  QueueName,
  Status,
  StuckReport,
  SweepReport,
  WhyReason,
};
export type { AwsCredentialIdentity, AwsCredentialIdentityProvider, SigV4Auth } from "./sigv4.js";
export { executeApiRegion } from "./sigv4.js";

// ─── the API's shapes ──────────────────────────────────────────────────────────────────────
// The shapes are the server's own (core/api/view.ts, the one mapping from a stored job; the stuck
// report, the queue depths and the bulk answer beside it), so the client and the API cannot drift.

/** `GET /jobs/{id}/attempts`: an attempt with its full error message and bounded stack trace. */
export type AttemptDetail = ApiAttemptDetail;
/** `GET /jobs/{id}/why`: why the job is not running now (or how it ended). */
export type JobWhy = ApiWhy;
export type WorkerState = ApiWorker["state"];

export interface JobLogs {
  /** Oldest first: the job's `ctx.log` lines and the runner's own lines about it. */
  lines: JobLogLine[];
  source: JobLogSource["name"];
  /** False when the source stopped early (the limit, or a query still running at its deadline). */
  complete: boolean;
}

/** `GET /admin/queues`: one queue's depth as SQS reports it (approximate), its DLQ's, and its oldest unclaimed job's wait. */
export type QueueDepth = ApiQueue;

/**
 * `GET /admin/controls`: every pause (`queue:<name>` or `type:<job type>`) and every limit
 * (`type:<job type>` or `key:<concurrency key>`), with how many jobs each holds back now.
 */
export type Controls = ApiControls;
/** A resume or a removed limit's answer: the controls after it, and how many held jobs it woke. */
export type ControlsWoken = ApiControls & { woken: number };
/** `PUT /admin/limits/{key}`: a concurrency limit, a rate limit (`starts` per `perSeconds`), or both; it replaces the key's limit. */
export type LimitSettings = LimitRequest;

/**
 * `GET /schedules/{id}` (and every schedule route's answer): what it fires and when, its next
 * runs (ISO, none while paused), its last runs (oldest first) and its counts.
 */
export type Schedule = ApiSchedule;
/** `PUT /schedules/{id}`: what a schedule fires and when; `cron` (with `timeZone`, default UTC) or `everySeconds`, not both. It replaces the schedule's settings. */
export type ScheduleSettings = ScheduleUpdate;
/** `POST /schedules`: a new schedule's id (letters, digits and . _ -) and its settings. */
export type NewSchedule = ScheduleSettings & { id: string };

export interface BulkRetryFilter {
  type?: string;
  queue?: QueueName;
  /** Default `failed`. */
  status?: "failed" | "cancelled";
  dryRun?: boolean;
  cursor?: string;
}

export interface BulkCancelFilter {
  type?: string;
  queue?: QueueName;
  /** Both when left out. */
  status?: "queued" | "running";
  dryRun?: boolean;
  cursor?: string;
}

/** One call's answer: it stops after 20 s or 1000 jobs, and `nextCursor` continues (core/api/bulk.ts). */
export type BulkResult = BulkAnswer;

export interface BulkOptions {
  /** Called after every call with that call's answer and the totals so far. */
  onPage?: (page: BulkResult, total: BulkTotal) => void;
  signal?: AbortSignal;
}

/** The sum over every call that followed the cursors to the end. */
export interface BulkTotal {
  matched: number;
  acted: number;
  skipped: number;
  dryRun: boolean;
  /** Calls made (one per page). */
  calls: number;
}

export interface BearerAuth {
  kind: "bearer";
  /** Sent as `Authorization: Bearer <token>`. */
  token: string;
}

export type Auth = BearerAuth | SigV4Auth;

interface CommonOptions {
  /** The API's base URL, e.g. http://127.0.0.1:4000 or https://abc.execute-api.eu-west-1.amazonaws.com. */
  baseUrl: string;
  /** Defaults to the global fetch; pass one for proxies or test doubles. */
  fetch?: typeof fetch;
  /** Per-request time limit (signing and credential lookup included). */
  requestTimeoutMs?: number;
}

/** `auth`, or the older `token` (same as `auth: {kind: "bearer", token}`), or neither; not both. */
export type ClientOptions = CommonOptions & ({ auth?: Auth; token?: never } | { token?: string; auth?: never });

/** A child of a fan-out as `POST /jobs` takes it: its type, its input, a key naming it within its parent, and a concurrency key its limits count it under. */
export type ChildRequest = NonNullable<SubmitRequest["children"]>[number];
/** A chain's step (`after`): only the first may have an input, and none a key (a concurrency key, each may). */
export type ChainStep = Omit<ChildRequest, "key">;

export interface SubmitOptions {
  queue?: QueueName;
  maxAttempts?: number;
  timeoutSeconds?: number;
  runAt?: Date | string;
  /** Makes a repeated submit safe: the same key from the same caller answers with the first job. */
  idempotencyKey?: string;
  /** Counts the job under this key's concurrency and rate limits (`key:<it>`), beside its type's. */
  concurrencyKey?: string;
  /** Which of its queue's waiting jobs starts first: `high`, `normal` (the default) or `low`; its children take it too. */
  priority?: Priority;
  /**
   * Fan-out (1 to 10,000): the job starts `waiting` and runs once these have all ended, with
   * their results (its handler reads them with `ctx.children()`).
   */
  children?: ChildRequest[];
  /** With `children`: `collect` (the default) waits for every child; `failFast` fails the job at the first failed child. */
  policy?: FlowPolicy;
  /**
   * A chain: these steps run first, in order, each taking the result of the one before; the job
   * takes the last one's result as its input (so give no `input` of its own, only `after[0]`'s).
   */
  after?: ChainStep[];
}

export interface WaitOptions {
  /** Give up after this long (WaitTimeoutError). Default 10 minutes. */
  timeoutMs?: number;
  /** Called with every poll's answer, for progress bars. */
  onProgress?: (job: ApiJob) => void;
  /** First poll interval; it doubles up to `maxIntervalMs`, and never undercuts Retry-After. */
  minIntervalMs?: number;
  maxIntervalMs?: number;
  /**
   * While the job is running, poll this often (poll start to poll start) with no doubling and no
   * Retry-After: for a person watching its progress. Queued jobs and failed polls still back off.
   */
  runningIntervalMs?: number;
  signal?: AbortSignal;
}

export interface ListFilter {
  status?: Status;
  type?: string;
  queue?: QueueName;
  /** (admin) Only this caller's jobs; for anyone else, another caller's id finds nothing. */
  owner?: string;
  /** Created at or after this time. */
  createdAfter?: Date | string;
  /** Created before this time. */
  createdBefore?: Date | string;
  /** Just this job, when the caller may read it (else none). */
  id?: string;
  /** Jobs per page, 1–100. */
  limit?: number;
  /** Start from this page (a `nextCursor` from an earlier page). */
  cursor?: string;
}

export interface Page {
  jobs: ApiJob[];
  nextCursor: string | null;
}

export interface ChildrenFilter {
  /** Only children in this status (a filtered page may hold fewer than `limit` and still have a next cursor). */
  status?: Status;
  /** Children per page, 1–100. */
  limit?: number;
  /** Start from this page (a `nextCursor` from an earlier page). */
  cursor?: string;
}

/** `GET /jobs/{id}/children`: a page of the parent's last round of children, by their place, each with its result. */
export interface ChildrenPage {
  children: ApiJob[];
  nextCursor: string | null;
  /** How many children the round has (whatever the filter). */
  total: number;
}

export interface Health {
  ok: boolean;
  checks: Record<string, string>;
}

export interface DeadLetterReport {
  queues: Record<QueueName, { count: number; sample: DeadLetterSample[] }>;
}

/** Every error this client throws. */
export class WardenError extends Error {
  override name = "WardenError";
}

/** The API answered with an error in the contract's shape (or something that was not the API). */
export class WardenApiError extends WardenError {
  override name = "WardenApiError";
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode | "bad_response",
    message: string,
    readonly details?: unknown,
  ) {
    super(`${status} ${code}: ${message}`);
  }
}

/** The API could not be reached (connection refused, DNS, request time limit). */
export class WardenNetworkError extends WardenError {
  override name = "WardenNetworkError";
}

/** The job's worker stopped heartbeating: its lease ran out and nobody is running it. */
export class StaleJobError extends WardenError {
  override name = "StaleJobError";
  constructor(readonly job: ApiJob) {
    super(
      `job ${job.id} is stale: its worker (${job.worker ?? job.history.at(-1)?.worker ?? "unknown"}) last heartbeat at ${job.heartbeatAt ?? "never"}; ` +
        `the sweeper will reclaim or fail it. Check again later with \`warden status ${job.id}\`.`,
    );
  }
}

/** The job had not finished when the wait's time limit ran out. */
export class WaitTimeoutError extends WardenError {
  override name = "WaitTimeoutError";
  constructor(
    readonly job: ApiJob,
    readonly waitedMs: number,
  ) {
    super(`job ${job.id} is still ${job.status} after waiting ${Math.round(waitedMs / 1000)} s; it has not been cancelled, check it again later`);
  }
}

const TERMINAL: ReadonlySet<Status> = new Set(["succeeded", "failed", "cancelled"]);
export const isFinished = (job: ApiJob): boolean => TERMINAL.has(job.status);

interface Answer<T> {
  status: number;
  body: T;
  retryAfterMs?: number;
}

export class WardenClient {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  private readonly auth: Auth | undefined;
  /** Built on the first sigv4 call; a failed build is retried on the next call. */
  private signer: Promise<RequestSigner> | undefined;

  constructor(private readonly opts: ClientOptions) {
    if (!/^https?:\/\//.test(opts.baseUrl)) throw new WardenError(`baseUrl must start with http:// or https:// (got ${JSON.stringify(opts.baseUrl)})`);
    if (opts.auth && opts.token !== undefined) throw new WardenError("pass either auth or token, not both");
    if (opts.auth?.kind === "sigv4" && !opts.auth.region) throw new WardenError("sigv4 auth needs a region (the stage's, e.g. eu-west-1)");
    this.base = opts.baseUrl.replace(/\/+$/, "");
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.auth = opts.auth ?? (opts.token ? { kind: "bearer", token: opts.token } : undefined);
  }

  // ─── jobs ────────────────────────────────────────────────────────────────────────────────

  /** Submits a job; `created` is false when an idempotency key found an earlier job. */
  async submit(type: string, input?: unknown, o: SubmitOptions = {}): Promise<{ job: ApiJob; created: boolean }> {
    const body = {
      type,
      ...(input !== undefined ? { input } : {}),
      ...(o.queue ? { queue: o.queue } : {}),
      ...(o.maxAttempts !== undefined ? { maxAttempts: o.maxAttempts } : {}),
      ...(o.timeoutSeconds !== undefined ? { timeoutSeconds: o.timeoutSeconds } : {}),
      ...(o.runAt !== undefined ? { runAt: o.runAt instanceof Date ? o.runAt.toISOString() : o.runAt } : {}),
      ...(o.idempotencyKey !== undefined ? { idempotencyKey: o.idempotencyKey } : {}),
      ...(o.concurrencyKey !== undefined ? { concurrencyKey: o.concurrencyKey } : {}),
      ...(o.priority !== undefined ? { priority: o.priority } : {}),
      ...(o.children !== undefined ? { children: o.children } : {}),
      ...(o.policy !== undefined ? { policy: o.policy } : {}),
      ...(o.after !== undefined ? { after: o.after } : {}),
    };
    const a = await this.call<{ job: ApiJob }>("POST", "/jobs", body);
    return { job: a.body.job, created: a.status === 201 };
  }

  async get(id: string): Promise<ApiJob> {
    return (await this.getWithRetryAfter(id)).job;
  }

  /** The job and how long the API asks pollers to wait before the next look. */
  async getWithRetryAfter(id: string): Promise<{ job: ApiJob; retryAfterMs?: number }> {
    const a = await this.call<{ job: ApiJob }>("GET", `/jobs/${encodeURIComponent(id)}`);
    return { job: a.body.job, ...(a.retryAfterMs !== undefined ? { retryAfterMs: a.retryAfterMs } : {}) };
  }

  /**
   * Polls until the job finishes and returns it, whatever its final status (check `status`).
   * Throws StaleJobError when its worker is gone, WaitTimeoutError past `timeoutMs`.
   */
  async wait(id: string, o: WaitOptions = {}): Promise<ApiJob> {
    const started = Date.now();
    const deadline = started + (o.timeoutMs ?? 10 * 60_000);
    const maxInterval = o.maxIntervalMs ?? 30_000;
    let interval = o.minIntervalMs ?? 500;
    let last: ApiJob | undefined;
    for (;;) {
      o.signal?.throwIfAborted();
      const polledAt = Date.now();
      let retryAfterMs: number | undefined;
      let watching = false;
      try {
        const a = await this.getWithRetryAfter(id);
        last = a.job;
        retryAfterMs = a.retryAfterMs;
        o.onProgress?.(a.job);
        if (isFinished(a.job)) return a.job;
        if (a.job.stale) throw new StaleJobError(a.job);
        watching = o.runningIntervalMs !== undefined && a.job.status === "running";
      } catch (e) {
        // A flaky network or a busy API is worth another look; a 4xx answer will not change.
        if (!isTransient(e) || !last) throw e;
      }
      const now = Date.now();
      if (now >= deadline) throw new WaitTimeoutError(last, now - started);
      const wanted = watching ? Math.max(0, o.runningIntervalMs! - (now - polledAt)) : Math.max(interval, retryAfterMs ?? 0);
      if (!watching) interval = Math.min(maxInterval, interval * 2);
      await sleep(Math.min(wanted, deadline - now), o.signal);
    }
  }

  async cancel(id: string): Promise<ApiJob> {
    return (await this.call<{ job: ApiJob }>("POST", `/jobs/${encodeURIComponent(id)}/cancel`)).body.job;
  }

  async retry(id: string): Promise<ApiJob> {
    return (await this.call<{ job: ApiJob }>("POST", `/jobs/${encodeURIComponent(id)}/retry`)).body.job;
  }

  /** One page, newest first. */
  async listPage(f: ListFilter = {}): Promise<Page> {
    const qs = query({
      status: f.status,
      type: f.type,
      queue: f.queue,
      owner: f.owner,
      createdAfter: isoOf(f.createdAfter),
      createdBefore: isoOf(f.createdBefore),
      id: f.id,
      limit: f.limit,
      cursor: f.cursor,
    });
    return (await this.call<Page>("GET", `/jobs${qs}`)).body;
  }

  /** Every page in turn, newest jobs first: `for await (const page of client.list()) …`. */
  async *list(f: ListFilter = {}): AsyncGenerator<ApiJob[], void, undefined> {
    let cursor = f.cursor;
    do {
      const page = await this.listPage({ ...f, ...(cursor ? { cursor } : {}) });
      if (page.jobs.length) yield page.jobs;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /**
   * One page of a parent's last round of children, by their place (`childIndex`), each with its
   * result. A job that never had children answers none. A chain's step is a parent of one child
   * (the step before it), so a chain reads as a nested tree.
   */
  async children(id: string, f: ChildrenFilter = {}): Promise<ChildrenPage> {
    const qs = query({ status: f.status, limit: f.limit, cursor: f.cursor });
    return (await this.call<ChildrenPage>("GET", `/jobs/${encodeURIComponent(id)}/children${qs}`)).body;
  }

  /** Every attempt the job keeps, oldest first, with its full error message and stack trace. */
  async attempts(id: string): Promise<AttemptDetail[]> {
    return (await this.call<{ attempts: AttemptDetail[] }>("GET", `/jobs/${encodeURIComponent(id)}/attempts`)).body.attempts;
  }

  /** The job's log lines, oldest first; `complete` is false when the source stopped early. */
  async logs(id: string, o: { limit?: number } = {}): Promise<JobLogs> {
    return (await this.call<JobLogs>("GET", `/jobs/${encodeURIComponent(id)}/logs${query({ limit: o.limit })}`)).body;
  }

  /** Why the job is not running now (waiting for runAt, backing off, not claimed, its lease lapsed…), or how it ended. */
  async why(id: string): Promise<JobWhy> {
    return (await this.call<{ why: JobWhy }>("GET", `/jobs/${encodeURIComponent(id)}/why`)).body.why;
  }

  async health(): Promise<Health> {
    try {
      return (await this.call<Health>("GET", "/health")).body;
    } catch (e) {
      // 503 still carries the checks; show them rather than only the error.
      const checks = e instanceof WardenApiError ? (e.details as { checks?: Record<string, string> } | undefined)?.checks : undefined;
      if (checks) return { ok: false, checks };
      throw e;
    }
  }

  // ─── admin ───────────────────────────────────────────────────────────────────────────────

  async stuck(): Promise<StuckReport> {
    return (await this.call<StuckReport>("GET", "/admin/stuck")).body;
  }

  async sweep(): Promise<SweepReport> {
    return (await this.call<{ report: SweepReport }>("POST", "/admin/sweep")).body.report;
  }

  async deadLetters(): Promise<DeadLetterReport> {
    return (await this.call<DeadLetterReport>("GET", "/admin/dead-letters")).body;
  }

  async redrive(queue: QueueName): Promise<number> {
    return (await this.call<{ moved: number }>("POST", "/admin/dead-letters/redrive", { queue })).body.moved;
  }

  async workers(): Promise<ApiWorker[]> {
    return (await this.call<{ workers: ApiWorker[] }>("GET", "/admin/workers")).body.workers;
  }

  async queues(): Promise<QueueDepth[]> {
    return (await this.call<{ queues: QueueDepth[] }>("GET", "/admin/queues")).body.queues;
  }

  /** Every pause and limit, with the jobs each holds back (and, for a concurrency limit, the ones running). */
  async controls(): Promise<Controls> {
    return (await this.call<Controls>("GET", "/admin/controls")).body;
  }

  /** Pauses `queue:<name>` or `type:<job type>`: its queued jobs are held, not started, until `resume`. Pausing twice is one pause. */
  async pause(target: string): Promise<Controls> {
    return (await this.call<Controls>("POST", `/admin/pauses/${encodeURIComponent(target)}`)).body;
  }

  /** Ends a pause and wakes the jobs it held (`woken`; the sweeper wakes any past the API's most per call). */
  async resume(target: string): Promise<ControlsWoken> {
    return (await this.call<ControlsWoken>("DELETE", `/admin/pauses/${encodeURIComponent(target)}`)).body;
  }

  /** Sets the limit on `type:<job type>` or `key:<concurrency key>`, replacing the one it had. */
  async setLimit(key: string, limit: LimitSettings): Promise<Controls> {
    const body = {
      ...(limit.concurrency !== undefined ? { concurrency: limit.concurrency } : {}),
      ...(limit.rate !== undefined ? { rate: limit.rate } : {}),
    };
    return (await this.call<Controls>("PUT", `/admin/limits/${encodeURIComponent(key)}`, body)).body;
  }

  /** Removes the key's limit and wakes the jobs it held (`woken`). */
  async removeLimit(key: string): Promise<ControlsWoken> {
    return (await this.call<ControlsWoken>("DELETE", `/admin/limits/${encodeURIComponent(key)}`)).body;
  }

  // ─── schedules ───────────────────────────────────────────────────────────────────────────

  /** Your schedules (the admin's: everyone's), by id. */
  async schedules(): Promise<Schedule[]> {
    return (await this.call<{ schedules: Schedule[] }>("GET", "/schedules")).body.schedules;
  }

  /** One schedule, with its next runs and its last ones. */
  async schedule(id: string): Promise<Schedule> {
    return (await this.call<{ schedule: Schedule }>("GET", `/schedules/${encodeURIComponent(id)}`)).body.schedule;
  }

  /** Makes a schedule; a 409 when the id is taken. A fixed rate's first tick is one interval from now, a cron's its next match. */
  async createSchedule(req: NewSchedule): Promise<Schedule> {
    return (await this.call<{ schedule: Schedule }>("POST", "/schedules", definedOf(req))).body.schedule;
  }

  /** Replaces what the schedule fires and when (its runs and counts stay; a new cadence counts from now). */
  async updateSchedule(id: string, req: ScheduleSettings): Promise<Schedule> {
    return (await this.call<{ schedule: Schedule }>("PUT", `/schedules/${encodeURIComponent(id)}`, definedOf(req))).body.schedule;
  }

  async deleteSchedule(id: string): Promise<{ deleted: string }> {
    return (await this.call<{ deleted: string }>("DELETE", `/schedules/${encodeURIComponent(id)}`)).body;
  }

  /** No tick fires until `resumeSchedule`. Pausing twice is one pause. */
  async pauseSchedule(id: string): Promise<Schedule> {
    return (await this.call<{ schedule: Schedule }>("POST", `/schedules/${encodeURIComponent(id)}/pause`)).body.schedule;
  }

  /** Goes on from the next tick after now: the ticks that came while it was paused are not fired. */
  async resumeSchedule(id: string): Promise<Schedule> {
    return (await this.call<{ schedule: Schedule }>("POST", `/schedules/${encodeURIComponent(id)}/resume`)).body.schedule;
  }

  /** One call of a bulk retry (default status `failed`); follow `nextCursor`, or use `bulkRetry`. */
  async bulkRetryPage(f: BulkRetryFilter): Promise<BulkResult> {
    return (await this.call<BulkResult>("POST", "/admin/jobs/retry", bulkBody(f))).body;
  }

  /** One call of a bulk cancel (queued and running jobs unless `status` says one); follow `nextCursor`, or use `bulkCancel`. */
  async bulkCancelPage(f: BulkCancelFilter): Promise<BulkResult> {
    return (await this.call<BulkResult>("POST", "/admin/jobs/cancel", bulkBody(f))).body;
  }

  /** Retries every matching job, following the cursors to the end; with `dryRun`, counts them. */
  async bulkRetry(f: BulkRetryFilter, o: BulkOptions = {}): Promise<BulkTotal> {
    // A failed retry call may have retried jobs that then failed again, within the backoff, back
    // into the partition the same cursor reads: repeating it could retry those twice. So only a
    // 429 (the API did nothing) is repeated, unless it is a dry run.
    const repeatable = f.dryRun === true ? isTransient : isThrottled;
    return this.followBulk((cursor) => this.bulkRetryPage({ ...f, ...(cursor ? { cursor } : {}) }), f, o, repeatable);
  }

  /** Cancels every matching job, following the cursors to the end; with `dryRun`, counts them. */
  async bulkCancel(f: BulkCancelFilter, o: BulkOptions = {}): Promise<BulkTotal> {
    // A second cancel of a job is harmless (it no longer matches, or is already cancelling).
    return this.followBulk((cursor) => this.bulkCancelPage({ ...f, ...(cursor ? { cursor } : {}) }), f, o, isTransient);
  }

  /**
   * Calls until `nextCursor` is null. A failed call that `repeatable` allows is tried again with the
   * same cursor (at most BULK_TRIES times). When a call finally fails, the error it throws carries
   * the totals of the calls that succeeded before it (see `bulkTotalOf`).
   */
  private async followBulk(
    page: (cursor: string | undefined) => Promise<BulkResult>,
    f: { cursor?: string; dryRun?: boolean },
    o: BulkOptions,
    repeatable: (e: unknown) => boolean,
  ): Promise<BulkTotal> {
    const total: BulkTotal = { matched: 0, acted: 0, skipped: 0, dryRun: f.dryRun === true, calls: 0 };
    let cursor = f.cursor;
    do {
      let answer: BulkResult | undefined;
      for (let tries = 1; !answer; tries++) {
        o.signal?.throwIfAborted();
        try {
          answer = await page(cursor);
        } catch (e) {
          if (!repeatable(e) || tries >= BULK_TRIES) {
            if (e !== null && typeof e === "object") BULK_TOTALS.set(e, { ...total });
            throw e;
          }
          await sleep(1_000 * 2 ** (tries - 1), o.signal);
        }
      }
      total.matched += answer.matched;
      total.acted += answer.acted;
      total.skipped += answer.skipped;
      total.calls++;
      o.onPage?.(answer, { ...total });
      cursor = answer.nextCursor ?? undefined;
    } while (cursor);
    return total;
  }

  // ─── transport ───────────────────────────────────────────────────────────────────────────

  private async call<T>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown): Promise<Answer<T>> {
    const url = new URL(`${this.base}${path}`);
    const text = body !== undefined ? JSON.stringify(body) : undefined;
    const signal = AbortSignal.timeout(this.opts.requestTimeoutMs ?? 30_000);
    let headers: Record<string, string> = { accept: "application/json" };
    if (text !== undefined) headers["content-type"] = "application/json";
    if (this.auth?.kind === "bearer") headers.authorization = `Bearer ${this.auth.token}`;
    if (this.auth?.kind === "sigv4") headers = await this.sign(this.auth, { method, url, headers, ...(text !== undefined ? { body: text } : {}) }, signal);
    let res: Response;
    try {
      res = await this.fetchFn(url.href, { method, headers, ...(text !== undefined ? { body: text } : {}), signal });
    } catch (e) {
      throw new WardenNetworkError(`cannot reach the Warden API at ${this.base}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
    return this.answer<T>(res);
  }

  /** Signs with the resolved credentials; a credential chain that finds nothing is a WardenError, not a crash. */
  private async sign(auth: SigV4Auth, req: Parameters<RequestSigner>[0], signal: AbortSignal): Promise<Record<string, string>> {
    try {
      this.signer ??= sigV4Signer(auth).catch((e: unknown) => {
        this.signer = undefined;
        throw e;
      });
      return await abortable(this.signer.then((sign) => sign(req)), signal);
    } catch (e) {
      if (signal.aborted) throw new WardenNetworkError(`timed out getting AWS credentials to sign the request to ${this.base}`, { cause: e });
      throw new WardenError(`cannot sign the request with SigV4 (AWS credentials for region ${auth.region}): ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
  }

  private async answer<T>(res: Response): Promise<Answer<T>> {
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      throw new WardenApiError(res.status, "bad_response", `the answer is not JSON: ${text.slice(0, 120)}`);
    }
    if (!res.ok) {
      const answer = parsed as { error?: { code?: ApiErrorCode; message?: string; details?: unknown }; message?: unknown } | undefined;
      const err = answer?.error;
      // API Gateway's own refusals (a bad signature, a throttle) are {"message": …}, not the contract's shape.
      const gateway = typeof answer?.message === "string" ? `API Gateway: ${answer.message}` : undefined;
      throw new WardenApiError(res.status, err?.code ?? "bad_response", err?.message ?? gateway ?? `HTTP ${res.status}`, err?.details);
    }
    const retryAfter = parseRetryAfter(res.headers.get("retry-after"));
    return { status: res.status, body: parsed as T, ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}) };
  }
}

/** Tries per bulk call (the first and the repeats after a transient failure). */
const BULK_TRIES = 3;

function bulkBody(f: BulkRetryFilter | BulkCancelFilter): Record<string, unknown> {
  return definedOf(f);
}

/** The fields that have a value: the API's objects are strict, and an explicit undefined is no field. */
function definedOf(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

const isoOf = (t: Date | string | undefined): string | undefined => (t instanceof Date ? t.toISOString() : t);

/** `?a=1&b=2` from the defined values, or "" when there are none. */
function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  // %20, not form encoding's +, for a space: SigV4 signs the query as RFC 3986 has it.
  const qs = q.toString().replace(/\+/g, "%20");
  return qs ? `?${qs}` : "";
}

/** Retry-After in seconds (the HTTP date form is not used by Warden, but tolerated). */
function parseRetryAfter(v: string | null): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Credential chains can hang (an instance-metadata probe off EC2); the request's time limit covers them too. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => reject(signal.reason);
    if (signal.aborted) return abort();
    signal.addEventListener("abort", abort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}

/** The totals a bulk run had reached when one of its calls failed for good, by the error it threw. */
const BULK_TOTALS = new WeakMap<object, BulkTotal>();

/**
 * What a failed `bulkRetry` or `bulkCancel` did before it failed: the totals of the calls that
 * succeeded (calls 0 when the first one failed), or undefined for an error from anything else.
 */
export function bulkTotalOf(e: unknown): BulkTotal | undefined {
  return e !== null && typeof e === "object" ? BULK_TOTALS.get(e) : undefined;
}

function isThrottled(e: unknown): boolean {
  return e instanceof WardenApiError && e.status === 429;
}

function isTransient(e: unknown): boolean {
  return e instanceof WardenNetworkError || (e instanceof WardenApiError && (e.status >= 500 || e.status === 429));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener("abort", abort);
      resolve();
    }
    function abort(): void {
      clearTimeout(t);
      reject(signal!.reason);
    }
    signal?.addEventListener("abort", abort, { once: true });
  });
}
