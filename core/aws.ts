/**
 * AWS SDK v3 clients. With an endpoint (the local emulators) they get static dummy credentials,
 * because the emulators accept any and a laptop may have none.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";

export interface Endpoints {
  dynamodb?: string;
  sqs?: string;
  region?: string;
}

const local = (endpoint: string | undefined, region: string | undefined) =>
  endpoint
    ? { endpoint, region: region ?? "us-east-1", credentials: { accessKeyId: "local", secretAccessKey: "local" } }
    : { ...(region ? { region } : {}) };

export function dynamoClient(e: Endpoints = {}): DynamoDBDocumentClient {
  const raw = new DynamoDBClient({ ...local(e.dynamodb, e.region), maxAttempts: 3 });
  return DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } });
}

export function sqsClient(e: Endpoints = {}): SQSClient {
  // fauxqs answers with queue URLs on its own host; the SDK must be told the endpoint explicitly.
  return new SQSClient({ ...local(e.sqs, e.region), maxAttempts: 3 });
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
