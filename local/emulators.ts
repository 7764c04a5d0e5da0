/**
 * The stand-ins for DynamoDB and SQS, with the table and queues created from core's definitions:
 * the same ones the stacks use. By default both are embedded, in-process, listening on 127.0.0.1
 * only (they accept any credentials): dynalite for DynamoDB, fauxqs for SQS. The ports are free
 * ones unless `dynamoPort` / `sqsPort` name them (`npm start` does: 8000 and 9324 by default); a
 * port that is taken is a `PortInUseError`. Either side can instead be
 *
 * - Amazon's DynamoDB Local (`dynamodb: "dynamodb-local"`, a Java child process: ./dynamodb-local.ts), or
 * - an endpoint that is already running (`dynamodbEndpoint`, `sqsEndpoint`: DynamoDB Local or an
 *   emulator you started, or AWS): nothing is started for that side; the table, and the queues
 *   with their DLQs and redrive policy, are created there through the SDK when missing and used
 *   as they are when present. `npm start` takes these from WARDEN_DYNAMODB_ENDPOINT and
 *   WARDEN_SQS_ENDPOINT (see `externalEndpoints`); nothing else here reads the environment.
 */
import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient, ResourceInUseException, type CreateTableCommandInput, type TableDescription } from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, SQSClient } from "@aws-sdk/client-sqs";
import dynalite from "dynalite";
import { buildApp as buildFauxqs } from "fauxqs";
import { EFFECTS_TABLE, QUEUES, QUEUE_NAMES, dlqName, laneName, physicalName, TABLE, type Priority, type QueueName } from "../core/config.js";
import type { QueueUrls } from "../core/runtime.js";
import { tableDefinition } from "../core/schema.js";
import { startDynamoDBLocal } from "./dynamodb-local.js";


/** The engines that can be started for DynamoDB. */
export type DynamoEngine = "dynalite" | "dynamodb-local";

export interface Emulators {
  stage: string;
  dynamoEndpoint: string;
  sqsEndpoint: string;
  tableName: string;
  /** The demo effects table (demo.effects), made beside the jobs table. */
  effectsTableName: string;
  queues: Record<QueueName, QueueUrls>;
  /** What answers DynamoDB: an engine started here, or an endpoint that was already running. */
  dynamodb: DynamoEngine | "external";
  /** What answers SQS: fauxqs started here, or an endpoint that was already running. */
  sqs: "fauxqs" | "external";
  /** The environment a worker process needs to reach these emulators. */
  env: Record<string, string>;
  /** Stops what was started here; an external endpoint, and what was created on it, are left as they are. */
  stop(): Promise<void>;
}

export interface EmulatorOptions {
  /** Persist DynamoDB here; in memory when absent. Not used for an external DynamoDB. */
  dataDir?: string;
  stage?: string;
  dynamoPort?: number;
  sqsPort?: number;
  /** The engine to start for DynamoDB when `dynamodbEndpoint` is not given; dynalite by default. */
  dynamodb?: DynamoEngine;
  /** A DynamoDB that is already running: start none, create the table there when missing. */
  dynamodbEndpoint?: string;
  /** An SQS that is already running: start no fauxqs, create the queues there when missing. */
  sqsEndpoint?: string;
}

type Env = Record<string, string | undefined>;

/** An emulator's port was taken by another process: `what` names the emulator ("dynamodb", "sqs"). */
export class PortInUseError extends Error {
  readonly code = "EADDRINUSE";
  constructor(
    readonly what: "dynamodb" | "sqs",
    readonly port: number,
    cause: unknown,
  ) {
    super(`127.0.0.1:${port}, the ${what === "dynamodb" ? "DynamoDB emulator (dynalite)" : "SQS emulator (fauxqs)"}'s port, is taken by another process`, { cause });
  }
}

const inUse = (e: unknown): boolean => (e as NodeJS.ErrnoException)?.code === "EADDRINUSE";

