/**
 * Every definition Warden's parts share lives here: the table's schema, the queues, the timings
 * and the limits. The stacks, the workers, the local runtime and the tests all import these, so
 * the cloud and the laptop cannot drift apart. Runtime values that differ per deployment (table
 * name, queue URLs, endpoints) come from `runtime.ts`, never from here.
 */

/** The one DynamoDB table. Attribute names are the stored names. */
export const TABLE = {
  /** Logical name; the physical name is `warden-<stage>-jobs`. */
  name: "jobs",
  partitionKey: "id",
  /** Sparse index of live jobs by deadline: the sweeper's only read path (invariant 4). */
  dueIndex: {
    name: "due",
    partitionKey: "dueShard", // `${queue}#${status}#${shard}`
    sortKey: "dueAt", // epoch ms
  },
  /** A caller's jobs, newest first; carries status and type so the API can filter in the query. */
  ownerIndex: {
    name: "byOwner",
    partitionKey: "owner",
    sortKey: "createdKey", // `${createdAt ISO}#${id}`
    include: ["status", "type"],
  },
  /** Every caller's jobs by status, newest first: the admin listing and the dashboard. */
  statusIndex: {
    name: "byStatus",
    partitionKey: "status",
    sortKey: "createdKey",
    include: ["owner", "type"],
  },
  /**
   * Sparse index of running jobs by the worker that holds them (only a running job has a
   * workerId), keys only: a death event finds the dead worker's jobs with one Query
   * (core/deaths.ts). Heartbeats never touch it.
   */
  workerIndex: {
    name: "byWorker",
    partitionKey: "workerId",
  },
  /**
   * Sparse index of queued jobs by the moment they became claimable (only a queued job has a
   * waitShard), keys only: the sweeper reads each queue's oldest unclaimed job from the head of
   * each partition (core/waiting.ts). A resend keeps readyAt, so a re-rung doorbell cannot make a
   * waiting job look fresh; heartbeats never touch it (a running job has no entry).
   */
  waitIndex: {
    name: "byWait",
    partitionKey: "waitShard", // `${queue}#${shard}`
    sortKey: "readyAt", // epoch ms
  },
  /**
   * Sparse index of queued jobs held back by a pause or a concurrency limit (only a held job has a
   * holdOn), keys only: a resume or a freed slot finds the jobs to wake (high priority first, then
   * the longest-held) with one Query (core/controls.ts). A rate hold has no entry: its own delayed doorbell wakes it.
   */
  holdIndex: {
    name: "byHold",
    partitionKey: "holdOn", // `${by}#${key}`, core/gates.ts holdPartition
    sortKey: "holdRank", // its priority, then since when: core/gates.ts holdRank
  },
  /** Epoch seconds; DynamoDB TTL deletes finished jobs after retention. */
  ttlAttribute: "expiresAt",
} as const;

/**
 * Writes to the due index (and the wait index) spread over this many partitions per queue and
 * state, so a burst of submissions does not heat one partition. The sweeper queries each shard.
 */
export const DUE_SHARDS = 4;

export type QueueName = "default" | "large";
export type RunsOn = "lambda" | "fargate";

export interface QueueDefinition {
  readonly name: QueueName;
  readonly runsOn: RunsOn;
  /** Seconds a received message stays hidden. For Lambda, >= 6 × the worker's timeout. */
  readonly visibilityTimeoutSeconds: number;
  /** Receives before SQS moves a message to the DLQ. */
  readonly maxReceiveCount: number;
  readonly retentionSeconds: number;
  readonly dlqRetentionSeconds: number;
}

export const LAMBDA_WORKER = {
  timeoutSeconds: 120,
  memoryMb: 1024,
  batchSize: 5,
  maxBatchingWindowSeconds: 1,
  /** Caps concurrent invocations so a burst cannot exhaust DynamoDB or downstreams. */
  maxConcurrency: 50,
  /** Before the Lambda deadline the runner checkpoints and hands the job back with this margin. */
  deadlineMarginMs: 10_000,
} as const;

