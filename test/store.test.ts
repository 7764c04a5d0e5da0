/**
 * The store's contract, run on dynalite and on Amazon's DynamoDB Local alike: conditional claims, fenced leases, the runtime clock that a
 * re-claim never resets, idempotent creates, and refusals that write nothing.
 */
import { ScanCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, test } from "vitest";
import { ConflictError, LeaseLostError, TooLargeError, ValidationError } from "../core/errors.js";
import { TRANSITIONS, canTransition, type Job, type Lease, type QueuedJob, type RunningJob, type WaitingJob } from "../core/job.js";
import type { NewJob } from "../core/store.js";
import { LIMITS } from "../core/config.js";
import { BACKENDS, manualClock, useEmulators, type TestEnv } from "./support/emulators.js";

/** The engine of the describe block running now: the store's tests are a contract every backend passes. */
let env: TestEnv;

const spec = (over: Partial<NewJob> = {}): NewJob => ({
  owner: "alice",
  type: "demo.sleep",
  queue: "default",
  input: { items: 3 },
  maxAttempts: 3,
  timeoutMs: 60 * 60_000,
  ...over,
});

async function countItems(): Promise<number> {
  const out = await env.doc.send(new ScanCommand({ TableName: env.emu.tableName, Select: "COUNT" }));
  return out.Count ?? 0;
}

