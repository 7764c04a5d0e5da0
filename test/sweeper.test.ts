/**
 * Every stuck state made on purpose, against dynalite and fauxqs with a manual clock: the stuck
 * report shows it first, then one sweep repairs it with a conditional write, and the metrics say
 * so. Each describe has its own emulators, so one state's leftovers cannot blur another's counts.
 */
import { describe, expect, test } from "vitest";
import { type QueueName, laneOf } from "../core/config.js";
import { LeaseLostError } from "../core/errors.js";
import type { Job, Lease } from "../core/job.js";
import { MemoryMetrics } from "../core/metrics.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { stuckReport } from "../core/stuck.js";
import { Sweeper, type SweepReport } from "../core/sweeper.js";
import { manualClock, useEmulators, type TestEnv } from "./support/emulators.js";

const LEASE = 30_000;
const START_DEADLINE = 60_000;
const CANCEL_GRACE = 10_000;

function world(env: TestEnv) {
  const clock = manualClock(Date.now());
  const metrics = new MemoryMetrics(clock.now);
  const cfg = loadRuntime({
    ...env.emu.env,
    WARDEN_LEASE_SECONDS: String(LEASE / 1000),
    WARDEN_START_DEADLINE_SECONDS: String(START_DEADLINE / 1000),
    WARDEN_CANCEL_GRACE_SECONDS: String(CANCEL_GRACE / 1000),
  });
  const s: Services = buildServices(cfg, { doc: env.doc, sqs: env.sqs, now: clock.now, metrics });
  const sweeper = new Sweeper(s);
  const create = async (o: { maxAttempts?: number; timeoutMs?: number; queue?: QueueName; runAt?: number } = {}) =>
    (
      await s.store.create({
        owner: "t",
        type: "demo.sleep",
        queue: o.queue ?? "default",
        input: {},
        maxAttempts: o.maxAttempts ?? 3,
        timeoutMs: o.timeoutMs ?? 3_600_000,
        ...(o.runAt !== undefined ? { runAt: o.runAt } : {}),
      })
    ).job;
  const claim = async (id: string, worker = "w1"): Promise<Lease> => {
    const c = await s.store.claim(id, worker, LEASE);
    if (!c.ok) throw new Error(`claim refused: ${c.reason}`);
    return c.lease;
  };
  /** Every message now on a queue, consumed: what the sweeper actually sent. */
  const drain = async (queue: QueueName = "default"): Promise<string[]> => {
    const ids: string[] = [];
    for (;;) {
      const got = await s.queue.receive(laneOf({ queue: queue }), { waitSeconds: 0, visibilitySeconds: 60 });
      if (!got.length) return ids;
      for (const m of got) {
        ids.push(m.jobId);
        await s.queue.delete(m.lane, m.receiptHandle);
      }
    }
  };
  const get = async (id: string): Promise<Job> => s.store.mustGet(id);
  return { clock, metrics, s, sweeper, create, claim, drain, get };
}

const acted = (r: SweepReport): number => r.counts.reclaimed + r.counts.failedExhausted + r.counts.failedTimeout + r.counts.cancelled + r.counts.resent;