/**
 * fauxqs on 127.0.0.1 only. Its `startFauxqs` ignores `host` and listens on 0.0.0.0 (fauxqs
 * 1.9.2, dist/app.js), so its exported `buildApp` (the same Fastify app startFauxqs listens)
 * is listened here instead, on loopback, and the queues are created through its SQS API.
 * `host: "127.0.0.1"` only shapes the queue URLs it hands out, as startFauxqs did.
 */
export async function startSqsEmulator(port = 0): Promise<{ endpoint: string; port: number; stop(): Promise<void> }> {
  const app = buildFauxqs({ logger: false, host: "127.0.0.1" });
  try {
    await app.listen({ port, host: "127.0.0.1" });
  } catch (e) {
    await app.close().catch(() => undefined);
    throw inUse(e) ? new PortInUseError("sqs", port, e) : e;
  }
  const actual = (app.server.address() as AddressInfo).port;
  return { endpoint: `http://127.0.0.1:${actual}`, port: actual, stop: async () => void (await app.close()) };
}

/**
 * The external endpoints `npm start` was given: WARDEN_DYNAMODB_ENDPOINT and WARDEN_SQS_ENDPOINT,
 * each optional. These are the same names the worker processes read (core/runtime.ts): in the
 * parent they mean "use this one instead of starting one", in a worker "this is where it is".
 */
export function externalEndpoints(env: Env = process.env): Pick<EmulatorOptions, "dynamodbEndpoint" | "sqsEndpoint"> {
  const out: Pick<EmulatorOptions, "dynamodbEndpoint" | "sqsEndpoint"> = {};
  if (env.WARDEN_DYNAMODB_ENDPOINT) out.dynamodbEndpoint = checkEndpoint("WARDEN_DYNAMODB_ENDPOINT", env.WARDEN_DYNAMODB_ENDPOINT);
  if (env.WARDEN_SQS_ENDPOINT) out.sqsEndpoint = checkEndpoint("WARDEN_SQS_ENDPOINT", env.WARDEN_SQS_ENDPOINT);
  return out;
}

/** An http(s) URL without a trailing slash, or a clear error naming where it came from. */
function checkEndpoint(what: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`${what} must be an http:// or https:// URL, not "${raw}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`${what} must be an http:// or https:// URL, not "${raw}"`);
  return raw.replace(/\/+$/, "");
}

