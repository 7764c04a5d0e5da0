/**
 * The alarms, defined once: the stacks create one CloudWatch alarm per entry and the local
 * runtime evaluates the same entries over its in-memory metrics. Each says what it means and
 * what the on-call person runs first.
 */
import type { MetricName } from "./metrics.js";
import { QUEUES, type QueueName } from "./config.js";

export type AlarmSource =
  /** A Warden metric, summed (or maxed) over a period. */
  | { kind: "metric"; metric: MetricName; statistic: "Sum" | "Maximum"; dims?: Record<string, string> }
  /** An SQS queue attribute, per queue. */
  | { kind: "queue"; metric: "ApproximateNumberOfMessagesVisible" | "ApproximateAgeOfOldestMessage"; dlq: boolean; queue: QueueName }
  /** A Lambda function's own metric. */
  | { kind: "lambda"; metric: "Errors" | "Throttles"; fn: "worker" | "api" | "sweeper" };

export interface AlarmDefinition {
  id: string;
  source: AlarmSource;
  comparison: "GreaterThanThreshold" | "LessThanThreshold";
  threshold: number;
  periodSeconds: number;
  evaluationPeriods: number;
  /** How the alarm treats a period with no data. A dead sweeper sends none, so that must breach. */
  missingData: "breaching" | "notBreaching";
  description: string;
}

const RUNBOOK = "First run `warden stuck` (or open the dashboard) to see what is overdue and why.";

export const ALARMS: AlarmDefinition[] = [
  {
    id: "StuckJobs",
    source: { kind: "metric", metric: "StuckJobs", statistic: "Maximum" },
    comparison: "GreaterThanThreshold",
    threshold: 0,
    periodSeconds: 60,
    evaluationPeriods: 2,
    missingData: "notBreaching",
    description: `Jobs have been overdue for two sweeps in a row: a worker died or a message was lost and the sweeper has not repaired them yet. ${RUNBOOK}`,
  },
  {
    id: "ClaimConflicts",
    source: { kind: "metric", metric: "ClaimConflicts", statistic: "Sum" },
    comparison: "GreaterThanThreshold",
    threshold: 100,
    periodSeconds: 300,
    evaluationPeriods: 1,
    missingData: "notBreaching",
    description: `Lock contention: more than 100 claims refused in 5 minutes because another worker held the lease. Duplicate deliveries or workers fighting over jobs. ${RUNBOOK}`,
  },
  {
    id: "StoreThrottled",
    source: { kind: "metric", metric: "StoreThrottled", statistic: "Sum" },
    comparison: "GreaterThanThreshold",
    threshold: 10,
    periodSeconds: 300,
    evaluationPeriods: 1,
    missingData: "notBreaching",
    description: "More than 10 DynamoDB calls failed throttled, after the SDK's retries, in 5 minutes. Check the table's consumed capacity and the worker concurrency limits.",
  },
  {
    id: "WorkerMemory",
    source: { kind: "metric", metric: "WorkerMemoryPercent", statistic: "Maximum" },
    comparison: "GreaterThanThreshold",
    threshold: 85,
    periodSeconds: 60,
    evaluationPeriods: 3,
    missingData: "notBreaching",
    description: "A worker has used over 85% of its memory for 3 minutes. Jobs may be aborted by the memory guard; consider the large queue or more task memory.",
  },
  {
    id: "MemoryAborts",
    source: { kind: "metric", metric: "MemoryAborts", statistic: "Sum" },
    comparison: "GreaterThanThreshold",
    threshold: 0,
    periodSeconds: 300,
    evaluationPeriods: 1,
    missingData: "notBreaching",
    description: "The memory guard aborted a job at critical memory; it is retried on the large queue. Find it with `warden list --status queued` and check its input size.",
  },
  ...(["default", "large"] as const).flatMap((queue): AlarmDefinition[] => [
    {
      id: `DeadLetters-${queue}`,
      source: { kind: "queue", metric: "ApproximateNumberOfMessagesVisible", dlq: true, queue },
      comparison: "GreaterThanThreshold",
      threshold: 0,
      periodSeconds: 60,
      evaluationPeriods: 1,
      missingData: "notBreaching",
      description: `Messages reached the ${queue} dead-letter queue: they failed ${QUEUES[queue].maxReceiveCount} deliveries. Run \`warden dead-letters\` to see them, fix the cause, then \`warden dead-letters --redrive ${queue}\`.`,
    },
    {
      id: `OldestMessage-${queue}`,
      source: { kind: "queue", metric: "ApproximateAgeOfOldestMessage", dlq: false, queue },
      comparison: "GreaterThanThreshold",
      threshold: 900,
      periodSeconds: 60,
      evaluationPeriods: 5,
      missingData: "notBreaching",
      description: `The oldest message on the ${queue} queue has waited over 15 minutes: its workers are not keeping up or not running. ${RUNBOOK}`,
    },
  ]),
  {
    id: "SweeperMissing",
    source: { kind: "metric", metric: "SweeperHeartbeat", statistic: "Sum" },
    comparison: "LessThanThreshold",
    threshold: 1,
    periodSeconds: 300,
    evaluationPeriods: 1,
    missingData: "breaching",
    description: "No sweep has run for 5 minutes: stuck jobs are not being repaired. Check the sweeper function's schedule, errors and logs.",
  },
  ...(["worker", "api", "sweeper"] as const).flatMap((fn): AlarmDefinition[] => [
    {
      id: `LambdaErrors-${fn}`,
      source: { kind: "lambda", metric: "Errors", fn },
      comparison: "GreaterThanThreshold",
      threshold: 5,
      periodSeconds: 300,
      evaluationPeriods: 1,
      missingData: "notBreaching",
      description: `The ${fn} function failed more than 5 invocations in 5 minutes. Read its logs; ${RUNBOOK}`,
    },
    {
      id: `LambdaThrottles-${fn}`,
      source: { kind: "lambda", metric: "Throttles", fn },
      comparison: "GreaterThanThreshold",
      threshold: 0,
      periodSeconds: 300,
      evaluationPeriods: 1,
      missingData: "notBreaching",
      description: `The ${fn} function was throttled: it hit its concurrency limit. Raise the limit in the stage config if DynamoDB has room.`,
    },
  ]),
];
