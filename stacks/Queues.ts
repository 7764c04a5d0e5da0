/**
 * One SQS queue per entry in core's QUEUES, each with its dead-letter queue. A message is only a
 * doorbell (the table is the truth), so the queues keep nothing that cannot be re-sent.
 */
import { Duration } from "aws-cdk-lib";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type { StackContext } from "sst/constructs";
import { dlqName, physicalName, QUEUE_NAMES, QUEUES, type QueueName } from "../core/config.js";

export interface QueuePair {
  queue: sqs.Queue;
  dlq: sqs.Queue;
}

/** `default` → `Default`, for construct ids and output names. */
export const pascal = (s: string): string => s.replace(/(^|[-_])(\w)/g, (_m, _sep: string, c: string) => c.toUpperCase());

export function Queues({ app, stack }: StackContext) {
  const queues = {} as Record<QueueName, QueuePair>;
  for (const name of QUEUE_NAMES) {
    const def = QUEUES[name];
    const dlq = new sqs.Queue(stack, `${pascal(name)}Dlq`, {
      queueName: physicalName(app.stage, dlqName(name)),
      retentionPeriod: Duration.seconds(def.dlqRetentionSeconds),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    const queue = new sqs.Queue(stack, `${pascal(name)}Queue`, {
      queueName: physicalName(app.stage, name),
      visibilityTimeout: Duration.seconds(def.visibilityTimeoutSeconds),
      retentionPeriod: Duration.seconds(def.retentionSeconds),
      deadLetterQueue: { queue: dlq, maxReceiveCount: def.maxReceiveCount },
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    queues[name] = { queue, dlq };
    stack.addOutputs({ [`${pascal(name)}QueueUrl`]: queue.queueUrl, [`${pascal(name)}DlqUrl`]: dlq.queueUrl });
  }
  return { queues };
}
