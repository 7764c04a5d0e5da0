/**
 * Pauses, concurrency limits and rate limits (core/gates.ts) through the store's claim, on
 * dynalite and on DynamoDB Local: a job a gate refuses is held (queued, no attempt spent, out of
 * the wait index), what frees it wakes it and rings its doorbell, and the sweeper finds the holds
 * and slots that a lost wake or a crash left behind.
 */
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, test } from "vitest";
import { type QueueName, type Lane } from "../core/config.js";
import { GATE_LIMITS } from "../core/gates.js";
import type { QueuedJob } from "../core/job.js";
import { MemoryMetrics } from "../core/metrics.js";
import type { Doorbell } from "../core/queue.js";
import type { NewJob } from "../core/store.js";
import { Sweeper } from "../core/sweeper.js";
import { expireItems } from "../local/ttl.js";
import { dynamoClient } from "../core/aws.js";
import { JobStore, type ClaimResult } from "../core/store.js";
import { BACKENDS, manualClock, useEmulators, type TestEnv } from "./support/emulators.js";

let env: TestEnv;

const spec = (over: Partial<NewJob> = {}): NewJob => ({ owner: "alice", type: "demo.sleep", queue: "default", input: {}, maxAttempts: 3, timeoutMs: 3_600_000, ...over });

/** The doorbells the store rang, in order (what SQS would have been sent). */
function recordingDoorbell(): Doorbell & { rung: { id: string; delayMs: number }[] } {
  const rung: { id: string; delayMs: number }[] = [];
  return { rung, send: async (_q: Lane, ids: string[], delayMs = 0) => void rung.push(...ids.map((id) => ({ id, delayMs }))) };
}

/**
 * A store whose claim writes of `jobId` each wait at the client until the test lets them go: the
 * claim's gates have passed by then (what they took is taken), so a test can order two claims of
 * one job the way a slow claimer and a fast one meet. `parked()` resolves when the next write
 * waits; `release()` lets the waiting one go.
 */
function parkedClaimer(jobId: string) {
  const doc = dynamoClient({ dynamodb: env.emu.dynamoEndpoint });
  let arrivals = 0;
  const waiting: (() => void)[] = [];
  let arrived: (() => void) | undefined;
  doc.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as { Key?: { id?: string | { S?: string } }; ExpressionAttributeNames?: Record<string, string> };
      const id = typeof input.Key?.id === "string" ? input.Key.id : input.Key?.id?.S;
      if (id === jobId && Object.values(input.ExpressionAttributeNames ?? {}).includes("claimId")) {
        const go = new Promise<void>((r) => waiting.push(r));
        arrivals++;
        arrived?.();
        await go;
      }
      return next(args);
    },
    { step: "initialize", name: "parkClaimWrite" },
  );
  let seen = 0;
  return {
    store: new JobStore(doc, { tableName: env.emu.tableName }),
    /** Resolves when one more write than before is waiting. */
    parked: () => {
      const want = ++seen;
      return arrivals >= want ? Promise.resolve() : new Promise<void>((r) => (arrived = () => arrivals >= want && r()));
    },
    release: () => waiting.shift()?.(),
    close: () => {
      for (const go of waiting.splice(0)) go();
      doc.destroy();
    },
  };
}

const raw = async (id: string) => (await env.doc.send(new GetCommand({ TableName: env.emu.tableName, Key: { id }, ConsistentRead: true }))).Item;

