/**
 * The chaos run's planned faults: one-shot faults on top of the proxies' seeded rate, each for
 * the first request its `match` accepts, for a test that must lose exactly the reply it means to.
 *
 * Besides the proxy's own kinds, `late` (DynamoDB updates only): a write that reaches DynamoDB
 * after its sender gave up on it, as a request kept by the network or by a front end does. The
 * proxy holds the write like a hang, and every try of it after (the SDK's resends and the
 * completer's retries carry the same nonce, `lastWrite`), so its sender times out and gives up;
 * once its job has ended, the first copy is delivered through the proxy (so the ledger sees it
 * if DynamoDB applies it), as it was sent: same body, same nonce, same condition, and spared the
 * proxy's seeded faults (a hang or lost reply there would leave what DynamoDB made of it unknown).
 */
import { DynamoDBClient, UpdateItemCommand, type UpdateItemCommandInput } from "@aws-sdk/client-dynamodb";
import { errorMessage } from "../core/errors.js";
import { assigned } from "./chaos-ledger.js";
import type { WireFaultKind, WireProxy } from "./wire-faults.js";

export interface PlannedFault {
  service: "dynamodb" | "sqs";
  kind: WireFaultKind | "late";
  /** Gets the X-Amz-Target and the parsed JSON body of each request. */
  match: (target: string, body: unknown) => boolean;
}

/** A `late` write and what DynamoDB made of it when it finally arrived. */
export interface LateDelivery {
  job: string;
  target: string;
  applied: boolean;
  answer: string;
}

export interface Planned {
  /** How many planned faults were injected so far. */
  injected(): number;
  /** Ends the plan: delivers the late writes still held (whose jobs have ended, or not) and answers what became of each. */
  finish(): Promise<LateDelivery[]>;
}

export function armPlanned(
  plan: PlannedFault[],
  proxies: Record<PlannedFault["service"], WireProxy>,
  /** Whether the job has ended (read straight from the store, not over the wire). */
  ended: (job: string) => Promise<boolean>,
  log: (line: string) => void,
): Planned {
  let injected = 0;
  let over = false;
  let endRun!: () => void;
  const runOver = new Promise<void>((resolve) => (endRun = resolve));
  const deliveries: Promise<LateDelivery | undefined>[] = [];
  for (const p of plan) {
    if (p.kind !== "late") {
      void proxies[p.service].injectNext(p.kind, p.match).then(() => injected++);
      continue;
    }
    if (p.service !== "dynamodb") throw new Error("chaos: a late delivery is planned for DynamoDB writes only");
    deliveries.push(holdAndDeliver(proxies.dynamodb, p.match));
  }

  async function holdAndDeliver(proxy: WireProxy, match: PlannedFault["match"]): Promise<LateDelivery | undefined> {
    let held: { target: string; body: unknown; nonce: unknown } | undefined;
    let delivering = false;
    let copies = 0;
    const first = proxy.injectNext("hang", (target, body) => {
      if (!match(target, body)) return false;
      held = { target, body, nonce: assigned(body, "lastWrite") };
      return true;
    });
    // Every later try of the same write is held too, until it is delivered.
    const holdCopies = (): void =>
      void proxy
        .injectNext("hang", (_t, body) => !delivering && assigned(body, "lastWrite") === held?.nonce)
        .then(() => {
          copies++;
          if (!delivering) holdCopies();
        });
    void first.then(holdCopies);
    await Promise.race([first, runOver]);
    if (!held) return undefined; // the planned write never came
    injected++;
    const job = String((held.body as { Key?: { id?: { S?: string } } }).Key?.id?.S ?? "");
    // Delivered once its job has ended without it (or the run is over): never sooner.
    while (!over && !(await ended(job).catch(() => false))) await new Promise((r) => setTimeout(r, 200));
    delivering = true; // copies pass from here on: the delivery below is one
    log(`late delivery for ${job}: held the write and ${copies} later tries of it`);
    // The delivery is the fault itself: a seeded fault on it would leave its answer unknown.
    const nonce = held.nonce;
    proxy.passNext((_t, body) => assigned(body, "lastWrite") === nonce);
    return deliver(proxy.endpoint, job, held.target, held.body);
  }

  return {
    injected: () => injected,
    async finish() {
      over = true;
      endRun();
      return (await Promise.all(deliveries)).filter((d): d is LateDelivery => d !== undefined);
    },
  };
}

async function deliver(endpoint: string, job: string, target: string, body: unknown): Promise<LateDelivery> {
  const op = target.replace(/^DynamoDB_\d+\./, "");
  if (op !== "UpdateItem") return { job, target, applied: false, answer: `not delivered: only UpdateItem is replayed, not ${op}` };
  const db = new DynamoDBClient({ endpoint, region: "us-east-1", credentials: { accessKeyId: "local", secretAccessKey: "local" }, maxAttempts: 1 });
  try {
    await db.send(new UpdateItemCommand(body as UpdateItemCommandInput));
    return { job, target, applied: true, answer: "200" };
  } catch (e) {
    return { job, target, applied: false, answer: (e as Error).name || errorMessage(e) };
  } finally {
    db.destroy();
  }
}
