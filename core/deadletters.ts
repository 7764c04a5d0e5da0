/**
 * Dead letters: messages that failed every delivery SQS allowed. Nothing consumes a DLQ
 * automatically (a person should look first; its depth raises an alarm). This module peeks at
 * them without consuming and redrives them to their source queue with a receive-send-delete
 * mover, which works against AWS and fauxqs alike. In AWS, `StartMessageMoveTask` is the
 * cloud-native alternative; fauxqs lacks it, so the mover is the tested path.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type Message,
} from "@aws-sdk/client-sqs";
import { DEFAULT_PRIORITY, QUEUE_NAMES, type QueueName } from "./config.js";
import { decodeMessage, type JobQueue } from "./queue.js";
import { laneUrl } from "./runtime.js";

export interface DeadLetterSample {
  jobId: string;
  /** Deliveries before this peek (earlier peeks count as deliveries too: SQS cannot tell them apart). */
  receiveCount: number;
  /** When the message was first delivered, i.e. when its first attempt began. */
  firstFailedAt: string;
}

export interface DeadLetterOptions {
  /** How long a peeked message stays hidden if the peek dies before showing it again. */
  peekVisibilitySeconds?: number;
  /** How long a message being moved stays hidden if the mover dies between send and delete. */
  moveVisibilitySeconds?: number;
  /** Upper bound on messages one redrive moves, so a call is bounded. */
  maxMove?: number;
}

export class DeadLetters {
  private readonly o: Required<DeadLetterOptions>;

  constructor(
    private readonly queue: JobQueue,
    opts: DeadLetterOptions = {},
  ) {
    this.o = { peekVisibilitySeconds: 5, moveVisibilitySeconds: 30, maxMove: 10_000, ...opts };
  }

  /**
   * Counts come from the DLQ's attributes (no receive at all). The sample is received with a
   * short visibility timeout, so one peek sees distinct messages, and each is made visible
   * again at once (ChangeMessageVisibility 0). Nothing is deleted. If the peek dies midway the
   * messages reappear by themselves after `peekVisibilitySeconds`.
   */
  async peek(sample = 10): Promise<{ queues: Record<QueueName, { count: number; sample: DeadLetterSample[] }> }> {
    const entries = await Promise.all(
      QUEUE_NAMES.map(async (q) => {
        const d = await this.queue.depth(q, { dlq: true });
        return [q, { count: d.visible + d.inFlight + d.delayed, sample: await this.sample(q, sample) }] as const;
      }),
    );
    return { queues: Object.fromEntries(entries) as Record<QueueName, { count: number; sample: DeadLetterSample[] }> };
  }

  /**
   * Moves every dead letter of `queue` back to it, each onto the lane its body names (a body
   * that is no doorbell goes to the normal lane, where a worker deletes it); answers how many moved.
   */
  async redrive(queue: QueueName): Promise<number> {
    let moved = 0;
    while (moved < this.o.maxMove) {
      const batch = await this.receive(queue, Math.min(10, this.o.maxMove - moved), this.o.moveVisibilitySeconds);
      if (!batch.length) break;
      // Send first, delete second: a crash in between leaves a duplicate doorbell, which is
      // harmless (invariant 1), never a lost one.
      const { done, refused } = await this.sendBack(queue, batch);
      if (done.length) {
        await this.queue.sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: this.queue.urls[queue].dlq,
            Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
          }),
        );
      }
      moved += done.length;
      if (done.length < batch.length) {
        const why = refused.join("; ");
        throw new Error(`redrive of ${queue}: SQS refused ${batch.length - done.length} message(s) after ${moved} moved: ${why}`);
      }
    }
    return moved;
  }

  /** Sends each message to its lane; answers those SQS took and why it refused the others. */
  private async sendBack(queue: QueueName, batch: Message[]): Promise<{ done: Message[]; refused: string[] }> {
    const byUrl = new Map<string, number[]>();
    batch.forEach((m, i) => {
      const url = laneUrl(this.queue.urls, { queue, priority: decodeMessage(m.Body)?.priority ?? DEFAULT_PRIORITY });
      byUrl.set(url, [...(byUrl.get(url) ?? []), i]);
    });
    const ok = new Set<number>();
    const refused: string[] = [];
    for (const [QueueUrl, indexes] of byUrl) {
      const sent = await this.queue.sqs.send(
        new SendMessageBatchCommand({ QueueUrl, Entries: indexes.map((i) => ({ Id: String(i), MessageBody: batch[i]!.Body ?? "" })) }),
      );
      for (const s of sent.Successful ?? []) ok.add(Number(s.Id));
      for (const f of sent.Failed ?? []) refused.push(f.Message ?? f.Code ?? "refused");
    }
    return { done: batch.filter((_, i) => ok.has(i)), refused };
  }

  private async sample(queue: QueueName, size: number): Promise<DeadLetterSample[]> {
    const seen = new Map<string, Message>();
    // Each receive hides what it returns, so the next one sees others; bounded either way.
    for (let round = 0; seen.size < size && round < Math.ceil(size / 10) + 2; round++) {
      const got = await this.receive(queue, Math.min(10, size - seen.size), this.o.peekVisibilitySeconds);
      if (!got.length) break;
      for (const m of got) seen.set(m.MessageId ?? m.ReceiptHandle!, m);
    }
    const messages = [...seen.values()];
    await this.show(queue, messages);
    return messages.map(toSample);
  }

  private async receive(queue: QueueName, max: number, visibilitySeconds: number): Promise<Message[]> {
    const out = await this.queue.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.queue.urls[queue].dlq,
        MaxNumberOfMessages: max,
        WaitTimeSeconds: 0,
        VisibilityTimeout: visibilitySeconds,
        MessageSystemAttributeNames: ["ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp", "SentTimestamp"],
      }),
    );
    return out.Messages ?? [];
  }

  /** Makes peeked messages visible again at once. */
  private async show(queue: QueueName, messages: Message[]): Promise<void> {
    for (let i = 0; i < messages.length; i += 10) {
      const chunk = messages.slice(i, i + 10);
      await this.queue.sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: this.queue.urls[queue].dlq,
          Entries: chunk.map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle!, VisibilityTimeout: 0 })),
        }),
      );
    }
  }
}

function toSample(m: Message): DeadLetterSample {
  const first = Number(m.Attributes?.ApproximateFirstReceiveTimestamp ?? m.Attributes?.SentTimestamp ?? Date.now());
  return {
    jobId: decodeMessage(m.Body)?.jobId ?? "",
    // Our own receive counted one more.
    receiveCount: Math.max(0, Number(m.Attributes?.ApproximateReceiveCount ?? 1) - 1),
    firstFailedAt: new Date(first).toISOString(),
  };
}
