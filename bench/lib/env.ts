/** Emulators and clients for one benchmark, all against the embedded dynalite and fauxqs. */
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { dynamoClient, sqsClient } from "../../core/aws.js";
import { startEmulators, type Emulators } from "../../local/emulators.js";

export interface BenchEnv {
  emu: Emulators;
  doc: DynamoDBDocumentClient;
  sqs: SQSClient;
  close(): Promise<void>;
}

export async function benchEnv(stage = "bench"): Promise<BenchEnv> {
  return withClients(await startEmulators({ stage }));
}

/** Clients of running emulators; closing them closes the clients, then stops the emulators. */
export function withClients(emu: Emulators): BenchEnv {
  const doc = dynamoClient({ dynamodb: emu.dynamoEndpoint });
  const sqs = sqsClient({ sqs: emu.sqsEndpoint });
  return {
    emu,
    doc,
    sqs,
    async close() {
      doc.destroy();
      sqs.destroy();
      await emu.stop();
    },
  };
}

/** A clock the benchmark moves by hand, so a 600 s job takes milliseconds. */
export function manualClock(start = Date.now()): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

export const since = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
export const hr = (): bigint => process.hrtime.bigint();
