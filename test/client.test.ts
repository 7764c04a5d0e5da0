/**
 * The typed client over real HTTP: the handler served on loopback (bearer tokens mapped to the
 * authorizer context, as locally), a worker loop running jobs through core/runner.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  StaleJobError,
  WaitTimeoutError,
  WardenApiError,
  WardenClient,
  WardenNetworkError,
  bulkTotalOf,
  type ApiJob,
} from "../client/index.js";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { silentLog } from "../core/api/jobs.js";
import { encodeMessage } from "../core/queue.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { makeHandler } from "../functions/api.js";
import { useEmulators } from "./support/emulators.js";
import { serveApi, type TestServer } from "./support/http-api.js";
import { startWorkerLoop, type WorkerLoop } from "./support/api-worker.js";

const env = useEmulators("client");
let services: Services;
let server: TestServer;
let worker: WorkerLoop;
let alice: WardenClient;
let admin: WardenClient;

beforeAll(async () => {
  services = buildServices(loadRuntime(env.emu.env));
  server = await serveApi(makeHandler(services, { log: silentLog }), {
    "tok-alice": { sub: "alice" },
    "tok-bob": { sub: "bob" },
    "tok-admin": { sub: "admin", admin: true },
  });
  alice = new WardenClient({ baseUrl: server.url, token: "tok-alice" });
  admin = new WardenClient({ baseUrl: `${server.url}/`, token: "tok-admin" });
  // A 3 s lease: with 600 ms, a heartbeat bounded to 200 ms on a loaded machine can let the lease
  // lapse mid-job, and a CLI polling every second then rightly reports the job stale.
  worker = startWorkerLoop(services, { leaseMs: 3_000 });
});

afterAll(async () => {
  await worker?.stop();
  await server?.close();
});

/** A job written straight to the store, with no message: no worker will ever pick it up. */
async function orphan(owner: string): Promise<string> {
  const { job } = await services.store.create({ owner, type: "demo.sleep", queue: "default", input: { items: 1 }, maxAttempts: 3, timeoutMs: 60_000 });
  return job.id;
}

describe("jobs", () => {
  it("submits, waits with progress, and returns the finished job", async () => {
    const { job, created } = await alice.submit("demo.sleep", { items: 6, msPerItem: 150 });
    expect(created).toBe(true);
    expect(job.status).toBe("queued");
    const seen: ApiJob[] = [];
    const done = await alice.wait(job.id, { timeoutMs: 20_000, minIntervalMs: 100, onProgress: (j) => seen.push(j) });
    expect(done).toMatchObject({ id: job.id, status: "succeeded", result: { items: 6, resumedFrom: 0 } });
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen.at(-1)?.status).toBe("succeeded");
    expect((await alice.get(job.id)).status).toBe("succeeded");
  });

  it("returns a failed job from wait (the caller reads its status and error)", async () => {
    const { job } = await alice.submit("demo.permanent", { message: "no" });
    const done = await alice.wait(job.id, { timeoutMs: 20_000, minIntervalMs: 100 });
    expect(done).toMatchObject({ status: "failed", error: { code: "handler_error", message: expect.stringContaining("no") } });
    const again = await alice.retry(job.id);
    expect(again.status).toBe("queued");
  });

  it("is idempotent with a key", async () => {
    const a = await alice.submit("demo.sleep", { items: 1, msPerItem: 0 }, { idempotencyKey: "client-key-1" });
    const b = await alice.submit("demo.sleep", { items: 1, msPerItem: 0 }, { idempotencyKey: "client-key-1" });
    expect([a.created, b.created]).toEqual([true, false]);
    expect(b.job.id).toBe(a.job.id);
  });

  it("iterates over pages of the caller's jobs, newest first", async () => {
    const bob = new WardenClient({ baseUrl: server.url, token: "tok-bob" });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await bob.submit("demo.sleep", { items: 1, msPerItem: 0 }, { runAt: new Date(Date.now() + 600_000) })).job.id);
    const pages: string[][] = [];
    for await (const page of bob.list({ limit: 2 })) pages.push(page.map((j) => j.id));
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(pages.flat()).toEqual(ids.reverse());
  });

  it("cancels, and throws typed API errors with the contract's code", async () => {
    const id = await orphan("alice");
    expect((await alice.cancel(id)).status).toBe("cancelled");
    await expect(alice.cancel(id)).rejects.toMatchObject({ name: "WardenApiError", status: 409, code: "conflict" });
    const bob = new WardenClient({ baseUrl: server.url, token: "tok-bob" });
    await expect(bob.get(id)).rejects.toMatchObject({ status: 404, code: "not_found" });
    await expect(new WardenClient({ baseUrl: server.url, token: "wrong" }).get(id)).rejects.toBeInstanceOf(WardenApiError);
    await expect(new WardenClient({ baseUrl: server.url }).get(id)).rejects.toMatchObject({ status: 401, code: "unauthorized" });
    await expect(alice.submit("demo.nope")).rejects.toMatchObject({ status: 400, code: "invalid_request" });
  });

  it("reports an unreachable API as a network error", async () => {
    await expect(new WardenClient({ baseUrl: "http://127.0.0.1:9", token: "x" }).get("01JD0000000000000000000000")).rejects.toBeInstanceOf(
      WardenNetworkError,
    );
  });
});

