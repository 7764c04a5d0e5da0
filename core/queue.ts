/**
 * The SQS side: a message is only a doorbell that says "job X may be ready" (invariant 1). It
 * carries the job id and the queue's name, nothing else, so a duplicate, late or lost message
 * can never corrupt a job.
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type Message,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { AWS_TIMEOUTS, TIMINGS, type QueueName } from "./config.js";
import type { QueueUrls } from "./runtime.js";

export interface JobMessage {
  jobId: string;
  queue: QueueName;
}

export interface ReceivedMessage extends JobMessage {
  receiptHandle: string;
  messageId: string;
  receiveCount: number;
  sentAt: number;
}

/** What the rest of core needs from a queue; tests wrap it to inject faults. */
export interface Doorbell {
  /** Rings for each job; `delayMs` is capped at SQS's 15 minutes (a later runAt is the sweeper's). */
  send(queue: QueueName, jobIds: string[], delayMs?: number): Promise<void>;
}

export function encodeMessage(m: JobMessage): string {
  return JSON.stringify({ jobId: m.jobId, queue: m.queue });
}

/** Parses a message body; undefined for anything that is not a Warden doorbell. */
export function decodeMessage(body: string | undefined): JobMessage | undefined {
  try {
    const m = JSON.parse(body ?? "") as Partial<JobMessage>;
    if (typeof m.jobId === "string" && (m.queue === "default" || m.queue === "large")) return { jobId: m.jobId, queue: m.queue };
  } catch {
    /* not JSON: fall through */
  }
  return undefined;
}

const delaySeconds = (delayMs: number | undefined): number =>
  Math.max(0, Math.min(TIMINGS.maxMessageDelaySeconds, Math.ceil((delayMs ?? 0) / 1000)));

export class JobQueue implements Doorbell {
  constructor(
    readonly sqs: SQSClient,
    readonly urls: Record<QueueName, QueueUrls>,
  ) {}

  async send(queue: QueueName, jobIds: string[], delayMs?: number): Promise<void> {
    const QueueUrl = this.urls[queue].queue;
    const DelaySeconds = delaySeconds(delayMs);
    if (jobIds.length === 1) {
      await this.sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: encodeMessage({ jobId: jobIds[0]!, queue }), DelaySeconds }));
      return;
    }
    for (let i = 0; i < jobIds.length; i += 10) {
      const chunk = jobIds.slice(i, i + 10);
      const out = await this.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl,
          Entries: chunk.map((jobId, n) => ({ Id: String(n), MessageBody: encodeMessage({ jobId, queue }), DelaySeconds })),
        }),
      );
      if (out.Failed?.length) {
        throw new Error(`SQS refused ${out.Failed.length} of ${chunk.length} messages: ${out.Failed.map((f) => f.Message ?? f.Code).join("; ")}`);
      }
    }
  }

  async receive(queue: QueueName, opts: { max?: number; waitSeconds?: number; visibilitySeconds?: number; dlq?: boolean } = {}): Promise<ReceivedMessage[]> {
    const waitSeconds = opts.waitSeconds ?? 20;
    const out = await this.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: opts.dlq ? this.urls[queue].dlq : this.urls[queue].queue,
        MaxNumberOfMessages: Math.min(10, opts.max ?? 10),
        WaitTimeSeconds: waitSeconds,
        ...(opts.visibilitySeconds !== undefined ? { VisibilityTimeout: opts.visibilitySeconds } : {}),
        MessageSystemAttributeNames: ["ApproximateReceiveCount", "SentTimestamp"],
      }),
      // The client's request timeout is shorter than a long poll: this call gets the poll's wait on top.
      { requestTimeout: waitSeconds * 1000 + AWS_TIMEOUTS.longPollMarginMs },
    );
    return (out.Messages ?? []).flatMap((m) => toReceived(m, queue));
  }

  async delete(queue: QueueName, receiptHandle: string, opts: { dlq?: boolean } = {}): Promise<void> {
    await this.sqs.send(new DeleteMessageCommand({ QueueUrl: opts.dlq ? this.urls[queue].dlq : this.urls[queue].queue, ReceiptHandle: receiptHandle }));
  }

  async changeVisibility(queue: QueueName, receiptHandle: string, seconds: number): Promise<void> {
    await this.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: this.urls[queue].queue, ReceiptHandle: receiptHandle, VisibilityTimeout: seconds }));
  }

  /** Approximate visible + in-flight + delayed messages. */
  async depth(queue: QueueName, opts: { dlq?: boolean } = {}): Promise<{ visible: number; inFlight: number; delayed: number }> {
    const out = await this.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: opts.dlq ? this.urls[queue].dlq : this.urls[queue].queue,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"],
      }),
    );
    const a = out.Attributes ?? {};
    return {
      visible: Number(a.ApproximateNumberOfMessages ?? 0),
      inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0),
      delayed: Number(a.ApproximateNumberOfMessagesDelayed ?? 0),
    };
  }
}

/** A message that is not a Warden doorbell still gets a receipt, so it can be deleted. */
function toReceived(m: Message, queue: QueueName): ReceivedMessage[] {
  const decoded = decodeMessage(m.Body);
  return [
    {
      jobId: decoded?.jobId ?? "",
      queue: decoded?.queue ?? queue,
      receiptHandle: m.ReceiptHandle ?? "",
      messageId: m.MessageId ?? "",
      receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 1),
      sentAt: Number(m.Attributes?.SentTimestamp ?? Date.now()),
    },
  ];
}
