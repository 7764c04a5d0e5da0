/**
 * The worker directory against dynalite: workers spread over a few presence items, listed in one
 * batch, and entries of workers that died without a goodbye deleted by the next report to the
 * same item, so the items stay bounded however many workers come and go.
 */
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, it } from "vitest";
import { dynamoClient } from "../core/aws.js";
import { PRESENCE_SHARDS, WorkerDirectory, presenceShard, presenceState, type WorkerInfo } from "../core/workers.js";
import { Runner } from "../core/runner.js";
import { manualClock, useEmulators, waitFor } from "./support/emulators.js";
import { makeHandler as makeLambdaHandler } from "../functions/worker.js";
import { pollOnce, submit, testServices } from "./worker-support.js";

const env = useEmulators("workers");
const FORGET = 60_000;

const info = (id: string, jobs: string[] = []): Omit<WorkerInfo, "lastSeenAt"> => ({ id, kind: "fargate", startedAt: 0, jobs });

/** Worker ids that land in `shard`, so a test can make workers share an item on purpose. */
function idsIn(shard: number, n: number, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (presenceShard(`${prefix}-${i}`) === shard) out.push(`${prefix}-${i}`);
  return out;
}

async function rawEntries(shard: number): Promise<string[]> {
  const out = await env.doc.send(new GetCommand({ TableName: env.emu.tableName, Key: { id: `@workers#${shard}` }, ConsistentRead: true }));
  return Object.keys(out.Item ?? {}).filter((k) => k.startsWith("w:")).sort();
}

describe("worker directory", () => {
  it("lists every live worker across the presence items, most recently seen first, with its jobs", async () => {
    const clock = manualClock(1_000_000);
    const dir = new WorkerDirectory(env.doc, env.emu.tableName, { now: clock.now, forgetAfterMs: FORGET });
    const ids = Array.from({ length: 24 }, (_, i) => `list-${i}`);
    for (const id of ids) {
      clock.advance(10);
      await dir.report(info(id, [`job-of-${id}`]));
    }
    expect(new Set(ids.map(presenceShard)).size).toBeGreaterThan(1); // really spread over several items
    const listed = await dir.list();
    expect(listed.map((w) => w.id)).toEqual([...ids].reverse());
    expect(listed[0]).toMatchObject({ id: "list-23", jobs: ["job-of-list-23"], lastSeenAt: clock.now() });

    await dir.remove("list-5");
    expect((await dir.list()).map((w) => w.id)).not.toContain("list-5");
  });

  it("a worker that died silently is not listed after forgetAfterMs and is deleted by the next report to its item", async () => {
    const clock = manualClock(2_000_000);
    const dir = new WorkerDirectory(env.doc, env.emu.tableName, { now: clock.now, forgetAfterMs: FORGET });
    const [dead, alive] = idsIn(3, 2, "prune");
    await dir.report(info(dead!));
    await dir.report(info(alive!));
    expect(await rawEntries(3)).toEqual(expect.arrayContaining([`w:${dead}`, `w:${alive}`]));

    clock.advance(FORGET + 1);
    expect((await dir.list()).map((w) => w.id)).not.toContain(dead);
    await dir.report(info(alive!));
    const left = await rawEntries(3);
    expect(left).toContain(`w:${alive}`);
    expect(left).not.toContain(`w:${dead}`);
  });

  it("stays bounded by the live workers while hundreds come and go (Lambda containers, killed tasks)", async () => {
    const clock = manualClock(3_000_000);
    const dir = new WorkerDirectory(env.doc, env.emu.tableName, { now: clock.now, forgetAfterMs: FORGET });
    for (let generation = 0; generation < 5; generation++) {
      // 60 workers report once and die without removing themselves.
      for (let i = 0; i < 60; i++) await dir.report(info(`churn-${generation}-${i}`));
      clock.advance(FORGET + 1);
    }
    // The survivors report: one per item, each pruning its own item.
    const survivors = Array.from({ length: PRESENCE_SHARDS }, (_, shard) => idsIn(shard, 1, "survivor")[0]!);
    for (const id of survivors) await dir.report(info(id));
    // At most PRUNE_BATCH (25) go per report, so a second round finishes what the first left.
    for (const id of survivors) await dir.report(info(id));
    for (let shard = 0; shard < PRESENCE_SHARDS; shard++) {
      expect(await rawEntries(shard), `presence item ${shard}`).toEqual([`w:${survivors[shard]}`]);
    }
    expect((await dir.list()).map((w) => w.id).sort()).toEqual([...survivors].sort());
  });

  it("does not delete a worker that reported again between the read and the prune", async () => {
    const clock = manualClock(4_000_000);
    const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
    const dir = new WorkerDirectory(doc, env.emu.tableName, { now: clock.now, forgetAfterMs: FORGET });
    const other = new WorkerDirectory(env.doc, env.emu.tableName, { now: clock.now, forgetAfterMs: FORGET });
    const [returning, reporter] = idsIn(5, 2, "race");
    await dir.report(info(returning!));
    clock.advance(FORGET + 1);
    // Just before the prune is sent, the "dead" worker comes back and reports.
    let raced = false;
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { UpdateExpression?: string };
        if (!raced && context.commandName === "UpdateItemCommand" && input.UpdateExpression?.startsWith("REMOVE")) {
          raced = true;
          await other.report(info(returning!, ["job-after-return"]));
        }
        return next(args);
      },
      { step: "initialize", name: "raceThePrune" },
    );
    await dir.report(info(reporter!));
    expect(raced).toBe(true);
    expect(await rawEntries(5)).toEqual(expect.arrayContaining([`w:${returning}`, `w:${reporter}`]));
    expect((await dir.list()).find((w) => w.id === returning)).toMatchObject({ jobs: ["job-after-return"] });
    doc.destroy();
  });
});

