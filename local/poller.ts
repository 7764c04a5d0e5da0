/**
 * The Lambda event source mapping stand-in for the `default` queue: it long-polls SQS, gathers a
 * batch (batch size and batching window from core's LAMBDA_WORKER), invokes the worker handler
 * with an SQSEvent built as Lambda builds it and a Context whose deadline is real, keeps at most
 * `concurrency` invocations running, and deletes exactly the records the handler did not list in
 * `batchItemFailures`. Failed records are left alone: they become visible again after the
 * queue's visibility timeout and reach the DLQ after maxReceiveCount, as on AWS.
 */
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { AWS_TIMEOUTS, LAMBDA_WORKER } from "../core/config.js";
import { lambdaContext } from "./lambda-context.js";

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;

export interface PollerOptions {
  sqs: SQSClient;
  queueUrl: string;
  /**
   * The handler, one per execution environment (`concurrency` of them, or one for all): as on
   * Lambda, an environment runs one invocation at a time, and a worker id names an environment.
   */
  handler: SqsHandler | SqsHandler[];
  concurrency: number;
  timeoutMs: number;
  batchSize?: number;
  batchingWindowMs?: number;
  /** Long-poll wait; shorter than SQS's 20 s max only so that tests stop quickly. */
  waitSeconds?: number;
  onInvocation?: (outcome: "ok" | "error" | "timeout", records: number) => void;
  /** An invocation in environment `env` timed out: on Lambda its runtime is killed ("Task timed out"), a death event. */
  onTimeout?: (env: number) => void;
  log?: (line: string) => void;
}

export interface InvocationResult {
  deleted: number;
  failed: number;
}

const REGION = "us-east-1";

export class LambdaPoller {
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<unknown>>();
  private receiveAbort = new AbortController();
  private arn = "";

  /** Environments with no invocation running. */
  private readonly idle: number[];

  constructor(private readonly o: PollerOptions) {
    this.idle = Array.from({ length: Array.isArray(o.handler) ? o.handler.length : o.concurrency }, (_, i) => i);
  }

  get active(): number {
    return this.inFlight.size;
  }

