/**
 * The SQS side: a message is only a doorbell that says "job X may be ready" (invariant 1). It
 * carries the job id and its lane (the queue's name and the priority), nothing else, so a
 * duplicate, late or lost message can never corrupt a job. The lane in the body is what a
 * re-ring and a DLQ redrive send it back to.
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
import { AWS_TIMEOUTS, DEFAULT_PRIORITY, laneOf, PRIORITIES, QUEUE_NAMES, TIMINGS, type Lane, type Priority, type QueueName } from "./config.js";
import { laneUrl, type QueueUrls } from "./runtime.js";

export interface JobMessage {
  jobId: string;
  queue: QueueName;
  priority: Priority;
}

export interface ReceivedMessage extends JobMessage {
  /** The lane it was received from: where its delete and visibility changes go. */
  lane: Lane;
  receiptHandle: string;
  messageId: string;
  receiveCount: number;
  sentAt: number;
}

/** What the rest of core needs from a queue; tests wrap it to inject faults. */
export interface Doorbell {
  /**
   * Rings for each job on its lane (`laneOf(job)`, core/config.ts); `delayMs` is capped at SQS's
   * 15 minutes (a later runAt is the sweeper's).
   */
  send(lane: Lane, jobIds: string[], delayMs?: number): Promise<void>;
}

/** Jobs grouped by the lane their doorbells ring on, in first-seen order, for batched sends. */
export function byLane(jobs: readonly { id: string; queue: QueueName; priority?: Priority | undefined }[]): { lane: Lane; ids: string[] }[] {
  return batchDoorbells(jobs.map((j) => ({ id: j.id, lane: laneOf(j), delayMs: 0 })));
}

/**
 * Doorbells grouped into one send each per lane and delay, in first-seen order. A delay is rounded
 * up to SQS's whole seconds, so doorbells a few milliseconds apart share a send.
 */
export function batchDoorbells(doorbells: readonly { id: string; lane: Lane; delayMs: number }[]): { lane: Lane; ids: string[]; delayMs: number }[] {
  const groups = new Map<string, { lane: Lane; ids: string[]; delayMs: number }>();
  for (const d of doorbells) {
    const seconds = Math.ceil(d.delayMs / 1000);
    const key = `${d.lane.queue}:${d.lane.priority}:${seconds}`;
    const g = groups.get(key) ?? { lane: d.lane, ids: [], delayMs: seconds * 1000 };
    g.ids.push(d.id);
    groups.set(key, g);
  }
  return [...groups.values()];
}

/** A normal doorbell's body has no priority: the form every doorbell had before priorities. */
export function encodeMessage(m: Omit<JobMessage, "priority"> & { priority?: Priority | undefined }): string {
  return JSON.stringify({ jobId: m.jobId, queue: m.queue, ...(m.priority && m.priority !== DEFAULT_PRIORITY ? { priority: m.priority } : {}) });
}