export async function startEmulators(opts: EmulatorOptions = {}): Promise<Emulators> {
  const stage = opts.stage ?? "local";
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop();
    stops.length = 0;
  };
  try {
    // DynamoDB: an external endpoint, DynamoDB Local, or dynalite.
    let dynamoEndpoint: string;
    let dynamodb: Emulators["dynamodb"];
    if (opts.dynamodbEndpoint) {
      dynamoEndpoint = checkEndpoint("dynamodbEndpoint", opts.dynamodbEndpoint);
      dynamodb = "external";
    } else if (opts.dynamodb === "dynamodb-local") {
      const ddb = await startDynamoDBLocal({
        ...(opts.dynamoPort ? { port: opts.dynamoPort } : {}),
        // Its own file format: kept apart from dynalite's files in the same data dir.
        ...(opts.dataDir ? { dbPath: join(opts.dataDir, "dynamodb-local") } : {}),
      });
      stops.push(() => ddb.stop());
      dynamoEndpoint = ddb.endpoint;
      dynamodb = "dynamodb-local";
    } else {
      if (opts.dataDir) mkdirSync(opts.dataDir, { recursive: true });
      const dyn = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, ...(opts.dataDir ? { path: opts.dataDir } : {}) });
      await new Promise<void>((resolve, reject) => {
        dyn.once("error", (e: unknown) => reject(inUse(e) ? new PortInUseError("dynamodb", opts.dynamoPort ?? 0, e) : e));
        dyn.listen(opts.dynamoPort ?? 0, "127.0.0.1", () => resolve());
      });
      stops.push(() => new Promise<void>((resolve) => dyn.close(() => resolve())));
      dynamoEndpoint = `http://127.0.0.1:${(dyn.address() as AddressInfo).port}`;
      dynamodb = "dynalite";
    }

    const tableName = physicalName(stage, TABLE.name);
    const ensure = dynamodb === "external" ? { timeoutMs: 300_000 } : {};
    await ensureTable(dynamoEndpoint, tableDefinition(tableName), { ...ensure, checkIndexes: dynamodb === "external" });
    // The demo effects table demo.effects writes to, as stacks/Storage.ts makes it beside the jobs table.
    const effectsTable = physicalName(stage, EFFECTS_TABLE.name);
    await ensureAppTable(dynamoEndpoint, effectsTable, { ...ensure, key: EFFECTS_TABLE.partitionKey });

    // SQS: an external endpoint, or fauxqs.
    let sqsEndpoint: string;
    let sqs: Emulators["sqs"];
    let queues: Record<QueueName, QueueUrls>;
    if (opts.sqsEndpoint) {
      sqsEndpoint = checkEndpoint("sqsEndpoint", opts.sqsEndpoint);
      sqs = "external";
      queues = await ensureQueues(sqsEndpoint, stage);
    } else {
      const server = await startSqsEmulator(opts.sqsPort ?? 0);
      stops.push(() => server.stop());
      sqsEndpoint = server.endpoint;
      sqs = "fauxqs";
      queues = await ensureQueues(sqsEndpoint, stage);
    }

    const env: Record<string, string> = {
      WARDEN_STAGE: stage,
      WARDEN_TABLE: tableName,
      WARDEN_DYNAMODB_ENDPOINT: dynamoEndpoint,
      WARDEN_SQS_ENDPOINT: sqsEndpoint,
      WARDEN_QUEUES: JSON.stringify(queues),
      [EFFECTS_TABLE.env]: effectsTable,
    };
    let stopped: Promise<void> | undefined;
    return {
      stage,
      dynamoEndpoint,
      sqsEndpoint,
      tableName,
      effectsTableName: effectsTable,
      queues,
      dynamodb,
      sqs,
      env,
      stop: () => (stopped ??= stopAll()),
    };
  } catch (e) {
    await stopAll().catch(() => undefined);
    throw e;
  }
}

const dlqAttributes = (name: QueueName): Record<string, string> => ({ MessageRetentionPeriod: String(QUEUES[name].dlqRetentionSeconds) });

const queueAttributes = (name: QueueName, dlqArn: string): Record<string, string> => {
  const def = QUEUES[name];
  return {
    VisibilityTimeout: String(def.visibilityTimeoutSeconds),
    MessageRetentionPeriod: String(def.retentionSeconds),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: def.maxReceiveCount }),
  };
};

/**
 * Client settings for an endpoint: the same static dummy credentials as core/aws.ts gives every
 * emulator, except for an AWS endpoint (*.amazonaws.com), which gets the SDK's own credential
 * chain and the region in its host name.
 */
