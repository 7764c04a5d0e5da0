/**
 * The job model: states, the transitions between them (one table the store and the tests share),
 * and the record type, in which a job's status decides which fields it has.
 */
import type { Priority, QueueName } from "./config.js";
import type { Flow, ParentLink } from "./flow.js";
import type { Hold, LimitKey, SlotStamp } from "./gates.js";

/**
 * A run's concurrency slots, each as its slot item holds it: when it was taken and by which
 * claim (`by`, a nonce of that claim's own: no other claim of the job can give it back).
 */
export type HeldSlots = readonly ({ key: LimitKey } & SlotStamp)[];
import type { ValueRefs } from "./values.js";

export const STATUSES = ["queued", "running", "waiting", "succeeded", "failed", "cancelled"] as const;
export type Status = (typeof STATUSES)[number];
export const TERMINAL: ReadonlySet<Status> = new Set(["succeeded", "failed", "cancelled"]);
export const isTerminal = (s: Status): boolean => TERMINAL.has(s);

/** Every transition the store performs, by name, with the states it may leave and enter. */
export const TRANSITIONS = {
  create: { from: [], to: "queued" },
  claim: { from: ["queued", "running"], to: "running" }, // running only with an expired lease
  beat: { from: ["running"], to: "running" }, // a heartbeat: lease, progress, checkpoint
  succeed: { from: ["running"], to: "succeeded" },
  failRetry: { from: ["running"], to: "queued" },
  failFinal: { from: ["running"], to: "failed" },
  release: { from: ["running"], to: "queued" },
  cancelQueued: { from: ["queued"], to: "cancelled" },
  requestCancel: { from: ["running"], to: "running" }, // marks it; the worker stops on its next beat
  cancelRunning: { from: ["running"], to: "cancelled" }, // the worker acknowledged, or the grace ran out
  reclaim: { from: ["running"], to: "queued" }, // the sweeper, lease expired, attempts left
  expire: { from: ["running"], to: "failed" }, // lease expired with no attempts left, or runtime limit
  expireQueued: { from: ["queued"], to: "failed" }, // runtime limit passed while it waited
  resend: { from: ["queued"], to: "queued" }, // the sweeper pushes the start deadline and rings again
  // Pauses and limits (core/gates.ts):
  hold: { from: ["queued"], to: "queued" }, // a claim refused by a pause or a limit: held, no attempt spent
  unhold: { from: ["queued"], to: "queued" }, // what held it freed up (a resume, a slot, its rate window): claimable again
  retry: { from: ["failed", "cancelled"], to: "queued" },
  // A parent and its children (core/flow.ts):
  createWaiting: { from: [], to: "waiting" }, // a submit with children, or a chain's step
  wait: { from: ["running"], to: "waiting" }, // the handler spawned children and asked to wait
  resume: { from: ["waiting"], to: "queued" }, // every child is terminal (its last one, or the sweeper)
  failFlow: { from: ["waiting"], to: "failed" }, // a child failed under failFast
  cancelWaiting: { from: ["waiting"], to: "cancelled" }, // a caller cancelled the parent
  recheck: { from: ["waiting"], to: "waiting" }, // the sweeper looked and pushes the flow's deadline
  retryFlow: { from: ["failed", "cancelled"], to: "waiting" }, // retried: its failed and cancelled children run again
} as const satisfies Record<string, { from: readonly Status[]; to: Status }>;

export type TransitionName = keyof typeof TRANSITIONS;

export function canTransition(name: TransitionName, from: Status | undefined): boolean {
  const t = TRANSITIONS[name];
  return from === undefined ? t.from.length === 0 : (t.from as readonly Status[]).includes(from);
}

/** The reasons a job or an attempt ends badly, as the API reports them. */
export const ERROR_CODES = [
  "handler_error",
  "timeout",
  "worker_lost",
  "memory",
  "attempts_exhausted",
  "cancelled",
  "dead_lettered",
  "invalid_input",
  /** The handler's result (or its last checkpoint) cannot be stored: too large or not plain JSON. */
  "invalid_result",
  /** DynamoDB refused the job's final write for good (a ValidationException): the real reason is in the message. */
  "store_rejected",
  /** A child failed and the parent's policy is failFast (core/flow.ts). */
  "child_failed",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];
export interface JobError {
  code: ErrorCode;
  message: string;
}

export interface Progress {
  done: number;
  total?: number;
  percent?: number;
  message?: string;
}

export type Outcome = "succeeded" | "failed" | "retried" | "released" | "cancelled" | "worker_lost" | "timeout" | "lease_lost" | "waiting";

/** An attempt's error as its history keeps it: the message cut to ATTEMPT_MESSAGE_CHARS (the full one is with the stack). */
export const ATTEMPT_MESSAGE_CHARS = 240;

export interface AttemptRecord {
  attempt: number;
  worker: string;
  startedAt: number;
  endedAt: number | null;
  outcome: Outcome | null;
  /**
   * Why this attempt ended badly, and its message cut to ATTEMPT_MESSAGE_CHARS; absent while it
   * runs and when it succeeded or was handed back cleanly. Flat, not a nested error object: every
   * heartbeat rewrites the history, and a map costs its keys again in every entry.
   */
  error?: ErrorCode;
  message?: string;
  /**
   * The attempt's full message and stack trace are in a value item of their own (core/attempt-detail.ts):
   * the record is rewritten on every heartbeat, so a stack kept in it would be paid for again on each one.
   */
  detail?: true;
}

