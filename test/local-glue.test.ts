/**
 * The AWS stand-ins in isolation: the Lambda event source mapping's batches, partial failures and
 * deadline against fauxqs; the API Gateway event and the bearer-token identity; the TTL stand-in
 * against dynalite.
 */
import { laneOf } from "../core/config.js";
import { CreateQueueCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { PutCommand, GetCommand } from "@aws-sdk/lib-dynamodb";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { JobQueue } from "../core/queue.js";
import { identify, toEvent } from "../local/gateway.js";
import { failuresOf, LambdaPoller } from "../local/poller.js";
import { expireItems } from "../local/ttl.js";
import { useEmulators, waitFor } from "./support/emulators.js";

const env = useEmulators("glue");

describe("the Lambda event source mapping stand-in", () => {
  it("batches, builds faithful records, deletes all but the reported failures", async () => {
    const queue = new JobQueue(env.sqs, env.emu.queues);
    const ids = Array.from({ length: 7 }, (_, i) => `job-${i}`);
    await queue.send(laneOf({ queue: "default" }), ids);
    const events: { event: SQSEvent; remaining: number }[] = [];
    const poller = new LambdaPoller({
      sqs: env.sqs,
      queueUrls: [env.emu.queues.default.queue],
      concurrency: 2,
      timeoutMs: 5000,
      batchSize: 5,
      batchingWindowMs: 300,
      waitSeconds: 1,
      handler: async (event: SQSEvent, ctx: Context): Promise<SQSBatchResponse> => {
        events.push({ event, remaining: ctx.getRemainingTimeInMillis() });
        const failed = event.Records.filter((r) => JSON.parse(r.body).jobId === "job-3");
        return { batchItemFailures: failed.map((r) => ({ itemIdentifier: r.messageId })) };
      },
    });
    await poller.start();
    await waitFor(() => events.reduce((n, e) => n + e.event.Records.length, 0) >= 7, 10_000, "all 7 records delivered");
    await poller.stop();
    expect(events.every((e) => e.event.Records.length <= 5)).toBe(true);
    const r = events[0]!.event.Records[0]!;
    expect(r.eventSource).toBe("aws:sqs");
    expect(r.eventSourceARN).toMatch(/^arn:aws:sqs:.*warden-glue-default$/);
    expect(r.attributes.ApproximateReceiveCount).toBe("1");
    expect(Number(r.attributes.SentTimestamp)).toBeGreaterThan(0);
    expect(r.receiptHandle).not.toBe("");
    expect(events[0]!.remaining).toBeGreaterThan(4000);
    expect(events[0]!.remaining).toBeLessThanOrEqual(5000);
    // The failed record stays in flight (it comes back after the visibility timeout); the rest are gone.
    const depth = await queue.depth("default");
    expect(depth).toEqual({ visible: 0, inFlight: 1, delayed: 0 });
  });

  it("fails the whole batch on a throw, a timeout, or an unknown item identifier", async () => {
    const records = [{ messageId: "a" }, { messageId: "b" }] as SQSEvent["Records"];
    expect([...failuresOf({ batchItemFailures: [{ itemIdentifier: "b" }] }, records)]).toEqual(["b"]);
    expect([...failuresOf({ batchItemFailures: [] }, records)]).toEqual([]);
    expect([...failuresOf(undefined, records)]).toEqual([]);
    expect([...failuresOf({ batchItemFailures: [{ itemIdentifier: "zzz" }] }, records)].sort()).toEqual(["a", "b"]);
    expect([...failuresOf({ batchItemFailures: [{ itemIdentifier: "" }] }, records)].sort()).toEqual(["a", "b"]);

    const queue = new JobQueue(env.sqs, env.emu.queues);
    await queue.send(laneOf({ queue: "large" }), ["slow-1", "slow-2"]);
    const outcomes: string[] = [];
    const poller = new LambdaPoller({
      sqs: env.sqs,
      queueUrls: [env.emu.queues.large.queue],
      concurrency: 1,
      timeoutMs: 200,
      batchingWindowMs: 200,
      waitSeconds: 1,
      handler: () => new Promise(() => undefined), // never returns: Lambda's timeout ends it
      onInvocation: (o) => void outcomes.push(o),
    });
    await poller.start();
    await waitFor(() => outcomes.length > 0, 5000, "the invocation to time out");
    await poller.stop(100);
    expect(outcomes[0]).toBe("timeout");
    expect((await queue.depth("large")).inFlight).toBe(2);
  });

  it("runs each invocation in an environment of its own and reports the one whose invocation timed out, as Lambda's log line would", async () => {
    // A queue of its own: an earlier test's abandoned long poll on a shared one may take the message.
    const queueUrl = (await env.sqs.send(new CreateQueueCommand({ QueueName: "glue-environments" }))).QueueUrl!;
    const send = (body: string) => env.sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
    await send("env-a");
    const ran: number[] = [];
    const timedOut: number[] = [];
    // Environment 0 hangs past the timeout; environment 1 answers.
    const handlers = [0, 1].map((i) => async () => {
      ran.push(i);
      if (i === 0) await new Promise(() => undefined);
      return { batchItemFailures: [] };
    });
    const poller = new LambdaPoller({
      sqs: env.sqs,
      queueUrls: [queueUrl],
      concurrency: 2,
      timeoutMs: 300,
      batchSize: 1,
      batchingWindowMs: 0,
      waitSeconds: 1,
      handler: handlers,
      onTimeout: (i) => void timedOut.push(i),
    });
    await poller.start();
    await waitFor(() => timedOut.length > 0, 5000, "the hung invocation to time out");
    await send("env-b");
    await waitFor(() => ran.includes(1), 5000, "an invocation in the other environment");
    await poller.stop(100);
    expect(ran[0]).toBe(0);
    expect(new Set(timedOut)).toEqual(new Set([0]));
  });

  it("keeps its mappings of several lanes under one concurrency: never more invocations at once than it, nor two in one environment", async () => {
    const lanes = await Promise.all(["high", "normal", "low"].map(async (l) => (await env.sqs.send(new CreateQueueCommand({ QueueName: `glue-lanes-${l}` }))).QueueUrl!));
    for (const url of lanes) for (let i = 0; i < 8; i++) await env.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: `${url}-${i}` }));
    let running = 0;
    let most = 0;
    let delivered = 0;
    const busy = [false, false];
    let overlaps = 0;
    // Each environment's handler: short work, so the mappings wake together when one ends.
    const handlers = [0, 1].map((i) => async (event: SQSEvent) => {
      if (busy[i]) overlaps++;
      busy[i] = true;
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      busy[i] = false;
      delivered += event.Records.length;
      return { batchItemFailures: [] };
    });
    const poller = new LambdaPoller({ sqs: env.sqs, queueUrls: lanes, concurrency: 2, timeoutMs: 5_000, batchSize: 1, batchingWindowMs: 0, waitSeconds: 1, handler: handlers });
    await poller.start();
    await waitFor(() => delivered >= 24, 15_000, "every lane's messages delivered");
    await poller.stop();
    expect(most).toBeLessThanOrEqual(2);
    expect(overlaps).toBe(0);
  });
});

