/**
 * Exactly-once effects beyond Warden's table (docs/effects.md): the fence a handler carries into
 * its own table's writes, and the stable key of a logical step. Real leases from the store (a
 * claim, then a takeover after the lease ran out), real conditional writes to a table of the
 * test's own on dynalite and on DynamoDB Local, and a real handler run through the runner.
 */
import { GetCommand, PutCommand, TransactWriteCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { z } from "zod";
import { beforeAll, describe, expect, test } from "vitest";
import { effectKey, FencedOutError, fencedPut, fencedUpdate, FENCE_ATTRIBUTE, isFencedOut, type Fence } from "../core/fence.js";
import { DeathReaper } from "../core/deaths.js";
import type { Lease } from "../core/job.js";
import { MemoryMetrics } from "../core/metrics.js";
import { defineJob, Registry } from "../core/registry.js";
import { Runner } from "../core/runner.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import type { NewJob } from "../core/store.js";
import { ensureAppTable } from "../local/emulators.js";
import { BACKENDS, manualClock, useEmulators, waitFor, type TestEnv } from "./support/emulators.js";

const spec = (): NewJob => ({ owner: "alice", type: "demo.sleep", queue: "default", input: {}, maxAttempts: 3, timeoutMs: 3_600_000 });
const fenceOf = (l: Lease): Fence => ({ jobId: l.jobId, token: l.token });
const refusal = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

describe.each(BACKENDS)("on %s", (backend) => {
  const env: TestEnv = useEmulators(`effects-${backend}`, { dynamodb: backend });
  const table = `effects-${backend}`;
  beforeAll(async () => {
    await ensureAppTable(env.emu.dynamoEndpoint, table);
  });
  const row = async (id: string) => (await env.doc.send(new GetCommand({ TableName: table, Key: { id }, ConsistentRead: true }))).Item;

  test("a fenced write of an attempt that lost its lease is refused once a later attempt has written the row; each attempt may write its own again", async () => {
    const clock = manualClock(1_800_000_000_000);
    const store = env.store({ now: clock.now });
    const { job } = await store.create(spec());
    const first = await store.claim(job.id, "frozen", 1_000);
    if (!first.ok) throw new Error("claim refused");
    // The first worker froze past its lease; another takes the job over.
    clock.advance(5_000);
    const second = await store.claim(job.id, "alive", 1_000);
    if (!second.ok) throw new Error("takeover refused");
    const [stale, live] = [fenceOf(first.lease), fenceOf(second.lease)];
    expect(live.token).toBeGreaterThan(stale.token);

    const id = effectKey(job.id, "charge");
    // The stale attempt wrote before it froze: nothing higher was there, so it landed …
    await env.doc.send(new PutCommand({ TableName: table, ...fencedPut(stale, { id, amount: 3 }) }));
    // … the live attempt's write of the same step replaces it, and lands again when resent …
    for (let i = 0; i < 2; i++) await env.doc.send(new PutCommand({ TableName: table, ...fencedPut(live, { id, amount: 5 }) }));
    // … and the stale attempt, continued, is refused both ways: a put and an update.
    const put = await refusal(env.doc.send(new PutCommand({ TableName: table, ...fencedPut(stale, { id, amount: 3 }) })));
    expect(isFencedOut(put)).toBe(true);
    const update = fencedUpdate(stale, { UpdateExpression: "SET #a = :a", ExpressionAttributeNames: { "#a": "amount" }, ExpressionAttributeValues: { ":a": 3 } });
    expect(isFencedOut(await refusal(env.doc.send(new UpdateCommand({ TableName: table, Key: { id }, ...update }))))).toBe(true);
    expect(await row(id)).toEqual({ id, amount: 5, [FENCE_ATTRIBUTE]: live.token });

    // The live attempt's own update, with a condition of its own beside the fence.
    const mine = fencedUpdate(live, { UpdateExpression: "SET #a = :a", ConditionExpression: "#a < :cap", ExpressionAttributeNames: { "#a": "amount" }, ExpressionAttributeValues: { ":a": 6, ":cap": 10 } });
    await env.doc.send(new UpdateCommand({ TableName: table, Key: { id }, ...mine }));
    expect(await row(id)).toEqual({ id, amount: 6, [FENCE_ATTRIBUTE]: live.token });

    // Inside a transaction (DynamoDB Local has them), the stale attempt's write cancels it, and is told apart the same way.
    if (backend === "dynamodb-local") {
      const inTx = await refusal(env.doc.send(new TransactWriteCommand({ TransactItems: [{ Put: { TableName: table, ...fencedPut(stale, { id, amount: 3 }) } }] })));
      expect((inTx as Error).name).toBe("TransactionCanceledException");
      expect(isFencedOut(inTx)).toBe(true);
    }
  });

  test("a handler that throws FencedOutError after a takeover lands nothing: the runner's settle is refused by the later token, and its log says a fenced write was refused", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const fenced = defineJob({
      name: "effects.fenced",
      input: z.object({}),
      runsOn: "lambda",
      handler: async (_input, ctx) => {
        started();
        await gate;
        // As a fenced write refused because a later attempt wrote first.
        throw new FencedOutError(ctx.fence);
      },
    });
    // A long lease: the keeper does not heartbeat (and learn of the takeover) before the handler throws.
    const cfg = loadRuntime({ ...env.emu.env, WARDEN_LEASE_SECONDS: "60" });
    const s = buildServices(cfg, { doc: env.doc, sqs: env.sqs, metrics: new MemoryMetrics(), registry: new Registry().register(fenced) });
    const warns: string[] = [];
    const runner = new Runner(s, { workerId: "w-fenced", kind: "lambda", log: { info() {}, warn: (m: string) => void warns.push(m), error() {} } });
    const { job } = await s.store.create({ owner: "alice", type: fenced.name, queue: "default", input: {}, maxAttempts: 3, timeoutMs: 60_000 });
    const outcome = runner.run(job.id);
    await running;
    // The worker is reported dead while its attempt still runs (a death event), and another claims the job.
    await new DeathReaper(s).onDeath({ workerId: "w-fenced", at: Date.now(), reason: "test" });
    const taken = await s.store.claim(job.id, "w-other", 60_000);
    if (!taken.ok) throw new Error("the takeover's claim was refused");
    release();
    expect(await outcome).toMatchObject({ claimed: true, outcome: "lease_lost" });
    const after = await s.store.mustGet(job.id);
    expect(after).toMatchObject({ status: "running", workerId: "w-other", token: taken.lease.token });
    expect(warns.some((w) => w.includes("a fenced write of the handler was refused"))).toBe(true);
    expect(warns.some((w) => w.includes("the handler failed"))).toBe(false);
  });

  test("the same step has the same key in every attempt of the job, and each attempt a higher token: ctx.fence and ctx.effectKey through the runner", async () => {
    const seen: { attempt: number; fence: Fence; key: string }[] = [];
    const flaky = defineJob({
      name: "effects.flaky",
      input: z.object({}),
      runsOn: "lambda",
      limits: { backoffBaseMs: 1, backoffMaxMs: 1 },
      handler: async (_input, ctx) => {
        seen.push({ attempt: ctx.attempt, fence: ctx.fence, key: ctx.effectKey("charge") });
        if (ctx.attempt === 1) throw new Error("the first attempt fails");
        return { ok: true };
      },
    });
    const cfg = loadRuntime({ ...env.emu.env, WARDEN_LEASE_SECONDS: "5" });
    const s = buildServices(cfg, { doc: env.doc, sqs: env.sqs, metrics: new MemoryMetrics(), registry: new Registry().register(flaky) });
    const runner = new Runner(s, { workerId: "w-effects", kind: "lambda", log: { info() {}, warn() {}, error() {} } });
    const { job } = await s.store.create({ owner: "alice", type: flaky.name, queue: "default", input: {}, maxAttempts: 3, timeoutMs: 60_000 });
    await waitFor(async () => ((await runner.run(job.id)).claimed && (await s.store.mustGet(job.id)).status === "succeeded") || undefined, 10_000, "the job to succeed on its second attempt");
    expect(seen.map((x) => x.attempt)).toEqual([1, 2]);
    expect(seen.map((x) => x.key)).toEqual([`${job.id}:charge`, `${job.id}:charge`]);
    expect(seen.every((x) => x.fence.jobId === job.id)).toBe(true);
    expect(seen[1]!.fence.token).toBeGreaterThan(seen[0]!.fence.token);
  });
});

