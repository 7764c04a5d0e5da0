/**
 * Recovery in seconds: the platform's word that a worker died reaches the deaths function
 * (functions/deaths.ts), which reclaims that worker's jobs at once (core/deaths.ts) instead of
 * leaving them to the sweeper when their leases run out. Two sources, each parsed by
 * core/death-events.ts:
 * - an EventBridge rule on the stage's own ECS cluster, for every task that reaches STOPPED (a
 *   Fargate worker's id is its task id);
 * - a CloudWatch Logs subscription filter on the Lambda worker's log group, for the lines a
 *   crashed or timed-out runtime leaves (LAMBDA_DEATH_TERMS; a Lambda worker's id is its log
 *   stream's).
 * Both invoke the function asynchronously. A death event that is lost or fails every retry costs
 * only time: the job's lease still runs out and the sweeper reclaims it, so nothing here needs
 * keeping for long. The one DLQ is the rule target's, for events EventBridge could not deliver
 * (a missing permission, a throttled account): it shows the wiring is broken.
 */
import { Duration } from "aws-cdk-lib";
import type { ITable } from "aws-cdk-lib/aws-dynamodb";
import type * as ecs from "aws-cdk-lib/aws-ecs";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as logs from "aws-cdk-lib/aws-logs";
import { LambdaDestination } from "aws-cdk-lib/aws-logs-destinations";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { NagSuppressions } from "cdk-nag";
import type { Function as SstFunction } from "sst/constructs";
import type { Construct } from "constructs";
import { LAMBDA_DEATH_TERMS } from "../core/death-events.js";
import { physicalName, type QueueName } from "../core/config.js";
import { ACCESS, grantAccess } from "./access.js";
import { logGroupOf, wardenFunction } from "./lambda.js";
import type { QueuePair } from "./Queues.js";
import type { StageConfig } from "./stage-config.js";

/**
 * One death reclaims the jobs its worker held: a Query, then a read, a conditional write and a
 * send per job, eight at a time (a Fargate task holds a few jobs, a Lambda environment one batch).
 */
export const DEATHS_TIMEOUT_SECONDS = 60;
export const DEATHS_MEMORY_MB = 256;
/**
 * How a death event is retried, by EventBridge (delivering it) and by Lambda (running it): twice,
 * within ten minutes. By then the jobs' leases have run out and the sweeper has taken them.
 */
export const DEATH_EVENT_RETRIES = 2;
export const DEATH_EVENT_MAX_AGE = Duration.minutes(10);
/** The subscription filter's pattern: a line with any of the terms a dead Lambda runtime leaves. */
export const DEATH_LOG_PATTERN = logs.FilterPattern.anyTerm(...LAMBDA_DEATH_TERMS);

export interface DeathWiring {
  deaths: SstFunction;
  /** The ECS rule, when the stage has a cluster (a queue that runs on Fargate). */
  rule?: events.Rule;
  subscription: logs.SubscriptionFilter;
}

export function deathWiring(
  stack: Construct,
  config: StageConfig,
  environment: Record<string, string>,
  table: ITable,
  queues: Record<QueueName, QueuePair>,
  worker: SstFunction,
  cluster: ecs.Cluster | undefined,
): DeathWiring {
  const deaths = wardenFunction(stack, "Deaths", config, {
    name: "deaths",
    description: "Warden: reclaims a dead worker's jobs at its death event",
    timeoutSeconds: DEATHS_TIMEOUT_SECONDS,
    memoryMb: DEATHS_MEMORY_MB,
    environment,
  });
  grantAccess(deaths, ACCESS.reaper, { table, queues });
  deaths.configureAsyncInvoke({ retryAttempts: DEATH_EVENT_RETRIES, maxEventAge: DEATH_EVENT_MAX_AGE });
  const backstop =
    "the jobs' leases are the backstop: when a lease runs out the sweeper reclaims the job as it did before death events, so a lost death event costs only time (docs/deploy.md).";
  NagSuppressions.addResourceSuppressions(deaths, [
    {
      id: "Serverless-LambdaDLQ",
      reason: `A death event that fails every retry needs no replay: ${backstop} A DLQ would also add sqs:SendMessage to the reaper's exact grants (stacks/access.ts).`,
    },
  ]);
  NagSuppressions.addResourceSuppressions(deaths.node.findChild("EventInvokeConfig"), [
    {
      id: "Serverless-LambdaAsyncFailureDestination",
      reason: `Asynchronous invocations are retried ${DEATH_EVENT_RETRIES} times within ${DEATH_EVENT_MAX_AGE.toMinutes()} minutes and then dropped on purpose: ${backstop}`,
    },
  ]);

  let rule: events.Rule | undefined;
  if (cluster) {
    const undelivered = new sqs.Queue(stack, "DeathEventsDlq", {
      queueName: physicalName(config.stage, "death-events-dlq"),
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    NagSuppressions.addResourceSuppressions(undelivered, [
      {
        id: "Serverless-SQSRedrivePolicy",
        reason: "This is the dead-letter queue of the task-stopped rule's target: an event EventBridge could not deliver stays here 14 days as evidence that the wiring is broken; a further DLQ would only hide it.",
      },
      {
        id: "AwsSolutions-SQS3",
        reason: "This queue is itself a dead-letter queue (the EventBridge target's), which the rule pack cannot see through a rule target; a DLQ of a DLQ would only hide what lands here.",
      },
    ]);
    rule = new events.Rule(stack, "TaskStopped", {
      ruleName: physicalName(config.stage, "task-stopped"),
      description: "Warden: a task of the stage's cluster stopped; reclaim its jobs now",
      eventPattern: {
        source: ["aws.ecs"],
        detailType: ["ECS Task State Change"],
        detail: { clusterArn: [cluster.clusterArn], lastStatus: ["STOPPED"] },
      },
      targets: [
        new targets.LambdaFunction(deaths, {
          retryAttempts: DEATH_EVENT_RETRIES,
          maxEventAge: DEATH_EVENT_MAX_AGE,
          deadLetterQueue: undelivered,
        }),
      ],
    });
  }

  // On the worker's own log group (explicit, from wardenFunction), so only its runtimes' deaths
  // reach the function. LambdaDestination adds the permission for logs.amazonaws.com.
  const subscription = new logs.SubscriptionFilter(stack, "WorkerDeathLines", {
    logGroup: logGroupOf(worker),
    filterName: physicalName(config.stage, "worker-deaths"),
    filterPattern: DEATH_LOG_PATTERN,
    destination: new LambdaDestination(deaths),
  });

  return { deaths, rule, subscription };
}
