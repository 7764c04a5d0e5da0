/**
 * The alarms, defined once: the stacks create one CloudWatch alarm per entry and the local
 * runtime evaluates the same entries over its in-memory metrics. Each says what it means and
 * what the on-call person runs first (docs/oncall.md has each alarm's page). Thresholds that
 * follow a deployment's timings are computed from them (`alarmDefinitions`), so the local
 * runtime's short start deadline gets an alarm at its own scale.
 */
import type { MetricName } from "./metrics.js";
import { QUEUE_NAMES, QUEUES, TIMINGS, type QueueName } from "./config.js";
import type { RuntimeConfig } from "./runtime.js";

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
  /**
   * How the alarm treats a period with no data. A dead sweeper sends none, so that must breach.
   * `ignore` keeps the alarm's state: a gap in a metric that is published on every sweep means
   * the sweep could not read it, not that the trouble ended (CloudWatch's `ignore`).
   */
  missingData: "breaching" | "notBreaching" | "ignore";
  description: string;
}

const RUNBOOK = "First run `warden stuck` (or open the dashboard) to see what is overdue and why.";

/**
 * How long a claimable job may go unclaimed before JobsNotStarting pages: one start deadline,
 * after which the sweeper rings its doorbell again, and half of one more for that second
 * doorbell to be answered, so a lost message that the resend repairs does not page. With one
 * 60 s period a queue whose workers are all frozen pages within twice the start deadline: at
 * the defaults 450 s, + the longest gap between sweeps (13 s) + the period (60 s) < 600 s.
 */
export const notStartingThresholdSeconds = (startDeadlineMs: number): number => (startDeadlineMs * 1.5) / 1000;

/** A pause longer than this pages (PausedTooLong): long enough for planned maintenance, short enough to catch a forgotten one. */
export const PAUSE_ALARM_SECONDS = 4 * 3600;

/** A schedule fired this late past its tick (SchedulesLate): well past a sweep interval, so only a sweeper that cannot fire it. */
export const SCHEDULE_LATE_SECONDS = 300;

