/**
 * Shared by the runner, worker and job tests: services against the test emulators, a submit that
 * writes and rings like the API, a stand-in for Lambda's SQS event source (receive, invoke,
 * delete what succeeded), and a real worker process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { DeleteMessageCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { type QueueName, laneOf } from "../core/config.js";
import type { Job } from "../core/job.js";
import { MemoryMetrics } from "../core/metrics.js";
import { decodeMessage } from "../core/queue.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import type { TestEnv } from "./support/emulators.js";

export const REPO = fileURLToPath(new URL("..", import.meta.url));

export function testServices(env: TestEnv, vars: Record<string, string> = {}): Services & { metrics: MemoryMetrics } {
  const cfg = loadRuntime({ ...env.emu.env, WARDEN_LEASE_SECONDS: "1", ...vars });
  return buildServices(cfg, { doc: env.doc, sqs: env.sqs, metrics: new MemoryMetrics() }) as Services & { metrics: MemoryMetrics };
}

/** Writes a job and rings its doorbell, as the API does. */
export async function submit(
  s: Services,
  type: string,
  input: unknown,
  o: { maxAttempts?: number; timeoutMs?: number; queue?: QueueName; ring?: boolean } = {},
): Promise<Job> {
  const parsed = s.registry.parseInput(type, input);
  const queue = o.queue ?? s.registry.queueFor(parsed.type, parsed.input);
  const { job } = await s.store.create({
    owner: "test",
    type,
    queue,
    input: parsed.input,
    maxAttempts: o.maxAttempts ?? parsed.type.limits.maxAttempts,
    timeoutMs: o.timeoutMs ?? parsed.type.limits.timeoutMs,
  });
  if (o.ring !== false) await s.queue.send(laneOf({ queue: queue }), [job.id]);
  return job;
}

/** A Lambda context whose remaining time really counts down. */
export function fakeContext(remainingMs: number): Context {
  const end = Date.now() + remainingMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: "warden-test-worker",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:warden-test-worker",
    memoryLimitInMB: "1024",
    awsRequestId: `req-${Math.random().toString(36).slice(2)}`,
    logGroupName: "/aws/lambda/warden-test-worker",
    logStreamName: "test",
    getRemainingTimeInMillis: () => Math.max(0, end - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

/**
 * One poll of Lambda's event source: receives up to `max` messages from the queue, invokes the
 * handler with them, and deletes those not reported as failures. Answers what it did.
 */
export async function pollOnce(
  s: Services,
  handler: SqsHandler,
  o: { queue?: QueueName; remainingMs?: number; max?: number; waitSeconds?: number } = {},
): Promise<{ jobIds: string[]; failures: string[] }> {
  const QueueUrl = s.cfg.queues[o.queue ?? "default"].queue;
  const out = await s.sqs.send(
    new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: o.max ?? 10, WaitTimeSeconds: o.waitSeconds ?? 1, MessageSystemAttributeNames: ["All"] }),
  );
  const messages = out.Messages ?? [];
  if (!messages.length) return { jobIds: [], failures: [] };
  const event: SQSEvent = {
    Records: messages.map((m) => ({
      messageId: m.MessageId!,
      receiptHandle: m.ReceiptHandle!,
      body: m.Body ?? "",
      attributes: {
        ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? "1",
        SentTimestamp: m.Attributes?.SentTimestamp ?? String(Date.now()),
        SenderId: "test",
        ApproximateFirstReceiveTimestamp: String(Date.now()),
      },
      messageAttributes: {},
      md5OfBody: "",
      eventSource: "aws:sqs",
      eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:test",
      awsRegion: "us-east-1",
    })),
  };
  const res = await handler(event, fakeContext(o.remainingMs ?? 60_000));
  const failures = res.batchItemFailures.map((f) => f.itemIdentifier);
  for (const m of messages) {
    if (!failures.includes(m.MessageId!)) await s.sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: m.ReceiptHandle! }));
  }
  return { jobIds: messages.map((m) => decodeMessage(m.Body)?.jobId ?? ""), failures };
}

export interface WorkerChild {
  child: ChildProcess;
  id: string;
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts functions/fargate.ts as a real OS process and resolves once it prints its ready line. */
export async function spawnWorker(env: TestEnv, vars: Record<string, string>, timeoutMs = 30_000): Promise<WorkerChild> {
  const id = vars.WARDEN_WORKER_ID ?? `child-${Math.random().toString(36).slice(2, 8)}`;
  // --expose-gc as the Dockerfile runs it: the memory guard collects after a memory abort.
  const child = spawn(process.execPath, ["--expose-gc", "--import", "tsx", "functions/fargate.ts"], {
    cwd: REPO,
    env: {
      ...process.env,
      ...env.emu.env,
      WARDEN_WORKER_ID: id,
      WARDEN_POLL_WAIT_SECONDS: "1",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      ...vars,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${id} not ready in ${timeoutMs} ms:\n${lines.join("\n")}`)), timeoutMs);
    const onLine = (line: string) => {
      lines.push(line);
      if (line === `warden-worker: ready ${id}`) {
        clearTimeout(timer);
        resolve();
      }
    };
    createInterface({ input: child.stdout! }).on("line", onLine);
    createInterface({ input: child.stderr! }).on("line", (l) => lines.push(l));
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`worker ${id} exited before it was ready:\n${lines.join("\n")}`));
    });
  });
  await ready;
  return { child, id, lines, exited };
}