  async start(): Promise<void> {
    const attrs = await this.o.sqs.send(new GetQueueAttributesCommand({ QueueUrl: this.o.queueUrl, AttributeNames: ["QueueArn"] }));
    this.arn = attrs.Attributes?.QueueArn ?? `arn:aws:sqs:${REGION}:000000000000:${this.o.queueUrl.split("/").pop()}`;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops receiving, then waits (up to `graceMs`) for invocations in flight to return. */
  async stop(graceMs = 15_000): Promise<void> {
    this.running = false;
    this.receiveAbort.abort();
    await this.loop;
    const all = Promise.allSettled([...this.inFlight]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
  }

  private async run(): Promise<void> {
    while (this.running) {
      if (this.inFlight.size >= this.o.concurrency) {
        await Promise.race(this.inFlight);
        continue;
      }
      if (!this.idle.length) {
        // Every environment is still running a timed-out invocation: wait for one to stop.
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      let messages: Message[];
      try {
        messages = await this.gather();
      } catch (e) {
        if (!this.running) break;
        this.o.log?.(`poller: receive failed: ${String(e)}`);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (!messages.length) continue;
      const p = this.invoke(messages).catch((e: unknown) => this.o.log?.(`poller: ${String(e)}`));
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }
  }

  /** One batch: the first long poll waits for any message, then the batching window fills it. */
  private async gather(): Promise<Message[]> {
    const batchSize = this.o.batchSize ?? LAMBDA_WORKER.batchSize;
    const windowMs = this.o.batchingWindowMs ?? LAMBDA_WORKER.maxBatchingWindowSeconds * 1000;
    const got = await this.receive(batchSize, this.o.waitSeconds ?? 20);
    const until = Date.now() + windowMs;
    while (got.length && got.length < batchSize && Date.now() < until && this.running) {
      const more = await this.receive(batchSize - got.length, 0);
      if (!more.length) await new Promise((r) => setTimeout(r, Math.min(100, until - Date.now())));
      got.push(...more);
    }
    return got;
  }

  private async receive(max: number, waitSeconds: number): Promise<Message[]> {
    if (this.receiveAbort.signal.aborted) this.receiveAbort = new AbortController();
    const out = await this.o.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.o.queueUrl,
        MaxNumberOfMessages: Math.min(10, max),
        WaitTimeSeconds: waitSeconds,
        MessageSystemAttributeNames: ["All"],
        MessageAttributeNames: ["All"],
      }),
      // The client's request timeout is shorter than a long poll: this call gets the poll's wait on top.
      { abortSignal: this.receiveAbort.signal, requestTimeout: waitSeconds * 1000 + AWS_TIMEOUTS.longPollMarginMs },
    );
    return out.Messages ?? [];
  }

  /** One invocation; exported behaviour is what `runOnce` in tests observes. */
  async invoke(messages: Message[]): Promise<InvocationResult> {
    const env = this.idle.shift() ?? 0;
    let settled: Promise<unknown> = Promise.resolve();
    try {
      return await this.invokeIn(env, messages, (p) => (settled = p));
    } finally {
      // A timed-out invocation still runs here (Lambda would have killed its runtime): its
      // environment takes no other until it has stopped (onTimeout is where it is told to).
      void settled.then(() => this.idle.push(env));
    }
  }

  private async invokeIn(env: number, messages: Message[], running: (p: Promise<unknown>) => void): Promise<InvocationResult> {
    const event: SQSEvent = { Records: messages.map((m) => toRecord(m, this.arn)) };
    const context = lambdaContext("worker", this.o.timeoutMs, LAMBDA_WORKER.memoryMb);
    const handler = Array.isArray(this.o.handler) ? this.o.handler[env]! : this.o.handler;
    let failedIds: Set<string>;
    try {
      const call = handler(event, context);
      running(call.catch(() => undefined));
      const out = await withDeadline(call, this.o.timeoutMs);
      failedIds = failuresOf(out, event.Records);
      this.o.onInvocation?.("ok", messages.length);
    } catch (e) {
      const timedOut = e instanceof DeadlineExceeded;
      if (timedOut) this.o.onTimeout?.(env);
      this.o.onInvocation?.(timedOut ? "timeout" : "error", messages.length);
      this.o.log?.(`poller: invocation ${timedOut ? "timed out" : "failed"}: ${String((e as Error)?.stack ?? e)}`);
      // A failed or timed-out invocation fails its whole batch: every message comes back.
      failedIds = new Set(event.Records.map((r) => r.messageId));
    }
    const done = messages.filter((m) => !failedIds.has(m.MessageId ?? ""));
    for (let i = 0; i < done.length; i += 10) {
      const chunk = done.slice(i, i + 10);
      await this.o.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.o.queueUrl,
          Entries: chunk.map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    }
    return { deleted: done.length, failed: messages.length - done.length };
  }
}

/**
 * Lambda's rule for partial batch responses: the listed ids fail; an id that is empty or not in
 * the batch makes the whole batch fail; no response (or an empty list) means all succeeded.
 */
export function failuresOf(out: SQSBatchResponse | void, records: SQSRecord[]): Set<string> {
  const ids = new Set(records.map((r) => r.messageId));
  const listed = out && Array.isArray(out.batchItemFailures) ? out.batchItemFailures : [];
  if (listed.some((f) => !f?.itemIdentifier || !ids.has(f.itemIdentifier))) return ids;
  return new Set(listed.map((f) => f.itemIdentifier));
}

export function toRecord(m: Message, arn: string): SQSRecord {
  const a = m.Attributes ?? {};
  return {
    messageId: m.MessageId ?? "",
    receiptHandle: m.ReceiptHandle ?? "",
    body: m.Body ?? "",
    attributes: {
      ApproximateReceiveCount: a.ApproximateReceiveCount ?? "1",
      SentTimestamp: a.SentTimestamp ?? String(Date.now()),
      SenderId: a.SenderId ?? "000000000000",
      ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    },
    messageAttributes: Object.fromEntries(
      Object.entries(m.MessageAttributes ?? {}).map(([k, v]) => [
        k,
        { dataType: v.DataType ?? "String", ...(v.StringValue !== undefined ? { stringValue: v.StringValue } : {}) },
      ]),
    ),
    md5OfBody: m.MD5OfBody ?? "",
    eventSource: "aws:sqs",
    eventSourceARN: arn,
    awsRegion: REGION,
  };
}

class DeadlineExceeded extends Error {}

/**
 * Lambda ends an invocation at its timeout; in one process we can only stop waiting for it. The
 * runner hands its jobs back before the deadline, so reaching this is itself a bug worth an error.
 */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineExceeded(`Task timed out after ${(ms / 1000).toFixed(2)} seconds`)), ms);
    }),
  ]);
}
