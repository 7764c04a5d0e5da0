/**
 * One SQS queue per entry in core's QUEUES, each with its dead-letter queue. A message is only a
 * doorbell (the table is the truth), so the queues keep nothing that cannot be re-sent. Encrypted
 * with SQS-managed keys, or with the stage's own KMS key when the stage asks for one (`kms`).
 */
import { Duration } from "aws-cdk-lib";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { NagSuppressions } from "cdk-nag";
import type { StackContext } from "sst/constructs";
import { dlqName, physicalName, QUEUE_NAMES, QUEUES, type QueueName } from "../core/config.js";
import { stageKey } from "./kms.js";
import { useStageConfig } from "./stage-config.js";

export interface QueuePair {
  queue: sqs.Queue;
  dlq: sqs.Queue;
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
    const queue = new sqs.Queue(stack, `${pascal(name)}Queue`, {
      queueName: physicalName(app.stage, name),
      visibilityTimeout: Duration.seconds(def.visibilityTimeoutSeconds),
      retentionPeriod: Duration.seconds(def.retentionSeconds),
      deadLetterQueue: { queue: dlq, maxReceiveCount: def.maxReceiveCount },
      ...encryption,
      enforceSSL: true,
    });
    queues[name] = { queue, dlq };
    stack.addOutputs({ [`${pascal(name)}QueueUrl`]: queue.queueUrl, [`${pascal(name)}DlqUrl`]: dlq.queueUrl });
  }
  return { queues, key };
}