/** Parses a message body; undefined for anything that is not a Warden doorbell. */
export function decodeMessage(body: string | undefined): JobMessage | undefined {
  try {
    const m = JSON.parse(body ?? "") as Partial<JobMessage>;
    const priority = m.priority ?? DEFAULT_PRIORITY;
    if (typeof m.jobId === "string" && (QUEUE_NAMES as string[]).includes(m.queue as string) && PRIORITIES.includes(priority)) {
      return { jobId: m.jobId, queue: m.queue!, priority };
    }
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

  async send(lane: Lane, jobIds: string[], delayMs?: number): Promise<void> {
    const QueueUrl = laneUrl(this.urls, lane);
    const DelaySeconds = delaySeconds(delayMs);
    if (jobIds.length === 1) {
      await this.sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: encodeMessage({ jobId: jobIds[0]!, ...lane }), DelaySeconds }));
      return;
    }
    for (let i = 0; i < jobIds.length; i += 10) {
      const chunk = jobIds.slice(i, i + 10);
      const out = await this.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl,
          Entries: chunk.map((jobId, n) => ({ Id: String(n), MessageBody: encodeMessage({ jobId, ...lane }), DelaySeconds })),
        }),
      );
      if (out.Failed?.length) {
        throw new Error(`SQS refused ${out.Failed.length} of ${chunk.length} messages: ${out.Failed.map((f) => f.Message ?? f.Code).join("; ")}`);
      }
    }
  }

  async receive(lane: Lane, opts: { max?: number; waitSeconds?: number; visibilitySeconds?: number } = {}): Promise<ReceivedMessage[]> {
    const waitSeconds = opts.waitSeconds ?? 20;
    const out = await this.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: laneUrl(this.urls, lane),
        MaxNumberOfMessages: Math.min(10, opts.max ?? 10),
        WaitTimeSeconds: waitSeconds,
        ...(opts.visibilitySeconds !== undefined ? { VisibilityTimeout: opts.visibilitySeconds } : {}),
        MessageSystemAttributeNames: ["ApproximateReceiveCount", "SentTimestamp"],
      }),
      // The client's request timeout is shorter than a long poll: this call gets the poll's wait on top.
      { requestTimeout: waitSeconds * 1000 + AWS_TIMEOUTS.longPollMarginMs },
    );
    return (out.Messages ?? []).flatMap((m) => toReceived(m, lane));
  }

  /**
   * Up to `max` messages of `queue`, higher lanes first: each lane is asked in turn without
   * waiting (a short poll) for what the earlier ones did not fill. Only when all three are empty
   * does it wait, long-polling the normal lane for `idleWaitSeconds`, so a job that rings on
   * another lane meanwhile waits at most that long. On AWS a short poll samples a subset of SQS's
   * servers, so a lane holding very few messages can answer empty once; the next round finds them.
   */
  async receiveByPriority(queue: QueueName, opts: { max: number; idleWaitSeconds: number }): Promise<ReceivedMessage[]> {
    const got: ReceivedMessage[] = [];
    for (const priority of PRIORITIES) {
      if (got.length >= opts.max) break;
      got.push(...(await this.receive({ queue, priority }, { max: opts.max - got.length, waitSeconds: 0 })));
    }
    if (got.length) return got;
    return this.receive({ queue, priority: DEFAULT_PRIORITY }, { max: opts.max, waitSeconds: opts.idleWaitSeconds });
  }

  async delete(lane: Lane, receiptHandle: string): Promise<void> {
    await this.sqs.send(new DeleteMessageCommand({ QueueUrl: laneUrl(this.urls, lane), ReceiptHandle: receiptHandle }));
  }

  async changeVisibility(lane: Lane, receiptHandle: string, seconds: number): Promise<void> {
    await this.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: laneUrl(this.urls, lane), ReceiptHandle: receiptHandle, VisibilityTimeout: seconds }));
  }

  /** Approximate visible + in-flight + delayed messages: of the queue's lanes together, or of its DLQ. */
  async depth(queue: QueueName, opts: { dlq?: boolean } = {}): Promise<Depth> {
    if (opts.dlq) return this.depthAt(this.urls[queue].dlq);
    const lanes = await Promise.all(PRIORITIES.map((priority) => this.depthAt(laneUrl(this.urls, { queue, priority }))));
    return lanes.reduce((a, b) => ({ visible: a.visible + b.visible, inFlight: a.inFlight + b.inFlight, delayed: a.delayed + b.delayed }));
  }

  private async depthAt(QueueUrl: string): Promise<Depth> {
    const out = await this.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl,
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

export interface Depth {
  visible: number;
  inFlight: number;
  delayed: number;
}

/** A message that is not a Warden doorbell still gets a receipt, so it can be deleted. */
function toReceived(m: Message, lane: Lane): ReceivedMessage[] {
  const decoded = decodeMessage(m.Body);
  return [
    {
      jobId: decoded?.jobId ?? "",
      queue: decoded?.queue ?? lane.queue,
      priority: decoded?.priority ?? lane.priority,
      lane,
      receiptHandle: m.ReceiptHandle ?? "",
      messageId: m.MessageId ?? "",
      receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 1),
      sentAt: Number(m.Attributes?.SentTimestamp ?? Date.now()),
    },
  ];
}
