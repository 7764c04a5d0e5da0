/**
 * Jobs that are ready and nobody claims (issue 16, item 7), against dynalite and fauxqs with a
 * manual clock: the sweeper's OldestUnclaimedSeconds follows the oldest such job's wait on every
 * sweep, however often the sweeper re-rings its doorbell; UnhelpedRepairs counts the re-rings
 * that repeat one which did not help; the stuck report lists the jobs with their wait and rings.
 *
 * The defect this replaces: StuckJobs{State: queued} counted the queued jobs one sweep found past
 * their start deadline, and that same sweep pushed the deadline (lifecycle `resend`), so the
 * count read 0 at every sweep but the one in each start deadline that re-rang the job. Asserting
 * "never 0 while the job waits" on that metric, with the first test's very sweeps, fails at the
 * first sweep: before this change it read `0 0 0 0 0 1` for each start deadline, 20 zeros in 24
 * sweeps. The same classification still shows it below, through the stuck report's
 * `states.queued.count`.
 */
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, test } from "vitest";
import { TABLE, type QueueName } from "../core/config.js";
import { MemoryMetrics, type MetricName } from "../core/metrics.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { tableDefinition } from "../core/schema.js";
import { shardOf, waitShard } from "../core/shards.js";
import { stuckReport } from "../core/stuck.js";
import { Sweeper } from "../core/sweeper.js";
import { oldestWaiting } from "../core/waiting.js";
import { clientConfig } from "../local/emulators.js";
import { manualClock, useEmulators, waitFor, type TestEnv } from "./support/emulators.js";

const LEASE = 30_000;
const START_DEADLINE = 60_000;
/** The cloud's cadence: a sweep every 10 s. */
const SWEEP_EVERY = 10_000;

function world(env: TestEnv, tableName?: string) {
  const clock = manualClock(Date.now());
  const metrics = new MemoryMetrics(clock.now);
  const cfg = loadRuntime({
    ...env.emu.env,
    ...(tableName ? { WARDEN_TABLE: tableName } : {}),
    WARDEN_LEASE_SECONDS: String(LEASE / 1000),
    WARDEN_START_DEADLINE_SECONDS: String(START_DEADLINE / 1000),
  });
  const s: Services = buildServices(cfg, { doc: env.doc, sqs: env.sqs, now: clock.now, metrics });
  const sweeper = new Sweeper(s);
  const create = async (queue: QueueName = "large", runAt?: number) =>
    (await s.store.create({ owner: "t", type: "demo.sleep", queue, input: {}, maxAttempts: 3, timeoutMs: 3_600_000, ...(runAt !== undefined ? { runAt } : {}) })).job;
  /** The value the last sweep published for `name` on `queue`. */
  const last = (name: MetricName, queue: QueueName): number | undefined => metrics.points.filter((p) => p.name === name && p.dims.Queue === queue).at(-1)?.value;
  const sum = (name: MetricName, queue: QueueName): number => metrics.sum(name, 0, { Queue: queue });
  return { clock, metrics, s, sweeper, create, last, sum };
}

