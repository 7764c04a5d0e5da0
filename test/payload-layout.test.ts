/**
 * A job's write cost does not grow with its payload (invariant 11): the lease loop rewrites a
 * small record, while the input, the result and large checkpoints are written once each, as
 * items of their own (core/values.ts), fenced by the record that points at them.
 */
import { randomBytes } from "node:crypto";
import { GetCommand, ScanCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, test } from "vitest";
import { CapacityMeter, totalWru } from "../bench/lib/capacity.js";
import { countCalls, dynamoClient } from "../core/aws.js";
import { LIMITS, TABLE } from "../core/config.js";
import { fargateWorkerId } from "../core/death-events.js";
import { LeaseLostError } from "../core/errors.js";
import { itemBytes } from "../core/item-size.js";
import type { FailedJob, Lease, QueuedJob, SucceededJob } from "../core/job.js";
import { JobStore } from "../core/store.js";
import { CHECKPOINT_HORIZON_MS, INLINE_VALUE_BYTES, START_WAIT_MS, VALUE_FIELDS } from "../core/values.js";
import { expireItems } from "../local/ttl.js";
import { ACCESS, type TableAction } from "../stacks/access.js";
import { manualClock } from "./support/emulators.js";
import { target, useWireFaults } from "./support/wire.js";

const w = useWireFaults("payload", 3_000);
const LEASE_MS = 3_000;
const KB = 1024;
/** A plain-JSON value of exactly `bytes` bytes as JSON, different for each `tag`. */
const sized = (bytes: number, tag: number | string = 0) => {
  const head = JSON.stringify({ tag, pad: "" }).length;
  return { tag, pad: "x".repeat(bytes - head) };
};
const spec = (input: unknown) => ({ owner: "payload", type: "t.payload", queue: "large" as const, input, maxAttempts: 3, timeoutMs: 3_600_000 });

async function rawItem(id: string): Promise<Record<string, unknown> | undefined> {
  return (await w.env.doc.send(new GetCommand({ TableName: w.env.emu.tableName, Key: { id }, ConsistentRead: true }))).Item;
}

/** Every item whose id starts with `prefix`: a job's record and value items share its id as a prefix. */
async function itemsStartingWith(prefix: string): Promise<Record<string, unknown>[]> {
  const out = await w.env.doc.send(
    new ScanCommand({ TableName: w.env.emu.tableName, FilterExpression: "begins_with(#id, :p)", ExpressionAttributeNames: { "#id": "id" }, ExpressionAttributeValues: { ":p": prefix } }),
  );
  return out.Items ?? [];
}

async function claimed(store: JobStore, id: string, worker: string): Promise<Lease> {
  const c = await store.claim(id, worker, LEASE_MS);
  if (!c.ok) throw new Error(`claim refused: ${c.reason}`);
  return c.lease;
}

