/**
 * The store and runner under a real fault model: replies lost after DynamoDB applied the write
 * (the SDK resends them), hung connections, callers racing the sweeper and claims, final writes
 * DynamoDB refuses, duplicate doorbells on the wrong queue. Faults are injected on the wire by
 * local/wire-faults.ts, below the SDK's retries. Each test is one defect found in the first
 * version, named by what must hold.
 */
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { describe, expect, test } from "vitest";
import { JobsApi } from "../core/api/jobs.js";
import { LIMITS, laneOf } from "../core/config.js";
import { ConflictError } from "../core/errors.js";
import type { FailedJob, RunningJob } from "../core/job.js";
import { decodeMessage } from "../core/queue.js";
import { Registry, type JobType } from "../core/registry.js";
import { Runner } from "../core/runner.js";
import { dueShard, JobStore, shardOf } from "../core/store.js";
import { Sweeper } from "../core/sweeper.js";
import { dynamoClient } from "../core/aws.js";
import { startFargateWorker } from "../functions/fargate.js";
import { makeHandler } from "../functions/worker.js";
import { z } from "zod";
import { manualClock, waitFor } from "./support/emulators.js";
import { sets, target, useWireFaults } from "./support/wire.js";
import { pollOnce, submit } from "./worker-support.js";

const w = useWireFaults("faultmodel");
const quiet = { info() {}, warn() {}, error() {} };
const spec = (over: Record<string, unknown> = {}) => ({
  owner: "alice",
  type: "t.echo",
  queue: "default" as const,
  input: {},
  maxAttempts: 3,
  timeoutMs: 3_600_000,
  ...over,
});

const isClaim = (t: string, b: unknown) => target("UpdateItem")(t) && sets(b, "status", "running");

/** A registry of small handlers the tests drive; each counts its starts. */
function registry(types: Partial<JobType>[]): Registry {
  const r = new Registry();
  for (const t of types) {
    r.register({
      runsOn: "lambda",
      input: z.object({}).passthrough(),
      canMoveToLarge: false,
      limits: { softLimitMs: 60_000, timeoutMs: 3_600_000, maxAttempts: 3, abortGraceMs: 2_000, backoffBaseMs: 10, backoffMaxMs: 10 },
      ...t,
    } as JobType);
  }
  return r;
}

