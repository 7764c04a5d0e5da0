/**
 * Claim throughput and conflicts with 1, 8 and 32 concurrent workers on one queue. Two shapes:
 * `race`, where every worker tries every job in the same order (as if each message reached every
 * worker: the worst case for contention), and `spread`, where workers take distinct jobs as SQS
 * hands them out and conflict only by chance. Each worker has its own DynamoDB client, as a
 * separate process would. Also checks the point of it all: exactly one winner per job.
 */
import { dynamoClient } from "../core/aws.js";
import { TIMINGS } from "../core/config.js";
import { JobStore, type ClaimRefusal } from "../core/store.js";
import { CapacityMeter } from "./lib/capacity.js";
import { benchEnv, hr, since } from "./lib/env.js";
import { fmt, summary, table } from "./lib/table.js";

export const WORKER_COUNTS = [1, 8, 32] as const;

export interface ClaimRun {
  mode: "race" | "spread";
  workers: number;
  jobs: number;
  ms: number;
  claimsPerSecond: number;
  attempts: number;
  wins: number;
  /** Refused after the read (already leased): a conflict that costs one read, no write. */
  refusedOnRead: number;
  /** Lost at the conditional write: both read it queued, one write won. Costs a failed write. */
  conditionFailures: number;
  /** Jobs whose final token is not exactly 1: must be zero. */
  jobsWithExtraClaims: number;
  latencyMs: { median: number; p95: number; max: number };
  wru: number;
  rru: number;
}

export interface ClaimResult {
  jobs: number;
  runs: ClaimRun[];
  notes: string[];
}

export async function runClaim(opts: { jobs?: number } = {}): Promise<ClaimResult> {
  const n = opts.jobs ?? 300;
  const env = await benchEnv("bench-claim");
  try {
    const runs: ClaimRun[] = [];
    for (const mode of ["race", "spread"] as const) {
      for (const workers of WORKER_COUNTS) runs.push(await oneRun(env, mode, workers, n));
    }
    return {
      jobs: n,
      runs,
      notes: [
        "against dynalite on this machine: the absolute rate is the emulator's, the shape (conflicts, exactly one winner) is Warden's",
        "race: every worker tries every job in the same order; spread: workers take the next unclaimed job from a shared cursor, as SQS hands out messages",
        "a claim reads (consistent Get) then writes conditionally on the token it read; a refusal after the read costs no write",
      ],
    };
  } finally {
    await env.close();
  }
}

async function oneRun(env: Awaited<ReturnType<typeof benchEnv>>, mode: "race" | "spread", workers: number, n: number): Promise<ClaimRun> {
  const setup = new JobStore(env.doc, { tableName: env.emu.tableName });
  const ids: string[] = [];
  for (let i = 0; i < n; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, n - i) }, () =>
        setup.create({ owner: "bench", type: "bench.claim", queue: "default", input: {}, maxAttempts: 3, timeoutMs: TIMINGS.defaultTimeoutMs }),
      ),
    );
    ids.push(...batch.map((b) => b.job.id));
  }
  const clients = Array.from({ length: workers }, () => dynamoClient({ dynamodb: env.emu.dynamoEndpoint }));
  const meters = clients.map((c) => new CapacityMeter(c));
  const stores = clients.map((c) => new JobStore(c, { tableName: env.emu.tableName }));
  const refusals = new Map<ClaimRefusal, number>();
  const latencies: number[] = [];
  let wins = 0;
  let attempts = 0;
  let cursor = 0;
  const t0 = hr();
  await Promise.all(
    stores.map(async (store, w) => {
      const claimOne = async (id: string) => {
        const t = hr();
        attempts++;
        const r = await store.claim(id, `bench-${w}`, TIMINGS.leaseMs);
        latencies.push(since(t));
        if (r.ok) wins++;
        else refusals.set(r.reason, (refusals.get(r.reason) ?? 0) + 1);
      };
      if (mode === "race") for (const id of ids) await claimOne(id);
      else for (let i = cursor++; i < ids.length; i = cursor++) await claimOne(ids[i]!);
    }),
  );
  const ms = since(t0);
  let extra = 0;
  for (const id of ids) {
    const job = await setup.get(id);
    if (!job || job.token !== 1 || job.status !== "running") extra++;
  }
  for (const c of clients) c.destroy();
  const conditionFailures = meters.reduce((s, m) => s + m.totals.conditionFailures, 0);
  const refused = [...refusals.values()].reduce((a, b) => a + b, 0);
  const lat = summary(latencies);
  return {
    mode,
    workers,
    jobs: n,
    ms,
    claimsPerSecond: (wins / ms) * 1000,
    attempts,
    wins,
    refusedOnRead: refused - conditionFailures,
    conditionFailures,
    jobsWithExtraClaims: extra + Math.abs(wins - n),
    latencyMs: { median: lat.median, p95: lat.p95, max: lat.max },
    wru: meters.reduce((s, m) => s + m.totals.tableWru + m.totals.failedWriteWru, 0),
    rru: meters.reduce((s, m) => s + m.totals.rru, 0),
  };
}

export function printClaim(r: ClaimResult): string {
  return table(
    `Claim throughput and conflicts (${r.jobs} jobs on one queue)`,
    ["mode", "workers", "claims/s", "attempts", "won", "refused on read", "lost at write", "extra claims", "latency p50 / p95 / max ms", "table WRU / job"],
    r.runs.map((x) => [
      x.mode,
      x.workers,
      fmt(x.claimsPerSecond, 0),
      x.attempts,
      x.wins,
      x.refusedOnRead,
      x.conditionFailures,
      x.jobsWithExtraClaims,
      `${fmt(x.latencyMs.median)} / ${fmt(x.latencyMs.p95)} / ${fmt(x.latencyMs.max)}`,
      fmt(x.wru / x.jobs, 2),
    ]),
    ["extra claims must be 0: each job ends with token 1, claimed by exactly one worker", ...r.notes],
  );
}
