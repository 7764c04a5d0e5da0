/**
 * Per entry in core's QUEUES, one SQS queue per priority, its lanes (core/config.ts PRIORITIES:
 * `warden-<stage>-default-high`, `warden-<stage>-default`, `warden-<stage>-default-low`), with the
 * same visibility and retention, all three redriving to the queue's one dead-letter queue. The
 * normal lane keeps the queue's own name and construct id, so a stage deployed before priorities
 * keeps its queue. A message is only a doorbell (the table is the truth), so the queues keep
 * nothing that cannot be re-sent. Encrypted with SQS-managed keys, or with the stage's own KMS key
 * when the stage asks for one (`kms`). Every lane's URL and the DLQ's are stack outputs.
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { NagSuppressions } from "cdk-nag";
import type { StackContext } from "sst/constructs";
import { dlqName, laneName, physicalName, PRIORITIES, QUEUE_NAMES, QUEUES, type Priority, type QueueName } from "../core/config.js";
import { stageKey } from "./kms.js";
import { useStageConfig } from "./stage-config.js";

export interface QueuePair {
  /** The normal lane. */
  queue: sqs.Queue;
  high: sqs.Queue;
  low: sqs.Queue;
  dlq: sqs.Queue;
}

/** A queue's lane for a priority: `queue` is the normal one (core's QueueUrls has the same shape). */
export const laneQueue = (p: QueuePair, priority: Priority): sqs.Queue => (priority === "high" ? p.high : priority === "low" ? p.low : p.queue);

/** A queue's lanes, highest first (core/config.ts PRIORITIES). */
export const lanesOf = (p: QueuePair): sqs.Queue[] => PRIORITIES.map((priority) => laneQueue(p, priority));

/**
 * One metric over a queue's lanes: their sum (how many wait on any lane) or their maximum (the
 * worst lane). Each lane is filled with 0 where it has no data point (SQS stops reporting a queue
 * left idle for hours), so a silent lane never turns the whole expression into missing data: an
 * idle stage's first job still scales the Fargate service out from zero.
 */
export function acrossLanes(p: QueuePair, op: "sum" | "max", metric: (lane: sqs.Queue) => cloudwatch.IMetric, o: { period: Duration; label: string }): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({
    expression: `${op === "sum" ? "SUM" : "MAX"}([${PRIORITIES.map((p) => `FILL(${p}, 0)`).join(", ")}])`,
    usingMetrics: Object.fromEntries(PRIORITIES.map((priority) => [priority, metric(laneQueue(p, priority))])),
    ...o,
  });
}

/** `default` → `Default`, for construct ids and output names. */
export const pascal = (s: string): string => s.replace(/(^|[-_])(\w)/g, (_m, _sep: string, c: string) => c.toUpperCase());

export function Queues({ app, stack }: StackContext) {
  const config = useStageConfig(app);
  const key = stageKey(stack, "QueueKey", config, "queues", "the job queues and their dead-letter queues");
  const encryption: Pick<sqs.QueueProps, "encryption" | "encryptionMasterKey"> = key
    ? { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key }
    : { encryption: sqs.QueueEncryption.SQS_MANAGED };
  const queues = {} as Record<QueueName, QueuePair>;
  for (const name of QUEUE_NAMES) {
    const def = QUEUES[name];
    const dlq = new sqs.Queue(stack, `${pascal(name)}Dlq`, {
      queueName: physicalName(app.stage, dlqName(name)),
      retentionPeriod: Duration.seconds(def.dlqRetentionSeconds),
      ...encryption,
      enforceSSL: true,
    });
    NagSuppressions.addResourceSuppressions(dlq, [
      {
        id: "Serverless-SQSRedrivePolicy",
        reason:
          "This is the dead-letter queue. A message that lands here stays for 14 days, raises the DeadLetters alarm and is redriven by `warden dead-letters --redrive`; a further DLQ would only hide it.",
      },
    ]);
    const lane = (priority: Priority, id: string) =>
      new sqs.Queue(stack, id, {
        queueName: physicalName(app.stage, laneName(name, priority)),
        visibilityTimeout: Duration.seconds(def.visibilityTimeoutSeconds),
        retentionPeriod: Duration.seconds(def.retentionSeconds),
        deadLetterQueue: { queue: dlq, maxReceiveCount: def.maxReceiveCount },
        ...encryption,
        enforceSSL: true,
      });
    // The normal lane keeps the id it had before priorities, so a deployed stage keeps its queue.
    const queue = lane("normal", `${pascal(name)}Queue`);
    const high = lane("high", `${pascal(name)}HighQueue`);
    const low = lane("low", `${pascal(name)}LowQueue`);
    queues[name] = { queue, high, low, dlq };
    stack.addOutputs({
      [`${pascal(name)}QueueUrl`]: queue.queueUrl,
      [`${pascal(name)}HighQueueUrl`]: high.queueUrl,
      [`${pascal(name)}LowQueueUrl`]: low.queueUrl,
      [`${pascal(name)}DlqUrl`]: dlq.queueUrl,
    });
  }
  return { queues, key };
}
