/**
 * Priorities (docs/jobs.md "Priorities"): each queue is a lane per level, and a worker drains the
 * lanes in order. Through the real API, store, SQS (fauxqs) and Fargate-style workers on dynalite:
 * a high job submitted behind a thousand waiting normal ones starts before every normal job no
 * worker had taken yet; every path that rings a job rings it on its own lane; a freed slot and a
 * resume wake the high jobs first; a priority the API does not know is a 400 that writes nothing.
 */
import { z } from "zod";
import { afterEach, describe, expect, test } from "vitest";
import { silentLog } from "../core/api/jobs.js";
import type { ApiJob } from "../core/api/view.js";
import { laneOf, TIMINGS, type Lane, type Priority } from "../core/config.js";
import type { Job, QueuedJob } from "../core/job.js";
import { MemoryMetrics } from "../core/metrics.js";
import type { Doorbell } from "../core/queue.js";
import { defineJob, Registry } from "../core/registry.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import type { NewJob } from "../core/store.js";
import { Sweeper } from "../core/sweeper.js";
import { makeHandler } from "../functions/api.js";
import { startFargateWorker, type FargateWorker } from "../functions/fargate.js";
import { manualClock, useEmulators, waitFor } from "./support/emulators.js";
import { callerOf } from "./support/http-api.js";

const env = useEmulators("priorities");
const quiet = { info() {}, warn() {}, error() {} };
const workers: FargateWorker[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ force: true })));
});

const work = defineJob({
  name: "prio.work",
  input: z.object({ n: z.number().int() }),
  runsOn: "lambda",
  handler: async () => {
    await new Promise((r) => setTimeout(r, 10)); // the job's own work
    return { ok: true };
  },
});

function services(): Services {
  const cfg = loadRuntime({ ...env.emu.env, WARDEN_LEASE_SECONDS: "30" });
  return buildServices(cfg, { doc: env.doc, sqs: env.sqs, metrics: new MemoryMetrics(), registry: new Registry().register(work) });
}

const spec = (over: Partial<NewJob> = {}): NewJob => ({ owner: "alice", type: "prio.work", queue: "default", input: { n: 0 }, maxAttempts: 3, timeoutMs: 60_000, ...over });

/** The doorbells rung, with the lane each rang on. */
function recordingDoorbell(): Doorbell & { rung: { id: string; lane: Lane }[] } {
  const rung: { id: string; lane: Lane }[] = [];
  return { rung, send: async (lane: Lane, ids: string[]) => void rung.push(...ids.map((id) => ({ id, lane }))) };
}

/** Empties every lane of `default`, so a test sees only its own messages. */
async function drain(s: Services): Promise<void> {
  for (const priority of ["high", "normal", "low"] as const) {
    for (;;) {
      const got = await s.queue.receive({ queue: "default", priority }, { max: 10, waitSeconds: 0 });
      if (!got.length) break;
      for (const m of got) await s.queue.delete(m.lane, m.receiptHandle);
    }
  }
}

