/**
 * Worker ids an event can name, and the events that name them. A worker's id is derived from
 * what the platform reports when it dies, in one place, so the id a worker claims jobs under is
 * the id its death event carries:
 * - a Fargate task: `ecs:<task id>` (the last part of its task ARN, from the task metadata
 *   endpoint); an `ECS Task State Change` event with `lastStatus: STOPPED` names the same ARN;
 * - a Lambda execution environment: `lambda:<log stream id>` (the part of
 *   AWS_LAMBDA_LOG_STREAM_NAME after `]`); a crash or timeout leaves `Runtime exited` / `Task timed
 *   out` in that log stream, which a subscription filter delivers with the stream's name.
 * Short ids on purpose: every attempt in a job's history names its worker (invariant 11).
 */
import { gunzipSync } from "node:zlib";
import type { WorkerDeath } from "./lifecycle.js";

export const fargateWorkerId = (taskArn: string): string => `ecs:${taskArn.slice(taskArn.lastIndexOf("/") + 1)}`;

export const lambdaWorkerId = (logStream: string): string => `lambda:${logStream.slice(logStream.lastIndexOf("]") + 1)}`;

/** Words of what a Lambda runtime's death leaves in its log stream: the subscription filter's pattern, which only narrows what is delivered. */
export const LAMBDA_DEATH_TERMS = ["Runtime exited", "Task timed out", "Runtime.ExitError"] as const;

/**
 * Lambda's own lines for a runtime that died, and nothing else: a handler's error message that
 * quotes another function's "Task timed out", or Warden's JSON log line carrying it, must not
 * make a live environment's jobs look orphaned.
 *   2026-12-01T10:00:00.000Z 3f2c… Task timed out after 120.05 seconds
 *   RequestId: 3f2c… Error: Runtime exited with error: signal: killed
 *   INIT_REPORT Init Duration: 812.33 ms Phase: init Status: error Error Type: Runtime.ExitError
 */
const LAMBDA_DEATH_LINES = [
  /^(\d{4}-\d\d-\d\dT\S+\s+)?[0-9a-f]{8}-[0-9a-f-]{27}\s+Task timed out after /,
  /^RequestId: [0-9a-f]{8}-[0-9a-f-]{27} Error: Runtime exited/,
  /^INIT_REPORT .*Status: (error|timeout)/,
];
export const isLambdaDeathLine = (message: string): boolean => LAMBDA_DEATH_LINES.some((re) => re.test(message));

interface EcsTaskStateChange {
  "detail-type"?: string;
  time?: string;
  detail?: { taskArn?: string; lastStatus?: string; stoppedAt?: string; stoppedReason?: string; stopCode?: string };
}

/** A stopped task's death, or undefined for any other ECS event. */
export function ecsDeath(event: EcsTaskStateChange): WorkerDeath | undefined {
  const d = event.detail;
  if (event["detail-type"] !== "ECS Task State Change" || d?.lastStatus !== "STOPPED" || !d.taskArn) return undefined;
  const at = Date.parse(d.stoppedAt ?? event.time ?? "");
  return {
    workerId: fargateWorkerId(d.taskArn),
    at: Number.isFinite(at) ? at : Date.now(),
    reason: [d.stopCode, d.stoppedReason].filter(Boolean).join(": ") || "task stopped",
  };
}

interface LogsSubscriptionEvent {
  awslogs?: { data?: string };
}
interface LogsPayload {
  messageType?: string;
  logStream?: string;
  logEvents?: { timestamp: number; message: string }[];
}

/** The deaths a CloudWatch Logs subscription delivery reports (its data is gzipped JSON, base64). */
export function lambdaDeaths(event: LogsSubscriptionEvent): WorkerDeath[] {
  const data = event.awslogs?.data;
  if (!data) return [];
  const payload = JSON.parse(gunzipSync(Buffer.from(data, "base64")).toString("utf8")) as LogsPayload;
  if (payload.messageType !== "DATA_MESSAGE" || !payload.logStream) return [];
  const workerId = lambdaWorkerId(payload.logStream);
  return (payload.logEvents ?? [])
    .filter((e) => isLambdaDeathLine(e.message))
    .map((e) => ({ workerId, at: e.timestamp, reason: e.message.trim().split("\n")[0]!.slice(0, 200) }));
}

/** Whichever of the two a delivery is: EventBridge's ECS event, or a Logs subscription's batch. Throws on a payload it cannot read. */
export function deathsOf(event: unknown): WorkerDeath[] {
  const e = (event ?? {}) as EcsTaskStateChange & LogsSubscriptionEvent;
  if (e.awslogs) return lambdaDeaths(e);
  const ecs = ecsDeath(e);
  return ecs ? [ecs] : [];
}