describe("a claimed job whose worker never heartbeats", () => {
  const env = useEmulators("sweep-dead");
  test("is reported as running, then reclaimed with its checkpoint and a fresh message", async () => {
    const w = world(env);
    const job = await w.create();
    const lease = await w.claim(job.id);
    await w.s.store.heartbeat(lease, { checkpoint: { done: 3 }, progress: { done: 3, total: 10 } });
    // The worker dies here: no more heartbeats.

    w.clock.advance(LEASE - 1);
    expect((await stuckReport(w.s)).states.running.count).toBe(0);
    const early = await w.sweeper.sweep();
    expect(acted(early)).toBe(0);

    w.clock.advance(2_000);
    const report = await stuckReport(w.s);
    expect(report.states.running).toEqual({ count: 1, oldestAgeSeconds: 1, sample: [job.id] });
    expect(report.states.queued.count).toBe(0);
    expect(report.states.cancelling.count).toBe(0);

    const r = await w.sweeper.sweep();
    expect(r.counts.reclaimed).toBe(1);
    expect(r.touched.reclaimed).toEqual([job.id]);
    expect(acted(r)).toBe(1);
    expect(r.read).toBe(1);

    const after = await w.get(job.id);
    expect(after).toMatchObject({ status: "queued", token: lease.token + 1, attempts: 1, checkpoint: { done: 3 }, error: { code: "worker_lost" } });
    expect(after.error?.message).toMatch(/no heartbeat from worker w1 since/);
    expect(await w.drain()).toEqual([job.id]);

    // The dead worker's late write is refused by its fencing token.
    await expect(w.s.store.heartbeat(lease)).rejects.toBeInstanceOf(LeaseLostError);
    expect((await stuckReport(w.s)).states.running.count).toBe(0);
    expect(acted(await w.sweeper.sweep())).toBe(0);

    // The next worker resumes from the checkpoint.
    const again = await w.claim(job.id, "w2");
    expect(again.job.checkpoint).toEqual({ done: 3 });
    expect(again.job.attempts).toBe(2);

    expect(w.metrics.sum("Reclaimed", 0, { Queue: "default" })).toBe(1);
    expect(w.metrics.sum("SweeperHeartbeat")).toBe(3);
  });

  test("a silent worker's job with a cancel request is cancelled, not reclaimed", async () => {
    const w = world(env);
    const job = await w.create();
    await w.claim(job.id);
    await w.s.store.requestCancel(job.id);
    w.clock.advance(LEASE + 1);
    const report = await stuckReport(w.s);
    expect(report.states.cancelling.sample).toEqual([job.id]);
    expect(report.states.running.count).toBe(0);
    const r = await w.sweeper.sweep();
    expect(r.touched.cancelled).toEqual([job.id]);
    expect(await w.get(job.id)).toMatchObject({ status: "cancelled", error: { code: "cancelled" } });
    expect(await w.drain()).toEqual([]);
  });
});

describe("a job written without its message", () => {
  const env = useEmulators("sweep-lost");
  test("is reported as queued past its start deadline, and its message is sent again once", async () => {
    const w = world(env);
    const job = await w.create(); // the API crashed before SQS: no message
    expect(await w.drain()).toEqual([]);

    w.clock.advance(START_DEADLINE);
    expect((await stuckReport(w.s)).states.queued).toEqual({ count: 1, oldestAgeSeconds: 0, sample: [job.id] });
    w.clock.advance(5_000);
    expect((await stuckReport(w.s)).states.queued.oldestAgeSeconds).toBe(5);

    const r = await w.sweeper.sweep();
    expect(r.counts.resent).toBe(1);
    expect(r.touched.resent).toEqual([job.id]);
    expect(await w.drain()).toEqual([job.id]);
    const after = await w.get(job.id);
    expect(after).toMatchObject({ status: "queued", token: job.token });
    if (after.status !== "queued") throw new Error("not queued");
    expect(after.dueAt).toBe(w.clock.now() + START_DEADLINE);

    // Repaired: the report is clear and the next sweep sends nothing.
    expect((await stuckReport(w.s)).states.queued.count).toBe(0);
    expect(acted(await w.sweeper.sweep())).toBe(0);
    expect(await w.drain()).toEqual([]);

    // A job that is claimed off that message is no longer the sweeper's.
    await w.claim(job.id);
    w.clock.advance(START_DEADLINE + 1);
    expect(w.metrics.sum("Requeued", 0, { Queue: "default" })).toBe(1);
  });

  test("a delayed job far in the future waits for its runAt, then rings at once", async () => {
    const w = world(env);
    const runAt = w.clock.now() + 3_600_000; // beyond SQS's 15-minute delay: the sweeper's to send
    const job = await w.create({ runAt, queue: "large" });
    w.clock.advance(3_600_000 - 1);
    // (the previous test's claimed job is overdue by now too; only this one's fate matters here)
    expect(Object.values((await w.sweeper.sweep()).touched).flat()).not.toContain(job.id);
    w.clock.advance(1);
    const r = await w.sweeper.sweep();
    expect(r.touched.resent).toContain(job.id);
    expect(await w.drain("large")).toEqual([job.id]);
  });
});