export const FARGATE_WORKER = {
  cpu: 1024,
  memoryMb: 4096,
  /** Jobs one task runs at once. */
  concurrency: 4,
  /** ECS sends SIGKILL this long after SIGTERM; the worker's own grace is shorter. */
  stopTimeoutSeconds: 120,
  shutdownGraceMs: 100_000,
  minTasks: 0,
  maxTasks: 10,
  /** Visible messages per task that the service scales on. */
  messagesPerTask: 4,
  /**
   * The long poll of an idle task, on its queue's normal lane (core/queue.ts receiveByPriority):
   * short, because a job ringing on the high or low lane meanwhile waits for it to end. Three
   * receives per this many seconds per idle task: about 4 million a month, $1.6 at SQS's price.
   */
  idlePollSeconds: 2,
  /** Minutes the large queue must stay empty before the service scales in to its minimum. */
  scaleInAfterIdleMinutes: 10,
} as const;

export const QUEUES: Record<QueueName, QueueDefinition> = {
  default: {
    name: "default",
    runsOn: "lambda",
    visibilityTimeoutSeconds: LAMBDA_WORKER.timeoutSeconds * 6,
    maxReceiveCount: 5,
    retentionSeconds: 4 * 24 * 3600,
    dlqRetentionSeconds: 14 * 24 * 3600,
  },
  large: {
    name: "large",
    runsOn: "fargate",
    // The Fargate worker deletes a message as soon as it claims the job (the lease guards it),
    // so this only has to cover receive → claim.
    visibilityTimeoutSeconds: 300,
    maxReceiveCount: 5,
    retentionSeconds: 4 * 24 * 3600,
    dlqRetentionSeconds: 14 * 24 * 3600,
  },
};

export const QUEUE_NAMES = Object.keys(QUEUES) as QueueName[];
export const queueForRunsOn = (runsOn: RunsOn): QueueName => (runsOn === "lambda" ? "default" : "large");
export const dlqName = (queue: QueueName): string => `${queue}-dlq`;

/**
 * A job's priority decides which waiting job of its queue starts first. SQS has none, so each
 * queue is three queues, one per level (its lanes), sharing the queue's DLQ; a worker drains them
 * in this order (functions/fargate.ts). `normal` is the queue's own name, so a job without a
 * priority, and everything built before priorities, rings where it always did.
 */
export const PRIORITIES = ["high", "normal", "low"] as const;
export type Priority = (typeof PRIORITIES)[number];
export const DEFAULT_PRIORITY: Priority = "normal";
/** The lane's queue name: `default`, `default-high`, `default-low`. */
export const laneName = (queue: QueueName, priority: Priority): string => (priority === "normal" ? queue : `${queue}-${priority}`);
/** Where a doorbell rings: a queue's lane. */
export interface Lane {
  readonly queue: QueueName;
  readonly priority: Priority;
}
/** Only a level other than `normal` is stored on a job or a schedule: an item without one is normal. */
export const storedPriority = (p: Priority | undefined): { priority?: Exclude<Priority, "normal"> } => (p === "high" || p === "low" ? { priority: p } : {});
/** The lane of a job (or of anything that names a queue and maybe a priority). */
export const laneOf = (j: { queue: QueueName; priority?: Priority | undefined }): Lane => ({ queue: j.queue, priority: j.priority ?? DEFAULT_PRIORITY });
/** A priority's place in the drain order: 0 first. */
export const priorityRank = (p: Priority | undefined): number => PRIORITIES.indexOf(p ?? DEFAULT_PRIORITY);

/** Physical resource names for a stage; the stacks and the local runtime use the same ones. */
export const physicalName = (stage: string, logical: string): string => `warden-${stage}-${logical}`;

