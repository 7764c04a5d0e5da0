/**
 * The two DynamoDB engines, and external endpoints.
 *
 * 1. dynalite and Amazon's DynamoDB Local side by side (`describe.each(BACKENDS)`): the same table
 *    from tableDefinition and the same conditional writes on both, and what only DynamoDB Local
 *    has (transactions, TTL, ReturnValuesOnConditionCheckFailure), so the README's list of
 *    differences is checked here. Then DynamoDB Local's own lifecycle: a stop that ends the JVM,
 *    a JVM that does not outlive a SIGKILLed parent, a clear error without java.
 * 2. External endpoints: a dynalite and a fauxqs started here stand for "already running";
 *    startEmulators, useEmulators (only with WARDEN_TEST_EXTERNAL=1) and `npm start`
 *    (WARDEN_DYNAMODB_ENDPOINT, WARDEN_SQS_ENDPOINT) create the table and queues on them when
 *    missing, reuse them when present, and start no emulator of their own for that side.
 */
import { spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import type { Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  GetItemCommand,
  ListTablesCommand,
  PutItemCommand,
  TransactWriteItemsCommand,
  UpdateTimeToLiveCommand,
  type GlobalSecondaryIndexDescription,
} from "@aws-sdk/client-dynamodb";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { GetQueueAttributesCommand, ListQueuesCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import dynalite from "dynalite";
import { EFFECTS_TABLE, PRIORITIES, QUEUES, QUEUE_NAMES, TABLE, dlqName, laneName, physicalName } from "../core/config.js";
import { tableDefinition } from "../core/schema.js";
import { startDynamoDBLocal } from "../local/dynamodb-local.js";
import { externalEndpoints, startEmulators, startSqsEmulator, type Emulators } from "../local/emulators.js";
import { client as apiClient, launchLocal, type Launched } from "../local/launch.js";
import { BACKENDS, testEmulatorOptions, useEmulators, waitFor, type Backend } from "./support/emulators.js";

const creds = { accessKeyId: "local", secretAccessKey: "local" };
const rawClient = (endpoint: string) => new DynamoDBClient({ endpoint, region: "us-east-1", credentials: creds, maxAttempts: 1 });
const sqsAt = (endpoint: string) => new SQSClient({ endpoint, region: "us-east-1", credentials: creds, maxAttempts: 1 });

/** What each engine does with the calls dynalite lacks; the README's "Two DynamoDB engines" says the same. */
const HAS: Record<Backend, { transactions: boolean; ttl: boolean; itemOnConditionFailure: boolean }> = {
  dynalite: { transactions: false, ttl: false, itemOnConditionFailure: false },
  "dynamodb-local": { transactions: true, ttl: true, itemOnConditionFailure: true },
};

const indexShape = (gsis: readonly GlobalSecondaryIndexDescription[] | undefined) =>
  (gsis ?? [])
    .map((g) => ({
      name: g.IndexName,
      keys: g.KeySchema?.map((k) => `${k.AttributeName}:${k.KeyType}`),
      projection: g.Projection?.ProjectionType,
      include: [...(g.Projection?.NonKeyAttributes ?? [])].sort(),
    }))
    .sort((a, b) => String(a.name).localeCompare(String(b.name)));

/** Listening TCP servers of this process: how a test sees that no emulator was started in it. */
const listening = () => process.getActiveResourcesInfo().filter((r) => r === "TCPServerWrap").length;

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.each(BACKENDS)("DynamoDB engine %s", (backend) => {
  const env = useEmulators(`engine-${backend}`, { dynamodb: backend });
  let db: DynamoDBClient;
  beforeAll(() => {
    db = rawClient(env.emu.dynamoEndpoint);
  });
  afterAll(() => db?.destroy());

  it("is the engine asked for, on loopback", () => {
    expect(env.emu.dynamodb).toBe(backend);
    expect(env.emu.sqs).toBe("fauxqs");
    expect(env.emu.dynamoEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it("has the table with every index of tableDefinition", async () => {
    const want = tableDefinition(env.emu.tableName);
    const t = (await db.send(new DescribeTableCommand({ TableName: env.emu.tableName }))).Table!;
    expect(t.TableStatus).toBe("ACTIVE");
    expect(t.KeySchema).toEqual(want.KeySchema);
    expect(t.BillingModeSummary?.BillingMode ?? "PAY_PER_REQUEST").toBe("PAY_PER_REQUEST");
    expect(indexShape(t.GlobalSecondaryIndexes)).toEqual(indexShape(want.GlobalSecondaryIndexes as GlobalSecondaryIndexDescription[]));
    expect(indexShape(t.GlobalSecondaryIndexes).map((i) => i.name)).toEqual([TABLE.ownerIndex.name, TABLE.statusIndex.name, TABLE.dueIndex.name, TABLE.workerIndex.name, TABLE.waitIndex.name, TABLE.holdIndex.name].sort());
  });

  it("applies a conditional put once, and refuses it the second time", async () => {
    const put = () =>
      db.send(new PutItemCommand({ TableName: env.emu.tableName, Item: { id: { S: "cond-1" }, v: { N: "1" } }, ConditionExpression: "attribute_not_exists(id)" }));
    await put();
    await expect(put()).rejects.toMatchObject({ name: "ConditionalCheckFailedException" });
    const got = await db.send(new GetItemCommand({ TableName: env.emu.tableName, Key: { id: { S: "cond-1" } }, ConsistentRead: true }));
    expect(got.Item?.v).toEqual({ N: "1" });
  });

  it(`${HAS[backend].itemOnConditionFailure ? "returns" : "does not return"} the item on a failed condition (ReturnValuesOnConditionCheckFailure)`, async () => {
    await db.send(new PutItemCommand({ TableName: env.emu.tableName, Item: { id: { S: "cond-2" }, v: { N: "7" } } }));
    const e = await db
      .send(
        new PutItemCommand({
          TableName: env.emu.tableName,
          Item: { id: { S: "cond-2" }, v: { N: "8" } },
          ConditionExpression: "attribute_not_exists(id)",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      )
      .then(
        () => undefined,
        (err: unknown) => err as { name: string; Item?: unknown },
      );
    expect(e?.name).toBe("ConditionalCheckFailedException");
    if (HAS[backend].itemOnConditionFailure) expect(e?.Item).toEqual({ id: { S: "cond-2" }, v: { N: "7" } });
    else expect(e?.Item).toBeUndefined();
  });

  it(`${HAS[backend].transactions ? "runs" : "has no"} TransactWriteItems`, async () => {
    const table = env.emu.tableName;
    const tx = (cond: string) =>
      db.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Put: { TableName: table, Item: { id: { S: `tx-${cond}` } } } },
            { ConditionCheck: { TableName: table, Key: { id: { S: "cond-1" } }, ConditionExpression: "v = :v", ExpressionAttributeValues: { ":v": { N: cond } } } },
          ],
        }),
      );
    const get = async (id: string) => (await db.send(new GetItemCommand({ TableName: table, Key: { id: { S: id } }, ConsistentRead: true }))).Item;
    if (!HAS[backend].transactions) {
      await expect(tx("1")).rejects.toMatchObject({ name: "UnknownOperationException" });
      expect(await get("tx-1")).toBeUndefined();
      return;
    }
    await tx("1"); // cond-1 has v = 1: both parts apply
    expect(await get("tx-1")).toEqual({ id: { S: "tx-1" } });
    const failed = await tx("2").then(
      () => undefined,
      (err: unknown) => err as { name: string; CancellationReasons?: { Code?: string }[] },
    );
    expect(failed?.name).toBe("TransactionCanceledException");
    expect(failed?.CancellationReasons?.map((r) => r.Code)).toEqual(["None", "ConditionalCheckFailed"]);
    expect(await get("tx-2")).toBeUndefined(); // all or nothing
  });

  it(`${HAS[backend].ttl ? "deletes" : "never deletes"} expired items by TTL`, async () => {
    const table = env.emu.tableName;
    const enable = () => db.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { AttributeName: TABLE.ttlAttribute, Enabled: true } }));
    const expired = { [TABLE.ttlAttribute]: { N: String(Math.floor(Date.now() / 1000) - 3600) } };
    if (!HAS[backend].ttl) {
      await expect(enable()).rejects.toMatchObject({ name: "UnknownOperationException" });
      const d = await db.send(new DescribeTimeToLiveCommand({ TableName: table }));
      expect(d.TimeToLiveDescription?.TimeToLiveStatus).toBe("DISABLED");
      return; // local/ttl.ts deletes them instead
    }
    await enable();
    const d = await db.send(new DescribeTimeToLiveCommand({ TableName: table }));
    expect(d.TimeToLiveDescription).toMatchObject({ TimeToLiveStatus: "ENABLED", AttributeName: TABLE.ttlAttribute });
    const get = async (id: string) => (await db.send(new GetItemCommand({ TableName: table, Key: { id: { S: id } }, ConsistentRead: true }))).Item;
    // In every index (it has each index's keys): deleted.
    const inEveryIndex = {
      [TABLE.dueIndex.partitionKey]: { S: "large#running#0" },
      [TABLE.dueIndex.sortKey]: { N: "1" },
      [TABLE.ownerIndex.partitionKey]: { S: "alice" },
      [TABLE.ownerIndex.sortKey]: { S: "2026-01-01T00:00:00.000Z#a" },
      [TABLE.statusIndex.partitionKey]: { S: "running" },
      [TABLE.workerIndex.partitionKey]: { S: "ecs:a" },
      [TABLE.waitIndex.partitionKey]: { S: "large#0" },
      [TABLE.waitIndex.sortKey]: { N: "1" },
      [TABLE.holdIndex.partitionKey]: { S: "pause#queue:large" },
      [TABLE.holdIndex.sortKey]: { N: "1" },
    };
    await db.send(new PutItemCommand({ TableName: table, Item: { id: { S: "expired-indexed" }, ...inEveryIndex, ...expired } }));
    // Shaped like a finished job: out of the sparse `due` index. DynamoDB Local 3.3.0's TTL skips
    // an item missing from any index of its table, silently: it stays.
    const finished = {
      [TABLE.ownerIndex.partitionKey]: { S: "alice" },
      [TABLE.ownerIndex.sortKey]: { S: "2026-01-01T00:00:00.000Z#b" },
      [TABLE.statusIndex.partitionKey]: { S: "succeeded" },
    };
    await db.send(new PutItemCommand({ TableName: table, Item: { id: { S: "expired-finished" }, ...finished, ...expired } }));
    await db.send(new PutItemCommand({ TableName: table, Item: { id: { S: "fresh" }, ...inEveryIndex, [TABLE.ttlAttribute]: { N: String(Math.floor(Date.now() / 1000) + 3600) } } }));
    // Amazon's DynamoDB takes up to days; DynamoDB Local's sweep took 1-5 s when measured.
    await waitFor(async () => !(await get("expired-indexed")), 60_000, "DynamoDB Local to delete the expired item");
    expect(await get("fresh")).toBeDefined();
    expect(await get("expired-finished")).toBeDefined();
  }, 90_000);
});