async function messagesOn(queue: "default" | "large"): Promise<string[]> {
  const out = await w.env.sqs.send(new ReceiveMessageCommand({ QueueUrl: w.env.emu.queues[queue].queue, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
  return (out.Messages ?? []).map((m) => decodeMessage(m.Body)?.jobId ?? "");
}

describe("a lost reply is not a lost race", () => {
  test("a claim whose reply was lost is this worker's claim: the handler runs, and a single-attempt job succeeds", async () => {
    const store = w.store();
    const { job } = await store.create(spec({ maxAttempts: 1 }));
    const lost = w.dynamo.injectNext("lostReply", isClaim);
    const c = await store.claim(job.id, "w1", 30_000);
    await lost;
    expect(c).toMatchObject({ ok: true, lease: { token: 1, workerId: "w1" } });
    if (!c.ok) return;
    const done = await store.succeed(c.lease, { ok: 1 });
    expect(done).toMatchObject({ status: "succeeded", attempts: 1, result: { ok: 1 } });
  });

  test("a create whose reply was lost is new, and the API rings its doorbell", async () => {
    const s = w.services();
    const api = new JobsApi(s);
    const lost = w.dynamo.injectNext("lostReply", (t) => target("PutItem")(t));
    const { job, created } = await api.submit({ id: "alice", admin: false }, { type: "demo.sleep", input: { items: 1, msPerItem: 1 } });
    await lost;
    expect(created).toBe(true);
    expect(await messagesOn("default")).toContain(job.id);
  });

  test("cancelling a queued job whose reply was lost answers the cancelled job, not 409", async () => {
    const store = w.store();
    const { job } = await store.create(spec());
    const lost = w.dynamo.injectNext("lostReply", (t, b) => target("UpdateItem")(t) && sets(b, "status", "cancelled"));
    const cancelled = await store.requestCancel(job.id);
    await lost;
    expect(cancelled).toMatchObject({ id: job.id, status: "cancelled" });
  });

  test("succeed, requeue, release and reclaim whose replies were lost answer what they wrote", async () => {
    const clock = manualClock();
    const store = w.store({ now: clock.now });
    const claim = async (id: string) => {
      const c = await store.claim(id, "w1", 1_000);
      if (!c.ok) throw new Error(`claim refused: ${c.reason}`);
      return c.lease;
    };
    const loseNext = (status: string) => w.dynamo.injectNext("lostReply", (t, b) => target("UpdateItem")(t) && sets(b, "status", status));

    const a = (await store.create(spec())).job;
    let lost = loseNext("succeeded");
    expect(await store.succeed(await claim(a.id), "r")).toMatchObject({ status: "succeeded", result: "r" });
    await lost;

    const b = (await store.create(spec())).job;
    lost = loseNext("queued");
    expect(await store.fail(await claim(b.id), { code: "handler_error", message: "x" }, { retryable: true })).toMatchObject({ status: "queued", attempts: 1 });
    await lost;

    const c = (await store.create(spec())).job;
    lost = loseNext("queued");
    expect(await store.release(await claim(c.id))).toMatchObject({ status: "queued", attempts: 0 });
    await lost;

    const d = (await store.create(spec())).job;
    const held = await claim(d.id);
    clock.advance(1_001);
    lost = loseNext("queued");
    expect(await store.reclaim(held.job)).toMatchObject({ status: "queued", token: 2 });
    await lost;
  });

  test("a retried job whose requeue reply was lost still gets its doorbell from the runner", async () => {
    const s = w.services({}, {});
    const r = registry([{ name: "t.failonce", handler: async (_i, ctx) => (ctx.attempt === 1 ? Promise.reject(new Error("once")) : "ok") }]);
    const runner = new Runner({ ...s, registry: r }, { workerId: "w-ring", kind: "local", log: quiet });
    const { job } = await s.store.create(spec({ type: "t.failonce" }));
    const lost = w.dynamo.injectNext("lostReply", (t, b) => target("UpdateItem")(t) && sets(b, "status", "queued"));
    expect(await runner.run(job.id)).toMatchObject({ claimed: true, outcome: "retried" });
    await lost;
    expect(await waitFor(async () => (await messagesOn("default")).includes(job.id), 10_000, "the retry's doorbell")).toBe(true);
  });
});

describe("callers racing the sweeper and claims", () => {
  test("a cancel that lands between the sweeper's read and its reclaim is kept, and the job ends cancelled, not run again", async () => {
    const clock = manualClock();
    const s = w.services({ WARDEN_CANCEL_GRACE_SECONDS: "1" }, { now: clock.now });
    const { job } = await s.store.create(spec());
    const c = await s.store.claim(job.id, "w1", 1_000);
    if (!c.ok) throw new Error("claim refused");
    clock.advance(1_001);
    const read = (await s.store.listOverdue(clock.now(), 100)).jobs.find((j) => j.id === job.id) as RunningJob;
    expect(read.status).toBe("running");
    await s.store.requestCancel(job.id);
    await expect(s.store.reclaim(read)).rejects.toBeInstanceOf(ConflictError);
    expect(await s.store.get(job.id)).toMatchObject({ status: "running", cancelRequested: true });
    clock.advance(1_001);
    await new Sweeper(s).sweep();
    expect(await s.store.get(job.id)).toMatchObject({ status: "cancelled" });
  });

  test("a claim decided before a cancel and a retry cannot write back the old attempts: the fresh retry gets its whole budget", async () => {
    const store = w.store();
    const { job } = await store.create(spec({ maxAttempts: 2 }));
    const first = await store.claim(job.id, "w1", 30_000);
    if (!first.ok) throw new Error("claim refused");
    await store.fail(first.lease, { code: "handler_error", message: "boom" }, { retryable: true });
    // A second claimer, on its own client, has read the job; its write is held until the caller
    // has cancelled and retried it (the interleaving a slow network makes).
    let release!: () => void;
    let reached!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const atGate = new Promise<void>((r) => (reached = r));
    const doc = dynamoClient({ dynamodb: w.dynamo.endpoint });
    doc.middlewareStack.add(
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      (next: (a: any) => Promise<any>) => async (args: any) => {
        if (/#workerId/.test(args.input?.UpdateExpression ?? "")) {
          reached();
          await held;
        }
        return next(args);
      },
      { step: "initialize", name: "abaGate" },
    );
    const gated = new JobStore(doc, { tableName: w.env.emu.tableName });
    const racing = gated.claim(job.id, "w2", 30_000);
    await atGate;
    await store.requestCancel(job.id);
    await store.retry(job.id);
    release();
    const claim = await racing;
    doc.destroy();
    expect(claim.ok).toBe(true);
    const stored = (await store.get(job.id)) as RunningJob;
    expect(stored.attempts).toBe(1);
    if (!claim.ok) return;
    expect(await store.fail(claim.lease, { code: "handler_error", message: "again" }, { retryable: true })).toMatchObject({ status: "queued", attempts: 1 });
  });
});

describe("final writes DynamoDB refuses", () => {
  const big = (n: number) => Array.from({ length: n }, (_, i) => i % 10);
  // Writing a 200 KB input and its values takes a while on a loaded machine: a lease long enough for it.
  const LONG_LEASE = { WARDEN_LEASE_SECONDS: "30" };

  test("a result over its own limit fails the job at once as invalid_result with the limit in the message, never re-run", async () => {
    let starts = 0;
    const s = w.services(LONG_LEASE);
    const r = registry([{ name: "t.huge", handler: async () => (starts++, { data: "x".repeat(LIMITS.maxResultBytes) }) }]);
    const runner = new Runner({ ...s, registry: r }, { workerId: "w-huge", kind: "local", log: quiet });
    const { job } = await s.store.create(spec({ type: "t.huge", input: { data: big(90_000) } }));
    expect(await runner.run(job.id)).toMatchObject({ claimed: true, outcome: "failed" });
    const stored = (await s.store.get(job.id)) as FailedJob;
    expect(stored.error.code).toBe("invalid_result");
    expect(stored.error.message).toMatch(new RegExp(`the limit is ${LIMITS.maxResultBytes}`));
    expect(stored.attempts).toBe(1);
    expect(starts).toBe(1);
  });

  test("a checkpoint over its own limit is refused to the handler while its job is still running", async () => {
    const s = w.services(LONG_LEASE);
    let refused: unknown;
    const r = registry([
      {
        name: "t.bigcheckpoint",
        handler: async (_input, ctx) => {
          try {
            ctx.checkpoint({ data: "x".repeat(LIMITS.maxCheckpointBytes) });
          } catch (e) {
            refused = e;
          }
          return "done without it";
        },
      },
    ]);
    const runner = new Runner({ ...s, registry: r }, { workerId: "w-cp", kind: "local", log: quiet });
    const { job } = await s.store.create(spec({ type: "t.bigcheckpoint", input: { data: big(102_000) } }));
    expect(await runner.run(job.id)).toMatchObject({ outcome: "succeeded" });
    expect(refused).toMatchObject({ name: "TooLargeError" });
    expect(String((refused as Error).message)).toMatch(/the checkpoint is \d+ bytes as JSON/);
  });

  test.each([
    ["a Date", () => ({ when: new Date() })],
    ["NaN", () => ({ ratio: Number.NaN })],
  ])("a result holding %s fails the job at once as invalid_result, the handler started once", async (_what, result) => {
    let starts = 0;
    const s = w.services(LONG_LEASE);
    const r = registry([{ name: "t.odd", handler: async () => (starts++, result()) }]);
    const runner = new Runner({ ...s, registry: r }, { workerId: "w-odd", kind: "local", log: quiet });
    const { job } = await s.store.create(spec({ type: "t.odd" }));
    expect(await runner.run(job.id)).toMatchObject({ outcome: "failed" });
    const stored = (await s.store.get(job.id)) as FailedJob;
    expect(stored.error).toMatchObject({ code: "invalid_result" });
    expect(stored.error.message).toMatch(/plain JSON|cannot store/);
    expect(starts).toBe(1);
  });
});

describe("a hand-back never undoes what a caller was told", () => {
  test.each([
    ["a release (shutdown, deadline)", "release"],
    ["a retryable failure", "fail"],
  ] as const)("a cancel requested before %s the worker had not yet heard of ends the job cancelled; it never runs again", async (_what, how) => {
    const store = w.store();
    const { job } = await store.create(spec());
    const c = await store.claim(job.id, "w1", 30_000);
    if (!c.ok) throw new Error("claim refused");
    expect(await store.requestCancel(job.id)).toMatchObject({ status: "running", cancelRequested: true });
    const after = how === "release" ? await store.release(c.lease) : await store.fail(c.lease, { code: "handler_error", message: "boom" }, { retryable: true });
    expect(after).toMatchObject({ status: "cancelled" });
    expect(await store.get(job.id)).toMatchObject({ status: "cancelled" });
    expect(await store.claim(job.id, "w2", 30_000)).toMatchObject({ ok: false, reason: "finished" });
  });

  test("a Fargate worker that hands a job back hears its own doorbell as a fresh one, not a duplicate: the job runs again at once", async () => {
    const s = w.services({ WARDEN_LEASE_SECONDS: "30" });
    const realSend = s.queue.send.bind(s.queue);
    // The doorbell lands in SQS before the send's reply comes back: the worker's other lane can hear it mid-settle.
    (s.queue as { send: typeof s.queue.send }).send = async (q, ids, d) => {
      await realSend(q, ids, d);
      await new Promise((r) => setTimeout(r, 1_000));
    };
    const worker = startFargateWorker(s, { workerId: "fg-own-bell", queue: "large", concurrency: 2, pollWaitSeconds: 1, log: quiet, limits: { softLimitMs: 400 } });
    try {
      const job = await submit(s, "demo.sleep", { items: 1000, msPerItem: 50, checkpointEvery: 2 }, { queue: "large" });
      // Two soft-limit hand-backs and a third attempt running: each doorbell reached a worker.
      const again = await waitFor(async () => {
        const j = await s.store.get(job.id);
        return j && j.history.filter((h) => h.outcome === "released").length >= 2 && j.status === "running" ? j : undefined;
      }, 15_000, "the job to be handed back twice and running again");
      expect(again.history.length).toBeGreaterThanOrEqual(3);
    } finally {
      await worker.stop({ force: true });
    }
  }, 40_000);
});

describe("every wait is bounded", () => {
  test("a hung heartbeat cannot keep a handler running past its lease: the signal fires lease_lost and nothing more is written", async () => {
    const s = w.services();
    let aborted: unknown;
    let abortedAt = 0;
    const r = registry([
      {
        name: "t.wait",
        handler: (_i, ctx) =>
          new Promise((resolve) => {
            ctx.signal.addEventListener("abort", () => {
              aborted = ctx.signal.reason;
              abortedAt = Date.now();
              resolve("stopped");
            });
          }),
      },
    ]);
    const runner = new Runner({ ...s, registry: r }, { workerId: "w-hang", kind: "local", leaseMs: 1_500, log: quiet });
    const { job } = await s.store.create(spec({ type: "t.wait" }));
    // Every heartbeat from now on hangs on the wire.
    const isBeat = (t: string, b: unknown) => target("UpdateItem")(t) && sets(b, "heartbeatAt") && !sets(b, "status");
    for (let i = 0; i < 20; i++) void w.dynamo.injectNext("hang", isBeat);
    const started = Date.now();
    const out = await runner.run(job.id);
    w.dynamo.setRate(0);
    expect(aborted).toBe("lease_lost");
    expect(abortedAt - started).toBeLessThan(1_500 + 1_000);
    expect(out).toMatchObject({ claimed: true, outcome: "lease_lost" });
    const stored = await s.store.get(job.id);
    expect(stored?.status).toBe("running"); // left for the sweeper: nothing was written after the loss
  });
});

describe("the sweeper under faults", () => {
  test("a due-index partition that keeps failing does not stop the sweep from repairing the others", async () => {
    const clock = manualClock();
    const s = w.services({}, { now: clock.now });
    // Two running jobs whose leases ran out, in different due-index partitions.
    const held: RunningJob[] = [];
    while (held.length < 2) {
      const { job } = await s.store.create(spec());
      const c = await s.store.claim(job.id, "gone", 1_000);
      if (!c.ok) throw new Error("claim refused");
      if (!held.some((h) => shardOf(h.id) === shardOf(job.id))) held.push(c.lease.job);
      else await s.store.succeed(c.lease, "not needed");
    }
    clock.advance(1_001);
    const [broken, healthy] = held as [RunningJob, RunningJob];
    const partition = dueShard("default", "running", broken.id);
    // Every try of that partition's query fails (the SDK's three), as an overloaded partition would.
    const onPartition = (t: string, b: unknown) => target("Query")(t) && (b as { ExpressionAttributeValues?: Record<string, { S?: string }> }).ExpressionAttributeValues?.[":p"]?.S === partition;
    const faults = Array.from({ length: 3 }, () => w.dynamo.injectNext("server", onPartition));
    const report = await new Sweeper(s).sweep();
    await Promise.all(faults);
    expect(report.touched.reclaimed ?? []).toContain(healthy.id);
    // The failing partition counts as "more": the sweep reads again (its next page, or the next
    // sweep), and once the partition answers its job is repaired too.
    if (!(report.touched.reclaimed ?? []).includes(broken.id)) await new Sweeper(s).sweep();
    expect(await s.store.get(broken.id)).toMatchObject({ status: "queued" });
  });
});

describe("runs and queues", () => {
  test("a worker never claims a job it still runs: SIGTERM still hands back the job a duplicate doorbell would have taken", async () => {
    const s = w.services();
    const r = registry([
      {
        name: "t.stubborn",
        limits: { softLimitMs: 60_000, timeoutMs: 3_600_000, maxAttempts: 5, abortGraceMs: 3_000, backoffBaseMs: 10, backoffMaxMs: 10 },
        handler: (_i, ctx) =>
          new Promise((resolve) => {
            ctx.signal.addEventListener("abort", () => {
              if (ctx.signal.reason === "shutdown") resolve("handed back");
              // Any other reason: keep going (ignoring a lost lease), inside the abort grace.
            });
          }),
      },
    ]);
    const runner = new Runner({ ...s, registry: r }, { workerId: "w-dup", kind: "local", leaseMs: 600, log: quiet });
    const { job } = await s.store.create(spec({ type: "t.stubborn", maxAttempts: 5 }));
    // Heartbeats hang, so the first run loses its lease and lingers inside its grace.
    const isBeat = (t: string, b: unknown) => target("UpdateItem")(t) && sets(b, "heartbeatAt") && !sets(b, "status");
    for (let i = 0; i < 10; i++) void w.dynamo.injectNext("hang", isBeat);
    const first = runner.run(job.id);
    await waitFor(async () => (await s.store.get(job.id))?.status === "running" && Date.now() > ((await s.store.get(job.id)) as RunningJob).leaseExpiresAt, 5_000, "the first lease to expire");
    // The sweeper takes the job back; a duplicate doorbell reaches the same worker.
    await new Sweeper(s).sweep();
    expect((await s.store.get(job.id))?.status).toBe("queued");
    const second = await runner.run(job.id);
    expect(second).toMatchObject({ claimed: false, reason: "already_running" });
    runner.shutdown();
    await first;
    await runner.idle();
    expect((await s.store.get(job.id))?.status).toBe("queued");
  });

  test("the Lambda worker forwards a doorbell for a large job to the large queue instead of running it", async () => {
    const s = w.services();
    const { job } = await s.store.create(spec({ type: "demo.sleep", input: { items: 1, msPerItem: 1 }, queue: "large" }));
    await s.queue.send(laneOf({ queue: "default" }), [job.id]);
    const handler = makeHandler(s, { workerId: "lambda-q", memory: false, log: quiet });
    const { jobIds } = await pollOnce(s, handler);
    expect(jobIds).toContain(job.id);
    expect(await s.store.get(job.id)).toMatchObject({ status: "queued", attempts: 0 });
    expect(await messagesOn("large")).toContain(job.id);
  });
});