/** Lifecycle timings. Each can be overridden per deployment through `runtime.ts`. */
export const TIMINGS = {
  /** A worker's lease on a running job; heartbeats renew it every third of it. */
  leaseMs: 60_000,
  /** A queued job whose message has not led to a claim by then has its message sent again. */
  startDeadlineMs: 5 * 60_000,
  /** Total runtime limit from the first start, when neither the job nor its type sets one. */
  defaultTimeoutMs: 60 * 60_000,
  /** After a cancel request, how long a silent worker has before the sweeper cancels the job. */
  cancelGraceMs: 60_000,
  /** How long the runner waits for a handler to stop after aborting its signal. */
  abortGraceMs: 10_000,
  /** How often the sweeper sweeps inside one scheduled invocation. */
  sweepIntervalMs: 10_000,
  /** The sweeper's own Lambda timeout; it stops sweeping this long before it. */
  sweeperTimeoutSeconds: 55,
  sweeperStopMarginMs: 8_000,
  /** The API function's timeout: under API Gateway's 30 s integration limit, so a slow request ends as a 500 it logs. */
  apiTimeoutSeconds: 29,
  /** Retry backoff: base × 2^(attempt-1), capped, with full jitter. */
  backoffBaseMs: 2_000,
  backoffMaxMs: 5 * 60_000,
  /** SQS's largest DelaySeconds. A later runAt is left to the sweeper. */
  maxMessageDelaySeconds: 900,
  /** Finished jobs are deleted by TTL this long after they finish. */
  retentionDays: 30,
} as const;

/**
 * Time bounds on every AWS call (invariant 10). A heartbeat is bounded tighter still, to a third
 * of its lease (core/lease.ts). A long poll gets its wait on top of the bound (core/queue.ts).
 */
export const AWS_TIMEOUTS = {
  connectMs: 3_000,
  dynamoRequestMs: 10_000,
  sqsRequestMs: 10_000,
  /** Added to a long poll's WaitTimeSeconds for its own bound. */
  longPollMarginMs: 10_000,
} as const;

/** Size and shape bounds, enforced before anything is written. */
export const LIMITS = {
  maxBodyBytes: 256 * 1024,
  maxInputBytes: 200 * 1024,
  maxCheckpointBytes: 64 * 1024,
  maxResultBytes: 64 * 1024,
  maxMessageChars: 500,
  maxIdempotencyKeyChars: 200,
  maxAttempts: 20,
  maxTimeoutSeconds: 7 * 24 * 3600,
  /** Attempt entries kept on a job; older ones are dropped. */
  historyEntries: 10,
  /** Cancel and retry requests kept on a job (who asked, when); older ones are dropped. */
  actionEntries: 10,
  /** An attempt's stack trace is kept to this many lines and characters (core/attempt-detail.ts). */
  stackLines: 40,
  stackChars: 4096,
  /** A job's error message, and an attempt's full one. */
  maxErrorMessageChars: 1000,
  listDefault: 25,
  listMax: 100,
  /** How deep JSON in a request may nest. */
  maxJsonDepth: 32,
} as const;

/**
 * The demo effects table (demo.effects, docs/effects.md): an application's own table, as a team's
 * would be, beside Warden's, that the demo type writes fenced rows to. Its rows expire, so trying
 * the demo leaves nothing to clean up.
 */
export const EFFECTS_TABLE = {
  /** Logical name; the physical name is `warden-<stage>-effects`. */
  name: "effects",
  partitionKey: "id",
  /** Epoch seconds; DynamoDB TTL deletes a row this long after it was written. */
  ttlAttribute: "expiresAt",
  /** A week past the longest runtime limit a job may have, so a row outlives the attempts that read it back. */
  retentionSeconds: LIMITS.maxTimeoutSeconds + 7 * 24 * 3600,
  /** The variable that names it to the workers (stacks/runtime-env.ts, local/emulators.ts). */
  env: "WARDEN_EFFECTS_TABLE",
} as const;

/** Memory guard thresholds, in percent of the worker's limit. */
export const MEMORY = {
  warnPercent: 85,
  criticalPercent: 95,
  sampleIntervalMs: 2_000,
} as const;