/** A person's request on a job (the owner's, or the admin's on anyone's), kept with the job. */
export interface JobAction {
  at: number;
  action: "cancel" | "retry";
  /** The caller's id (a JWT subject or an IAM principal). */
  by: string;
}

/** Fields every job has, whatever its status. Times are epoch milliseconds. */
interface JobCommon {
  id: string;
  owner: string;
  type: string;
  queue: QueueName;
  input: unknown;
  createdAt: number;
  updatedAt: number;
  attempts: number;
  maxAttempts: number;
  /** Total runtime limit counted from firstStartedAt, never reset by a re-claim. */
  timeoutMs: number;
  /** Fencing token: bumped by every claim and every sweeper action on a running job. */
  token: number;
  /**
   * Bumped by every write, whoever makes it. A write decided from a read is conditional on the
   * version it read, so no write based on an older read can pass (no ABA through cancel or retry).
   */
  version: number;
  firstStartedAt?: number;
  progress?: Progress;
  checkpoint?: unknown;
  /**
   * The last attempt's error, on a retried job waiting so a person sees why; a claim drops it
   * (the attempt's history entry keeps it, and a running record is rewritten on every beat).
   */
  error?: JobError;
  history: AttemptRecord[];
  /** The last LIMITS.actionEntries cancel and retry requests, oldest first. */
  actions?: JobAction[];
  idempotencyKey?: string;
  /** The key its concurrency and rate limits count it under (a tenant, a downstream API), beside its type's. */
  concurrencyKey?: string;
  /** Which lane of its queue it rings on (core/config.ts PRIORITIES); absent is `normal`. */
  priority?: Exclude<Priority, "normal">;
  /** A child's place in its parent's flow (core/flow.ts); it belongs to the parent's owner. */
  parent?: ParentLink;
  /** A parent's last round of children: how many, the policy, where their specs are. */
  flow?: Flow;
  /** Time spent waiting for children, which the runtime limit does not count (it ran no code). */
  waitedMs?: number;
  /**
   * Where input, checkpoint and result live when they are too large for the record (core/values.ts).
   * A field named here but undefined on the job was not read with it.
   */
  refs?: ValueRefs;
}

export interface QueuedJob extends JobCommon {
  status: "queued";
  runAt?: number;
  dueAt: number;
  /**
   * From when the job may be claimed (it was created or requeued then, or its runAt is later):
   * how long it has waited without a claim is counted from here, whatever the sweeper does.
   */
  readyAt: number;
  /** Doorbells the sweeper re-rang since readyAt; any transition into queued starts it at 0. */
  rings: number;
  /**
   * Held back by a pause or a limit (core/gates.ts): no doorbell is on its way (a rate hold's
   * delayed one aside), and what frees it wakes it. Absent on a claimable job.
   */
  hold?: Hold;
}

export interface RunningJob extends JobCommon {
  status: "running";
  firstStartedAt: number;
  startedAt: number;
  heartbeatAt: number;
  leaseExpiresAt: number;
  workerId: string;
  dueAt: number;
  cancelRequested?: true;
  cancelRequestedAt?: number;
  /**
   * The concurrency slots this run holds (core/controls.ts), as its claim took them: given back
   * when it leaves running, each only if still the one taken then (not a later claim's).
   */
  slots?: HeldSlots;
}

/**
 * A parent whose children run: no lease and no worker, and a deadline in the due index like
 * every live job, at which the sweeper looks at its flow (core/flows.ts).
 */
export interface WaitingJob extends JobCommon {
  status: "waiting";
  flow: Flow;
  waitingSince: number;
  dueAt: number;
}

interface FinishedCommon extends JobCommon {
  finishedAt: number;
  /** Epoch seconds, for DynamoDB TTL. */
  expiresAt: number;
}
export interface SucceededJob extends FinishedCommon {
  status: "succeeded";
  result: unknown;
}
export interface FailedJob extends FinishedCommon {
  status: "failed";
  error: JobError;
}
export interface CancelledJob extends FinishedCommon {
  status: "cancelled";
  error: JobError;
}

export type Job = QueuedJob | RunningJob | WaitingJob | SucceededJob | FailedJob | CancelledJob;
/** A job in the due index: the sweeper looks at it when its deadline passes. */
export type LiveJob = QueuedJob | RunningJob | WaitingJob;
export type FinishedJob = SucceededJob | FailedJob | CancelledJob;

/** What a worker holds after a successful claim; every later write is fenced on `token`. */
export interface Lease {
  jobId: string;
  token: number;
  workerId: string;
  leaseMs: number;
  /** Epoch ms after which the job's total runtime limit is reached. */
  runtimeDeadline: number;
  job: RunningJob;
}

/** From when a queued job may be claimed; a record written before readyAt existed counts from its runAt, or its last write. */
export const readyAtOf = (job: QueuedJob): number => job.readyAt ?? job.runAt ?? job.updatedAt;
/** Doorbells the sweeper re-rang since then (none on a record older than the field). */
export const ringsOf = (job: QueuedJob): number => job.rings ?? 0;

/** A running job whose heartbeat is older than its lease: the sweeper will act on it. */
export const isStale = (job: Job, now: number): boolean => job.status === "running" && job.leaseExpiresAt < now;
