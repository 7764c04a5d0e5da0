/**
 * The embedded stand-ins for DynamoDB (dynalite) and SQS (fauxqs), started in-process on loopback
 * ports, with the table and queues created from core's definitions: the same ones the stacks use.
 */
import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient, ResourceInUseException } from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import { startFauxqs } from "fauxqs";
import { QUEUES, QUEUE_NAMES, dlqName, physicalName, TABLE, type QueueName } from "../core/config.js";
import { tableDefinition } from "../core/schema.js";

export interface QueueUrls {
  queue: string;
  dlq: string;
}

export interface Emulators {
  stage: string;
  dynamoEndpoint: string;
  sqsEndpoint: string;
  tableName: string;
  queues: Record<QueueName, QueueUrls>;
  /** The environment a worker process needs to reach these emulators. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export interface EmulatorOptions {
  /** Persist DynamoDB here; in memory when absent. */
  dataDir?: string;
  stage?: string;
  dynamoPort?: number;
  sqsPort?: number;
}

export async function startEmulators(opts: EmulatorOptions = {}): Promise<Emulators> {
  const stage = opts.stage ?? "local";
  if (opts.dataDir) mkdirSync(opts.dataDir, { recursive: true });
  const dyn = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, ...(opts.dataDir ? { path: opts.dataDir } : {}) });
  await new Promise<void>((resolve, reject) => {
    dyn.once("error", reject);
    dyn.listen(opts.dynamoPort ?? 0, "127.0.0.1", () => resolve());
  });
  const dynamoEndpoint = `http://127.0.0.1:${(dyn.address() as AddressInfo).port}`;
  const sqs = await startFauxqs({ port: opts.sqsPort ?? 0, host: "127.0.0.1", logger: false });
  const sqsEndpoint = `http://127.0.0.1:${sqs.port}`;

  const tableName = physicalName(stage, TABLE.name);
  await ensureTable(dynamoEndpoint, tableName);
  const queues = {} as Record<QueueName, QueueUrls>;
  for (const name of QUEUE_NAMES) {
    const def = QUEUES[name];
    const dlq = sqs.createQueue(physicalName(stage, dlqName(name)), {
      attributes: { MessageRetentionPeriod: String(def.dlqRetentionSeconds) },
    });
    const q = sqs.createQueue(physicalName(stage, name), {
      attributes: {
        VisibilityTimeout: String(def.visibilityTimeoutSeconds),
        MessageRetentionPeriod: String(def.retentionSeconds),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.queueArn, maxReceiveCount: def.maxReceiveCount }),
      },
    });
    queues[name] = { queue: q.queueUrl, dlq: dlq.queueUrl };
  }
  const env: Record<string, string> = {
    WARDEN_STAGE: stage,
    WARDEN_TABLE: tableName,
    WARDEN_DYNAMODB_ENDPOINT: dynamoEndpoint,
    WARDEN_SQS_ENDPOINT: sqsEndpoint,
    WARDEN_QUEUES: JSON.stringify(queues),
  };
  return {
    stage,
    dynamoEndpoint,
    sqsEndpoint,
    tableName,
    queues,
    env,
    async stop() {
      await sqs.stop();
      await new Promise<void>((resolve) => dyn.close(() => resolve()));
    },
  };
}

async function ensureTable(endpoint: string, tableName: string): Promise<void> {
  const client = new DynamoDBClient({ endpoint, region: "us-east-1", credentials: { accessKeyId: "local", secretAccessKey: "local" } });
  try {
    await client.send(new CreateTableCommand(tableDefinition(tableName)));
  } catch (e) {
    if (!(e instanceof ResourceInUseException)) throw e; // persisted from an earlier run
  }
  for (let i = 0; i < 100; i++) {
    const t = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (t.Table?.TableStatus === "ACTIVE") break;
    await new Promise((r) => setTimeout(r, 20));
  }
  client.destroy();
}