describe("priorities", () => {
  test("a worker fills its free slots from the high lane first, then normal, then low", async () => {
    const s = services();
    await drain(s);
    const ids = (p: Priority) => [`${p}-1`, `${p}-2`];
    for (const p of ["low", "normal", "high"] as const) await s.queue.send({ queue: "default", priority: p }, ids(p));
    const first = await s.queue.receiveByPriority("default", { max: 3, idleWaitSeconds: 0 });
    const second = await s.queue.receiveByPriority("default", { max: 3, idleWaitSeconds: 0 });
    const third = await s.queue.receiveByPriority("default", { max: 3, idleWaitSeconds: 0 });
    const seen = (ms: typeof first) => ms.map((m) => `${m.lane.priority}:${m.priority}`);
    expect(seen(first)).toEqual(["high:high", "high:high", "normal:normal"]);
    expect(seen(second)).toEqual(["normal:normal", "low:low", "low:low"]);
    expect(third).toEqual([]);
    expect([...first, ...second].map((m) => m.jobId).sort()).toEqual([...ids("high"), ...ids("normal"), ...ids("low")].sort());
    for (const m of [...first, ...second]) await s.queue.delete(m.lane, m.receiptHandle);
  });

  test("a high job submitted behind 1,000 waiting normal ones starts before every normal job no worker had taken when it was submitted", async () => {
    const s = services();
    await drain(s);
    const normal: Job[] = [];
    for (let i = 0; i < 1000; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, async (_, k) => (await s.store.create(spec({ input: { n: i + k } }))).job));
      await s.queue.send(laneOf({ queue: "default" }), batch.map((j) => j.id));
      normal.push(...batch);
    }
    const concurrency = 2;
    for (let i = 0; i < 4; i++) workers.push(startFargateWorker(s, { workerId: `prio-${i}-${Date.now()}`, queue: "default", concurrency, pollWaitSeconds: 1, log: quiet }));
    const slots = workers.length * concurrency;
    const ids = normal.map((j) => j.id);
    // The workers are busy on the normal backlog before the high job comes.
    await waitFor(async () => (await s.store.recordsOf(ids)).filter((j) => j.status === "succeeded").length >= 40, 60_000, "40 normal jobs to end");

    const call = callerOf(() => makeHandler(s, { log: silentLog }));
    const submitted = await call("POST", "/jobs", "alice", { type: "prio.work", input: { n: -1 }, priority: "high" });
    expect(submitted.status).toBe(201);
    const rungAt = Date.now(); // the API answers once the doorbell is in SQS
    const high = submitted.body.job as ApiJob;
    expect(high.priority).toBe("high");

    const done = await waitFor(async () => {
      const [h] = await s.store.recordsOf([high.id]);
      return h?.status === "succeeded" ? h : undefined;
    }, 60_000, "the high job to end");
    const highStart = done.history[0]!.startedAt;
    const normals = await s.store.recordsOf(ids);
    const startedFirst = normals.filter((j) => j.history[0] && j.history[0].startedAt < highStart);
    const notYetTaken = normals.filter((j) => !j.history[0] || j.history[0].startedAt > rungAt);
    // Only messages a worker held when the high one rang (at most one per free slot) may start between.
    const overtook = notYetTaken.filter((j) => j.history[0] && j.history[0].startedAt < highStart);
    expect(overtook.length).toBeLessThanOrEqual(slots);
    expect(normals.length - startedFirst.length).toBeGreaterThan(800); // the backlog was still there: it did not wait behind it
    expect(highStart - rungAt).toBeLessThan(5_000);
    // And the backlog drains: every normal job ends once (nothing left for the next test's sweep to find).
    const all = await waitFor(async () => {
      const jobs = await s.store.recordsOf(ids);
      return jobs.every((j) => j.status === "succeeded") ? jobs : undefined;
    }, 90_000, "every normal job to end");
    for (const j of all) expect(j.attempts, j.id).toBe(1);
  }, 180_000);

  test("a freed slot goes to the held high job before a normal one held longer, and its doorbell rings on its high lane", async () => {
    const bell = recordingDoorbell();
    const store = env.store({ doorbell: bell });
    const key = "prio-slot";
    await store.controls.setLimit(`key:${key}`, { concurrency: 1 }, "test", Date.now());
    const running = (await store.create(spec({ concurrencyKey: key }))).job;
    const normal = (await store.create(spec({ concurrencyKey: key }))).job;
    const high = (await store.create(spec({ concurrencyKey: key, priority: "high" }))).job;
    const claim = await store.claim(running.id, "w1", 30_000);
    expect(await store.claim(normal.id, "w2", 30_000)).toMatchObject({ ok: false, reason: "held" });
    expect(await store.claim(high.id, "w3", 30_000)).toMatchObject({ ok: false, reason: "held" });
    if (!claim.ok) throw new Error("the first claim should have taken the slot");
    await store.succeed(claim.lease, 1);
    expect(bell.rung).toEqual([{ id: high.id, lane: { queue: "default", priority: "high" } }]);
    expect(((await store.get(high.id)) as QueuedJob).hold).toBeUndefined();
    expect(((await store.get(normal.id)) as QueuedJob).hold).toMatchObject({ by: "concurrency" });
  });

  test("a resume that may wake only some held jobs wakes the high ones first", async () => {
    const bell = recordingDoorbell();
    const store = env.store({ doorbell: bell });
    await store.controls.pause("type:prio.paused", "oncall", Date.now());
    const jobs: Job[] = [];
    for (const priority of ["low", "normal", "low", "high", "normal", "high"] as const) {
      const { job } = await store.create(spec({ type: "prio.paused", priority }));
      expect(await store.claim(job.id, "w", 30_000)).toMatchObject({ ok: false, reason: "held" });
      jobs.push(job);
    }
    await store.controls.resume("type:prio.paused", Date.now()); // the settings only: the wakes are the test's
    const woken = await store.gates.wake("pause#type:prio.paused", 3);
    expect(woken).toHaveLength(3);
    const order = bell.rung.map((r) => jobs.find((j) => j.id === r.id)!.priority ?? "normal");
    expect(order).toEqual(["high", "high", "normal"]);
  });

  test("a high job whose doorbell was lost is rung again by the sweeper on its own lane", async () => {
    const clock = manualClock(Date.now());
    const bell = recordingDoorbell();
    const store = env.store({ now: clock.now, doorbell: bell });
    const { job } = await store.create(spec({ type: "prio.lost", priority: "low" }));
    clock.advance(TIMINGS.startDeadlineMs + 1);
    const report = await new Sweeper({ store, queue: bell, metrics: new MemoryMetrics(), now: clock.now, doc: env.doc, cfg: { tableName: env.emu.tableName } }).sweep();
    expect(report.touched.resent).toContain(job.id);
    expect(bell.rung.filter((r) => r.id === job.id)).toEqual([{ id: job.id, lane: { queue: "default", priority: "low" } }]);
  });

  test("the API takes a priority on a submit, gives it to the children, shows it, and refuses one out of range with a 400 that writes nothing", async () => {
    const s = services();
    const call = callerOf(() => makeHandler(s, { log: silentLog }));
    const bad = await call("POST", "/jobs", "bob", { type: "prio.work", input: { n: 1 }, priority: "urgent", idempotencyKey: "prio-bad" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/priority is one of high, normal, low/);
    const again = await call("POST", "/jobs", "bob", { type: "prio.work", input: { n: 1 }, idempotencyKey: "prio-bad" });
    expect(again.status).toBe(201); // nothing was written under the key by the refused submit

    const plain = await call("POST", "/jobs", "bob", { type: "prio.work", input: { n: 2 } });
    expect(plain.body.job.priority).toBe("normal");
    const parent = await call("POST", "/jobs", "bob", { type: "prio.work", input: { n: 3 }, priority: "low", children: [{ type: "prio.work", input: { n: 4 } }, { type: "prio.work", input: { n: 5 } }] });
    expect(parent.status).toBe(201);
    expect(parent.body.job.priority).toBe("low");
    const kids = await call("GET", `/jobs/${parent.body.job.id}/children`, "bob");
    expect(kids.body.children.map((j: ApiJob) => j.priority)).toEqual(["low", "low"]);

    const schedule = await call("POST", "/schedules", "bob", { id: "prio-bad-schedule", type: "prio.work", input: { n: 6 }, everySeconds: 60, priority: 2 });
    expect(schedule.status).toBe(400);
    expect(schedule.body.error.message).toMatch(/priority is one of high, normal, low/);
    expect((await call("GET", "/schedules/prio-bad-schedule", "bob")).status).toBe(404);
    const made = await call("POST", "/schedules", "bob", { id: "prio-schedule", type: "prio.work", input: { n: 7 }, everySeconds: 60, priority: "high" });
    expect(made.status).toBe(201);
    expect(made.body.schedule.priority).toBe("high");
  });
});
