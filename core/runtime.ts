/**
 * Runtime configuration: what differs per deployment, read from the environment. The stacks set
 * these variables on every function and task; the local runtime sets them for its processes.
 */
import { PRIORITIES, QUEUE_NAMES, TIMINGS, type Lane, type Priority, type QueueName } from "./config.js";
import type { Endpoints } from "./aws.js";

/** One queue's SQS URLs: its lanes (`queue` is the normal one, core/config.ts PRIORITIES) and the DLQ they share. */
export interface QueueUrls {
  queue: string;
  high: string;
  low: string;
  dlq: string;
}

const urlOf = (q: QueueUrls, p: Priority): string => (p === "high" ? q.high : p === "low" ? q.low : q.queue);

/** A queue's lane URLs, highest first. */
export const laneUrls = (q: QueueUrls): string[] => PRIORITIES.map((p) => urlOf(q, p));

/** The URL a lane's doorbells ring on. */
export const laneUrl = (urls: Record<QueueName, QueueUrls>, lane: Lane): string => urlOf(urls[lane.queue], lane.priority);

/** Where the workers' job lines are kept (core/job-log.ts), for the API's `GET /jobs/{id}/logs`. */
export interface JobLogConfig {
  /** The workers' CloudWatch log group names; only the API function is given them (stacks/Api.ts). */
  groups: string[];
  /** CloudWatch Logs' endpoint, for a test's stand-in; unset on AWS. */
  endpoint?: string;
}

export interface RuntimeConfig {
  stage: string;
  tableName: string;
  queues: Record<QueueName, QueueUrls>;
  endpoints: Endpoints;
  leaseMs: number;
  sweepIntervalMs: number;
  startDeadlineMs: number;
  cancelGraceMs: number;
  jobLogs: JobLogConfig;
}

const num = (v: string | undefined, fallback: number): number => {
  const n = v === undefined || v === "" ? NaN : Number(v);
  return Number.isFinite(n) && n > 0 ? n : fallback;
};

export function loadRuntime(env: Record<string, string | undefined> = process.env): RuntimeConfig {
  const tableName = env.WARDEN_TABLE;
  if (!tableName) throw new Error("WARDEN_TABLE is not set: the deployment must name the jobs table");
  const queues = parseQueues(env);
  return {
    stage: env.WARDEN_STAGE ?? "local",
    tableName,
    queues,
    endpoints: loadEndpoints(env),
    leaseMs: num(env.WARDEN_LEASE_SECONDS, TIMINGS.leaseMs / 1000) * 1000,
    sweepIntervalMs: num(env.WARDEN_SWEEP_INTERVAL_SECONDS, TIMINGS.sweepIntervalMs / 1000) * 1000,
    startDeadlineMs: num(env.WARDEN_START_DEADLINE_SECONDS, TIMINGS.startDeadlineMs / 1000) * 1000,
    cancelGraceMs: num(env.WARDEN_CANCEL_GRACE_SECONDS, TIMINGS.cancelGraceMs / 1000) * 1000,
    jobLogs: {
      // Comma-separated: log group names cannot hold a comma.
      groups: (env.WARDEN_JOB_LOG_GROUPS ?? "").split(",").map((g) => g.trim()).filter(Boolean),
      ...(env.WARDEN_LOGS_ENDPOINT ? { endpoint: env.WARDEN_LOGS_ENDPOINT } : {}),
    },
  };
}

/** Where the AWS clients connect: the emulators' endpoints locally, AWS's own (nothing set) in the cloud. */
export function loadEndpoints(env: Record<string, string | undefined> = process.env): Endpoints {
  return {
    ...(env.WARDEN_DYNAMODB_ENDPOINT ? { dynamodb: env.WARDEN_DYNAMODB_ENDPOINT } : {}),
    ...(env.WARDEN_SQS_ENDPOINT ? { sqs: env.WARDEN_SQS_ENDPOINT } : {}),
    ...(env.AWS_REGION ? { region: env.AWS_REGION } : {}),
    // Tighter bounds for runs whose faults hang connections on purpose (the chaos run).
    ...(env.WARDEN_AWS_REQUEST_TIMEOUT_MS ? { requestTimeoutMs: num(env.WARDEN_AWS_REQUEST_TIMEOUT_MS, 0) } : {}),
  };
}

/** Queue URLs come as one JSON variable: {"default": {"queue": url, "high": url, "low": url, "dlq": url}, ...}. */
function parseQueues(env: Record<string, string | undefined>): Record<QueueName, QueueUrls> {
  const raw = env.WARDEN_QUEUES;
  if (!raw) throw new Error("WARDEN_QUEUES is not set: the deployment must give every queue's URL");
  const parsed = JSON.parse(raw) as Partial<Record<QueueName, QueueUrls>>;
  for (const q of QUEUE_NAMES) {
    const missing = (["queue", "high", "low", "dlq"] as const).filter((k) => !parsed[q]?.[k]);
    if (missing.length) throw new Error(`WARDEN_QUEUES lacks queue "${q}"'s ${missing.join(", ")} URL${missing.length > 1 ? "s" : ""}`);
  }
  return parsed as Record<QueueName, QueueUrls>;
}