describe("wait gives up instead of polling forever", () => {
  it("throws StaleJobError when the job's worker died", async () => {
    const id = await orphan("alice");
    const claim = await services.store.claim(id, "w-doomed", 300);
    expect(claim.ok).toBe(true);
    // The worker never heartbeats again.
    const started = Date.now();
    const err = await alice.wait(id, { timeoutMs: 60_000, minIntervalMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StaleJobError);
    expect((err as StaleJobError).job).toMatchObject({ id, status: "running", stale: true });
    expect((err as Error).message).toContain("w-doomed");
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("throws WaitTimeoutError past its time limit, polling no faster than Retry-After", async () => {
    const id = await orphan("alice");
    let polls = 0;
    const counting = new WardenClient({
      baseUrl: server.url,
      token: "tok-alice",
      fetch: (input, init) => {
        polls++;
        return fetch(input, init);
      },
    });
    const started = Date.now();
    const err = await counting.wait(id, { timeoutMs: 2_500, minIntervalMs: 20 }).catch((e: unknown) => e);
    const waited = Date.now() - started;
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as WaitTimeoutError).job.status).toBe("queued");
    expect(waited).toBeGreaterThanOrEqual(2_500);
    expect(waited).toBeLessThan(6_000);
    // Retry-After is at least a second, so a 20 ms backoff start still means about one poll a second.
    expect(polls).toBeLessThanOrEqual(Math.ceil(waited / 1000) + 1);
    expect(polls).toBeGreaterThanOrEqual(2);
  });
});

describe("admin", () => {
  it("reads stuck jobs, sweeps, peeks at dead letters, redrives and lists workers", async () => {
    const stuck = await admin.stuck();
    expect(Object.keys(stuck.states).sort()).toEqual(["cancelling", "held", "orphaned", "queued", "running", "waiting"]);
    const report = await admin.sweep();
    expect(typeof report.counts.resent).toBe("number");
    // Two doorbells that SQS gave up on, for a job that is still queued in the table.
    const dead = await orphan("alice");
    for (let i = 0; i < 2; i++) {
      await services.sqs.send(new SendMessageCommand({ QueueUrl: services.cfg.queues.default.dlq, MessageBody: encodeMessage({ jobId: dead, queue: "default" }) }));
    }
    const dl = await admin.deadLetters();
    expect(dl.queues.default.count).toBe(2);
    expect(dl.queues.large.count).toBe(0);
    expect(await admin.redrive("large")).toBe(0);
    expect(await admin.redrive("default")).toBe(2);
    expect((await admin.deadLetters()).queues.default.count).toBe(0);
    const workers = await admin.workers();
    expect(workers.map((w) => w.id)).toContain("test-worker");
    await expect(alice.workers()).rejects.toMatchObject({ status: 403, code: "forbidden" });
    expect(await alice.health()).toEqual({ ok: true, checks: { table: "ok", "queue:default": "ok", "queue:large": "ok" } });
  });
});

describe("bulk runs that fail part way (stub API)", () => {
  const json = (status: number, body: unknown): Response => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  const page = (acted: number, nextCursor: string | null) => ({ matched: acted, acted, skipped: 0, dryRun: false, nextCursor });
  const clientOver = (answers: Response[], bodies: unknown[]): WardenClient =>
    new WardenClient({
      baseUrl: "http://stub.test",
      token: "t",
      fetch: async (_input, init) => {
        bodies.push(JSON.parse(String(init?.body)));
        return answers.shift() ?? json(500, { error: { code: "internal", message: "no more answers" } });
      },
    });

  it("does not repeat a retry call after a 5xx, and the error carries what the calls before it did", async () => {
    const bodies: unknown[] = [];
    const c = clientOver([json(200, page(5, "c1")), json(503, { error: { code: "unavailable", message: "down" } })], bodies);
    const e = await c.bulkRetry({ type: "demo.x" }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(WardenApiError);
    expect(bodies).toHaveLength(2);
    expect(bulkTotalOf(e)).toMatchObject({ acted: 5, matched: 5, calls: 1 });
  });

  it("repeats a retry call after a 429, and a cancel call after a 5xx", async () => {
    const retried: unknown[] = [];
    const r = clientOver([json(429, { message: "Too Many Requests" }), json(200, page(3, null))], retried);
    expect(await r.bulkRetry({ type: "demo.x" })).toMatchObject({ acted: 3, calls: 1 });
    expect(retried).toHaveLength(2);
    const cancelled: unknown[] = [];
    const k = clientOver([json(503, { error: { code: "unavailable", message: "down" } }), json(200, page(2, null))], cancelled);
    expect(await k.bulkCancel({ type: "demo.x" })).toMatchObject({ acted: 2, calls: 1 });
    expect(cancelled).toHaveLength(2);
  });
});
