/**
 * The one mapping from a stored job to the API's job object (`docs/contract.md`, "The job object").
 * The HTTP API, the typed client, the CLI and the dashboard all show jobs in this shape, so a
 * field means the same thing everywhere. Times become ISO-8601 strings; fields the store keeps
 * for itself (owner, token, lease, due index, checkpoint) never leave it.
 */
import { holdMessage, type Hold } from "../gates.js";
import { DEFAULT_PRIORITY, type Priority, type QueueName } from "../config.js";
import { isStale, isTerminal, type AttemptRecord, type ErrorCode, type Job, type JobAction, type Outcome, type Status } from "../job.js";
import type { ChildCountsView } from "../store.js";
import type { Why, WhyReason } from "../why.js";
import { presenceState, type PresenceState, type WorkerInfo, type WorkerKind } from "../workers.js";

export interface ApiProgress {
  percent: number | null;
  done: number;
  total: number | null;
  message: string | null;
}

export interface ApiAttempt {
  attempt: number;
  worker: string;
  startedAt: string;
  endedAt: string | null;
  outcome: Outcome | null;
  /** Why this attempt ended badly, its message cut short (GET /jobs/{id}/attempts has it whole, with the stack). */
  error: { code: ErrorCode; message: string } | null;
}

/** One attempt as `GET /jobs/{id}/attempts` shows it: the error whole, with its stack when the handler threw. */
export interface ApiAttemptDetail extends Omit<ApiAttempt, "error"> {
  error: { code: ErrorCode; message: string; stack: string | null } | null;
}

export interface ApiAction {
  at: string;
  action: JobAction["action"];
  by: string;
}

export interface ApiWhy {
  state: Status;
  reason: WhyReason;
  message: string;
  since: string | null;
  until: string | null;
  worker: string | null;
  rings: number | null;
}

export interface ApiJob {
  id: string;
  type: string;
  queue: QueueName;
  status: Status;
  input: unknown;
  result: unknown;
  error: { code: ErrorCode; message: string } | null;
  attempts: number;
  maxAttempts: number;
  progress: ApiProgress | null;
  createdAt: string;
  firstStartedAt: string | null;
  startedAt: string | null;
  heartbeatAt: string | null;
  finishedAt: string | null;
  runAt: string | null;
  cancelRequested: boolean;
  /** A running job whose heartbeat is older than its lease: its worker is probably gone. */
  stale: boolean;
  /** The worker holding it now: only a running job has one. */
  worker: string | null;
  history: ApiAttempt[];
  /** Who asked for a cancel or a retry, and when (the last few). */
  actions: ApiAction[];
  /** A child's parent, and its place among the parent's children (`childKey` when its spawn named it). */
  parentId: string | null;
  childIndex: number | null;
  childKey: string | null;
  /** A parent's last round of children by status; null for a job that never had children. */
  children: ApiChildren | null;
  /** The key its concurrency and rate limits count it under, beside its type's (docs/jobs.md "Controls"). */
  concurrencyKey: string | null;
  /** Which of its queue's waiting jobs starts first (docs/jobs.md "Priorities"). */
  priority: Priority;
  /** Why a queued job is held back (a pause, a concurrency or rate limit), and since when; null when it is not. */
  held: ApiHold | null;
}

export interface ApiHold {
  by: "pause" | "concurrency" | "rate";
  /** `queue:<name>` or `type:<name>` for a pause; `type:<name>` or `key:<key>` for a limit. */
  key: string;
  since: string;
  /** A rate hold: when its window has room for it. */
  until: string | null;
  message: string;
}

/**
 * A parent's children by status. `exact` when they were counted from their records (GET
 * /jobs/{id} of a parent of up to 100); for a larger one the ended counts come from its fan-in
 * and `queued`, `running` and `waiting` are null (`live` says how many have not ended). A listing
 * gives only `total`.
 */
export interface ApiChildren {
  total: number;
  live: number | null;
  queued: number | null;
  running: number | null;
  waiting: number | null;
  succeeded: number | null;
  failed: number | null;
  cancelled: number | null;
  exact: boolean;
}

export function childrenView(total: number, c?: ChildCountsView): ApiChildren {
  if (!c) return { total, live: null, queued: null, running: null, waiting: null, succeeded: null, failed: null, cancelled: null, exact: false };
  const live = c.total - c.succeeded - c.failed - c.cancelled;
  const split = c.exact ? { queued: c.queued, running: c.running, waiting: c.waiting } : { queued: null, running: null, waiting: null };
  return { total: c.total, live, ...split, succeeded: c.succeeded, failed: c.failed, cancelled: c.cancelled, exact: c.exact };
}

export interface ApiWorker {
  id: string;
  kind: WorkerKind;
  pid?: number;
  startedAt: string;
  lastSeenAt: string;
  jobs: string[];
  /**
   * "dead" from its death event on (its jobs were reclaimed then); "unresponsive" when it has not
   * reported within its interval (frozen, or gone unreported); "alive" while it reports.
   */
  state: PresenceState;
  diedAt: string | null;
  deathReason: string | null;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | undefined): string | null => (ms === undefined ? null : iso(ms));