describe("a job nobody claims", () => {
  const env = useEmulators("not-starting");

  test("OldestUnclaimedSeconds rises with its wait on every sweep and never reads 0, while the overdue count flickers; a claim ends it", async () => {
    const w = world(env);
    const job = await w.create();
    const t0 = w.clock.now();
    const waits: number[] = [];
    const overdueQueued: number[] = [];
    // Four start deadlines of sweeps: the sweeper re-rings the job at each deadline, and nobody answers.
    for (let t = SWEEP_EVERY; t <= 4 * START_DEADLINE; t += SWEEP_EVERY) {
      w.clock.set(t0 + t);
      // What StuckJobs{queued} published: the overdue queued jobs this sweep is about to act on.
      overdueQueued.push((await stuckReport(w.s)).states.queued.count);
      await w.sweeper.sweep();
      waits.push(w.last("OldestUnclaimedSeconds", "large")!);
    }
    expect(waits).toEqual(waits.map((_, i) => ((i + 1) * SWEEP_EVERY) / 1000));
    expect(waits.every((v) => v > 0)).toBe(true);
    // The old signal: 1 only on the sweep that pushes the deadline, 0 in the five between.
    expect(overdueQueued.filter((n) => n === 0)).toHaveLength(20);
    expect(overdueQueued.filter((n) => n === 1)).toHaveLength(4);
    // The other queue has nothing waiting, and says so every sweep.
    expect(w.metrics.points.filter((p) => p.name === "OldestUnclaimedSeconds" && p.dims.Queue === "default").map((p) => p.value)).toEqual(waits.map(() => 0));

    const after = await w.s.store.mustGet(job.id);
    expect(after).toMatchObject({ status: "queued", readyAt: t0, rings: 4 });

    // A claim ends the wait: the next sweep reads 0.
    const c = await w.s.store.claim(job.id, "w1", LEASE);
    if (!c.ok) throw new Error(`claim refused: ${c.reason}`);
    w.clock.advance(SWEEP_EVERY);
    await w.sweeper.sweep();
    expect(w.last("OldestUnclaimedSeconds", "large")).toBe(0);
    expect((await stuckReport(w.s)).notStarting.large).toEqual({ oldestWaitSeconds: 0, jobs: [] });
    await w.s.store.succeed(c.lease, null);
  });

  test("UnhelpedRepairs counts the second re-ring with no claim, and each one after, not the first", async () => {
    const w = world(env);
    const job = await w.create("default");
    const t0 = w.clock.now();
    const sweepAt = async (t: number) => {
      w.clock.set(t0 + t);
      return w.sweeper.sweep();
    };
    // The first re-ring (one start deadline in) is a repair that may well help: a lost message.
    expect((await sweepAt(START_DEADLINE)).touched.resent).toEqual([job.id]);
    expect(w.last("UnhelpedRepairs", "default")).toBe(0);
    await sweepAt(START_DEADLINE + SWEEP_EVERY);
    expect(w.sum("UnhelpedRepairs", "default")).toBe(0);
    // The second: the first did not help.
    expect((await sweepAt(2 * START_DEADLINE)).touched.resent).toEqual([job.id]);
    expect(w.last("UnhelpedRepairs", "default")).toBe(1);
    await sweepAt(2 * START_DEADLINE + SWEEP_EVERY);
    expect(w.last("UnhelpedRepairs", "default")).toBe(0);
    await sweepAt(3 * START_DEADLINE);
    expect(w.sum("UnhelpedRepairs", "default")).toBe(2);
    expect(w.sum("UnhelpedRepairs", "large")).toBe(0);

    // The stuck report lists it with its wait and rings; a job that became ready a moment ago is not "not starting".
    const fresh = await w.create("default");
    const report = await stuckReport(w.s);
    expect(report.notStarting.default).toEqual({ oldestWaitSeconds: (3 * START_DEADLINE) / 1000, jobs: [{ id: job.id, waitedSeconds: (3 * START_DEADLINE) / 1000, rings: 3 }] });
    expect(report.notStarting.large).toEqual({ oldestWaitSeconds: 0, jobs: [] });
    expect(fresh).toMatchObject({ status: "queued", readyAt: w.clock.now(), rings: 0 });
    await w.s.store.requestCancel(job.id);
    await w.s.store.requestCancel(fresh.id);
  });

  test("a job counts from when it may be claimed: its runAt, or its requeue after a dead worker", async () => {
    const w = world(env);
    const t0 = w.clock.now();
    const later = await w.create("large", t0 + 5 * 60_000);
    w.clock.set(t0 + 4 * 60_000);
    await w.sweeper.sweep();
    expect(w.last("OldestUnclaimedSeconds", "large")).toBe(0);
    w.clock.set(t0 + 5 * 60_000 + 30_000);
    await w.sweeper.sweep();
    expect(w.last("OldestUnclaimedSeconds", "large")).toBe(30);

    // Claimed, then its worker dies: the sweep that reclaims it counts its wait from the reclaim.
    expect((await w.s.store.claim(later.id, "w1", LEASE)).ok).toBe(true);
    w.clock.advance(LEASE + 1);
    const r = await w.sweeper.sweep();
    expect(r.touched.reclaimed).toEqual([later.id]);
    expect(w.last("OldestUnclaimedSeconds", "large")).toBe(0);
    w.clock.advance(SWEEP_EVERY);
    await w.sweeper.sweep();
    expect(w.last("OldestUnclaimedSeconds", "large")).toBe(10);
    expect(await w.s.store.mustGet(later.id)).toMatchObject({ status: "queued", rings: 0, readyAt: w.clock.now() - SWEEP_EVERY });
    await w.s.store.requestCancel(later.id);
  });
});

