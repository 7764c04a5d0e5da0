/**
 * The emulators behind the wire-fault proxy (local/wire-faults.ts): clients that talk to dynalite
 * and fauxqs through it, with short request timeouts, so a test can lose exactly the reply it
 * means to, or hang a connection, below the SDK's retries.
 */
import { afterAll, beforeAll } from "vitest";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { dynamoClient, sqsClient } from "../../core/aws.js";
import { MemoryMetrics } from "../../core/metrics.js";
import { loadRuntime } from "../../core/runtime.js";
import { buildServices, type Services } from "../../core/services.js";
import { JobStore, type StoreOptions } from "../../core/store.js";
import { startWireProxy, type AppliedRequest, type WireProxy } from "../../local/wire-faults.js";
import { useEmulators, type TestEnv } from "./emulators.js";

export interface WireEnv {
  env: TestEnv;
  dynamo: WireProxy;
  sqs: WireProxy;
  /** Clients through the proxies. */
  doc: DynamoDBDocumentClient;
  sqsClient: SQSClient;
  /** Every request DynamoDB answered, in order. */
  applied: AppliedRequest[];
  store(opts?: Partial<StoreOptions>): JobStore;
  services(vars?: Record<string, string>, o?: { now?: () => number }): Services & { metrics: MemoryMetrics };
}

/** Lets a planned fault match on what a write sets: `sets(body, "status", "running")`. */
export function sets(body: unknown, attr: string, value?: string): boolean {
  const b = body as { UpdateExpression?: string; ExpressionAttributeNames?: Record<string, string>; ExpressionAttributeValues?: Record<string, { S?: string }> };
  const alias = Object.entries(b?.ExpressionAttributeNames ?? {}).find(([, n]) => n === attr)?.[0];
  if (!alias) return false;
  const m = new RegExp(`${alias} = (:\\w+)`).exec(b.UpdateExpression ?? "");
  if (!m) return false;
  return value === undefined || b.ExpressionAttributeValues?.[m[1]!]?.S === value;
}

export const target = (op: string) => (t: string) => t.endsWith(`.${op}`);

/** `requestTimeoutMs` bounds each try; generous enough for a 300 KB item on a loaded machine. */
export function useWireFaults(stage: string, requestTimeoutMs = 2_000): WireEnv {
  const env = useEmulators(stage);
  const w = { env, applied: [] as AppliedRequest[] } as WireEnv;
  beforeAll(async () => {
    w.dynamo = await startWireProxy(env.emu.dynamoEndpoint, { rate: 0, seed: 1, service: "dynamodb", hangMs: 5_000, onApplied: (e) => w.applied.push(e) });
    w.sqs = await startWireProxy(env.emu.sqsEndpoint, { rate: 0, seed: 1, service: "sqs", hangMs: 5_000 });
    w.doc = dynamoClient({ dynamodb: w.dynamo.endpoint, requestTimeoutMs });
    w.sqsClient = sqsClient({ sqs: w.sqs.endpoint, requestTimeoutMs });
    w.store = (opts = {}) => new JobStore(w.doc, { tableName: env.emu.tableName, ...opts });
    w.services = (vars = {}, o = {}) => {
      const cfg = loadRuntime({ ...env.emu.env, WARDEN_DYNAMODB_ENDPOINT: w.dynamo.endpoint, WARDEN_SQS_ENDPOINT: w.sqs.endpoint, WARDEN_LEASE_SECONDS: "1", ...vars });
      return buildServices(cfg, { doc: w.doc, sqs: w.sqsClient, metrics: new MemoryMetrics(), ...(o.now ? { now: o.now } : {}) }) as Services & { metrics: MemoryMetrics };
    };
  });
  afterAll(async () => {
    w.doc?.destroy();
    w.sqsClient?.destroy();
    await w.dynamo?.close();
    await w.sqs?.close();
  });
  return w;
}