describe("fenced expressions", () => {
  const fence = { jobId: "01JOB", token: 4 };
  test("join the update's SET clause wherever it is, and never a placeholder named like it", () => {
    const at = (e: string) => fencedUpdate(fence, { UpdateExpression: e }).UpdateExpression;
    expect(at("set #a = :a")).toBe("SET #wardenFence = :wardenFence, #a = :a");
    expect(at("REMOVE #x SET #a = :a")).toBe("REMOVE #x SET #wardenFence = :wardenFence, #a = :a");
    expect(at("REMOVE #set ADD #c :set")).toBe("SET #wardenFence = :wardenFence REMOVE #set ADD #c :set");
    expect(at("SET#a=:a")).toBe("SET #wardenFence = :wardenFence, #a=:a");
  });

  test("refuse the fence's own placeholders in the caller's parts", () => {
    expect(() => fencedUpdate(fence, { UpdateExpression: "SET #wardenFence = :v", ExpressionAttributeNames: { "#wardenFence": "x" } })).toThrow(/the fence's own placeholders/);
    expect(() => fencedPut(fence, { id: "r" }, { ExpressionAttributeValues: { ":wardenFence": 1 } })).toThrow(/the fence's own placeholders/);
  });
});

describe("effect keys", () => {
  test("are the job and the step; a step that is empty, too long or has spaces is refused with what a step may be", () => {
    expect(effectKey("01JOB", "row/42")).toBe("01JOB:row/42");
    for (const bad of ["", " charge", "a b", "x".repeat(201)]) expect(() => effectKey("01JOB", bad)).toThrow(/an effect's step is 1 to 200 letters/);
  });
});