function progressView(job: Job): ApiProgress | null {
  const p = job.progress;
  if (!p) return null;
  const total = typeof p.total === "number" && p.total > 0 ? p.total : null;
  const percent = total !== null ? Math.round((Math.min(p.done, total) / total) * 1000) / 10 : (p.percent ?? null);
  return { percent, done: p.done, total, message: p.message ?? null };
}

export function toApiJob(job: Job, now: number, counts?: ChildCountsView): ApiJob {
  const running = job.status === "running" ? job : undefined;
  return {
    id: job.id,
    type: job.type,
    queue: job.queue,
    status: job.status,
    input: job.input ?? null,
    result: job.status === "succeeded" ? (job.result ?? null) : null,
    error: job.error ? { code: job.error.code, message: job.error.message } : lastAttemptError(job),
    attempts: job.attempts,
    maxAttempts: job.maxAttempts,
    progress: progressView(job),
    createdAt: iso(job.createdAt),
    firstStartedAt: isoOrNull(job.firstStartedAt),
    // "This attempt": the running one, or for a finished job the last one it made (none if it never ran).
    startedAt: isoOrNull(running ? running.startedAt : isTerminal(job.status) ? job.history.at(-1)?.startedAt : undefined),
    heartbeatAt: isoOrNull(running?.heartbeatAt),
    finishedAt: isTerminal(job.status) ? isoOrNull((job as { finishedAt?: number }).finishedAt) : null,
    runAt: job.status === "queued" ? isoOrNull(job.runAt) : null,
    cancelRequested: running?.cancelRequested === true,
    stale: isStale(job, now),
    worker: running?.workerId ?? null,
    history: job.history.map(attemptView),
    actions: (job.actions ?? []).map((a) => ({ at: iso(a.at), action: a.action, by: a.by })),
    parentId: job.parent?.id ?? null,
    childIndex: job.parent?.index ?? null,
    childKey: job.parent?.key ?? null,
    children: job.flow ? childrenView(job.flow.total, counts) : null,
    concurrencyKey: job.concurrencyKey ?? null,
    priority: job.priority ?? DEFAULT_PRIORITY,
    held: job.status === "queued" && job.hold ? holdView(job.hold) : null,
  };
}

const holdView = (h: Hold): ApiHold => ({ by: h.by, key: h.key, since: iso(h.since), until: h.by === "rate" ? iso(h.until) : null, message: holdMessage(h) });

function attemptView(h: AttemptRecord): ApiAttempt {
  return {
    attempt: h.attempt,
    worker: h.worker,
    startedAt: iso(h.startedAt),
    endedAt: isoOrNull(h.endedAt ?? undefined),
    outcome: h.outcome,
    error: h.error ? { code: h.error, message: h.message ?? "" } : null,
  };
}

/** A running job's record drops the last attempt's error (its history keeps it): shown as before. */
function lastAttemptError(job: Job): { code: ErrorCode; message: string } | null {
  const last = job.history.findLast((h) => h.error !== undefined);
  return last?.error ? { code: last.error, message: last.message ?? "" } : null;
}

/** An attempt with what its detail item holds (core/attempt-detail.ts): the full message and the stack. */
export function toApiAttemptDetail(h: AttemptRecord & { stack: string | null; fullMessage: string | null }): ApiAttemptDetail {
  const v = attemptView(h);
  return { ...v, error: h.error ? { code: h.error, message: h.fullMessage ?? h.message ?? "", stack: h.stack } : null };
}

export function toApiWhy(w: Why): ApiWhy {
  return { ...w, since: isoOrNull(w.since ?? undefined), until: isoOrNull(w.until ?? undefined) };
}

export function toApiWorker(w: WorkerInfo, now: number, reportEveryMs?: number): ApiWorker {
  return {
    id: w.id,
    kind: w.kind,
    ...(w.pid !== undefined ? { pid: w.pid } : {}),
    startedAt: iso(w.startedAt),
    lastSeenAt: iso(w.lastSeenAt),
    jobs: [...w.jobs],
    state: presenceState(w, now, reportEveryMs),
    diedAt: isoOrNull(w.diedAt),
    deathReason: w.deathReason ?? null,
  };
}

/** Polling a young job every second is fine; a job that has been around for minutes needs far fewer looks. */
export const POLL = { minSeconds: 1, maxSeconds: 30, ageSecondsPerStep: 10 } as const;

/**
 * How long a client should wait before asking about this job again: grows with the job's age,
 * so forgotten pollers fade to one request every `maxSeconds`. A finished job needs no more
 * polling (undefined).
 */
export function retryAfterSeconds(job: Job, now: number): number | undefined {
  if (isTerminal(job.status)) return undefined;
  const ageSeconds = Math.max(0, (now - job.createdAt) / 1000);
  return Math.min(POLL.maxSeconds, Math.max(POLL.minSeconds, Math.ceil(ageSeconds / POLL.ageSecondsPerStep)));
}