describe.each(BACKENDS)("on %s", (backend) => {
  const own = useEmulators(`store-${backend}`, { dynamodb: backend });
  beforeAll(() => {
    env = own;
  });

  describe("claim", () => {
    test("20 concurrent claimers on one queued job: exactly one wins, 50 rounds in a row", async () => {
      const store = env.store();
      for (let round = 0; round < 50; round++) {
        const { job } = await store.create(spec());
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.claim(job.id, `w${i}`, 30_000)));
        const winners = results.filter((r) => r.ok);
        expect(winners).toHaveLength(1);
        for (const r of results) if (!r.ok) expect(r.reason).toBe("leased");
        const stored = (await store.get(job.id)) as RunningJob;
        expect(stored.status).toBe("running");
        expect(stored.token).toBe(1);
        expect(stored.attempts).toBe(1);
        if (winners[0]?.ok) expect(stored.workerId).toBe(winners[0].lease.workerId);
      }
    });

    test("says why it refuses: not found, not yet due, finished", async () => {
      const clock = manualClock();
      const store = env.store({ now: clock.now });
      expect(await store.claim("01JD0000000000000000000000", "w", 1000)).toMatchObject({ ok: false, reason: "not_found" });
      const { job: later } = await store.create(spec({ runAt: clock.now() + 60_000 }));
      expect(await store.claim(later.id, "w", 1000)).toMatchObject({ ok: false, reason: "not_due" });
      clock.advance(60_001);
      const c = await store.claim(later.id, "w", 1000);
      expect(c.ok).toBe(true);
      if (!c.ok) return;
      await store.succeed(c.lease, "done");
      expect(await store.claim(later.id, "w2", 1000)).toMatchObject({ ok: false, reason: "finished" });
    });

    test("a running job with a cancel requested is not claimed again after its lease expires", async () => {
      const clock = manualClock();
      const store = env.store({ now: clock.now });
      const { job } = await store.create(spec());
      const c = await store.claim(job.id, "w1", 1000);
      expect(c.ok).toBe(true);
      await store.requestCancel(job.id);
      clock.advance(1001);
      expect(await store.claim(job.id, "w2", 1000)).toMatchObject({ ok: false, reason: "cancel_requested" });
    });
  });

  describe("fencing", () => {
    test("a worker whose lease expired and was re-claimed can no longer write anything", async () => {
      const clock = manualClock();
      const store = env.store({ now: clock.now });
      const { job } = await store.create(spec());
      const a = await store.claim(job.id, "worker-a", 1000);
      if (!a.ok) throw new Error("claim a failed");
      await store.heartbeat(a.lease, { progress: { done: 1, total: 3 }, checkpoint: { at: 1 } });
      clock.advance(1001);
      const b = await store.claim(job.id, "worker-b", 1000);
      if (!b.ok) throw new Error("claim b failed");
      await store.heartbeat(b.lease, { progress: { done: 2, total: 3 }, checkpoint: { at: 2 } });

      const stale: Lease = a.lease;
      await expect(store.heartbeat(stale, { progress: { done: 99 } })).rejects.toBeInstanceOf(LeaseLostError);
      await expect(store.heartbeat(stale, { checkpoint: { at: 99 } })).rejects.toBeInstanceOf(LeaseLostError);
      await expect(store.succeed(stale, "a's result")).rejects.toBeInstanceOf(LeaseLostError);
      await expect(store.fail(stale, { code: "handler_error", message: "a failed" }, { retryable: false })).rejects.toBeInstanceOf(LeaseLostError);
      await expect(store.release(stale)).rejects.toBeInstanceOf(LeaseLostError);
      await expect(store.acknowledgeCancel(stale)).rejects.toThrow(/worker-b claimed it/);

      const now = (await store.get(job.id)) as RunningJob;
      expect(now).toMatchObject({ status: "running", workerId: "worker-b", token: 2, checkpoint: { at: 2 }, progress: { done: 2 } });
      expect(now.history.map((h) => [h.worker, h.outcome])).toEqual([
        ["worker-a", "worker_lost"],
        ["worker-b", null],
      ]);
    });

    test("a heartbeat answers a cancel request", async () => {
      const store = env.store();
      const { job } = await store.create(spec());
      const c = await store.claim(job.id, "w", 30_000);
      if (!c.ok) throw new Error("claim failed");
      expect((await store.heartbeat(c.lease)).cancelRequested).toBe(false);
      await store.requestCancel(job.id);
      expect((await store.heartbeat(c.lease)).cancelRequested).toBe(true);
      const done = await store.acknowledgeCancel(c.lease);
      expect(done.status).toBe("cancelled");
      expect((await store.get(job.id))?.status).toBe("cancelled");
    });
  });

  describe("the runtime clock", () => {
    test("claimed, expired and re-claimed three times: firstStartedAt never moves, and the job ends attempts_exhausted", async () => {
      const clock = manualClock();
      const store = env.store({ now: clock.now });
      const { job } = await store.create(spec({ maxAttempts: 3 }));
      const first = clock.now();
      for (let i = 1; i <= 3; i++) {
        const c = await store.claim(job.id, `w${i}`, 1000);
        expect(c.ok).toBe(true);
        const j = (await store.get(job.id)) as RunningJob;
        expect(j.firstStartedAt).toBe(first);
        expect(j.attempts).toBe(i);
        clock.advance(5000); // the worker dies; its lease runs out
      }
      const refused = await store.claim(job.id, "w4", 1000);
      expect(refused).toMatchObject({ ok: false, reason: "attempts_exhausted" });
      const end = await store.get(job.id);
      expect(end).toMatchObject({ status: "failed", firstStartedAt: first, attempts: 3, error: { code: "attempts_exhausted" } });
      if (end?.status !== "failed") return;
      expect(end.error.message).toMatch(/all 3 attempts used; the last worker \(w3\) was lost: no heartbeat from worker w3 since/);
      expect(end.expiresAt).toBeGreaterThan(clock.now() / 1000);
    });

    test("a failed attempt keeps firstStartedAt too, and a re-claim after the runtime limit fails the job with timeout", async () => {
      const clock = manualClock();
      const store = env.store({ now: clock.now });
      const { job } = await store.create(spec({ maxAttempts: 5, timeoutMs: 10_000 }));
      const first = clock.now();
      const a = await store.claim(job.id, "w1", 1000);
      if (!a.ok) throw new Error("claim failed");
      await store.fail(a.lease, { code: "handler_error", message: "boom" }, { retryable: true, backoffMs: 0 });
      clock.advance(6000);
      const b = await store.claim(job.id, "w2", 1000);
      if (!b.ok) throw new Error("re-claim failed");
      expect(b.lease.job.firstStartedAt).toBe(first);
      expect(b.lease.runtimeDeadline).toBe(first + 10_000);
      clock.advance(5000); // past the runtime limit, counted from the first start
      const end = await store.fail(b.lease, { code: "handler_error", message: "boom again" }, { retryable: true });
      expect(end).toMatchObject({ status: "failed", error: { code: "timeout" } });
    });
  });

  describe("no attempt starts past the runtime limit", () => {
    test("a job waiting out its backoff past the limit is failed with timeout by the claim that finds it", async () => {
      const clock = manualClock();
      const store = env.store({ now: clock.now });
      const { job } = await store.create(spec({ maxAttempts: 5, timeoutMs: 10_000 }));
      const a = await store.claim(job.id, "w1", 1000);
      if (!a.ok) throw new Error("claim failed");
      await store.fail(a.lease, { code: "handler_error", message: "flaky" }, { retryable: true, backoffMs: 8000 });
      clock.advance(12_000);
      expect(await store.claim(job.id, "w2", 1000)).toMatchObject({ ok: false, reason: "timed_out" });
      expect(await store.get(job.id)).toMatchObject({ status: "failed", attempts: 1, error: { code: "timeout" } });
    });

    test("an expired running job past the limit is failed with timeout, not claimed again", async () => {
      const clock = manualClock();
      const store = env.store({ now: clock.now });
      const { job } = await store.create(spec({ maxAttempts: 5, timeoutMs: 10_000 }));
      expect((await store.claim(job.id, "w1", 1000)).ok).toBe(true);
      clock.advance(11_000);
      expect(await store.claim(job.id, "w2", 1000)).toMatchObject({ ok: false, reason: "timed_out" });
      expect(await store.get(job.id)).toMatchObject({ status: "failed", error: { code: "timeout" } });
    });
  });

  describe("fail, release and retry", () => {
    test("a retryable failure queues the job after its backoff; out of attempts it fails with the last error", async () => {
      const clock = manualClock();
      const store = env.store({ now: clock.now });
      const { job } = await store.create(spec({ maxAttempts: 2 }));
      const a = await store.claim(job.id, "w", 1000);
      if (!a.ok) throw new Error("claim failed");
      const q = await store.fail(a.lease, { code: "handler_error", message: "flaky" }, { retryable: true, backoffMs: 4000 });
      expect(q).toMatchObject({ status: "queued", runAt: clock.now() + 4000, error: { message: "flaky" } });
      expect(await store.claim(job.id, "w", 1000)).toMatchObject({ ok: false, reason: "not_due" });
      clock.advance(4000);
      const b = await store.claim(job.id, "w", 1000);
      if (!b.ok) throw new Error("second claim failed");
      const f = await store.fail(b.lease, { code: "handler_error", message: "still flaky" }, { retryable: true });
      expect(f).toMatchObject({ status: "failed", error: { code: "attempts_exhausted" } });
      expect(f.status === "failed" && f.error.message).toMatch(/all 2 attempts failed; the last: still flaky/);
    });

    test("release hands the job back with its checkpoint and spends no attempt; retry gives a fresh budget", async () => {
      const store = env.store();
      const { job } = await store.create(spec({ maxAttempts: 1 }));
      const a = await store.claim(job.id, "w1", 30_000);
      if (!a.ok) throw new Error("claim failed");
      const released = await store.release(a.lease, { report: { checkpoint: { item: 7 } } });
      expect(released).toMatchObject({ status: "queued", attempts: 0, checkpoint: { item: 7 } });
      const b = await store.claim(job.id, "w2", 30_000);
      if (!b.ok) throw new Error("claim after release failed");
      expect(b.lease.job.checkpoint).toEqual({ item: 7 });
      expect(b.lease.job.attempts).toBe(1);
      await store.fail(b.lease, { code: "handler_error", message: "no" }, { retryable: false });
      await expect(store.retry("01JD0000000000000000000000")).rejects.toThrow(/not found/);
      const again = await store.retry(job.id);
      expect(again).toMatchObject({ status: "queued", attempts: 0 });
      const stored = await store.get(job.id);
      expect(stored?.history.map((h) => h.outcome)).toEqual(["released", "failed"]);
      expect(stored).not.toHaveProperty("finishedAt");
      expect(stored).not.toHaveProperty("expiresAt");
    });

    test("a hand-back that spends the last attempt ends the job instead of queueing one nobody can claim", async () => {
      const store = env.store();
      const { job } = await store.create(spec({ maxAttempts: 1 }));
      const c = await store.claim(job.id, "w", 30_000);
      if (!c.ok) throw new Error("claim failed");
      const end = await store.release(c.lease, { spendAttempt: true });
      expect(end).toMatchObject({ status: "failed", error: { code: "attempts_exhausted" } });
      expect((await store.get(job.id))?.status).toBe("failed");
    });

    test("every transition lands in the state the transition table names, as DynamoDB stores it, and answers what it stored", async () => {
      const clock = manualClock();
      const store = env.store({ now: clock.now, startDeadlineMs: 1_000, cancelGraceMs: 1_000 });
      const seen = new Set<keyof typeof TRANSITIONS>();
      /** Reads the job back: the stored state must be the transition's target, and equal what the store answered. */
      const check = async (name: keyof typeof TRANSITIONS, answered: Job) => {
        const stored = await store.get(answered.id);
        expect(stored?.status, name).toBe(TRANSITIONS[name].to);
        expect(answered, `${name} answers what it stored`).toEqual(stored);
        seen.add(name);
        return stored!;
      };
      const claimed = async (id: string) => {
        const c = await store.claim(id, "w", 1_000);
        if (!c.ok) throw new Error(`claim refused: ${c.reason}`);
        await check("claim", c.lease.job);
        return c.lease;
      };
      const fresh = async (over: Partial<NewJob> = {}) => (await check("create", (await store.create(spec(over))).job)).id;

      let id = await fresh();
      let lease = await claimed(id);
      await check("beat", (await store.heartbeat(lease, { progress: { done: 1 } })).job);
      await check("succeed", await store.succeed(lease, 1));

      id = await fresh();
      await check("failRetry", await store.fail(await claimed(id), { code: "handler_error", message: "x" }, { retryable: true }));
      clock.advance(10);
      await check("failFinal", await store.fail(await claimed(id), { code: "handler_error", message: "x" }, { retryable: false }));
      await check("retry", await store.retry(id));
      await check("release", await store.release(await claimed(id)));
      await check("cancelQueued", await store.requestCancel(id));

      id = await fresh();
      lease = await claimed(id);
      await check("requestCancel", await store.requestCancel(id));
      await check("cancelRunning", await store.acknowledgeCancel(lease));

      id = await fresh();
      let held = (await claimed(id)).job;
      clock.advance(1_001);
      const requeued = await check("reclaim", await store.reclaim(held));
      clock.advance(1_001);
      await check("resend", await store.pushStartDeadline(requeued as QueuedJob));

      id = await fresh({ maxAttempts: 1 });
      held = (await claimed(id)).job;
      clock.advance(1_001);
      await check("expire", await store.expire(held));

      id = await fresh({ timeoutMs: 1_000 });
      await store.fail(await claimed(id), { code: "handler_error", message: "x" }, { retryable: true, backoffMs: 5_000 });
      clock.advance(1_001);
      await check("expireQueued", await store.expireQueued((await store.get(id)) as QueuedJob));

      // A parent and its children (core/flows.ts); the flow's own writes answer the child or a repair, so the parent is read back.
      const child = { type: "demo.sleep", input: {}, queue: "default" as const, maxAttempts: 1, timeoutMs: 60_000 };
      const kid = async (parentId: string) => (await store.childOutcomes((await store.getRecord(parentId))!, { limit: 1 })).children[0]!;
      const parent = await check("createWaiting", (await store.createFlow(spec(), [child], "collect")).job);
      await check("cancelWaiting", await store.requestCancel(parent.id));
      await check("retryFlow", await store.retry(parent.id));
      clock.advance(1_001);
      await store.checkFlow((await store.getRecord(parent.id)) as WaitingJob);
      await check("recheck", (await store.get(parent.id))!);
      await store.succeed(await claimed((await kid(parent.id)).id), 1);
      await check("resume", (await store.get(parent.id))!);

      id = await fresh();
      lease = await claimed(id);
      await check("wait", await store.wait(lease, [child], "failFast"));
      await store.spawnRound((await store.getRecord(id)) as WaitingJob, [child]);
      const failing = await kid(id);
      await store.fail(await claimed(failing.id), { code: "handler_error", message: "x" }, { retryable: false });
      await check("failFlow", (await store.get(id))!);

      // Pauses and limits (core/gates.ts): a claim of a paused type holds the job; a resume wakes it.
      id = await fresh({ type: "demo.paused" });
      await store.controls.pause("type:demo.paused", "test", clock.now());
      const refused = await store.claim(id, "w", 1_000);
      expect(refused).toMatchObject({ ok: false, reason: "held" });
      await check("hold", refused.ok ? refused.lease.job : refused.job!);
      await store.controls.resume("type:demo.paused", clock.now());
      expect(await store.gates.wake("pause#type:demo.paused", 10)).toEqual([id]);
      await check("unhold", (await store.get(id))!);

      expect([...seen].sort()).toEqual(Object.keys(TRANSITIONS).sort());
    });
  });

  describe("refusals write nothing", () => {
    test("bad input is refused with a typed error and nothing is written", async () => {
      const store = env.store();
      const before = await countItems();
      await expect(store.create(spec({ input: { blob: "x".repeat(LIMITS.maxInputBytes) } }))).rejects.toBeInstanceOf(TooLargeError);
      await expect(store.create(spec({ type: "" }))).rejects.toThrow(/missing required field\(s\): type/);
      await expect(store.create({ ...spec(), owner: undefined } as unknown as NewJob)).rejects.toBeInstanceOf(ValidationError);
      await expect(store.create(spec({ maxAttempts: 0 }))).rejects.toBeInstanceOf(ValidationError);
      await expect(store.create(spec({ queue: "nope" as "default" }))).rejects.toThrow(/unknown queue/);
      expect(await countItems()).toBe(before);
    });

    test("a transition the state does not allow is refused and the job is unchanged", async () => {
      const store = env.store();
      expect(canTransition("retry", "running")).toBe(false);
      expect(canTransition("cancelQueued", "succeeded")).toBe(false);
      const { job } = await store.create(spec());
      const c = await store.claim(job.id, "w", 30_000);
      if (!c.ok) throw new Error("claim failed");
      await expect(store.retry(job.id)).rejects.toBeInstanceOf(ConflictError);
      await store.succeed(c.lease, { fine: true });
      const snapshot = await store.get(job.id);
      await expect(store.requestCancel(job.id)).rejects.toThrow(/already finished \(succeeded\)/);
      await expect(store.retry(job.id)).rejects.toBeInstanceOf(ConflictError);
      expect(await store.get(job.id)).toEqual(snapshot);
    });

    test("an oversized checkpoint or result is refused before it is written", async () => {
      const store = env.store();
      const { job } = await store.create(spec());
      const c = await store.claim(job.id, "w", 30_000);
      if (!c.ok) throw new Error("claim failed");
      await expect(store.heartbeat(c.lease, { checkpoint: "x".repeat(LIMITS.maxCheckpointBytes + 1) })).rejects.toBeInstanceOf(TooLargeError);
      await expect(store.succeed(c.lease, "x".repeat(LIMITS.maxResultBytes + 1))).rejects.toBeInstanceOf(TooLargeError);
      expect((await store.get(job.id))?.status).toBe("running");
    });
  });

  describe("idempotent create", () => {
    test("10 concurrent creates with one key make one job", async () => {
      const store = env.store();
      const before = await countItems();
      const results = await Promise.all(Array.from({ length: 10 }, () => store.create(spec({ idempotencyKey: "order-42" }))));
      expect(new Set(results.map((r) => r.job.id)).size).toBe(1);
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(await countItems()).toBe(before + 1);
      // The same key from another caller is another job.
      const other = await store.create(spec({ owner: "bob", idempotencyKey: "order-42" }));
      expect(other.created).toBe(true);
      expect(other.job.id).not.toBe(results[0]!.job.id);
    });
  });

  describe("listing", () => {
    test("a caller's jobs, newest first, filtered by status, paged with a cursor", async () => {
      const clock = manualClock(Date.parse("2026-01-01T00:00:00Z"));
      const store = env.store({ now: clock.now });
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        clock.advance(1000);
        ids.push((await store.create(spec({ owner: "lister" }))).job.id);
      }
      const c = await store.claim(ids[6]!, "w", 30_000);
      if (!c.ok) throw new Error("claim failed");
      const p1 = await store.list({ owner: "lister" }, null, 3);
      expect(p1.jobs.map((j) => j.id)).toEqual([ids[6], ids[5], ids[4]]);
      const p2 = await store.list({ owner: "lister" }, p1.nextCursor, 3);
      expect(p2.jobs.map((j) => j.id)).toEqual([ids[3], ids[2], ids[1]]);
      const p3 = await store.list({ owner: "lister" }, p2.nextCursor, 3);
      expect(p3.jobs.map((j) => j.id)).toEqual([ids[0]]);
      expect(p3.nextCursor).toBeNull();
      const running = await store.list({ owner: "lister", status: "running" }, null, 10);
      expect(running.jobs.map((j) => j.id)).toEqual([ids[6]]);
      const everyone = await store.list({ status: "running" }, null, 100);
      expect(everyone.jobs.map((j) => j.id)).toContain(ids[6]);
      await expect(store.list({ owner: "lister" }, "not-a-cursor!", 3)).rejects.toBeInstanceOf(ValidationError);
      await expect(store.list({ owner: "lister" }, null, 0)).rejects.toBeInstanceOf(ValidationError);
    });
  });
});