describe("presence that tells the truth", () => {
  it("lists the job a worker holds within a second of its claim, and nothing within a second of its end", async () => {
    const s = testServices(env, { WARDEN_LEASE_SECONDS: "30" });
    const runner = new Runner(s, { workerId: "w-presence", kind: "local", log: { info() {}, warn() {}, error() {} } });
    await runner.start();
    const job = await submit(s, "demo.sleep", { items: 30, msPerItem: 100 }, { ring: false });
    const run = runner.run(job.id);
    await waitFor(async () => (await s.store.getRecord(job.id))?.status === "running", 5_000, "the claim");
    const claimedAt = Date.now();
    await waitFor(async () => (await s.workers.list()).find((w) => w.id === "w-presence")?.jobs.includes(job.id), 1_000, "the holder listed");
    expect(Date.now() - claimedAt).toBeLessThanOrEqual(1_000);
    await run;
    const endedAt = Date.now();
    await waitFor(async () => (await s.workers.list()).find((w) => w.id === "w-presence")?.jobs.length === 0, 1_000, "the job no longer listed");
    expect(Date.now() - endedAt).toBeLessThanOrEqual(1_000);
    await runner.stop();
  });
});

describe("presence of a busy worker", () => {
  it("a worker holding a long job keeps reporting every interval, so it is never listed unresponsive while it works", async () => {
    const every = 300;
    const s = { ...testServices(env, { WARDEN_LEASE_SECONDS: "30" }) };
    s.workers = new WorkerDirectory(env.doc, env.emu.tableName, { reportEveryMs: every });
    const runner = new Runner(s, { workerId: "w-busy", kind: "fargate", log: { info() {}, warn() {}, error() {} } });
    await runner.start();
    const job = await submit(s, "demo.sleep", { items: 20, msPerItem: 100 }, { ring: false });
    const run = runner.run(job.id);
    await waitFor(async () => (await s.store.getRecord(job.id))?.status === "running", 5_000, "the claim");
    // Nothing changes for the directory while the handler runs: only the worker's own interval reports.
    const seen = new Set<number>();
    await waitFor(async () => {
      const w = (await s.workers.list()).find((x) => x.id === "w-busy");
      if (w) {
        expect(presenceState(w, Date.now(), every), "while it works").toBe("alive");
        seen.add(w.lastSeenAt);
      }
      return seen.size >= 4;
    }, 5_000, "four reports while the job runs");
    expect((await s.store.getRecord(job.id))?.status, "all while one job ran").toBe("running");
    await run;
    await runner.stop();
  });
});

describe("presence on Lambda", () => {
  it("a Lambda invocation writes what it let go of before it returns: the environment is frozen afterwards", async () => {
    const s = testServices(env, { WARDEN_LEASE_SECONDS: "30" });
    const handler = makeLambdaHandler(s, { workerId: "lambda:presence-env", memory: false, log: { info() {}, warn() {}, error() {} } });
    const job = await submit(s, "demo.sleep", { items: 2, msPerItem: 50 });
    const { jobIds } = await pollOnce(s, handler);
    expect(jobIds).toContain(job.id);
    expect((await s.store.getRecord(job.id))?.status).toBe("succeeded");
    // No waiting: what the directory says the moment the invocation returned.
    expect((await s.workers.list()).find((w) => w.id === "lambda:presence-env")?.jobs).toEqual([]);
  });

  it("a late death event does not mark dead a worker of the same id that started after it", async () => {
    const s = testServices(env);
    const died = Date.now() - 5_000;
    await s.workers.report({ id: "lambda:restarted-env", kind: "lambda", startedAt: Date.now(), jobs: ["01JD0000000000000000000001"] });
    await s.workers.markDead("lambda:restarted-env", died, "Runtime exited");
    expect((await s.workers.list()).find((w) => w.id === "lambda:restarted-env")).toMatchObject({ jobs: ["01JD0000000000000000000001"] });
    expect((await s.workers.list()).find((w) => w.id === "lambda:restarted-env")?.diedAt).toBeUndefined();
  });
});