describe("the record stays small whatever the payload", () => {
  test("a 150 KB input and a 64 KB checkpoint live outside the record, which stays under 1 KB and reads back whole", async () => {
    const store = w.store();
    const input = sized(150 * KB, "in");
    const { job } = await store.create(spec(input));
    const lease = await claimed(store, job.id, "w1");
    expect(lease.job.input).toEqual(input);
    const checkpoint = sized(LIMITS.maxCheckpointBytes, "cp");
    await store.heartbeat(lease, { checkpoint, progress: { done: 1, total: 2 } });
    const record = (await rawItem(job.id))!;
    expect(itemBytes(record)).toBeLessThan(KB);
    expect(record.input).toBeUndefined();
    expect(record.checkpoint).toBeUndefined();
    const read = await store.get(job.id);
    expect(read).toMatchObject({ input, checkpoint });
    const result = sized(LIMITS.maxResultBytes, "out");
    await store.succeed(lease, result);
    expect(itemBytes((await rawItem(job.id))!)).toBeLessThan(KB);
    expect(await store.get(job.id)).toMatchObject({ status: "succeeded", input, result });
  });

  test("values within their own limits are stored together even where one 400 KB item could not hold them", async () => {
    const store = w.store();
    // ~200 KB as JSON and ~300 KB by DynamoDB's size rules (digits in lists), plus a 64 KB checkpoint and a 64 KB result.
    const input = { data: Array.from({ length: 100_000 }, (_, i) => i % 10) };
    const { job } = await store.create(spec(input));
    const lease = await claimed(store, job.id, "w1");
    const checkpoint = { data: Array.from({ length: 32_000 }, (_, i) => i % 10) };
    await store.heartbeat(lease, { checkpoint });
    const result = { data: Array.from({ length: 32_000 }, (_, i) => (i + 1) % 10) };
    await store.succeed(lease, result);
    expect(await store.get(job.id)).toMatchObject({ status: "succeeded", input, checkpoint, result });
  });

  test("a small input stays in the record: no value item, no extra read", async () => {
    const store = w.store();
    const { job } = await store.create(spec({ userId: 42 }));
    const record = (await rawItem(job.id))!;
    expect(record.input).toEqual({ userId: 42 });
    expect(record.refs).toBeUndefined();
    const values = await itemsStartingWith(`${job.id}#`);
    expect(values).toHaveLength(0);
  });

  test("a heartbeat costs at most 3 write units with a 150 KB input, and a changed 64 KB checkpoint costs its own size once, not once per index", async () => {
    const doc = dynamoClient({ dynamodb: w.env.emu.dynamoEndpoint });
    const meter = new CapacityMeter(doc, { doc: w.env.doc, table: w.env.emu.tableName });
    const store = new JobStore(doc, { tableName: w.env.emu.tableName });
    try {
      const { job } = await store.create(spec(sized(150 * KB, "in")));
      const lease = await claimed(store, job.id, "w1");
      meter.reset();
      await store.heartbeat(lease, { progress: { done: 1 } });
      const plain = meter.reset();
      expect(totalWru(plain)).toBeLessThanOrEqual(3);
      const checkpoint = sized(LIMITS.maxCheckpointBytes, "cp");
      await store.heartbeat(lease, { checkpoint });
      const withCheckpoint = meter.reset();
      // Its own item (64 KB and its key, rounded up) plus the plain beat; the old layout paid it three times over.
      expect(totalWru(withCheckpoint)).toBeLessThanOrEqual(Math.ceil((LIMITS.maxCheckpointBytes + 200) / KB) + 3);
      await store.heartbeat(lease, { checkpoint });
      expect(totalWru(meter.reset())).toBeLessThanOrEqual(3); // unchanged: not written again
    } finally {
      doc.destroy();
    }
  });
});

describe("checkpoints stay fenced", () => {
  test("a checkpoint written after the lease was lost is never resumed from: the next attempt resumes from the last one the record names", async () => {
    const clock = manualClock();
    const store = w.store({ now: clock.now });
    const { job } = await store.create(spec({ n: 1 }));
    const first = await claimed(store, job.id, "w-old");
    const kept = sized(2 * KB, "kept");
    await store.heartbeat(first, { checkpoint: kept });
    clock.advance(LEASE_MS + 1);
    const second = await claimed(store, job.id, "w-new");
    expect(second.job.checkpoint).toEqual(kept);
    await expect(store.heartbeat(first, { checkpoint: sized(2 * KB, "stale") })).rejects.toBeInstanceOf(LeaseLostError);
    await store.release(second);
    const third = await claimed(store, job.id, "w-third");
    expect(third.job.checkpoint).toEqual(kept);
  });

  test("a lease lost between a checkpoint's value write and the record's pointer update: the next attempt resumes from the checkpoint before it", async () => {
    const clock = manualClock();
    const store = w.store({ now: clock.now });
    const { job } = await store.create(spec({ n: 2 }));
    const first = await claimed(store, job.id, "w-old");
    const kept = sized(3 * KB, "kept");
    await store.heartbeat(first, { checkpoint: kept });
    // The old worker's next checkpoint: its value item lands, then its record write hangs on the wire.
    const hung = w.dynamo.injectNext("hang", (t, body) => target("UpdateItem")(t) && JSON.stringify(body).includes("refs"));
    const beat = store.heartbeat(first, { checkpoint: sized(3 * KB, "late") }, { timeoutMs: 1_500 }).then(
      () => "written",
      (e: unknown) => e,
    );
    await hung;
    clock.advance(LEASE_MS + 1);
    const second = await claimed(store, job.id, "w-new");
    expect(second.job.checkpoint).toEqual(kept);
    const outcome = await beat;
    expect(outcome).not.toBe("written");
    // Whatever the old worker's resend does now, its fence refuses it.
    await expect(store.heartbeat(first, { checkpoint: sized(3 * KB, "later") })).rejects.toBeInstanceOf(LeaseLostError);
    await store.release(second);
    const third = await claimed(store, job.id, "w-third");
    expect(third.job.checkpoint).toEqual(kept);
    // The refused worker's values exist, named by its attempt, and nothing points at them.
    const record = (await rawItem(job.id))!;
    const orphans = await itemsStartingWith(`${job.id}#checkpoint#${first.token}#`);
    const pointedAt = (record.refs as { checkpoint?: { key: string } }).checkpoint?.key;
    expect(orphans.length).toBeGreaterThanOrEqual(2);
    expect(orphans.filter((it) => it.id !== pointedAt).every((it) => typeof it.expiresAt === "number")).toBe(true);
  });
});

