/**
 * Faults between a worker and DynamoDB, for the chaos run: an SDK middleware that, at a
 * configurable rate, answers a command with a throttling error or a 5xx without sending it, or
 * sends a write and then reports a timeout although DynamoDB applied it. It sits above the SDK's
 * own retries, so every fault reaches Warden's code (as when the SDK's retries are exhausted).
 * It also records, in the chaos ledger, every claim and every terminal write DynamoDB accepted.
 *
 * Enabled in a process through WARDEN_CHAOS_FAULTS='{"rate":0.03,"seed":42}' (see installFromEnv).
 */
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { record } from "./chaos-ledger.js";

export type FaultKind = "throttle" | "server" | "lostReply";
export const FAULT_KINDS: readonly FaultKind[] = ["throttle", "server", "lostReply"];

export interface FaultOptions {
  /** Probability that one command gets a fault. */
  rate: number;
  seed: number;
  kinds?: FaultKind[];
}

export const FAULTS_ENV = "WARDEN_CHAOS_FAULTS";
/** `sweeper` marks the process whose writes count as the sweeper's. */
export const ROLE_ENV = "WARDEN_CHAOS_ROLE";

export function faultsFromEnv(env: Record<string, string | undefined> = process.env): FaultOptions | undefined {
  const raw = env[FAULTS_ENV];
  if (!raw) return undefined;
  const o = JSON.parse(raw) as Partial<FaultOptions>;
  return { rate: Number(o.rate ?? 0), seed: Number(o.seed ?? 1), ...(o.kinds ? { kinds: o.kinds } : {}) };
}

/** A small seeded generator (mulberry32): the same seed gives the same sequence of decisions. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WRITES = new Set(["PutItemCommand", "UpdateItemCommand", "DeleteItemCommand"]);

class InjectedFault extends Error {
  readonly $fault: "client" | "server";
  readonly $metadata: { httpStatusCode: number };
  constructor(name: string, message: string, status: number) {
    super(`${message} (injected by the chaos run)`);
    this.name = name;
    this.$fault = status >= 500 ? "server" : "client";
    this.$metadata = { httpStatusCode: status };
  }
}

export interface FaultCounts {
  throttle: number;
  server: number;
  lostReply: number;
}

/** Adds the fault and ledger middleware to a client; answers live counts of what it injected. */
export function installFaults(client: DynamoDBDocumentClient, o: FaultOptions): FaultCounts {
  const counts: FaultCounts = { throttle: 0, server: 0, lostReply: 0 };
  const random = seeded(o.seed);
  const kinds = o.kinds ?? FAULT_KINDS;
  client.middlewareStack.add(
    (next: (a: any) => Promise<any>, context: { commandName?: string }) => async (args: any) => {
      const name = context.commandName ?? "unknown";
      const isWrite = WRITES.has(name);
      const roll = random() < o.rate;
      const choices = kinds.filter((k) => k !== "lostReply" || isWrite);
      const kind = roll && choices.length ? choices[Math.floor(random() * choices.length)]! : undefined;
      const job = beatOf(name, args.input);
      const started = Date.now();
      const beat = (ok: boolean) => job && record({ k: "beat", job, pid: process.pid, at: started, ms: Date.now() - started, ok });
      const note = (k: FaultKind) => {
        counts[k]++;
        record({ k: "fault", kind: k, command: name, pid: process.pid, at: Date.now() });
      };
      if (kind === "throttle") {
        note(kind);
        beat(false);
        throw new InjectedFault("ThrottlingException", "Throughput exceeds the current capacity of your table or index", 400);
      }
      if (kind === "server") {
        note(kind);
        beat(false);
        throw new InjectedFault("InternalServerError", "Internal server error", 500);
      }
      let out: any;
      try {
        out = await next(args);
      } catch (e) {
        beat(false);
        throw e;
      }
      beat(kind !== "lostReply");
      if (isWrite) observeWrite(args.input, kind === "lostReply");
      if (kind === "lostReply") {
        note(kind);
        throw new InjectedFault("TimeoutError", "the connection timed out after the request was sent", 504);
      }
      return out;
    },
    { step: "initialize", name: "chaosFaults", override: true },
  );
  return counts;
}

/** Records only the ledger (no faults): for processes whose writes the checks must see but that get no faults. */
export function installLedger(client: DynamoDBDocumentClient): void {
  installFaults(client, { rate: 0, seed: 1 });
}

/** The job a heartbeat write is for (an update that renews the lease without changing the state). */
export function beatOf(command: string, input: Record<string, any>): string | undefined {
  if (command !== "UpdateItemCommand") return undefined;
  const names = Object.values((input.ExpressionAttributeNames ?? {}) as Record<string, string>);
  const expr = String(input.UpdateExpression ?? "");
  return names.includes("heartbeatAt") && !/#status = /.test(expr) && typeof input.Key?.id === "string" ? input.Key.id : undefined;
}

/** Reads what an accepted UpdateItem/PutItem did to a job: a claim (status → running) or an end. */
function observeWrite(input: Record<string, any>, replyLost: boolean): void {
  const job = (input.Key?.id ?? input.Item?.id) as string | undefined;
  if (!job) return;
  const names: Record<string, string> = input.ExpressionAttributeNames ?? {};
  const values: Record<string, unknown> = input.ExpressionAttributeValues ?? {};
  const alias = (attr: string) => Object.keys(names).find((k) => names[k] === attr);
  const assigned = (attr: string): unknown => {
    const a = alias(attr);
    const m = a ? new RegExp(`${a} = (:\\w+)`).exec(String(input.UpdateExpression ?? "")) : null;
    return m ? values[m[1]!] : undefined;
  };
  const status = input.Item ? input.Item.status : assigned("status");
  if (process.env[ROLE_ENV] === "sweeper") {
    record({ k: "swept", job, to: typeof status === "string" ? status : null, pid: process.pid, at: Date.now() });
  }
  if (status === "queued" && process.env[ROLE_ENV] !== "sweeper") {
    record({ k: "release", job, pid: process.pid, at: Date.now() });
    return;
  }
  if (status === "running") {
    const token = assigned("token");
    if (typeof token === "number") record({ k: "claim", job, token, pid: process.pid, at: Date.now() });
    return;
  }
  if (status === "succeeded" || status === "failed" || status === "cancelled") {
    const a = alias("token");
    const m = a ? new RegExp(`${a} = (:\\w+)`).exec(String(input.ConditionExpression ?? "")) : null;
    const token = m ? (values[m[1]!] as number) : null;
    record({ k: "commit", job, status, token, pid: process.pid, at: Date.now(), replyLost });
  }
}

/** The opt-in for a process: installs faults (or only the ledger) when the chaos variables are set. */
export function installFromEnv(client: DynamoDBDocumentClient, env: Record<string, string | undefined> = process.env): FaultCounts | undefined {
  const o = faultsFromEnv(env);
  if (o) return installFaults(client, { ...o, seed: o.seed ^ process.pid });
  if (env.WARDEN_CHAOS_LEDGER) installLedger(client);
  return undefined;
}