describe.each(BACKENDS)("on %s", (backend) => {
  const own = useEmulators(`limits-${backend}`, { dynamodb: backend });
  beforeAll(() => {
    env = own;
  });

  test("a key with a concurrency limit of 2: the third claim is held without spending an attempt, and the first end hands it its slot and rings it", async () => {
    const bell = recordingDoorbell();
    const store = env.store({ doorbell: bell });
    const key = `tenant-${backend}-a`;
    await store.controls.setLimit(`key:${key}`, { concurrency: 2 }, "test", Date.now());
    const jobs = await Promise.all([1, 2, 3].map(async () => (await store.create(spec({ concurrencyKey: key }))).job));
    const first = await store.claim(jobs[0]!.id, "w1", 30_000);
    const second = await store.claim(jobs[1]!.id, "w2", 30_000);
    const third = await store.claim(jobs[2]!.id, "w3", 30_000);
    expect(first.ok && second.ok).toBe(true);
    expect(third).toMatchObject({ ok: false, reason: "held" });
    const held = (await store.get(jobs[2]!.id)) as QueuedJob;
    expect(held).toMatchObject({ status: "queued", attempts: 0, hold: { by: "concurrency", key: `key:${key}`, limit: 2 } });
    const item = await raw(held.id);
    expect(item).toMatchObject({ holdOn: `concurrency#key:${key}` });
    expect(item).not.toHaveProperty("waitShard"); // not claimable, so not counted as waiting for a claim
    expect(Object.keys((await raw(`@slots#key:${key}`))!.holders).sort()).toEqual([jobs[0]!.id, jobs[1]!.id].sort());

    if (!first.ok) throw new Error("unreachable");
    await store.succeed(first.lease, 1);
    // The slot went straight to the held job: it is claimable, rung, and no fresh arrival can take its slot.
    expect(bell.rung).toEqual([{ id: held.id, delayMs: 0 }]);
    const woken = (await store.get(held.id)) as QueuedJob;
    expect(woken.hold).toBeUndefined();
    expect(Object.keys((await raw(`@slots#key:${key}`))!.holders).sort()).toEqual([jobs[1]!.id, held.id].sort());
    const late = (await store.create(spec({ concurrencyKey: key }))).job;
    expect(await store.claim(late.id, "w4", 30_000)).toMatchObject({ ok: false, reason: "held" });
    const now = await store.claim(held.id, "w3", 30_000);
    expect(now.ok).toBe(true);
    if (now.ok) expect(now.lease.job).toMatchObject({ attempts: 1, slots: [{ key: `key:${key}` }] });
  });

  test("a paused queue holds its claims; a resume wakes every held job and rings it, and a type's pause holds only that type", async () => {
    const bell = recordingDoorbell();
    const store = env.store({ doorbell: bell });
    const t = Date.now();
    await store.controls.pause("queue:large", "oncall", t);
    const big = await Promise.all([1, 2, 3].map(async () => (await store.create(spec({ queue: "large" }))).job));
    const other = (await store.create(spec())).job;
    for (const j of big) expect(await store.claim(j.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held" });
    expect((await store.get(big[0]!.id)) as QueuedJob).toMatchObject({ attempts: 0, hold: { by: "pause", key: "queue:large" } });
    const claimed = await store.claim(other.id, "w", 30_000);
    expect(claimed.ok).toBe(true);

    await store.controls.resume("queue:large", t + 1);
    const woken = await store.gates.wake("pause#queue:large", 100);
    expect(woken.sort()).toEqual(big.map((j) => j.id).sort());
    expect(bell.rung.map((r) => r.id).sort()).toEqual(big.map((j) => j.id).sort());
    for (const j of big) expect((await store.claim(j.id, "w", 30_000)).ok).toBe(true);

    await store.controls.pause("type:demo.echo", "oncall", t + 2);
    const echo = (await store.create(spec({ type: "demo.echo" }))).job;
    const sleep = (await store.create(spec())).job;
    expect(await store.claim(echo.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held" });
    expect((await store.claim(sleep.id, "w", 30_000)).ok).toBe(true);
    await store.controls.resume("type:demo.echo", t + 3);
  });

  test("a rate limit of 3 per second: the fourth start is held until the first leaves the window, its doorbell delayed to then", async () => {
    const clock = manualClock(1_700_000_000_000);
    const bell = recordingDoorbell();
    const store = env.store({ now: clock.now, doorbell: bell });
    const key = `api-${backend}`;
    await store.controls.setLimit(`key:${key}`, { rate: { starts: 3, perMs: 1_000 } }, "test", clock.now());
    const jobs = await Promise.all([1, 2, 3, 4].map(async () => (await store.create(spec({ concurrencyKey: key }))).job));
    const t0 = clock.now();
    for (const j of jobs.slice(0, 3)) {
      expect((await store.claim(j.id, "w", 30_000)).ok).toBe(true);
      clock.advance(100);
    }
    const refused = await store.claim(jobs[3]!.id, "w", 30_000);
    expect(refused).toMatchObject({ ok: false, reason: "held", job: { hold: { by: "rate", until: t0 + 1_000 } } });
    expect(bell.rung).toEqual([{ id: jobs[3]!.id, delayMs: t0 + 1_000 - clock.now() }]);
    clock.set(t0 + 999);
    expect(await store.claim(jobs[3]!.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held" });
    clock.set(t0 + 1_000);
    const started = await store.claim(jobs[3]!.id, "w", 30_000);
    expect(started.ok).toBe(true);
    if (started.ok) expect(started.lease.job.startedAt).toBe(t0 + 1_000);
  });

  test("a slot a crashed claimer never gave back is found by the sweeper once jobs wait on it, and handed to the longest-held one", async () => {
    const clock = manualClock(Date.now());
    const bell = recordingDoorbell();
    const store = env.store({ now: clock.now, doorbell: bell });
    const key = `crash-${backend}`;
    await store.controls.setLimit(`key:${key}`, { concurrency: 1 }, "test", clock.now());
    const crashed = (await store.create(spec({ concurrencyKey: key }))).job as QueuedJob;
    // The claimer took the slot and died before its claim's write: exactly the gates' first step.
    expect(await store.gates.pass(crashed, clock.now())).toMatchObject({ ok: true });
    const waiting = (await store.create(spec({ concurrencyKey: key }))).job;
    expect(await store.claim(waiting.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held" });

    const services = { store, queue: bell, metrics: new MemoryMetrics(), now: clock.now, doc: env.doc, cfg: { tableName: env.emu.tableName } };
    const early = await new Sweeper(services).sweep();
    expect(early.counts.slotFreed).toBe(0); // within its grace: its claim may still land
    clock.advance(GATE_LIMITS.slotGraceMs + 1);
    const report = await new Sweeper(services).sweep();
    expect(report.touched.slotFreed).toEqual([crashed.id]);
    expect(report.touched.unheld).toEqual([waiting.id]);
    expect(services.metrics.points.find((p) => p.name === "StuckJobs" && p.dims.State === "held")?.value).toBe(1);
    expect(bell.rung.map((r) => r.id)).toEqual(expect.arrayContaining([crashed.id, waiting.id]));
    expect(Object.keys((await raw(`@slots#key:${key}`))!.holders)).toEqual([waiting.id]);
    expect((await store.claim(waiting.id, "w", 30_000)).ok).toBe(true);
    // The crashed claimer's job was rung again and waits its turn behind the slot's new holder.
    expect(await store.claim(crashed.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held" });
  });

  test("a claim that finds its job's slot just taken by another claim of it is refused as contended and rings the job again; past the grace it is held, and the recount gives that slot back to it", async () => {
    const clock = manualClock(Date.now());
    const bell = recordingDoorbell();
    const store = env.store({ now: clock.now, doorbell: bell });
    const key = `sibling-${backend}`;
    await store.controls.setLimit(`key:${key}`, { concurrency: 2 }, "test", clock.now());
    const job = (await store.create(spec({ concurrencyKey: key }))).job as QueuedJob;
    // Another claimer of the job (a duplicate doorbell) passed its gates and has not written yet.
    expect(await store.gates.pass(job, clock.now())).toMatchObject({ ok: true });
    const refused = await store.claim(job.id, "w", 30_000);
    expect(refused).toMatchObject({ ok: false, reason: "leased" });
    expect(bell.rung).toEqual([{ id: job.id, delayMs: GATE_LIMITS.contendedRetryMs }]);
    expect(await store.getRecord(job.id)).toMatchObject({ status: "queued", attempts: 0 });
    expect((await store.getRecord(job.id)) as QueuedJob).not.toHaveProperty("hold"); // not held: the other claim may land

    // That claimer never wrote (it crashed): past the grace its slot is no claim's in flight.
    clock.advance(GATE_LIMITS.slotGraceMs + 1);
    expect(await store.claim(job.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held" });
    const services = { store, queue: bell, metrics: new MemoryMetrics(), now: clock.now, doc: env.doc, cfg: { tableName: env.emu.tableName } };
    const report = await new Sweeper(services).sweep();
    expect(report.touched.slotFreed).toEqual([job.id]);
    expect(report.touched.unheld).toEqual([job.id]);
    const claimed = await store.claim(job.id, "w", 30_000);
    expect(claimed.ok).toBe(true);
    if (claimed.ok) expect(claimed.lease.job).toMatchObject({ attempts: 1, slots: [{ key: `key:${key}` }] });
  });

  test("a held job whose wake was lost is woken at its deadline by the sweeper; one still held is looked at later, backing off", async () => {
    const clock = manualClock(Date.now());
    const store = env.store({ now: clock.now });
    const bell = recordingDoorbell();
    await store.controls.pause("type:demo.lost", "oncall", clock.now());
    const job = (await store.create(spec({ type: "demo.lost" }))).job;
    expect(await store.claim(job.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held" });
    const services = { store: env.store({ now: clock.now, doorbell: bell }), queue: bell, metrics: new MemoryMetrics(), now: clock.now, doc: env.doc, cfg: { tableName: env.emu.tableName } };

    clock.advance(GATE_LIMITS.holdRecheckMs + 1);
    const still = await new Sweeper(services).sweep();
    expect(still.touched.reheld).toEqual([job.id]);
    const pushed = (await store.get(job.id)) as QueuedJob;
    expect(pushed.dueAt - clock.now()).toBe(GATE_LIMITS.holdRecheckMs + 1); // as long again as it has been held

    // Resumed by another process whose wakes never ran (it died after the settings write).
    await env.store({ now: clock.now }).controls.resume("type:demo.lost", clock.now());
    clock.advance(GATE_LIMITS.holdRecheckMs * 2 + 1);
    const woken = await new Sweeper(services).sweep();
    expect(woken.touched.unheld).toEqual([job.id]);
    expect(bell.rung.map((r) => r.id)).toContain(job.id);
    expect(((await store.get(job.id)) as QueuedJob).hold).toBeUndefined();
  });
});

describe.each(BACKENDS)("under the fault model, on %s", (backend) => {
  const own = useEmulators(`limits-faults-${backend}`, { dynamodb: backend });
  beforeAll(() => {
    env = own;
  });
  const services = (store: ReturnType<TestEnv["store"]>, bell: Doorbell, now: () => number) => ({ store, queue: bell, metrics: new MemoryMetrics(), now, doc: env.doc, cfg: { tableName: env.emu.tableName } });

  test("a claimer whose clock is behind another's cannot start inside a window the other already filled (starts are logged in order)", async () => {
    const t = 1_800_000_000_000;
    const at = (ms: number) => env.store({ now: () => t + ms });
    const key = `skew-${backend}`;
    await at(0).controls.setLimit(`key:${key}`, { rate: { starts: 2, perMs: 1_000 } }, "test", t);
    const jobs = await Promise.all([1, 2, 3, 4].map(async () => (await at(0).create(spec({ concurrencyKey: key }))).job));
    expect((await at(5).claim(jobs[0]!.id, "w", 30_000)).ok).toBe(true);
    expect((await at(10).claim(jobs[1]!.id, "w", 30_000)).ok).toBe(true);
    expect((await at(1_050).claim(jobs[2]!.id, "w", 30_000)).ok).toBe(true);
    // Its clock says 1,000: behind the start logged at 1,050. It starts at 1,050, not in the window of the first two.
    const late = await at(1_000).claim(jobs[3]!.id, "w", 30_000);
    expect(late.ok).toBe(true);
    const starts = (await at(0).recordsOf(jobs.map((j) => j.id))).map((j) => j.history[0]!.startedAt - t).sort((a, b) => a - b);
    expect(starts).toEqual([5, 10, 1_050, 1_050]);
  });

  test("a rate hold further out than SQS can delay is not rung early, an early doorbell touches nothing, and the sweeper wakes it when its window comes", async () => {
    const clock = manualClock(1_800_000_100_000);
    const bell = recordingDoorbell();
    const store = env.store({ now: clock.now, doorbell: bell });
    const key = `hourly-${backend}`;
    await store.controls.setLimit(`key:${key}`, { rate: { starts: 1, perMs: 3_600_000 } }, "test", clock.now());
    const [a, b] = await Promise.all([1, 2].map(async () => (await store.create(spec({ concurrencyKey: key }))).job));
    expect((await store.claim(a!.id, "w", 30_000)).ok).toBe(true);
    const t0 = clock.now();
    const held = await store.claim(b!.id, "w", 30_000);
    expect(held).toMatchObject({ ok: false, reason: "held", job: { hold: { by: "rate", until: t0 + 3_600_000 }, dueAt: t0 + 3_600_000 } });
    expect(bell.rung).toEqual([]); // an hour is past SQS's 15 minutes: the sweeper rings it then
    const rateItem = await raw(`@rate#key:${key}`);
    clock.advance(20 * 60_000);
    expect(await store.claim(b!.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held", job: { hold: { until: t0 + 3_600_000 } } });
    expect(await raw(`@rate#key:${key}`)).toEqual(rateItem); // an early doorbell read no log and wrote none
    clock.set(t0 + 3_600_001);
    const report = await new Sweeper(services(store, bell, clock.now)).sweep();
    expect(report.touched.unheld).toEqual([b!.id]);
    expect(bell.rung.map((r) => r.id)).toEqual([b!.id]);
    expect((await store.claim(b!.id, "w", 30_000)).ok).toBe(true);
  });

  test("a takeover of an expired lease is refused while its type is paused, and time held does not count against the runtime limit", async () => {
    const clock = manualClock(1_800_000_200_000);
    const store = env.store({ now: clock.now });
    const type = `demo.held-${backend}`;
    const { job } = await store.create(spec({ type, timeoutMs: 60_000 }));
    const first = await store.claim(job.id, "w1", 1_000);
    if (!first.ok) throw new Error("claim refused");
    await store.controls.pause(`type:${type}`, "oncall", clock.now());
    clock.advance(2_000);
    expect(await store.claim(job.id, "w2", 1_000)).toMatchObject({ ok: false, reason: "held", job: { status: "running", attempts: 1 } });
    // Handed back after 1 s of work, then held by the pause for two minutes: far past a 60 s limit counted naively.
    await store.release(first.lease);
    expect(await store.claim(job.id, "w3", 1_000)).toMatchObject({ ok: false, reason: "held" });
    clock.advance(120_000);
    await store.controls.resume(`type:${type}`, clock.now());
    expect(await store.gates.wake(`pause#type:${type}`, 10)).toEqual([job.id]);
    const again = await store.claim(job.id, "w3", 1_000);
    expect(again.ok).toBe(true);
    if (again.ok) expect(again.lease.runtimeDeadline - clock.now()).toBeGreaterThan(50_000);
  });

  test("paused again after a resume whose wakes were cut short: the sweeper's wake pass leaves the held jobs held", async () => {
    const clock = manualClock(1_800_000_300_000);
    const bell = recordingDoorbell();
    const store = env.store({ now: clock.now, doorbell: bell });
    const type = `demo.repaused-${backend}`;
    await store.controls.pause(`type:${type}`, "oncall", clock.now());
    const { job } = await store.create(spec({ type }));
    expect(await store.claim(job.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held" });
    await store.controls.resume(`type:${type}`, clock.now()); // its wakes never ran
    await store.controls.pause(`type:${type}`, "oncall", clock.now());
    for (let i = 0; i < 3; i++) {
      const report = await new Sweeper(services(store, bell, clock.now)).sweep();
      expect(report.counts.unheld).toBe(0);
    }
    expect(bell.rung).toEqual([]);
    expect(((await store.get(job.id)) as QueuedJob).hold).toMatchObject({ by: "pause" });
  });

  test("a slot handed to a job that is then held on another limit goes back, and on to the next job waiting for it", async () => {
    const bell = recordingDoorbell();
    const store = env.store({ doorbell: bell });
    const type = `demo.two-${backend}`;
    const key = `two-${backend}`;
    await store.controls.setLimit(`type:${type}`, { concurrency: 1 }, "test", Date.now());
    await store.controls.setLimit(`key:${key}`, { concurrency: 1 }, "test", Date.now());
    const r = (await store.create(spec({ concurrencyKey: key }))).job; // holds the key's slot
    const h = (await store.create(spec({ type, concurrencyKey: key }))).job; // waits for the key
    const k = (await store.create(spec({ concurrencyKey: key }))).job; // waits for the key after h
    const a = (await store.create(spec({ type }))).job; // fills the type
    const rClaim = await store.claim(r.id, "w", 30_000);
    expect(await store.claim(h.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held", job: { hold: { key: `key:${key}` } } });
    expect(await store.claim(k.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held" });
    expect((await store.claim(a.id, "w", 30_000)).ok).toBe(true);
    if (!rClaim.ok) throw new Error("claim refused");
    await store.succeed(rClaim.lease, 1); // the key's slot goes to h, the longest held
    expect(bell.rung.map((x) => x.id)).toEqual([h.id]);
    // h is held on its type now: the key's slot it was handed goes on to k.
    expect(await store.claim(h.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held", job: { hold: { key: `type:${type}` } } });
    expect(bell.rung.map((x) => x.id)).toEqual([h.id, k.id]);
    expect((await store.claim(k.id, "w", 30_000)).ok).toBe(true);
  });

  test("a job held for a month keeps its input: the sweeper's look copies the value before it would expire", async () => {
    const clock = manualClock(1_800_000_500_000);
    const bell = recordingDoorbell();
    const store = env.store({ now: clock.now, doorbell: bell });
    const type = `demo.month-${backend}`;
    await store.controls.pause(`type:${type}`, "oncall", clock.now());
    const { job } = await store.create(spec({ type, input: { payload: "x".repeat(2_000) } }));
    expect(await store.claim(job.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held" });
    clock.advance(31 * 24 * 3_600_000); // near its input's horizon (a day's wait + its limit + the retention)
    await new Sweeper(services(store, bell, clock.now)).sweep();
    await expireItems(env.doc, env.emu.tableName, clock.now() + 3 * 24 * 3_600_000); // DynamoDB's TTL, days later
    clock.advance(3 * 24 * 3_600_000);
    await store.controls.resume(`type:${type}`, clock.now());
    await store.gates.wake(`pause#type:${type}`, 10);
    const claimed = await store.claim(job.id, "w", 30_000);
    expect(claimed.ok).toBe(true);
    if (claimed.ok) expect(claimed.lease.job.input).toEqual({ payload: "x".repeat(2_000) });
  });

  test("two claims of one job racing its concurrency limit: the one whose write loses gives back only what it took, so the winner's run holds the key's one slot and frees it at its end", async () => {
    const store = env.store();
    const key = `race-${backend}`;
    await store.controls.setLimit(`key:${key}`, { concurrency: 1 }, "test", Date.now());
    const { job } = await store.create(spec({ concurrencyKey: key }));
    const slow = parkedClaimer(job.id);
    const fast = parkedClaimer(job.id);
    const claims: ClaimResult[] = [];
    try {
      // The slow claimer passes its gates and is held up before its write; the job moves on (a
      // sweeper's resend), so that write will lose; a fast claimer reads the job afresh and is
      // held up too (or refused as contended, if it finds the slow one's slot).
      const lost = slow.store.claim(job.id, "slow", 30_000);
      await slow.parked();
      await store.pushStartDeadline((await store.getRecord(job.id)) as QueuedJob);
      const won = fast.store.claim(job.id, "fast", 30_000);
      const fastParked = await Promise.race([fast.parked().then(() => true), won.then(() => false)]);
      // The slow write loses; the slow claimer decides again and is held up a second time …
      const again = slow.parked().then(() => true);
      slow.release();
      const slowAgain = await Promise.race([again, lost.then(() => false)]);
      // … while the fast write lands first.
      if (fastParked) fast.release();
      claims.push(await won);
      if (slowAgain) slow.release();
      claims.push(await lost);
    } finally {
      slow.close();
      fast.close();
    }
    // However the two met, at most one claim won, and the job runs once it is claimed, holding the key's one slot …
    expect(claims.filter((c) => c.ok).length).toBeLessThanOrEqual(1);
    const winner = claims.find((c) => c.ok) ?? (await store.claim(job.id, "third", 30_000));
    if (!winner.ok) throw new Error(`the job was not claimable after the race: ${winner.reason}`);
    expect(Object.keys(await store.controls.holders(`key:${key}`))).toEqual([job.id]);
    // … so a second job with the key is held, not started beside it, …
    const { job: next } = await store.create(spec({ concurrencyKey: key }));
    expect(await store.claim(next.id, "w4", 30_000)).toMatchObject({ ok: false, reason: "held" });
    // … and the run's end gives that slot back: it goes to the held job.
    await store.succeed(winner.lease, 1);
    expect(Object.keys(await store.controls.holders(`key:${key}`))).toEqual([next.id]);
  });

  test("a duplicate doorbell's claim that read the job before the win cannot take the winner's slot, so the winner's end frees it", async () => {
    const clock = manualClock(1_800_000_400_000);
    const store = env.store({ now: clock.now });
    const key = `dup-${backend}`;
    await store.controls.setLimit(`key:${key}`, { concurrency: 2 }, "test", clock.now());
    const { job } = await store.create(spec({ concurrencyKey: key }));
    const won = await store.claim(job.id, "w1", 30_000);
    if (!won.ok) throw new Error("claim refused");
    clock.advance(7);
    // The loser read the job queued before the win and takes its slot now, as its claim's gates do, with a stamp of its own.
    const winners = { at: won.lease.job.slots![0]!.at, by: won.lease.job.slots![0]!.by };
    // Refused, with the winner's slot as the reason (from the refusal itself, or read where the engine does not answer it).
    expect(await store.controls.acquireSlot(`key:${key}`, 2, job.id, { at: clock.now(), by: "the-losing-claim" })).toEqual({ taken: false, held: winners });
    expect(await store.controls.holders(`key:${key}`)).toEqual({ [job.id]: winners });
    await store.succeed(won.lease, 1);
    expect(await store.controls.holders(`key:${key}`)).toEqual({});
  });
});
