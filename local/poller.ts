/**
 * The Lambda event source mapping stand-in for the `default` queue, one mapping per lane (as the
 * Workers stack wires them: each polls its own queue, and all share the function's environments
 * and concurrency, so a lane is not drained before another; priority on Lambda is only that a
 * high job never queues behind normal messages). Each long-polls SQS, gathers a
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
  /** One event source mapping per URL: the queue's lanes. */
  queueUrls: readonly string[];
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
  private loops: Promise<void>[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private receiveAbort = new AbortController();
  private readonly arns = new Map<string, string>();

  /** Environments with no invocation running. */
  private readonly idle: number[];
  /** Invocations whose environment is taken but which are not in flight yet (across an await). */
  private starting = 0;

  constructor(private readonly o: PollerOptions) {
    this.idle = Array.from({ length: Array.isArray(o.handler) ? o.handler.length : o.concurrency }, (_, i) => i);
  }

  get active(): number {
    return this.inFlight.size;
  }

  async start(): Promise<void> {
    for (const url of this.o.queueUrls) {
      const attrs = await this.o.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }));
      this.arns.set(url, attrs.Attributes?.QueueArn ?? `arn:aws:sqs:${REGION}:000000000000:${url.split("/").pop()}`);
    }
    this.running = true;
    this.loops = this.o.queueUrls.map((url) => this.run(url));
  }

  /** Stops receiving, then waits (up to `graceMs`) for invocations in flight to return. */
  async stop(graceMs = 15_000): Promise<void> {
    this.running = false;
    this.receiveAbort.abort();
    await Promise.all(this.loops);
    const all = Promise.allSettled([...this.inFlight]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
  }

  /** One event source mapping: its own poll of `url`, sharing the environments with the others. */
  private async run(url: string): Promise<void> {
    while (this.running) {
      await this.capacity();
      if (!this.running) break;
      let messages: Message[];
      try {
        messages = await this.gather(url);
      } catch (e) {
        if (!this.running) break;
        this.o.log?.(`poller: receive failed: ${String(e)}`);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (!messages.length) continue;
      // Another mapping may have taken the last environment while this one gathered: Lambda
      // throttles that invoke and retries it, which is waiting here.
      const env = await this.reserve();
      // Stopped meanwhile: the batch comes back after its visibility timeout, as from a disabled mapping.
      if (env === undefined) break;
      const p = this.invoke(env, messages, url).catch((e: unknown) => this.o.log?.(`poller: ${String(e)}`));
      this.inFlight.add(p);
      this.starting--;
      void p.finally(() => this.inFlight.delete(p));
    }
  }

  /** Resolves once an invocation may start (under the concurrency, with an environment free), or the poller stops. */
  private async capacity(): Promise<void> {
    while (this.running) {
      if (this.inFlight.size + this.starting >= this.o.concurrency) await (this.inFlight.size ? Promise.race(this.inFlight) : sleep(10));
      // Every environment is still running a timed-out invocation: wait for one to stop.
      else if (!this.idle.length) await sleep(50);
      else return;
    }
  }

  /**
   * Waits for capacity, then takes an environment in the same step as the check, so two
   * mappings woken by one invocation's end cannot both pass it; undefined once stopped.
   */
  private async reserve(): Promise<number | undefined> {
    await this.capacity();
    if (!this.running) return undefined;
    if (this.inFlight.size + this.starting >= this.o.concurrency || !this.idle.length) return this.reserve();
    this.starting++;
    return this.idle.shift()!;
  }

  /** One batch: the first long poll waits for any message, then the batching window fills it. */
  private async gather(url: string): Promise<Message[]> {
    const batchSize = this.o.batchSize ?? LAMBDA_WORKER.batchSize;
    const windowMs = this.o.batchingWindowMs ?? LAMBDA_WORKER.maxBatchingWindowSeconds * 1000;
    const got = await this.receive(url, batchSize, this.o.waitSeconds ?? 20);
    const until = Date.now() + windowMs;
    while (got.length && got.length < batchSize && Date.now() < until && this.running) {
      const more = await this.receive(url, batchSize - got.length, 0);
      if (!more.length) await new Promise((r) => setTimeout(r, Math.min(100, until - Date.now())));
      got.push(...more);
    }
    return got;
  }

  private async receive(url: string, max: number, waitSeconds: number): Promise<Message[]> {
    if (this.receiveAbort.signal.aborted && this.running) this.receiveAbort = new AbortController();
    const out = await this.o.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
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

  /** One invocation of `messages` from `url` in environment `env` (taken by `reserve`), which it gives back when its handler has stopped. */
  private async invoke(env: number, messages: Message[], url: string): Promise<InvocationResult> {
    let settled: Promise<unknown> = Promise.resolve();
    try {
      return await this.invokeIn(env, messages, url, (p) => (settled = p));
    } finally {
      // A timed-out invocation still runs here (Lambda would have killed its runtime): its
      // environment takes no other until it has stopped (onTimeout is where it is told to).
      void settled.then(() => this.idle.push(env));
    }
  }

  private async invokeIn(env: number, messages: Message[], url: string, running: (p: Promise<unknown>) => void): Promise<InvocationResult> {
    const event: SQSEvent = { Records: messages.map((m) => toRecord(m, this.arns.get(url) ?? "")) };
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
          QueueUrl: url,
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

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