describe("old values are cleaned up", () => {
  test("every value item carries a TTL: a finished job's values expire with it, superseded checkpoints soon after the job's runtime limit", async () => {
    const clock = manualClock();
    const store = w.store({ now: clock.now, retentionDays: 1 });
    const { job } = await store.create({ ...spec(sized(10 * KB, "in")), timeoutMs: 60_000 });
    const lease = await claimed(store, job.id, "w1");
    for (let i = 0; i < 3; i++) {
      clock.advance(500);
      await store.heartbeat(lease, { checkpoint: sized(KB, i) });
    }
    const done = (await store.succeed(lease, sized(5 * KB, "out"))) as SucceededJob;
    const values = await itemsStartingWith(`${job.id}#`);
    const items = values;
    expect(items.map((it) => String(it.id).split("#")[1]).sort()).toEqual(["checkpoint", "checkpoint", "checkpoint", "input", "result"]);
    const byField = (f: string) => items.filter((it) => String(it.id).split("#")[1] === f).map((it) => it.expiresAt as number);
    // The result lives exactly as long as the job's record; the input, set when the job could not
    // yet know when it would start, outlives it by at most START_WAIT_MS and a day.
    expect(byField("result")).toEqual([done.expiresAt]);
    const runtimeEnd = Math.ceil((done.firstStartedAt! + 60_000) / 1000);
    expect(byField("input")[0]).toBeLessThanOrEqual(done.expiresAt + (START_WAIT_MS + 24 * 3600_000) / 1000 + 60);
    // Checkpoints are never resumed after the runtime limit: they go within the hour after it, retention or not.
    for (const exp of byField("checkpoint")) expect(exp).toBeLessThanOrEqual(Math.min(runtimeEnd + 3600, Math.ceil((clock.now() + CHECKPOINT_HORIZON_MS) / 1000)));
    // Past every TTL, nothing of the job is left (local/ttl.ts stands in for DynamoDB's TTL).
    await expireItems(w.env.doc, w.env.emu.tableName, (done.expiresAt + (START_WAIT_MS + 2 * 24 * 3600_000) / 1000) * 1000);
    const left = await itemsStartingWith(job.id);
    expect(left).toHaveLength(0);
  });

  test("a long job's checkpoint item lives hours, not its run: a heartbeat copies the one the record names before it expires, and a claim that finds it gone starts from the beginning", async () => {
    const clock = manualClock();
    const store = w.store({ now: clock.now });
    const { job } = await store.create({ ...spec({ n: 7 }), timeoutMs: 7 * 24 * 3600_000 });
    const lease = await claimed(store, job.id, "w1");
    const checkpoint = sized(2 * KB, "long");
    await store.heartbeat(lease, { checkpoint });
    const refOf = async () => ((await rawItem(job.id))!.refs as Record<string, { key: string; exp: number }>).checkpoint!;
    const first = await refOf();
    expect(first.exp).toBeLessThanOrEqual(Math.ceil((clock.now() + CHECKPOINT_HORIZON_MS) / 1000));
    clock.advance(CHECKPOINT_HORIZON_MS / 4);
    await store.heartbeat(lease, {});
    expect((await refOf()).key).toBe(first.key); // still lasting: not rewritten
    clock.advance(CHECKPOINT_HORIZON_MS / 2);
    await store.heartbeat(lease, {});
    const copied = await refOf();
    expect(copied.key).not.toBe(first.key);
    expect(copied.exp).toBeGreaterThan(first.exp);
    expect((await store.get(job.id))?.checkpoint).toEqual(checkpoint);
    // Its worker gone and no sweep for far longer than the horizon: the checkpoint has expired, the job has not.
    clock.advance(CHECKPOINT_HORIZON_MS * 2);
    const next = await claimed(store, job.id, "w2");
    expect(next.job.input).toEqual({ n: 7 });
    expect(next.job.checkpoint).toBeUndefined();
  });

  test("a record with small inline values and a few retried attempts stays under 1 KB", async () => {
    const clock = manualClock();
    const store = w.store({ now: clock.now });
    // Values of a few ids, as most inputs and checkpoints are; worker ids as ECS names them (core/death-events.ts).
    const { job } = await store.create({ ...spec({ orderId: "ord_8f3a2c19", region: "eu-west-1" }), maxAttempts: 5 });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const lease = await claimed(store, job.id, fargateWorkerId(randomBytes(16).toString("hex")));
      await store.heartbeat(lease, { checkpoint: { page: attempt, cursor: "c_91d2" }, progress: { done: attempt, total: 10, message: "copying rows" } });
      expect(itemBytes((await rawItem(job.id))!)).toBeLessThan(KB);
      // A real failure: what the handler threw, with its stack (kept beside the record, not in it).
      const thrown = new Error("the downstream API answered 503");
      if (attempt < 3) await store.fail(lease, { code: "handler_error", message: thrown.message, stack: thrown.stack! }, { retryable: true, backoffMs: 0 });
    }
  });

  test("a value that expired before its job could run ends the job, recorded, instead of running it on nothing", async () => {
    const clock = manualClock();
    const store = w.store({ now: clock.now, retentionDays: 1 });
    const { job } = await store.create(spec(sized(INLINE_VALUE_BYTES * 4, "in")));
    const record = (await rawItem(job.id))!;
    const ref = (record.refs as Record<string, { exp: number }>).input!;
    clock.set((ref.exp + 1) * 1000);
    const c = await store.claim(job.id, "w1", LEASE_MS);
    expect(c).toMatchObject({ ok: false, reason: "finished" });
    const ended = (await store.get(job.id)) as FailedJob;
    expect(ended.status).toBe("failed");
    expect(ended.error).toMatchObject({ code: "invalid_input" });
    expect(ended.error.message).toMatch(/input expired/);
  });

  test("a retry of a job that waited long copies its input to a fresh TTL and starts without the failed run's checkpoint", async () => {
    const clock = manualClock();
    const store = w.store({ now: clock.now, retentionDays: 30 });
    const input = sized(2 * KB, "in");
    const { job } = await store.create({ ...spec(input), maxAttempts: 1 });
    const lease = await claimed(store, job.id, "w1");
    await store.heartbeat(lease, { checkpoint: sized(2 * KB, "cp") });
    await store.fail(lease, { code: "handler_error", message: "boom" }, { retryable: false });
    const before = ((await rawItem(job.id))!.refs as Record<string, { key: string; exp: number }>).input!;
    clock.advance(3 * 24 * 3600_000);
    const retried = await store.retry(job.id);
    expect(retried.input).toEqual(input);
    const after = ((await rawItem(job.id))!.refs as Record<string, { key: string; exp: number }>);
    expect(after.checkpoint).toBeUndefined();
    expect(after.input!.key).not.toBe(before.key);
    expect(after.input!.exp).toBeGreaterThan(before.exp);
    const again = await claimed(store, job.id, "w2");
    expect(again.job.input).toEqual(input);
    expect(again.job.checkpoint).toBeUndefined();
  });

  test("a job that waits to start longer than its input's TTL allows gets a copy of it from the sweeper's resend, once", async () => {
    const clock = manualClock();
    const store = w.store({ now: clock.now });
    const input = sized(2 * KB, "waiting");
    const { job } = await store.create(spec(input));
    const refOf = async () => ((await rawItem(job.id))!.refs as Record<string, { key: string; exp: number }>).input!;
    const before = await refOf();
    clock.advance(START_WAIT_MS * 0.75);
    const overdue = (await store.listOverdue(clock.now(), 100)).jobs.find((j) => j.id === job.id)!;
    expect(overdue.status).toBe("queued");
    await store.pushStartDeadline(overdue as QueuedJob);
    const after = await refOf();
    expect(after.key).not.toBe(before.key);
    expect(after.exp * 1000).toBeGreaterThan(clock.now() + START_WAIT_MS);
    // The next resend soon after finds it lasting and writes no copy.
    clock.advance(10 * 60_000);
    await store.pushStartDeadline((await store.getRecord(job.id)) as QueuedJob);
    expect((await refOf()).key).toBe(after.key);
    expect((await claimed(store, job.id, "w1")).job.input).toEqual(input);
  });

  test("the due index holds keys only, so a heartbeat's entry there is a few bytes whatever the job carries", async () => {
    const store = w.store();
    const { job } = await store.create(spec(sized(50 * KB, "in")));
    await claimed(store, job.id, "w1");
    const out = await w.env.doc.send(new ScanCommand({ TableName: w.env.emu.tableName, IndexName: TABLE.dueIndex.name }));
    const entry = (out.Items ?? []).find((it) => it.id === job.id)!;
    expect(Object.keys(entry).sort()).toEqual([TABLE.dueIndex.partitionKey, TABLE.dueIndex.sortKey, "id"].sort());
    for (const f of VALUE_FIELDS) expect(entry[f]).toBeUndefined();
  });
});