describe("a job running past its total runtime limit", () => {
  const env = useEmulators("sweep-timeout");
  test("fails with timeout even while its worker still heartbeats, and the worker learns on its next heartbeat", async () => {
    const w = world(env);
    const job = await w.create({ timeoutMs: 60_000 });
    const lease = await w.claim(job.id);
    for (let t = 0; t < 3; t++) {
      w.clock.advance(20_000);
      await w.s.store.heartbeat(lease); // alive and well, and renewing its lease
    }
    // 60 s since the first start: the lease runs to +90 s, but the runtime limit is now.
    const report = await stuckReport(w.s);
    expect(report.states.running).toEqual({ count: 1, oldestAgeSeconds: 0, sample: [job.id] });
    const r = await w.sweeper.sweep();
    expect(r.counts.failedTimeout).toBe(1);
    expect(r.touched.failedTimeout).toEqual([job.id]);
    const after = await w.get(job.id);
    expect(after).toMatchObject({ status: "failed", error: { code: "timeout" } });
    expect(after.error?.message).toMatch(/total runtime limit of 60 s/);
    await expect(w.s.store.heartbeat(lease)).rejects.toBeInstanceOf(LeaseLostError);
    expect(w.metrics.sum("JobsFailed", 0, { ErrorCode: "timeout", Queue: "default", JobType: "demo.sleep" })).toBe(1);
    expect(await w.drain()).toEqual([]);
  });
});

describe("a cancel that no worker acknowledges", () => {
  const env = useEmulators("sweep-cancel");
  test("is reported as cancelling once its grace has passed, then cancelled by one sweep", async () => {
    const w = world(env);
    const job = await w.create();
    const lease = await w.claim(job.id);
    w.clock.advance(1_000);
    await w.s.store.requestCancel(job.id);
    w.clock.advance(CANCEL_GRACE - 1);
    expect((await stuckReport(w.s)).states.cancelling.count).toBe(0);
    expect(acted(await w.sweeper.sweep())).toBe(0);

    w.clock.advance(1); // grace over; the lease itself still has 19 s to run
    expect(lease.job.leaseExpiresAt).toBeGreaterThan(w.clock.now());
    const report = await stuckReport(w.s);
    expect(report.states.cancelling).toEqual({ count: 1, oldestAgeSeconds: 0, sample: [job.id] });
    expect(report.states.running.count).toBe(0);
    const r = await w.sweeper.sweep();
    expect(r.counts.cancelled).toBe(1);
    const after = await w.get(job.id);
    expect(after).toMatchObject({ status: "cancelled", error: { code: "cancelled" } });
    expect(after.error?.message).toMatch(/did not acknowledge within the grace period/);
    await expect(w.s.store.heartbeat(lease)).rejects.toBeInstanceOf(LeaseLostError);
  });

  test("every sweep publishes StuckJobs for running and cancelling, the wait figures per queue, zeros included, and one heartbeat", async () => {
    const w = world(env);
    await w.sweeper.sweep();
    await w.sweeper.sweep();
    for (const State of ["running", "cancelling"]) {
      const points = w.metrics.points.filter((p) => p.name === "StuckJobs" && p.dims.State === State);
      expect(points.map((p) => p.value)).toEqual([0, 0]);
    }
    // Queued jobs are OldestUnclaimedSeconds' (test/not-starting.test.ts): an overdue count of them flickers.
    expect(w.metrics.points.filter((p) => p.name === "StuckJobs" && p.dims.State === "queued")).toEqual([]);
    for (const Queue of ["default", "large"]) {
      for (const name of ["OldestUnclaimedSeconds", "UnhelpedRepairs"] as const) {
        expect(w.metrics.points.filter((p) => p.name === name && p.dims.Queue === Queue).map((p) => p.value)).toEqual([0, 0]);
      }
    }
    expect(w.metrics.points.filter((p) => p.name === "SweeperHeartbeat").map((p) => p.value)).toEqual([1, 1]);
    expect(w.metrics.points.filter((p) => p.name === "SweepDuration")).toHaveLength(2);
  });
});

