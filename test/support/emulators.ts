/**
 * Starts the embedded emulators for one test file and hands out clients and stores against them.
 * No mocked AWS clients: every call goes over HTTP to dynalite or fauxqs.
 */
import { afterAll, beforeAll } from "vitest";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { countCalls, dynamoClient, sqsClient } from "../../core/aws.js";
import { JobStore, type StoreOptions } from "../../core/store.js";
import { startEmulators, type Emulators } from "../../local/emulators.js";

export interface TestEnv {
  emu: Emulators;
  doc: DynamoDBDocumentClient;
  sqs: SQSClient;
  /** Commands sent through `doc`, by name. */
  calls: Map<string, number>;
  store(opts?: Partial<StoreOptions>): JobStore;
}

/** Registers beforeAll/afterAll hooks; the returned object is filled in before the first test. */
export function useEmulators(stage = "test"): TestEnv {
  const env = {} as TestEnv;
  beforeAll(async () => {
    env.emu = await startEmulators({ stage });
    env.doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    env.sqs = sqsClient({ sqs: env.emu.sqsEndpoint });
    env.calls = countCalls(env.doc);
    env.store = (opts = {}) => new JobStore(env.doc, { tableName: env.emu.tableName, ...opts });
  });
  afterAll(async () => {
    env.doc?.destroy();
    env.sqs?.destroy();
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
