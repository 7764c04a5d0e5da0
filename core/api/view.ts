/**
 * The one mapping from a stored job to the API's job object (`docs/contract.md`, "The job object").
 * The HTTP API, the typed client, the CLI and the dashboard all show jobs in this shape, so a
 * field means the same thing everywhere. Times become ISO-8601 strings; fields the store keeps
 * for itself (owner, token, lease, due index, checkpoint) never leave it.
 */
import type { QueueName } from "../config.js";
import { isStale, isTerminal, type ErrorCode, type Job, type Outcome, type Status } from "../job.js";
import type { WorkerInfo, WorkerKind } from "../workers.js";

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
  history: ApiAttempt[];
}

export interface ApiWorker {
  id: string;
  kind: WorkerKind;
  pid?: number;
  startedAt: string;
  lastSeenAt: string;
  jobs: string[];
  /** "dead" from its death event on (its jobs were reclaimed then); "alive" while it reports. */
  state: "alive" | "dead";
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

export function toApiJob(job: Job, now: number): ApiJob {
  const running = job.status === "running" ? job : undefined;
  return {
    id: job.id,
    type: job.type,
    queue: job.queue,
    status: job.status,
    input: job.input ?? null,
    result: job.status === "succeeded" ? (job.result ?? null) : null,
    error: job.error ? { code: job.error.code, message: job.error.message } : null,
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
    history: job.history.map((h) => ({
      attempt: h.attempt,
      worker: h.worker,
      startedAt: iso(h.startedAt),
      endedAt: isoOrNull(h.endedAt ?? undefined),
      outcome: h.outcome,
    })),
  };
}

export function toApiWorker(w: WorkerInfo): ApiWorker {
  return {
    id: w.id,
    kind: w.kind,
    ...(w.pid !== undefined ? { pid: w.pid } : {}),
    startedAt: iso(w.startedAt),
    lastSeenAt: iso(w.lastSeenAt),
    jobs: [...w.jobs],
    state: w.diedAt !== undefined ? "dead" : "alive",
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