export function clientConfig(endpoint: string): { endpoint: string; region?: string; credentials?: { accessKeyId: string; secretAccessKey: string } } {
  const host = new URL(endpoint).hostname;
  if (/\.amazonaws\.com(\.cn)?$/.test(host)) {
    const region = /^[a-z0-9-]+\.([a-z]{2}(?:-[a-z]+)+-\d)\./.exec(host)?.[1] ?? process.env.AWS_REGION;
    return { endpoint, ...(region ? { region } : {}) };
  }
  return { endpoint, region: process.env.AWS_REGION ?? "us-east-1", credentials: { accessKeyId: "local", secretAccessKey: "local" } };
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A table of the application's own beside Warden's (a string key, `id` unless named, on demand), made if it
 * is not there, then waited for until ACTIVE: the demo effects table (demo.effects), the chaos
 * run's downstream table, a test's order table.
 */
export async function ensureAppTable(endpoint: string, tableName: string, o: EnsureOptions & { key?: string } = {}): Promise<void> {
  const key = o.key ?? "id";
  await ensureTable(endpoint, { TableName: tableName, KeySchema: [{ AttributeName: key, KeyType: "HASH" }], AttributeDefinitions: [{ AttributeName: key, AttributeType: "S" }], BillingMode: "PAY_PER_REQUEST" }, o);
}

interface EnsureOptions {
  timeoutMs?: number;
  checkIndexes?: boolean;
}

/**
 * CreateTable from `def`, then waits (bounded) until the table and its indexes are ACTIVE.
 * ResourceInUseException means it is already there (a persisted data dir, an external endpoint
 * used before): it is used as it is, after `checkIndexes` if asked.
 */
async function ensureTable(endpoint: string, def: CreateTableCommandInput, o: EnsureOptions = {}): Promise<void> {
  const client = new DynamoDBClient(clientConfig(endpoint));
  const tableName = def.TableName!;
  try {
    try {
      await client.send(new CreateTableCommand(def));
    } catch (e) {
      if (!(e instanceof ResourceInUseException)) throw e;
    }
    const timeoutMs = o.timeoutMs ?? 30_000;
    const start = Date.now();
    let table: TableDescription | undefined;
    for (let wait = 20; ; wait = Math.min(wait * 2, 1_000)) {
      table = (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
      const active = table?.TableStatus === "ACTIVE" && (table.GlobalSecondaryIndexes ?? []).every((i) => i.IndexStatus === undefined || i.IndexStatus === "ACTIVE");
      if (active) break;
      if (Date.now() - start > timeoutMs) throw new Error(`table ${tableName} at ${endpoint} was not ACTIVE within ${timeoutMs} ms (status ${table?.TableStatus})`);
      await delay(wait);
    }
    if (o.checkIndexes) {
      const have = new Set((table?.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName));
      const missing = (def.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName!).filter((n) => !have.has(n));
      if (missing.length) throw new Error(`table ${tableName} at ${endpoint} exists without the index(es) ${missing.join(", ")}: delete it, or use another stage`);
    }
  } finally {
    client.destroy();
  }
}

/**
 * Each queue's DLQ, then the queue with its redrive policy to it, through CreateQueue (which
 * answers the existing queue's URL when the attributes match). A queue that exists with other
 * attributes (QueueAlreadyExists) is used as it is.
 */
async function ensureQueues(endpoint: string, stage: string): Promise<Record<QueueName, QueueUrls>> {
  const client = new SQSClient(clientConfig(endpoint));
  const create = async (name: string, attributes: Record<string, string>): Promise<string> => {
    try {
      const r = await client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
      if (!r.QueueUrl) throw new Error(`CreateQueue ${name} at ${endpoint} answered no QueueUrl`);
      return r.QueueUrl;
    } catch (e) {
      const n = (e as { name?: string }).name;
      if (n !== "QueueAlreadyExists" && n !== "QueueNameExists") throw e;
      const r = await client.send(new GetQueueUrlCommand({ QueueName: name }));
      return r.QueueUrl!;
    }
  };
  try {
    const queues = {} as Record<QueueName, QueueUrls>;
    for (const name of QUEUE_NAMES) {
      const dlq = await create(physicalName(stage, dlqName(name)), dlqAttributes(name));
      const arn = (await client.send(new GetQueueAttributesCommand({ QueueUrl: dlq, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn;
      if (!arn) throw new Error(`GetQueueAttributes at ${endpoint} answered no QueueArn for ${dlq}`);
      const lane = (p: Priority) => create(physicalName(stage, laneName(name, p)), queueAttributes(name, arn));
      queues[name] = { queue: await lane("normal"), high: await lane("high"), low: await lane("low"), dlq };
    }
    return queues;
  } finally {
    client.destroy();
  }
}