describe("the wait index's reads", () => {
  const env = useEmulators("not-starting-reads");

  test("the oldest waiting job is found in whichever partition holds it, past index entries whose record moved on", async () => {
    const w = world(env);
    const t0 = w.clock.now();
    const jobs = [];
    for (let i = 0; i < 12; i++) {
      jobs.push(await w.create("default"));
      w.clock.advance(1_000);
    }
    const oldest = jobs[0]!;
    // An index that lags its table: entries older than the oldest job, in its partition, whose
    // records are running now. More of them than one read of a partition takes.
    for (let i = 0; i < 4; i++) {
      await env.doc.send(
        new PutCommand({
          TableName: env.emu.tableName,
          Item: { id: `stale-${i}`, status: "running", queue: "default", [TABLE.waitIndex.partitionKey]: waitShard("default", oldest.id), [TABLE.waitIndex.sortKey]: t0 - 60_000 + i },
        }),
      );
    }
    const now = w.clock.now();
    const waiting = await oldestWaiting(env.doc, env.emu.tableName, now);
    expect(waiting.default[0]).toEqual({ id: oldest.id, queue: "default", readyAt: t0, waitedMs: now - t0, rings: 0 });
    expect(waiting.default.map((j) => j.id)).not.toContain("stale-0");
    // Every partition that holds jobs answered: the sample spans the shards.
    expect(new Set(waiting.default.map((j) => shardOf(j.id))).size).toBe(new Set(jobs.map((j) => shardOf(j.id))).size);
    expect(waiting.large).toEqual([]);

    await w.sweeper.sweep();
    expect(w.last("OldestUnclaimedSeconds", "default")).toBe(12);
    // Claimed: it leaves the index at once (its record keeps no wait key), and the next oldest is the oldest.
    const raw = async (id: string) => (await env.doc.send(new GetCommand({ TableName: env.emu.tableName, Key: { id } }))).Item!;
    expect(await raw(oldest.id)).toMatchObject({ [TABLE.waitIndex.partitionKey]: waitShard("default", oldest.id), [TABLE.waitIndex.sortKey]: t0, rings: 0 });
    const c = await w.s.store.claim(oldest.id, "w1", LEASE);
    if (!c.ok) throw new Error(`claim refused: ${c.reason}`);
    await w.s.store.heartbeat(c.lease, { progress: { done: 1 } });
    const running = await raw(oldest.id);
    for (const k of [TABLE.waitIndex.partitionKey, TABLE.waitIndex.sortKey, "rings"]) expect(running, k).not.toHaveProperty(k);
    await w.sweeper.sweep();
    expect(w.last("OldestUnclaimedSeconds", "default")).toBe(11);
  });
});

describe("a table made before the wait index", () => {
  const env = useEmulators("not-starting-upgrade");

  test("a sweep still repairs, says waitError in its report, and publishes no OldestUnclaimedSeconds", async () => {
    // The table as deployed before this index: every other index, as core/schema.ts had them.
    const name = `${env.emu.tableName}-before-byWait`;
    const def = tableDefinition(name);
    const db = new DynamoDBClient(clientConfig(env.emu.dynamoEndpoint));
    try {
      await db.send(
        new CreateTableCommand({
          ...def,
          GlobalSecondaryIndexes: def.GlobalSecondaryIndexes!.filter((g) => g.IndexName !== TABLE.waitIndex.name),
          AttributeDefinitions: def.AttributeDefinitions!.filter((a) => a.AttributeName !== TABLE.waitIndex.partitionKey && a.AttributeName !== TABLE.waitIndex.sortKey),
        }),
      );
    } finally {
      db.destroy();
    }
    const w = world(env, name);
    const job = await waitFor(() => w.create("default").catch(() => undefined), 10_000, "the table to be ACTIVE");
    w.clock.advance(START_DEADLINE);
    const r = await w.sweeper.sweep();
    expect(r.touched.resent).toEqual([job.id]);
    expect(r.waitError).toMatch(/index/i);
    expect(w.metrics.points.filter((p) => p.name === "OldestUnclaimedSeconds")).toEqual([]);
    expect(w.metrics.sum("SweeperHeartbeat")).toBe(1);
  });
});
