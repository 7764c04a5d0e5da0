/**
 * AWS SDK v3 clients. With an endpoint (the local emulators) they get static dummy credentials,
 * because the emulators accept any and a laptop may have none.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { BatchGetCommand, DynamoDBDocumentClient, type BatchGetCommandOutput } from "@aws-sdk/lib-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { AWS_TIMEOUTS } from "./config.js";

export interface Endpoints {
  dynamodb?: string;
  sqs?: string;
  region?: string;
  /** Overrides both clients' request timeout (AWS_TIMEOUTS): shorter for runs that hang connections on purpose. */
  requestTimeoutMs?: number;
}

/** An endpoint on AWS itself (a real account named explicitly) signs with the real credential chain. */
const isAws = (endpoint: string): boolean => /\.amazonaws\.com(\.cn)?(:\d+)?(\/|$)/.test(endpoint);

const local = (endpoint: string | undefined, region: string | undefined) =>
  endpoint
    ? {
        endpoint,
        region: region ?? "us-east-1",
        ...(isAws(endpoint) ? {} : { credentials: { accessKeyId: "local", secretAccessKey: "local" } }),
      }
    : { ...(region ? { region } : {}) };

/**
 * Every call is bounded in time (invariant 10): the SDK's default is no request timeout at all,
 * so a half-open connection would hang a heartbeat or a final write for minutes. A request that
 * times out is retried by the SDK like any transient failure.
 */
const bounded = (requestMs: number) =>
  // throwOnRequestTimeout: without it the handler only logs a warning when requestTimeout passes.
  new NodeHttpHandler({ connectionTimeout: AWS_TIMEOUTS.connectMs, requestTimeout: requestMs, throwOnRequestTimeout: true });

export function dynamoClient(e: Endpoints = {}): DynamoDBDocumentClient {
  const raw = new DynamoDBClient({ ...local(e.dynamodb, e.region), maxAttempts: 3, requestHandler: bounded(e.requestTimeoutMs ?? AWS_TIMEOUTS.dynamoRequestMs) });
  // Numbers are JSON's doubles both ways: a result holding 1e20 is stored (DynamoDB takes 38
  // digits) and read back as the number it was, never as a BigInt that JSON cannot print.
  return DynamoDBDocumentClient.from(raw, {
    marshallOptions: { removeUndefinedValues: true, allowImpreciseNumbers: true },
    unmarshallOptions: { wrapNumbers: (s: string) => Number(s) },
  });
}

export function sqsClient(e: Endpoints = {}): SQSClient {
  // fauxqs answers with queue URLs on its own host; the SDK must be told the endpoint explicitly.
  return new SQSClient({ ...local(e.sqs, e.region), maxAttempts: 3, requestHandler: bounded(e.requestTimeoutMs ?? AWS_TIMEOUTS.sqsRequestMs) });
}

/**
 * Every item of `keys` that exists, in pages of DynamoDB's 100-key limit, retrying what it leaves
 * unprocessed (a throttle): a key left out after that throws, so a caller never mistakes an
 * unread item for a missing one.
 */
export async function batchGetAll(
  db: DynamoDBDocumentClient,
  table: string,
  keys: Record<string, unknown>[],
  consistentRead = false,
): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  for (let i = 0; i < keys.length; i += BATCH_GET_MAX) {
    let pending: Record<string, unknown>[] | undefined = keys.slice(i, i + BATCH_GET_MAX);
    for (let round = 0; pending?.length; round++) {
      if (round >= BATCH_GET_ROUNDS) throw new Error(`DynamoDB left ${pending.length} reads unprocessed after ${round} tries`);
      if (round > 0) await new Promise((r) => setTimeout(r, 20 * 2 ** round));
      const out: BatchGetCommandOutput = await db.send(new BatchGetCommand({ RequestItems: { [table]: { Keys: pending, ConsistentRead: consistentRead } } }));
      items.push(...(out.Responses?.[table] ?? []));
      pending = out.UnprocessedKeys?.[table]?.Keys;
    }
  }
  return items;
}
const BATCH_GET_MAX = 100;
const BATCH_GET_ROUNDS = 6;

/**
 * The error names AWS answers a throttled request with (DynamoDB's own, and the account-wide
 * ones); a 429 counts too.
 */
const THROTTLES = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "Throttling",
  "TooManyRequestsException",
]);

export function isThrottle(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return THROTTLES.has(err?.name ?? "") || err?.$metadata?.httpStatusCode === 429;
}

/**
 * Calls `onThrottle` for each command that fails throttled after the SDK's own retries: the
 * throttling that reaches Warden's code. Outermost on the stack so it sees what the caller sees.
 */
export function reportThrottles(client: { middlewareStack: { add: Function } }, onThrottle: (command: string) => void): void {
  client.middlewareStack.add(
    (next: (a: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
      try {
        return await next(args);
      } catch (e) {
        if (isThrottle(e)) onThrottle(context.commandName ?? "unknown");
        throw e;
      }
    },
    // One per client: a second buildServices over the same client replaces, not doubles, it.
    { step: "initialize", priority: "high", name: "wardenReportThrottles", override: true },
  );
}

/** Counts every command a client sends (before retries), by command name. For tests and benchmarks. */
export function countCalls(client: { middlewareStack: { add: Function } }): Map<string, number> {
  const counts = new Map<string, number>();
  client.middlewareStack.add(
    (next: (a: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
      const name = context.commandName ?? "unknown";
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: "initialize", name: `countCalls${Math.random()}` },
  );
  return counts;
}