describe("DynamoDB Local's process", () => {
  it("starts, measures its start, and is gone after stop()", async () => {
    const t0 = Date.now();
    const ddb = await startDynamoDBLocal();
    const ms = Date.now() - t0;
    console.log(`DynamoDB Local answered ${ms} ms after spawn`);
    expect(ddb.endpoint).toBe(`http://127.0.0.1:${ddb.port}`);
    expect(isAlive(ddb.pid)).toBe(true);
    const db = rawClient(ddb.endpoint);
    expect((await db.send(new ListTablesCommand({}))).TableNames).toEqual([]);
    await ddb.stop();
    expect(isAlive(ddb.pid)).toBe(false);
    await expect(db.send(new ListTablesCommand({}))).rejects.toThrow();
    db.destroy();
    await ddb.stop(); // twice is fine
  }, 120_000);

  it("does not outlive a parent that is SIGKILLed", async () => {
    const url = new URL("../local/dynamodb-local.ts", import.meta.url).href;
    const code = `const { startDynamoDBLocal } = await import(${JSON.stringify(url)}); const d = await startDynamoDBLocal(); console.log("pid " + d.pid); setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    parent.stdout.on("data", (c: Buffer) => (out += c.toString()));
    parent.stderr.on("data", (c: Buffer) => (out += c.toString()));
    try {
      const pid = Number((await waitFor(() => /pid (\d+)/.exec(out)?.[1], 90_000, `DynamoDB Local in the child to start: ${out}`)));
      expect(isAlive(pid)).toBe(true);
      parent.kill("SIGKILL");
      await waitFor(() => !isAlive(pid), 10_000, `DynamoDB Local (pid ${pid}) to die with its parent`);
    } finally {
      parent.kill("SIGKILL");
    }
  }, 120_000);

  it("refuses a port something else listens on (it would answer in its place)", async () => {
    const other = createServer();
    await new Promise<void>((resolve) => other.listen(0, () => resolve()));
    try {
      await expect(startDynamoDBLocal({ port: (other.address() as AddressInfo).port })).rejects.toThrow(/already in use/);
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  it("says so when java is missing", async () => {
    await expect(startDynamoDBLocal({ java: "/nonexistent/bin/java" })).rejects.toThrow(/needs Java 17 or newer.*not found/);
  });
});

describe("external endpoints", () => {
  let dyn: Server;
  let fq: Awaited<ReturnType<typeof startSqsEmulator>>;
  let dynamoEndpoint: string;
  let sqsEndpoint: string;
  let db: DynamoDBClient;
  let sqs: SQSClient;
  const tables = async () => (await db.send(new ListTablesCommand({}))).TableNames ?? [];
  const queueUrls = async () => ((await sqs.send(new ListQueuesCommand({}))).QueueUrls ?? []).sort();

  beforeAll(async () => {
    // "Already running": started here, as a developer would have started them elsewhere.
    dyn = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
    await new Promise<void>((resolve) => dyn.listen(0, "127.0.0.1", () => resolve()));
    dynamoEndpoint = `http://127.0.0.1:${(dyn.address() as AddressInfo).port}`;
    fq = await startSqsEmulator(); // loopback only: fauxqs's own listen ignores its host
    sqsEndpoint = fq.endpoint;
    db = rawClient(dynamoEndpoint);
    sqs = sqsAt(sqsEndpoint);
  });
  afterAll(async () => {
    db?.destroy();
    sqs?.destroy();
    await fq?.stop();
    await new Promise<void>((resolve) => (dyn ? dyn.close(() => resolve()) : resolve()));
  });

  it("startEmulators creates the tables and queues when missing, reuses them when present, and starts neither emulator", async () => {
    expect(await tables()).toEqual([]);
    expect(await queueUrls()).toEqual([]);
    const stage = "ext";
    const tableName = physicalName(stage, TABLE.name);
    // The jobs table and the demo effects table beside it.
    const effectsTableName = physicalName(stage, EFFECTS_TABLE.name);
    const both = [effectsTableName, tableName].sort();
    const names = QUEUE_NAMES.flatMap((q) => [...PRIORITIES.map((p) => physicalName(stage, laneName(q, p))), physicalName(stage, dlqName(q))]).sort();

    const servers = listening();
    const first = await startEmulators({ stage, dynamodbEndpoint: dynamoEndpoint, sqsEndpoint });
    expect(listening()).toBe(servers); // nothing new listens in this process
    expect(first).toMatchObject({ dynamodb: "external", sqs: "external", dynamoEndpoint, sqsEndpoint, tableName, effectsTableName });
    expect(first.env).toMatchObject({ WARDEN_DYNAMODB_ENDPOINT: dynamoEndpoint, WARDEN_SQS_ENDPOINT: sqsEndpoint, WARDEN_TABLE: tableName, [EFFECTS_TABLE.env]: effectsTableName });

    // Created: the jobs table with every index, the effects table with its key, each queue with its DLQ and redrive policy.
    expect((await tables()).sort()).toEqual(both);
    const effects = (await db.send(new DescribeTableCommand({ TableName: effectsTableName }))).Table!;
    expect(effects.KeySchema).toEqual([{ AttributeName: EFFECTS_TABLE.partitionKey, KeyType: "HASH" }]);
    const t = (await db.send(new DescribeTableCommand({ TableName: tableName }))).Table!;
    expect(indexShape(t.GlobalSecondaryIndexes)).toEqual(indexShape(tableDefinition(tableName).GlobalSecondaryIndexes as GlobalSecondaryIndexDescription[]));
    expect((await queueUrls()).map((u) => u.split("/").pop()).sort()).toEqual(names);
    for (const q of QUEUE_NAMES) {
      const def = QUEUES[q];
      const urls = first.queues[q];
      expect(urls.queue.split("/").pop()).toBe(physicalName(stage, q));
      expect(urls.dlq.split("/").pop()).toBe(physicalName(stage, dlqName(q)));
      const dlq = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: urls.dlq, AttributeNames: ["All"] }))).Attributes!;
      expect(dlq.MessageRetentionPeriod).toBe(String(def.dlqRetentionSeconds));
      // Every lane redrives to the queue's one DLQ.
      for (const url of [urls.high, urls.queue, urls.low]) {
        const lane = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["All"] }))).Attributes!;
        expect(lane.VisibilityTimeout).toBe(String(def.visibilityTimeoutSeconds));
        expect(lane.MessageRetentionPeriod).toBe(String(def.retentionSeconds));
        expect(JSON.parse(lane.RedrivePolicy!)).toEqual({ deadLetterTargetArn: dlq.QueueArn, maxReceiveCount: def.maxReceiveCount });
      }
    }

    // Something to find again: an item and a message.
    await db.send(new PutItemCommand({ TableName: tableName, Item: { id: { S: "kept" } } }));
    await sqs.send(new SendMessageCommand({ QueueUrl: first.queues.default.queue, MessageBody: "kept" }));
    await first.stop();
    expect((await tables()).sort()).toEqual(both); // stop() leaves the external ones running, and their contents

    const second = await startEmulators({ stage, dynamodbEndpoint: dynamoEndpoint, sqsEndpoint });
    expect(listening()).toBe(servers);
    expect(second.queues).toEqual(first.queues);
    expect((await tables()).sort()).toEqual(both);
    expect((await queueUrls()).length).toBe(names.length);
    expect((await db.send(new GetItemCommand({ TableName: tableName, Key: { id: { S: "kept" } } }))).Item).toBeDefined();
    const depth = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: second.queues.default.queue, AttributeNames: ["ApproximateNumberOfMessages"] }))).Attributes;
    expect(depth?.ApproximateNumberOfMessages).toBe("1");
    await second.stop();
  });

  it("starts the embedded emulator for the side that has no endpoint", async () => {
    const servers = listening();
    const dynOnly = await startEmulators({ stage: "ext-dyn", dynamodbEndpoint: dynamoEndpoint });
    const sqsOnly = await startEmulators({ stage: "ext-sqs", sqsEndpoint });
    try {
      expect(listening()).toBe(servers + 2); // one fauxqs, one dynalite
      expect(dynOnly).toMatchObject({ dynamodb: "external", sqs: "fauxqs", dynamoEndpoint });
      expect(dynOnly.sqsEndpoint).not.toBe(sqsEndpoint);
      expect(sqsOnly).toMatchObject({ dynamodb: "dynalite", sqs: "external", sqsEndpoint });
      expect(sqsOnly.dynamoEndpoint).not.toBe(dynamoEndpoint);
      expect(await tables()).toContain(dynOnly.tableName);
      expect(await tables()).not.toContain(sqsOnly.tableName);
    } finally {
      await dynOnly.stop();
      await sqsOnly.stop();
    }
    await waitFor(() => listening() === servers, 5_000, "the embedded emulators to stop listening");
  });

  it("reads WARDEN_DYNAMODB_ENDPOINT and WARDEN_SQS_ENDPOINT, and refuses a malformed one", () => {
    expect(externalEndpoints({})).toEqual({});
    expect(externalEndpoints({ WARDEN_DYNAMODB_ENDPOINT: "http://127.0.0.1:8000/", WARDEN_SQS_ENDPOINT: "" })).toEqual({ dynamodbEndpoint: "http://127.0.0.1:8000" });
    expect(() => externalEndpoints({ WARDEN_SQS_ENDPOINT: "localhost:9324" })).toThrow(/WARDEN_SQS_ENDPOINT must be an http/);
  });

  it("useEmulators ignores the variables without WARDEN_TEST_EXTERNAL=1, and an engine a suite names wins", () => {
    const vars = { WARDEN_DYNAMODB_ENDPOINT: "http://127.0.0.1:1", WARDEN_SQS_ENDPOINT: "http://127.0.0.1:2" };
    expect(testEmulatorOptions("s", {}, vars)).toEqual({ stage: "s" });
    expect(testEmulatorOptions("s", { dynamodb: "dynamodb-local" }, vars)).toEqual({ stage: "s", dynamodb: "dynamodb-local" });
    const opted = testEmulatorOptions("s", {}, { ...vars, WARDEN_TEST_EXTERNAL: "1" });
    expect(opted).toMatchObject({ dynamodbEndpoint: "http://127.0.0.1:1", sqsEndpoint: "http://127.0.0.1:2" });
    expect(opted.stage).toMatch(/^s-[0-9a-z]+$/); // a stage of its own
    const named = testEmulatorOptions("s", { dynamodb: "dynalite" }, { ...vars, WARDEN_TEST_EXTERNAL: "1" });
    expect(named).toMatchObject({ dynamodb: "dynalite", sqsEndpoint: "http://127.0.0.1:2" });
    expect(named.dynamodbEndpoint).toBeUndefined();
  });

  describe("a shell with the variables set, without the opt-in", () => {
    const saved = { ...process.env };
    beforeAll(() => {
      process.env.WARDEN_DYNAMODB_ENDPOINT = dynamoEndpoint;
      process.env.WARDEN_SQS_ENDPOINT = sqsEndpoint;
      delete process.env.WARDEN_TEST_EXTERNAL;
    });
    const env = useEmulators("ext-ignored");
    afterAll(() => restoreEnv(saved));

    it("gets the embedded emulators, as CI does", async () => {
      expect(env.emu).toMatchObject({ dynamodb: "dynalite", sqs: "fauxqs" });
      expect(env.emu.dynamoEndpoint).not.toBe(dynamoEndpoint);
      expect(await tables()).not.toContain(env.emu.tableName);
    });
  });

  let optedIn: Emulators | undefined;
  describe("with WARDEN_TEST_EXTERNAL=1", () => {
    const saved = { ...process.env };
    beforeAll(() => {
      process.env.WARDEN_DYNAMODB_ENDPOINT = dynamoEndpoint;
      process.env.WARDEN_SQS_ENDPOINT = sqsEndpoint;
      process.env.WARDEN_TEST_EXTERNAL = "1";
    });
    const env = useEmulators("ext-optin");
    afterAll(() => restoreEnv(saved));

    it("useEmulators uses the endpoints, under a stage of its own", async () => {
      optedIn = env.emu;
      expect(env.emu).toMatchObject({ dynamodb: "external", sqs: "external", dynamoEndpoint, sqsEndpoint });
      expect(env.emu.stage).toMatch(/^ext-optin-[0-9a-z]+$/);
      expect(await tables()).toContain(env.emu.tableName);
      // The clients it hands out talk to them.
      await env.doc.send(new PutCommand({ TableName: env.emu.tableName, Item: { id: "x" } }));
      expect((await db.send(new GetItemCommand({ TableName: env.emu.tableName, Key: { id: { S: "x" } } }))).Item).toBeDefined();
      expect(await queueUrls()).toContain(env.emu.queues.default.queue);
    });
  });

  it("and deletes what it created there afterwards", async () => {
    expect(optedIn).toBeDefined();
    expect(await tables()).not.toContain(optedIn!.tableName);
    const urls = await queueUrls();
    for (const q of Object.values(optedIn!.queues)) {
      expect(urls).not.toContain(q.queue);
      expect(urls).not.toContain(q.dlq);
    }
  });

  describe("npm start with WARDEN_DYNAMODB_ENDPOINT and WARDEN_SQS_ENDPOINT", () => {
    let sys: Launched | undefined;
    afterAll(async () => {
      if (sys) expect(await sys.stop()).toBe(0);
    });

    it("prints them, creates the table and queues there, and its workers run a job through them", async () => {
      const tableName = physicalName("local", TABLE.name);
      expect(await tables()).not.toContain(tableName);
      sys = await launchLocal({
        args: ["--memory", "--workers", "1"],
        env: { WARDEN_DYNAMODB_ENDPOINT: dynamoEndpoint, WARDEN_SQS_ENDPOINT: sqsEndpoint },
        readyTimeoutMs: 90_000,
      });
      const out = sys.output.join("\n");
      expect(out).toContain(`warden: dynamodb   ${dynamoEndpoint} (WARDEN_DYNAMODB_ENDPOINT: already running), table ${tableName}`);
      expect(out).toContain(`warden: sqs        ${sqsEndpoint} (WARDEN_SQS_ENDPOINT: already running)`);
      expect(await tables()).toContain(tableName);
      const names = (await queueUrls()).map((u) => u.split("/").pop());
      for (const q of QUEUE_NAMES) expect(names).toEqual(expect.arrayContaining([physicalName("local", q), physicalName("local", dlqName(q))]));

      // A job on the large queue runs in a worker process, which reached both through emu.env.
      const call = apiClient(sys.url, sys.callerToken);
      const r = await call<{ job: { id: string } }>("POST", "/jobs", { type: "demo.sleep", queue: "large", input: { items: 2, msPerItem: 20 } });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      const job = await waitFor(
        async () => {
          const g = await call<{ job: { status: string; history: { worker?: string }[] } }>("GET", `/jobs/${r.body.job.id}`);
          return g.body.job.status === "succeeded" ? g.body.job : undefined;
        },
        60_000,
        "the job to succeed",
      );
      expect(job.history.at(-1)?.worker).toMatch(/^fargate-/);
      const item = await db.send(new GetItemCommand({ TableName: tableName, Key: { id: { S: r.body.job.id } }, ConsistentRead: true }));
      expect(item.Item?.status).toEqual({ S: "succeeded" });
    }, 150_000);
  });
});

function restoreEnv(saved: Record<string, string | undefined>): void {
  for (const k of ["WARDEN_DYNAMODB_ENDPOINT", "WARDEN_SQS_ENDPOINT", "WARDEN_TEST_EXTERNAL"]) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
}
