/**
 * Starts the embedded emulators for one test file and hands out clients and stores against them.
 * No mocked AWS clients: every call goes over HTTP to dynalite (or DynamoDB Local) and fauxqs.
 *
 * External endpoints: WARDEN_DYNAMODB_ENDPOINT and WARDEN_SQS_ENDPOINT are ignored here unless
 * WARDEN_TEST_EXTERNAL=1 is set too, so a shell that has them set for `npm start` runs the tests
 * as CI does. With the opt-in, each `useEmulators` creates its table and queues on those
 * endpoints under a stage of its own (`<stage>-<run id>`: runs and files do not see each
 * other's jobs) and deletes them afterwards. A suite that names its `dynamodb` engine gets that
 * engine whatever the environment says.
 */
import { afterAll, beforeAll } from "vitest";
import { DeleteTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { DeleteQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { countCalls, dynamoClient, sqsClient } from "../../core/aws.js";
import { JobStore, type StoreOptions } from "../../core/store.js";
import { clientConfig, externalEndpoints, startEmulators, type EmulatorOptions, type Emulators } from "../../local/emulators.js";

/** The DynamoDB engines a contract suite can run against: `describe.each(BACKENDS)`. */
export const BACKENDS = ["dynalite", "dynamodb-local"] as const;
export type Backend = (typeof BACKENDS)[number];

export interface UseEmulatorsOptions {
  /** The DynamoDB engine to start: dynalite (the default) or Amazon's DynamoDB Local. SQS is always fauxqs. */
  dynamodb?: Backend;
}

type Env = Record<string, string | undefined>;

/**
 * What `useEmulators(stage, opts)` starts, given the environment: the embedded emulators unless
 * WARDEN_TEST_EXTERNAL=1 opts in to WARDEN_DYNAMODB_ENDPOINT / WARDEN_SQS_ENDPOINT.
 */
export function testEmulatorOptions(stage: string, opts: UseEmulatorsOptions = {}, env: Env = process.env): EmulatorOptions {
  const external = env.WARDEN_TEST_EXTERNAL === "1" ? externalEndpoints(env) : {};
  if (opts.dynamodb) delete external.dynamodbEndpoint;
  const runStage = external.dynamodbEndpoint || external.sqsEndpoint ? `${stage}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}` : stage;
  return { stage: runStage, ...(opts.dynamodb ? { dynamodb: opts.dynamodb } : {}), ...external };
}

/** Deletes what `useEmulators` created on external endpoints (its stage is its own). */
async function deleteExternal(emu: Emulators): Promise<void> {
  if (emu.dynamodb === "external") {
    const db = new DynamoDBClient(clientConfig(emu.dynamoEndpoint));
    for (const TableName of [emu.tableName, emu.effectsTableName]) await db.send(new DeleteTableCommand({ TableName })).catch(() => undefined);
    db.destroy();
  }
  if (emu.sqs === "external") {
    const sqs = new SQSClient(clientConfig(emu.sqsEndpoint));
    for (const q of Object.values(emu.queues)) for (const url of [q.queue, q.dlq]) await sqs.send(new DeleteQueueCommand({ QueueUrl: url })).catch(() => undefined);
    sqs.destroy();
  }
}

export interface TestEnv {
  emu: Emulators;
  doc: DynamoDBDocumentClient;
  sqs: SQSClient;
  /** Commands sent through `doc`, by name. */
  calls: Map<string, number>;
  store(opts?: Partial<StoreOptions>): JobStore;
}

/**
 * Registers beforeAll/afterAll hooks; the returned object is filled in before the first test.
 * `opts.dynamodb` picks the DynamoDB engine (dynalite by default); see the file's comment for
 * external endpoints.
 */
export function useEmulators(stage = "test", opts: UseEmulatorsOptions = {}): TestEnv {
  const env = {} as TestEnv;
  // A JVM's cold start on a busy 2-core machine, or a table becoming ACTIVE on an external
  // DynamoDB, can outlast the default hook timeout.
  const startTimeout = opts.dynamodb === "dynamodb-local" ? 120_000 : process.env.WARDEN_TEST_EXTERNAL === "1" ? 300_000 : undefined;
  beforeAll(async () => {
    // Read when the hook runs, not when the file is collected.
    env.emu = await startEmulators(testEmulatorOptions(stage, opts));
    env.doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    env.sqs = sqsClient({ sqs: env.emu.sqsEndpoint });
    env.calls = countCalls(env.doc);
    env.store = (opts = {}) => new JobStore(env.doc, { tableName: env.emu.tableName, ...opts });
  }, startTimeout);
  afterAll(async () => {
    env.doc?.destroy();
    env.sqs?.destroy();
    if (env.emu) await deleteExternal(env.emu);
    await env.emu?.stop();
  });
  return env;
}

/** Polls `check` until it returns a truthy value or the time runs out: waiting for a condition, never sleeping blind. */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 15_000, what = "condition"): Promise<NonNullable<T>> {
  const start = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A clock tests can move by hand, so lease expiry needs no waiting. */
export function manualClock(start = Date.now()): { now: () => number; advance(ms: number): void; set(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms), set: (ms) => void (t = ms) };
}