describe("a job killed again and again", () => {
  const env = useEmulators("sweep-killed");
  test("claim → lease expiry → reclaim until its attempts run out: failed attempts_exhausted, never a loop", async () => {
    const w = world(env);
    const job = await w.create({ maxAttempts: 3 });
    let firstStartedAt: number | undefined;
    const actions: string[] = [];
    for (let round = 0; round < 10; round++) {
      const current = await w.get(job.id);
      if (current.status !== "queued") break;
      const lease = await w.claim(job.id, `w${round}`);
      firstStartedAt ??= lease.job.firstStartedAt;
      expect(lease.job.firstStartedAt).toBe(firstStartedAt); // a re-claim is a new attempt, not a new job
      w.clock.advance(LEASE + 1); // killed: SIGKILL, OOM, a deploy
      const r = await w.sweeper.sweep();
      actions.push(...Object.entries(r.touched).flatMap(([a, ids]) => (ids?.includes(job.id) ? [a] : [])));
    }
    expect(actions).toEqual(["reclaimed", "reclaimed", "failedExhausted"]);
    const end = await w.get(job.id);
    expect(end).toMatchObject({ status: "failed", attempts: 3, error: { code: "attempts_exhausted" } });
    expect(end.error?.message).toMatch(/all 3 attempts used.*no heartbeat from worker w2 since/);
    expect(end.history.map((h) => h.outcome)).toEqual(["worker_lost", "worker_lost", "worker_lost"]);
    expect(w.metrics.sum("JobsFailed", 0, { ErrorCode: "attempts_exhausted" })).toBe(1);
    expect(await w.drain()).toEqual([job.id, job.id]); // one doorbell per reclaim, none after the end
  });

  test("its runtime limit counts from the first start, so re-claims cannot keep it alive", async () => {
    const w = world(env);
    const job = await w.create({ maxAttempts: 20, timeoutMs: 50_000 });
    const actions: string[] = [];
    for (let round = 0; round < 20; round++) {
      const current = await w.get(job.id);
      if (current.status !== "queued") break;
      await w.claim(job.id, `w${round}`);
      w.clock.advance(LEASE + 1);
      const r = await w.sweeper.sweep();
      actions.push(...Object.entries(r.touched).flatMap(([a, ids]) => (ids?.includes(job.id) ? [a] : [])));
    }
    // Claimed at 0 s and 31 s; at 62 s the 50 s limit from the first start has passed.
    expect(actions).toEqual(["reclaimed", "failedTimeout"]);
    expect(await w.get(job.id)).toMatchObject({ status: "failed", attempts: 2, error: { code: "timeout" } });
  });
});

describe("a backlog larger than one sweep", () => {
  const env = useEmulators("sweep-bounds");
  test("each sweep stops at its page bound and leaves the rest to the next one", async () => {
    const w = world(env);
    const ids = new Set<string>();
    for (let i = 0; i < 45; i++) ids.add((await w.create()).id);
    w.clock.advance(START_DEADLINE + 1);
    const full = await stuckReport(w.s, { sampleSize: 5 });
    expect(full.states.queued.count).toBe(45);
    expect(full.states.queued.sample).toHaveLength(5);
    // Past what one read classifies, the totals come from COUNT queries on the index.
    expect((await stuckReport(w.s, { sampleSize: 5, readLimit: 10 })).states.queued).toMatchObject({ count: 45, oldestAgeSeconds: 0 });

    const bounded = new Sweeper(w.s, { pageSize: 10, maxPages: 2 });
    const first = await bounded.sweep();
    expect(first.counts.resent).toBe(20);
    expect(first.more).toBe(true);
    // Out of time after the first page: one page only, and it says there is more.
    const hurried = await new Sweeper(w.s, { pageSize: 10, maxPages: 5, budgetMs: 0 }).sweep();
    expect(hurried.counts.resent).toBe(10);
    expect(hurried.more).toBe(true);
    const rest = await bounded.sweep();
    expect(rest.counts.resent).toBe(15);
    expect(rest.more).toBe(false);
    const all = [...first.touched.resent!, ...hurried.touched.resent!, ...rest.touched.resent!];
    expect(all).toHaveLength(45);
    expect(new Set(all)).toEqual(ids);
    expect((await w.drain()).sort()).toEqual([...ids].sort());
  });
});