describe("the grants cover the layout", () => {
  test("every DynamoDB call a worker and the sweeper make on jobs with large values is one their IAM policy grants", async () => {
    const calls = (doc: ReturnType<typeof dynamoClient>) => {
      const seen = countCalls(doc);
      return () => [...seen.keys()].map((name) => name.replace(/Command$/, ""));
    };
    const clock = manualClock();
    const workerDoc = dynamoClient({ dynamodb: w.env.emu.dynamoEndpoint });
    const sweeperDoc = dynamoClient({ dynamodb: w.env.emu.dynamoEndpoint });
    const workerCalls = calls(workerDoc);
    const sweeperCalls = calls(sweeperDoc);
    try {
      const caller = w.store({ now: clock.now });
      const worker = new JobStore(workerDoc, { tableName: w.env.emu.tableName, now: clock.now });
      const sweeper = new JobStore(sweeperDoc, { tableName: w.env.emu.tableName, now: clock.now });
      const { job } = await caller.create(spec(sized(4 * KB, "in")));
      const { job: waiting } = await caller.create(spec(sized(4 * KB, "waits")));
      const lease = await claimed(worker, job.id, "w1");
      await worker.heartbeat(lease, { checkpoint: sized(4 * KB, "cp") });
      clock.advance(LEASE_MS + 1);
      for (const j of (await sweeper.listOverdue(clock.now(), 100)).jobs) if (j.id === job.id && j.status === "running") await sweeper.reclaim(j);
      const again = await claimed(worker, job.id, "w2");
      await worker.succeed(again, sized(4 * KB, "out"));
      clock.advance(START_WAIT_MS * 0.75);
      for (const j of (await sweeper.listOverdue(clock.now(), 100)).jobs) if (j.id === waiting.id && j.status === "queued") await sweeper.pushStartDeadline(j);
    } finally {
      workerDoc.destroy();
      sweeperDoc.destroy();
    }
    expect(workerCalls().filter((c) => !ACCESS.worker.table.includes(c as TableAction))).toEqual([]);
    expect(workerCalls().filter((c) => !ACCESS.fargate.table.includes(c as TableAction))).toEqual([]);
    expect(sweeperCalls().filter((c) => c !== "Query" && !ACCESS.sweeper.table.includes(c as TableAction))).toEqual([]);
    // The calls the layout added are among them: value puts and batched value reads.
    expect(workerCalls()).toEqual(expect.arrayContaining(["PutItem", "BatchGetItem"]));
    expect(sweeperCalls()).toEqual(expect.arrayContaining(["PutItem", "BatchGetItem"]));
  });
});
