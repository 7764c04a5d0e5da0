/**
 * The wire-level fault proxy in front of dynalite and fauxqs, driven by real SDK clients: the
 * faults sit below the SDK's retries, so the SDK itself resends (and a lost reply to a
 * conditional write comes back as ConditionalCheckFailedException).
 */
import { connect, createServer, type AddressInfo } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import { DynamoDBClient, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient, type Message } from "@aws-sdk/client-sqs";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { startWireProxy, timeoutHandler, type AppliedRequest, type WireFaultKind, type WireFaultOptions, type WireProxy } from "../local/wire-faults.js";
import { useEmulators, waitFor } from "./support/emulators.js";

const env = useEmulators("wire");
const credentials = { accessKeyId: "x", secretAccessKey: "x" };
const open: { destroy(): void }[] = [];
const proxies: WireProxy[] = [];

afterEach(async () => {
  for (const c of open.splice(0)) c.destroy();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

function dynamo(endpoint: string, requestHandler: NodeHttpHandler = timeoutHandler(500, 500), maxAttempts = 5): DynamoDBClient {
  const c = new DynamoDBClient({ endpoint, region: "us-east-1", credentials, maxAttempts, requestHandler });
  open.push(c);
  return c;
}

function sqs(endpoint: string): SQSClient {
  const c = new SQSClient({ endpoint, region: "us-east-1", credentials, maxAttempts: 5, requestHandler: timeoutHandler(500, 500) });
  open.push(c);
  return c;
}

interface Faulty {
  proxy: WireProxy;
  applied: AppliedRequest[];
}

/** A proxy that injects `kind` into the first `times` requests, then forwards everything. */
async function faulty(service: WireFaultOptions["service"], kind: WireFaultKind, times: number, extra: Partial<WireFaultOptions> = {}): Promise<Faulty> {
  const applied: AppliedRequest[] = [];
  const upstream = service === "dynamodb" ? env.emu.dynamoEndpoint : env.emu.sqsEndpoint;
  let injected = 0;
  const proxy: WireProxy = await startWireProxy(upstream, {
    service,
    rate: times > 0 ? 1 : 0,
    seed: 7,
    kinds: [kind],
    onApplied: (e) => applied.push(e),
    onFault: () => ++injected >= times && proxy.setRate(0),
    ...extra,
  });
  proxies.push(proxy);
  return { proxy, applied };
}

const key = (id: string) => ({ id: { S: id } });
const conditionalPut = (table: string, id: string) =>
  new PutItemCommand({ TableName: table, Item: { ...key(id), n: { N: "1" } }, ConditionExpression: "attribute_not_exists(id)" });

async function rejection(p: Promise<unknown>): Promise<{ name: string; $metadata: { httpStatusCode?: number; attempts?: number } }> {
  try {
    await p;
  } catch (e) {
    return e as never;
  }
  throw new Error("expected the call to fail");
}

describe("DynamoDB through the wire proxy", () => {
  test("a lost reply on a conditional PutItem: applied once, the SDK's resend fails its own condition", async () => {
    const { proxy, applied } = await faulty("dynamodb", "lostReply", 1);
    const db = dynamo(proxy.endpoint);
    const err = await rejection(db.send(conditionalPut(env.emu.tableName, "lost-1")));
    expect(err.name).toBe("ConditionalCheckFailedException");
    expect(err.$metadata.attempts).toBe(2);
    expect(proxy.counts.lostReply).toBe(1);

    const direct = dynamo(env.emu.dynamoEndpoint);
    const stored = await direct.send(new GetItemCommand({ TableName: env.emu.tableName, Key: key("lost-1"), ConsistentRead: true }));
    expect(stored.Item).toEqual({ ...key("lost-1"), n: { N: "1" } });

    expect(applied.map((a) => [a.target, a.status, a.replyLost, a.attempt])).toEqual([
      ["DynamoDB_20120810.PutItem", 200, true, 1],
      ["DynamoDB_20120810.PutItem", 400, false, 2],
    ]);
    expect(applied[0]!.invocationId).toBe(applied[1]!.invocationId);
    expect(applied[0]!.userAgent).toMatch(/aws-sdk-js/);
    expect((applied[0]!.request as { Item: unknown }).Item).toEqual({ ...key("lost-1"), n: { N: "1" } });
    expect(String((applied[1]!.response as { __type: string }).__type)).toMatch(/#ConditionalCheckFailedException$/);
  });

  test("lostReply is never injected into a read", async () => {
    const { proxy, applied } = await faulty("dynamodb", "lostReply", 5);
    const out = await dynamo(proxy.endpoint).send(new GetItemCommand({ TableName: env.emu.tableName, Key: key("nothing") }));
    expect(out.$metadata.attempts).toBe(1);
    expect(proxy.counts.lostReply).toBe(0);
    expect(applied.map((a) => [a.target, a.replyLost])).toEqual([["DynamoDB_20120810.GetItem", false]]);
  });

  test("a hang: the request timeout fires and the SDK's retry succeeds within seconds", async () => {
    const { proxy, applied } = await faulty("dynamodb", "hang", 1);
    const started = Date.now();
    const out = await dynamo(proxy.endpoint).send(conditionalPut(env.emu.tableName, "hang-1"));
    const took = Date.now() - started;
    expect(out.$metadata.attempts).toBe(2);
    expect(proxy.counts.hang).toBe(1);
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(3_000);
    // The hung request was never forwarded: only the retry reached dynalite.
    expect(applied.map((a) => [a.status, a.attempt])).toEqual([[200, 2]]);
  });

  test("a hang without throwOnRequestTimeout: requestTimeout only warns, the call waits for the proxy to drop it", async () => {
    const { proxy } = await faulty("dynamodb", "hang", 1, { hangMs: 1_500 });
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (m: string) => warnings.push(String(m)), error() {} };
    const handler = new NodeHttpHandler({ requestTimeout: 500, connectionTimeout: 500, logger });
    const started = Date.now();
    const out = await dynamo(proxy.endpoint, handler).send(new GetItemCommand({ TableName: env.emu.tableName, Key: key("nothing") }));
    expect(out.$metadata.attempts).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
    expect(warnings.join("\n")).toMatch(/exceeded the configured 500 ms requestTimeout/);
  });

  test.each(["server", "throttle"] as const)("%s faults on the first two attempts: the SDK retries and succeeds", async (kind) => {
    const { proxy, applied } = await faulty("dynamodb", kind, 2);
    const out = await dynamo(proxy.endpoint).send(conditionalPut(env.emu.tableName, `retry-${kind}`));
    expect(out.$metadata.attempts).toBe(3);
    expect(proxy.counts[kind]).toBe(2);
    expect(applied.map((a) => [a.status, a.attempt])).toEqual([[200, 3]]);
  });

  test.each([
    ["server", "InternalServerError", 500],
    ["throttle", "ProvisionedThroughputExceededException", 400],
  ] as const)("%s faults past maxAttempts: the caller sees %s (%i)", async (kind, name, status) => {
    const { proxy, applied } = await faulty("dynamodb", kind, 1_000);
    const err = await rejection(dynamo(proxy.endpoint).send(conditionalPut(env.emu.tableName, `persist-${kind}`)));
    expect(err.name).toBe(name);
    expect(err.$metadata.httpStatusCode).toBe(status);
    expect(err.$metadata.attempts).toBe(5);
    expect(proxy.counts[kind]).toBe(5);
    expect(applied).toEqual([]);
  });
});

describe("SQS through the wire proxy", () => {
  async function queue(name: string): Promise<string> {
    const out = await sqs(env.emu.sqsEndpoint).send(new CreateQueueCommand({ QueueName: name }));
    return out.QueueUrl!;
  }

  async function drain(url: string, count: number): Promise<Message[]> {
    const direct = sqs(env.emu.sqsEndpoint);
    const got: Message[] = [];
    await waitFor(async () => {
      const out = await direct.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
      got.push(...(out.Messages ?? []));
      return got.length >= count;
    }, 10_000, `${count} messages`);
    return got;
  }

  test("SendMessage with a lost reply is resent by the SDK: the doorbell rings twice", async () => {
    const url = await queue("wire-doorbell");
    const { proxy, applied } = await faulty("sqs", "lostReply", 1);
    // fauxqs names its queues http://sqs.us-east-1.127.0.0.1:PORT/…, a host that is neither the proxy
    // nor even a valid URL (WHATWG parsing fails): the SDK routes by `endpoint`, never by the queue URL.
    expect(url).toMatch(/^http:\/\/sqs\.us-east-1\.127\.0\.0\.1:\d+\//);
    expect(url).not.toContain(new URL(proxy.endpoint).host);
    const sent = await sqs(proxy.endpoint).send(new SendMessageCommand({ QueueUrl: url, MessageBody: "ding" }));
    expect(sent.$metadata.attempts).toBe(2);
    expect(proxy.counts.lostReply).toBe(1);
    expect(applied.map((a) => [a.target, a.status, a.replyLost])).toEqual([
      ["AmazonSQS.SendMessage", 200, true],
      ["AmazonSQS.SendMessage", 200, false],
    ]);

    const messages = await drain(url, 2);
    expect(messages.map((m) => m.Body)).toEqual(["ding", "ding"]);
    expect(new Set(messages.map((m) => m.MessageId)).size).toBe(2);
    expect(messages.map((m) => m.MessageId)).toContain(sent.MessageId);
  });

  test.each([
    ["server", "InternalFailure", 500],
    ["throttle", "RequestThrottled", 400],
  ] as const)("%s faults: retried to success, and past maxAttempts the caller sees %s (%i)", async (kind, name, status) => {
    const url = await queue(`wire-${kind}`);
    const once = await faulty("sqs", kind, 1);
    const ok = await sqs(once.proxy.endpoint).send(new SendMessageCommand({ QueueUrl: url, MessageBody: "x" }));
    expect(ok.$metadata.attempts).toBe(2);

    const always = await faulty("sqs", kind, 1_000);
    const err = await rejection(sqs(always.proxy.endpoint).send(new SendMessageCommand({ QueueUrl: url, MessageBody: "y" })));
    expect(err.name).toBe(name);
    expect(err.$metadata.httpStatusCode).toBe(status);
    expect(err.$metadata.attempts).toBe(5);
    expect(always.proxy.counts[kind]).toBe(5);
    expect(await drain(url, 1)).toHaveLength(1); // only the message that got through
  });
});

describe("the proxy itself", () => {
  test("an unreachable upstream is answered 502, which the SDK retries and then reports", async () => {
    const port = await freePort();
    const proxy = await startWireProxy(`http://127.0.0.1:${port}`, { service: "dynamodb", rate: 0, seed: 1 });
    proxies.push(proxy);
    const err = await rejection(dynamo(proxy.endpoint, timeoutHandler(), 2).send(new GetItemCommand({ TableName: "t", Key: key("x") })));
    expect(err.$metadata.httpStatusCode).toBe(502);
    expect(err.$metadata.attempts).toBe(2);
  });

  // dynalite runs in this process and throws an uncaught exception on a request cut off mid-body;
  // if the proxy streamed the half request upstream, vitest would report that error and fail the run.
  test("clients that hang up mid-request or send garbage do not hurt the proxy or dynalite", async () => {
    const { proxy, applied } = await faulty("dynamodb", "lostReply", 0);
    const { port } = new URL(proxy.endpoint);
    const half = connect(Number(port), "127.0.0.1");
    half.write("POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810.PutItem\r\nContent-Length: 100\r\n\r\n{\"Tab");
    const garbage = connect(Number(port), "127.0.0.1");
    garbage.end("NOT HTTP AT ALL\r\n\r\n");
    await waitFor(() => half.writableLength === 0 && garbage.closed, 5_000, "the raw writes");
    half.destroy();
    const out = await dynamo(proxy.endpoint).send(new GetItemCommand({ TableName: env.emu.tableName, Key: key("nothing") }));
    expect(out.$metadata.httpStatusCode).toBe(200);
    expect(applied.map((a) => a.target)).toEqual(["DynamoDB_20120810.GetItem"]);
  });

  test("passNext spares the one request it matches from even a certain fault; the next is faulted again", async () => {
    const { proxy, applied } = await faulty("dynamodb", "server", 1_000);
    proxy.passNext((_t, body) => (body as { Key?: { id?: { S?: string } } }).Key?.id?.S === "spared");
    const get = (id: string) => dynamo(proxy.endpoint, timeoutHandler(), 1).send(new GetItemCommand({ TableName: env.emu.tableName, Key: key(id) }));
    const out = await get("spared");
    expect(out.$metadata.httpStatusCode).toBe(200);
    const again = await rejection(get("spared"));
    expect(again.$metadata.httpStatusCode).toBe(500);
    expect(proxy.counts.server).toBe(1);
    expect(applied.map((a) => a.target)).toEqual(["DynamoDB_20120810.GetItem"]);
  });

  test("close() drops hung requests and resolves", async () => {
    const { proxy } = await faulty("dynamodb", "hang", 1_000);
    const pending = rejection(dynamo(proxy.endpoint, new NodeHttpHandler(), 1).send(new GetItemCommand({ TableName: "t", Key: key("x") })));
    await waitFor(() => proxy.counts.hang === 1, 5_000, "the request to hang");
    await proxy.close();
    const err = await pending;
    // The handler reports a dropped connection as TimeoutError "socket hang up" with code ECONNRESET.
    expect(err).toMatchObject({ name: "TimeoutError", code: "ECONNRESET", message: "socket hang up" });
  });
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