/** The alarms for a deployment's timings; `ALARMS` is them at the defaults, as the stacks deploy. */
export function alarmDefinitions(timings: Pick<RuntimeConfig, "startDeadlineMs"> = TIMINGS): AlarmDefinition[] {
  const notStartingAfter = notStartingThresholdSeconds(timings.startDeadlineMs);
  return [
    {
      id: "StuckJobs",
      source: { kind: "metric", metric: "StuckJobs", statistic: "Maximum" },
      comparison: "GreaterThanThreshold",
      threshold: 0,
      periodSeconds: 60,
      evaluationPeriods: 2,
      missingData: "notBreaching",
      description: `Jobs the sweeper had to repair for two sweeps in a row: running or cancelling jobs overdue (a worker died or ignored a cancel and the repair's writes fail), parents whose flow needed repair (children never written, a lost resume, counts that drifted), or children whose parent is gone. ${RUNBOOK}`,
    },
    ...QUEUE_NAMES.map(
      (queue): AlarmDefinition => ({
        id: `JobsNotStarting-${queue}`,
        source: { kind: "metric", metric: "OldestUnclaimedSeconds", statistic: "Maximum", dims: { Queue: queue } },
        comparison: "GreaterThanThreshold",
        threshold: notStartingAfter,
        periodSeconds: 60,
        evaluationPeriods: 1,
        // A sweep whose wait read failed publishes nothing (core/sweeper.ts): a firing alarm must
        // not clear and page again over that gap; SweeperMissing watches for sweeps stopping.
        missingData: "ignore",
        description: `A job on the ${queue} queue has been ready for over ${notStartingAfter} s and no worker has claimed it, although the sweeper rang its doorbell again: the queue's workers are not running, frozen, or failing before they claim. First run \`warden stuck\` (its not-starting list names the jobs, their wait and rings), then \`warden why <id>\` for one of them, then \`warden workers\`.`,
      }),
    ),
    {
      id: "PausedTooLong",
      source: { kind: "metric", metric: "PausedSeconds", statistic: "Maximum" },
      comparison: "GreaterThanThreshold",
      threshold: PAUSE_ALARM_SECONDS,
      periodSeconds: 300,
      evaluationPeriods: 1,
      // A sweep whose controls read failed publishes nothing: keep the state over the gap.
      missingData: "ignore",
      description: `A queue or a job type has been paused for over ${PAUSE_ALARM_SECONDS / 3600} h: its jobs are held and none starts. Someone paused it and may have forgotten. First run \`warden limits\` (it lists the pauses, who made them and how many jobs each holds), then \`warden resume <target>\` if it should run.`,
    },
    {
      id: "SchedulesLate",
      source: { kind: "metric", metric: "ScheduleLagSeconds", statistic: "Maximum" },
      comparison: "GreaterThanThreshold",
      threshold: SCHEDULE_LATE_SECONDS,
      periodSeconds: 60,
      evaluationPeriods: 2,
      missingData: "ignore",
      description: `A schedule fired over ${SCHEDULE_LATE_SECONDS / 60} minutes after its tick, two minutes in a row: its ticks are not being fired (the sweeper fails to write the schedule or its jobs, or is far behind). First run \`warden schedules\` (the late one's next run is in the past), then \`warden schedules show <id>\` and the sweeper's log.`,
    },
    {
      id: "ClaimConflicts",
      source: { kind: "metric", metric: "ClaimConflicts", statistic: "Sum" },
      comparison: "GreaterThanThreshold",
      threshold: 100,
      periodSeconds: 300,
      evaluationPeriods: 1,
      missingData: "notBreaching",
      description: `Lock contention: more than 100 claims refused in 5 minutes because another worker held the lease. Duplicate deliveries or workers fighting over jobs. First run \`warden workers\`.`,
    },
    {
      id: "StoreThrottled",
      source: { kind: "metric", metric: "StoreThrottled", statistic: "Sum" },
      comparison: "GreaterThanThreshold",
      threshold: 10,
      periodSeconds: 300,
      evaluationPeriods: 1,
      missingData: "notBreaching",
      description: "More than 10 DynamoDB calls failed throttled, after the SDK's retries, in 5 minutes. Check the table's consumed capacity and the worker concurrency limits. First run `warden health`.",
    },
    {
      id: "WorkerMemory",
      source: { kind: "metric", metric: "WorkerMemoryPercent", statistic: "Maximum" },
      comparison: "GreaterThanThreshold",
      threshold: 85,
      periodSeconds: 60,
      evaluationPeriods: 3,
      missingData: "notBreaching",
      description: "A worker has used over 85% of its memory for 3 minutes. Jobs may be aborted by the memory guard; consider the large queue or more task memory. First run `warden list --status running`.",
    },
    {
      id: "MemoryAborts",
      source: { kind: "metric", metric: "MemoryAborts", statistic: "Sum" },
      comparison: "GreaterThanThreshold",
      threshold: 0,
      periodSeconds: 300,
      evaluationPeriods: 1,
      missingData: "notBreaching",
      description: "The memory guard aborted a job at critical memory; it is retried on the large queue; check its input size. First run `warden list --status queued`.",
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
        description: `The oldest message on the ${queue} queue has waited over 15 minutes: its workers are not keeping up or not running. First run \`warden queues\`, then \`warden workers\`.`,
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
      description: "No sweep has run for 5 minutes: stuck jobs are not being repaired. Check the sweeper function's schedule, errors and logs. First run `warden sweep`.",
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
        description: `The ${fn} function failed more than 5 invocations in 5 minutes. First read its logs${fn === "worker" ? ", then run \`warden list --status failed --type T\` for the failing type" : ""}.`,
      },
      {
        id: `LambdaThrottles-${fn}`,
        source: { kind: "lambda", metric: "Throttles", fn },
        comparison: "GreaterThanThreshold",
        threshold: 0,
        periodSeconds: 300,
        evaluationPeriods: 1,
        missingData: "notBreaching",
        description: `The ${fn} function was throttled: it hit its concurrency limit. Raise the limit in the stage config if DynamoDB has room. First run \`warden queues\`.`,
      },
    ]),
  ];
}

export const ALARMS: AlarmDefinition[] = alarmDefinitions();