describe("the API Gateway stand-in", () => {
  const auth = { callers: new Map([["alice", "tok-a"], ["bob", "tok-b"]]), adminToken: "tok-admin" };

  it("maps bearer tokens to callers and the admin group", () => {
    expect(identify(auth, "Bearer tok-a")).toEqual({ sub: "alice", admin: false });
    expect(identify(auth, "bearer tok-admin")).toEqual({ sub: "admin", admin: true });
    expect(identify(auth, "Bearer nope")).toBeUndefined();
    expect(identify(auth, "tok-a")).toBeUndefined();
    expect(identify(auth, undefined)).toBeUndefined();
  });

  it("builds a payload-v2 event with route, path parameters, query, lowercased headers and claims", () => {
    const e = toEvent(
      {
        url: new URL("http://x/jobs/01ABC/cancel?a=1&b=2&a=3"),
        method: "POST",
        raw: Buffer.from('{"x":1}'),
        headers: { "Content-Type": "application/json", host: "127.0.0.1:4000", cookie: "k=v; j=w" },
      },
      { sub: "admin", admin: true },
    );
    expect(e.version).toBe("2.0");
    expect(e.routeKey).toBe("POST /jobs/{id}/cancel");
    expect(e.pathParameters).toEqual({ id: "01ABC" });
    expect(e.rawPath).toBe("/jobs/01ABC/cancel");
    expect(e.rawQueryString).toBe("a=1&b=2&a=3");
    expect(e.queryStringParameters).toEqual({ a: "1,3", b: "2" });
    expect(e.headers["content-type"]).toBe("application/json");
    expect(e.cookies).toEqual(["k=v", "j=w"]);
    expect(e.body).toBe('{"x":1}');
    expect(e.isBase64Encoded).toBe(false);
    expect(e.requestContext.http).toMatchObject({ method: "POST", path: "/jobs/01ABC/cancel" });
    expect(e.requestContext.authorizer.jwt.claims).toEqual({ sub: "admin", groups: ["warden-admin"] });

    const bin = toEvent({ url: new URL("http://x/nowhere"), method: "PUT", raw: Buffer.from([0xff, 0x00]), headers: { "content-type": "application/octet-stream" } }, undefined);
    expect(bin.routeKey).toBe("$default");
    expect(bin.isBase64Encoded).toBe(true);
    expect(bin.body).toBe(Buffer.from([0xff, 0x00]).toString("base64"));
    expect(bin.queryStringParameters).toBeUndefined();
  });
});

describe("the DynamoDB TTL stand-in", () => {
  it("deletes items whose expiresAt has passed, and only those", async () => {
    const table = env.emu.tableName;
    const now = Date.now();
    const put = (id: string, expiresAt?: number) => env.doc.send(new PutCommand({ TableName: table, Item: { id, ...(expiresAt ? { expiresAt } : {}) } }));
    await put("old", Math.floor(now / 1000) - 10);
    await put("future", Math.floor(now / 1000) + 3600);
    await put("live");
    expect(await expireItems(env.doc, table, now)).toBe(1);
    const has = async (id: string) => !!(await env.doc.send(new GetCommand({ TableName: table, Key: { id } }))).Item;
    expect(await has("old")).toBe(false);
    expect(await has("future")).toBe(true);
    expect(await has("live")).toBe(true);
  });
});
