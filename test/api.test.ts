/**
 * Every route of the contract (docs/contract.md) through the real Lambda handler, with API Gateway
 * payload-v2 events, against the emulators: the success shapes and every listed error.
 */
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { API_ERROR_CODES } from "../core/api/errors.js";
import { silentLog } from "../core/api/jobs.js";
import { LIMITS, QUEUE_NAMES, laneOf } from "../core/config.js";
import { builtinRegistry } from "../core/jobs/index.js";
import { defineJob } from "../core/registry.js";
import type { Job } from "../core/job.js";
import { MemoryMetrics } from "../core/metrics.js";
import { encodeMessage } from "../core/queue.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { handler as deployedHandler, makeHandler, type ApiHandler } from "../functions/api.js";
import { useEmulators, waitFor, manualClock } from "./support/emulators.js";
import { apiEvent, jwtAuthorizer, type EventSpec } from "./support/http-api.js";

const env = useEmulators("api");
let services: Services;
let metrics: MemoryMetrics;
let handler: ApiHandler;

const OPS_ARN = "arn:aws:iam::123456789012:user/ops";

beforeAll(() => {
  metrics = new MemoryMetrics();
  services = buildServices(loadRuntime(env.emu.env), { metrics });
  handler = makeHandler(services, { log: silentLog, adminPrincipals: [OPS_ARN] });
});

type Who = "alice" | "bob" | "admin" | "none";
interface Call {
  who?: Who;
  body?: unknown;
  raw?: string;
  contentType?: string;
  query?: Record<string, string>;
  authorizer?: unknown;
  stage?: string;
}

async function call(method: string, path: string, c: Call = {}, h: ApiHandler = handler) {
  const who = c.who ?? "alice";
  const rawBody = c.raw ?? (c.body !== undefined ? JSON.stringify(c.body) : undefined);
  const spec: EventSpec = {
    method,
    path,
    headers: rawBody !== undefined ? { "content-type": c.contentType ?? "application/json" } : {},
    ...(c.query ? { query: c.query } : {}),
    ...(rawBody !== undefined ? { rawBody } : {}),
    ...(c.stage ? { stage: c.stage } : {}),
  };
  if (c.authorizer !== undefined) spec.authorizer = c.authorizer;
  else if (who !== "none") spec.authorizer = jwtAuthorizer({ sub: who, admin: who === "admin" });
  const res = await h(apiEvent(spec));
  return { status: res.statusCode ?? 0, headers: (res.headers ?? {}) as Record<string, string>, body: JSON.parse(res.body ?? "null") };
}

const errorShape = z.strictObject({
  error: z.strictObject({ code: z.enum(API_ERROR_CODES), message: z.string().min(1), details: z.unknown().optional() }),
});

function expectError(res: { status: number; body: unknown }, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(errorShape.parse(res.body).error.code).toBe(code);
}

/** The job object's keys, exactly as docs/contract.md lists them. */
const JOB_KEYS = [
  "id", "type", "queue", "status", "input", "result", "error", "attempts", "maxAttempts", "progress",
  "createdAt", "firstStartedAt", "startedAt", "heartbeatAt", "finishedAt", "runAt", "cancelRequested", "stale", "history",
  "worker", "actions", "parentId", "childIndex", "childKey", "children", "concurrencyKey", "priority", "held",
].sort();
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

const submit = async (type: string, input: unknown, extra: Record<string, unknown> = {}, who: Who = "alice") =>
  call("POST", "/jobs", { who, body: { type, input, ...extra } });

/** Receives until the queue yields a message for `jobId`, deleting what it reads. */
async function awaitMessage(queue: "default" | "large", jobId: string): Promise<void> {
  await waitFor(async () => {
    const ms = await services.queue.receive(laneOf({ queue: queue }), { max: 10, waitSeconds: 0 });
    for (const m of ms) await services.queue.delete(m.lane, m.receiptHandle);
    return ms.some((m) => m.jobId === jobId);
  }, 10_000, `a message for ${jobId} on ${queue}`);
}

/** Claims and finishes a job through the store, as a worker would. */
async function finish(id: string, how: "succeed" | "fail"): Promise<void> {
  const claim = await services.store.claim(id, "w-test", 5_000);
  if (!claim.ok) throw new Error(`claim refused: ${claim.reason}`);
  if (how === "succeed") await services.store.succeed(claim.lease, { ok: 1 });
  else await services.store.fail(claim.lease, { code: "handler_error", message: "boom" }, { retryable: false });
}

describe("GET /health", () => {
  it("answers 200 with every check, without a caller", async () => {
    const res = await call("GET", "/health", { who: "none" });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, checks: { table: "ok", "queue:default": "ok", "queue:large": "ok" } });
  });

  it("answers 503 naming the failing check when a queue cannot be reached", async () => {
    const cfg = loadRuntime({ ...env.emu.env, WARDEN_SQS_ENDPOINT: "http://127.0.0.1:9" });
    const broken = makeHandler(buildServices(cfg), { log: silentLog });
    const res = await call("GET", "/health", { who: "none" }, broken);
    expect(res.status).toBe(503);
    expect(res.body.ok).toBe(false);
    expect(res.body.checks).toEqual({ table: "ok", "queue:default": "unreachable", "queue:large": "unreachable" });
    expect(res.body.error.code).toBe("internal");
    expect(JSON.stringify(res.body)).not.toMatch(/ECONNREFUSED|\bat \w+ \(/);
  });
});

describe("POST /jobs", () => {
  it("writes the job, answers 201 in the contract's shape, and rings the type's queue", async () => {
    const before = metrics.sum("JobsSubmitted");
    const res = await submit("demo.sleep", { items: 3, msPerItem: 10 });
    expect(res.status).toBe(201);
    const job = res.body.job;
    expect(Object.keys(job).sort()).toEqual(JOB_KEYS);
    expect(job).toMatchObject({
      type: "demo.sleep",
      queue: "default",
      status: "queued",
      input: { items: 3, msPerItem: 10, checkpointEvery: 5 },
      result: null,
      error: null,
      attempts: 0,
      maxAttempts: 3,
      progress: null,
      firstStartedAt: null,
      startedAt: null,
      heartbeatAt: null,
      finishedAt: null,
      runAt: null,
      cancelRequested: false,
      stale: false,
      history: [],
    });
    expect(job.createdAt).toMatch(ISO);
    expect(metrics.sum("JobsSubmitted") - before).toBe(1);
    const stored = await services.store.get(job.id);
    expect(stored?.owner).toBe("alice");
    await awaitMessage("default", job.id);
  });

  it("picks the queue from the type: a large demo.memory goes to large, a small one to default, and body.queue wins", async () => {
    const big = await submit("demo.memory", { mb: 4000 });
    const small = await submit("demo.memory", { mb: 16 });
    const forced = await submit("demo.sleep", { items: 1 }, { queue: "large" });
    expect([big.body.job.queue, small.body.job.queue, forced.body.job.queue]).toEqual(["large", "default", "large"]);
    await awaitMessage("large", big.body.job.id);
  });

  it("takes maxAttempts, timeoutSeconds and runAt", async () => {
    const runAt = new Date(Date.now() + 60_000).toISOString();
    const res = await submit("demo.fail", { times: 1 }, { maxAttempts: 7, timeoutSeconds: 90, runAt });
    expect(res.status).toBe(201);
    expect(res.body.job).toMatchObject({ maxAttempts: 7, runAt, status: "queued" });
    const stored = (await services.store.get(res.body.job.id)) as Job;
    expect(stored.timeoutMs).toBe(90_000);
    // The type's own limit is the default and the ceiling.
    const typeLimitMs = services.registry.get("demo.fail")!.limits.timeoutMs;
    expectError(await submit("demo.fail", { times: 1 }, { timeoutSeconds: typeLimitMs / 1000 + 1 }), 400, "invalid_request");
    const fallback = await submit("demo.fail", { times: 1 });
    expect(((await services.store.get(fallback.body.job.id)) as Job).timeoutMs).toBe(typeLimitMs);
  });

  it("answers a repeated idempotency key with 200 and the first job", async () => {
    const first = await submit("demo.sleep", { items: 1 }, { idempotencyKey: "order-17" });
    const again = await submit("demo.sleep", { items: 2 }, { idempotencyKey: "order-17" });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.body.job.id).toBe(first.body.job.id);
    expect(again.body.job.input.items).toBe(1);
    // Another caller's same key is another job.
    const bobs = await submit("demo.sleep", { items: 1 }, { idempotencyKey: "order-17" }, "bob");
    expect(bobs.status).toBe(201);
    expect(bobs.body.job.id).not.toBe(first.body.job.id);
  });

  it("refuses malformed JSON, wrong types, unknown types and unknown fields with 400", async () => {
    expectError(await call("POST", "/jobs", { raw: '{"type": "demo.sleep",' }), 400, "invalid_request");
    expectError(await call("POST", "/jobs", { body: { type: 5 } }), 400, "invalid_request");
    expectError(await call("POST", "/jobs", { body: { type: "demo.sleep", maxAttempts: "3" } }), 400, "invalid_request");
    const unknownType = await call("POST", "/jobs", { body: { type: "demo.nope" } });
    expectError(unknownType, 400, "invalid_request");
    expect(unknownType.body.error.message).toContain("demo.sleep"); // says what would work
    const unknownField = await call("POST", "/jobs", { body: { type: "demo.sleep", priority: 9 } });
    expectError(unknownField, 400, "invalid_request");
    expect(unknownField.body.error.message).toContain("priority");
    expectError(await call("POST", "/jobs", { body: { type: "demo.sleep", input: { items: "many" } } }), 400, "invalid_request");
    expectError(await call("POST", "/jobs", { body: { type: "demo.sleep", queue: "fast" } }), 400, "invalid_request");
    expectError(await call("POST", "/jobs", {}), 400, "invalid_request");
  });

  it("answers 413 for a body over 256 KiB and for an input over the store's limit", async () => {
    const huge = "x".repeat(LIMITS.maxBodyBytes);
    expectError(await call("POST", "/jobs", { body: { type: "demo.permanent", input: { message: huge } } }), 413, "payload_too_large");
    // Under the body limit but over the input limit. No built-in type takes an input that large,
    // so a test type stands in; the store refuses it before any write.
    const blob = defineJob({ name: "test.blob", input: z.object({ data: z.string() }), runsOn: "lambda", handler: async () => null });
    const blobs = makeHandler(buildServices(loadRuntime(env.emu.env), { registry: builtinRegistry().register(blob) }), { log: silentLog });
    const body = { type: "test.blob", input: { data: "y".repeat(LIMITS.maxInputBytes) } };
    expect(JSON.stringify(body).length).toBeLessThan(LIMITS.maxBodyBytes);
    const res = await call("POST", "/jobs", { who: "blobber" as Who, body }, blobs);
    expectError(res, 413, "payload_too_large");
    expect((await call("GET", "/jobs", { who: "blobber" as Who })).body.jobs).toEqual([]);
  });

  it("answers 415 for a body that is not JSON", async () => {
    expectError(await call("POST", "/jobs", { raw: "type=demo.sleep", contentType: "application/x-www-form-urlencoded" }), 415, "unsupported_media_type");
  });

  it("answers 401 without a caller", async () => {
    expectError(await submit("demo.sleep", {}, {}, "none"), 401, "unauthorized");
  });
});

describe("GET /jobs/{id}", () => {
  it("answers the owner with the job and a Retry-After; another caller gets the same 404 as an unknown id", async () => {
    const { body } = await submit("demo.sleep", { items: 1 });
    const id = body.job.id as string;
    const own = await call("GET", `/jobs/${id}`);
    expect(own.status).toBe(200);
    expect(own.body.job.id).toBe(id);
    expect(Number(own.headers["retry-after"])).toBeGreaterThanOrEqual(1);

    const other = await call("GET", `/jobs/${id}`, { who: "bob" });
    const unknownId = "01JD0000000000000000000000";
    const unknown = await call("GET", `/jobs/${unknownId}`, { who: "bob" });
    expectError(other, 404, "not_found");
    expectError(unknown, 404, "not_found");
    expect(other.body.error.message.replace(id, "ID")).toBe(unknown.body.error.message.replace(unknownId, "ID"));
    expectError(await call("GET", "/jobs/not-an-id"), 404, "not_found");
  });

  it("lets the admin read anyone's job", async () => {
    const { body } = await submit("demo.sleep", { items: 1 }, {}, "bob");
    const res = await call("GET", `/jobs/${body.job.id}`, { who: "admin" });
    expect(res.status).toBe(200);
    expect(res.body.job.id).toBe(body.job.id);
  });

  it("reports progress, and `stale` once the worker's lease ran out", async () => {
    const { body } = await submit("demo.sleep", { items: 4 });
    const claim = await services.store.claim(body.job.id, "w-dies", 300);
    if (!claim.ok) throw new Error(claim.reason);
    await services.store.heartbeat(claim.lease, { progress: { done: 1, total: 4, message: "item 1 of 4" } });
    const live = await call("GET", `/jobs/${body.job.id}`);
    expect(live.body.job).toMatchObject({
      status: "running",
      attempts: 1,
      stale: false,
      progress: { percent: 25, done: 1, total: 4, message: "item 1 of 4" },
      history: [{ attempt: 1, worker: "w-dies", endedAt: null, outcome: null }],
    });
    expect(live.body.job.heartbeatAt).toMatch(ISO);
    expect(live.body.job.history[0].startedAt).toMatch(ISO);
    // The worker dies: no more heartbeats.
    const stale = await waitFor(async () => {
      const r = await call("GET", `/jobs/${body.job.id}`);
      return r.body.job.stale ? r : undefined;
    }, 5_000, "the job to turn stale");
    expect(stale.body.job.status).toBe("running");
  });

  it("grows Retry-After with the job's age and drops it once the job finished", async () => {
    const clock = manualClock();
    const clocked = makeHandler(buildServices(loadRuntime(env.emu.env), { now: clock.now }), { log: silentLog });
    const { body } = await call("POST", "/jobs", { body: { type: "demo.sleep", input: { items: 1 } } }, clocked);
    const id = body.job.id as string;
    const ages = [0, 30_000, 120_000, 3_600_000];
    const waits: number[] = [];
    for (const age of ages) {
      clock.set(Date.parse(body.job.createdAt) + age);
      waits.push(Number((await call("GET", `/jobs/${id}`, {}, clocked)).headers["retry-after"]));
    }
    expect(waits[0]).toBe(1);
    for (let i = 1; i < waits.length; i++) expect(waits[i]!).toBeGreaterThan(waits[i - 1]!);
    expect(waits.at(-1)).toBeLessThanOrEqual(30);
    await finish(id, "succeed");
    const done = await call("GET", `/jobs/${id}`);
    expect(done.headers["retry-after"]).toBeUndefined();
    expect(done.body.job).toMatchObject({ status: "succeeded", result: { ok: 1 } });
    expect(done.body.job.finishedAt).toMatch(ISO);
    // startedAt stays that of the attempt that finished it; heartbeatAt is only for a live attempt.
    expect(done.body.job.startedAt).toBe(done.body.job.history.at(-1).startedAt);
    expect(done.body.job.startedAt).toMatch(ISO);
    expect(done.body.job.heartbeatAt).toBeNull();
  });
});

describe("GET /jobs", () => {
  it("lists the caller's own jobs newest first, filters, and pages with a cursor", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submit("demo.sleep", { items: i }, {}, "carol" as Who)).body.job.id);
    await submit("demo.sleep", { items: 1 }, {}, "dave" as Who);
    const failed = (await submit("demo.permanent", {}, {}, "carol" as Who)).body.job.id as string;
    await finish(failed, "fail");

    const all = await call("GET", "/jobs", { who: "carol" as Who });
    expect(all.status).toBe(200);
    expect(all.body.nextCursor).toBeNull();
    expect(all.body.jobs.map((j: { id: string }) => j.id)).toEqual([failed, ...ids.reverse()]);

    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await call("GET", "/jobs", { who: "carol" as Who, query: { limit: "2", ...(cursor ? { cursor } : {}) } });
      expect(page.body.jobs.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.jobs.map((j: { id: string }) => j.id));
      cursor = page.body.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual(all.body.jobs.map((j: { id: string }) => j.id));

    const onlyFailed = await call("GET", "/jobs", { who: "carol" as Who, query: { status: "failed" } });
    expect(onlyFailed.body.jobs.map((j: { id: string }) => j.id)).toEqual([failed]);
    const byType = await call("GET", "/jobs", { who: "carol" as Who, query: { type: "demo.permanent" } });
    expect(byType.body.jobs.map((j: { id: string }) => j.id)).toEqual([failed]);
  });

  it("shows the admin everyone's jobs", async () => {
    const res = await call("GET", "/jobs", { who: "admin", query: { limit: "100" } });
    const ownerOf = async (id: string) => (await services.store.get(id))?.owner;
    const owners = new Set(await Promise.all(res.body.jobs.map((j: { id: string }) => ownerOf(j.id))));
    expect(owners.has("alice") && owners.has("bob")).toBe(true);
  });

  it("refuses bad limits, bad cursors, unknown statuses and unknown parameters with 400", async () => {
    const bad: Record<string, string>[] = [{ limit: "0" }, { limit: "101" }, { limit: "-1" }, { limit: "ten" }, { cursor: "garbage!" }, { status: "stuck" }, { sort: "asc" }];
    for (const query of bad) {
      expectError(await call("GET", "/jobs", { query }), 400, "invalid_request");
    }
  });
});

describe("POST /jobs/{id}/cancel and /retry", () => {
  it("cancels a queued job at once and marks a running one; a finished job is 409", async () => {
    const queued = (await submit("demo.sleep", { items: 1 })).body.job.id as string;
    const res = await call("POST", `/jobs/${queued}/cancel`);
    expect(res.status).toBe(202);
    expect(res.body.job).toMatchObject({ status: "cancelled", error: { code: "cancelled" } });
    expectError(await call("POST", `/jobs/${queued}/cancel`), 409, "conflict");

    const running = (await submit("demo.sleep", { items: 1 })).body.job.id as string;
    const claim = await services.store.claim(running, "w-1", 30_000);
    expect(claim.ok).toBe(true);
    const marked = await call("POST", `/jobs/${running}/cancel`);
    expect(marked.status).toBe(202);
    expect(marked.body.job).toMatchObject({ status: "running", cancelRequested: true });
  });

  it("keeps other callers out: their cancel and retry answer 404", async () => {
    const id = (await submit("demo.sleep", { items: 1 })).body.job.id as string;
    expectError(await call("POST", `/jobs/${id}/cancel`, { who: "bob" }), 404, "not_found");
    expectError(await call("POST", `/jobs/${id}/retry`, { who: "bob" }), 404, "not_found");
    expect((await services.store.get(id))?.status).toBe("queued");
  });

  it("retries a failed job with a fresh budget and rings its queue; retrying a queued job is 409", async () => {
    const id = (await submit("demo.permanent", {})).body.job.id as string;
    expectError(await call("POST", `/jobs/${id}/retry`), 409, "conflict");
    await finish(id, "fail");
    const res = await call("POST", `/jobs/${id}/retry`);
    expect(res.status).toBe(202);
    expect(res.body.job).toMatchObject({ status: "queued", attempts: 0 });
    expect(res.body.job.history).toHaveLength(1); // kept
    await awaitMessage("default", id);
  });

  it("refuses a body with fields on the action routes", async () => {
    const id = (await submit("demo.sleep", { items: 1 })).body.job.id as string;
    expectError(await call("POST", `/jobs/${id}/cancel`, { body: { force: true } }), 400, "invalid_request");
  });
});

describe("admin routes", () => {
  const adminRoutes: [string, string, unknown?][] = [
    ["GET", "/admin/stuck"],
    ["POST", "/admin/sweep"],
    ["GET", "/admin/dead-letters"],
    ["POST", "/admin/dead-letters/redrive", { queue: "default" }],
    ["GET", "/admin/workers"],
  ];

  it("answers 403 to a non-admin and 401 to nobody", async () => {
    for (const [method, path, body] of adminRoutes) {
      expectError(await call(method, path, { who: "alice", ...(body ? { body } : {}) }), 403, "forbidden");
      expectError(await call(method, path, { who: "none", ...(body ? { body } : {}) }), 401, "unauthorized");
    }
  });

  it("GET /admin/stuck reports per state and the dead-letter depths", async () => {
    const res = await call("GET", "/admin/stuck", { who: "admin" });
    expect(res.status).toBe(200);
    expect(res.body.generatedAt).toMatch(ISO);
    for (const s of ["queued", "running", "cancelling"]) {
      expect(res.body.states[s]).toEqual({ count: expect.any(Number), oldestAgeSeconds: expect.any(Number), sample: expect.any(Array) });
    }
    expect(Object.keys(res.body.deadLetters).sort()).toEqual([...QUEUE_NAMES].sort());
  });

  it("POST /admin/sweep runs one sweep and reports it", async () => {
    const res = await call("POST", "/admin/sweep", { who: "admin" });
    expect(res.status).toBe(200);
    expect(res.body.report.counts).toMatchObject({ reclaimed: expect.any(Number), resent: expect.any(Number) });
  });

  it("peeks at dead letters without consuming them, and redrives them", async () => {
    const jobId = "01JD0000000000000000000DLQ";
    await env.sqs.send(new SendMessageCommand({ QueueUrl: env.emu.queues.default.dlq, MessageBody: encodeMessage({ jobId, queue: "default" }) }));
    const peek = await waitFor(async () => {
      const r = await call("GET", "/admin/dead-letters", { who: "admin" });
      return r.body.queues.default.count >= 1 ? r : undefined;
    }, 10_000, "the dead letter to show");
    expect(peek.status).toBe(200);
    expect(peek.body.queues.large).toEqual({ count: expect.any(Number), sample: expect.any(Array) });
    expect(peek.body.queues.default.sample[0]).toEqual({ jobId, receiveCount: expect.any(Number), firstFailedAt: expect.stringMatching(ISO) });

    expectError(await call("POST", "/admin/dead-letters/redrive", { who: "admin", body: { queue: "slow" } }), 400, "invalid_request");
    expectError(await call("POST", "/admin/dead-letters/redrive", { who: "admin", body: {} }), 400, "invalid_request");
    const moved = await waitFor(async () => {
      const r = await call("POST", "/admin/dead-letters/redrive", { who: "admin", body: { queue: "default" } });
      return r.body.moved >= 1 ? r : undefined;
    }, 10_000, "the redrive to move the message");
    expect(moved.status).toBe(202);
    await awaitMessage("default", jobId);
  });

  it("GET /admin/workers lists recently seen workers with ISO times", async () => {
    const id = (await submit("demo.sleep", { items: 1 })).body.job.id as string;
    const claim = await services.store.claim(id, "w-ecs-1", 60_000);
    expect(claim.ok).toBe(true);
    await services.workers.report({ id: "w-ecs-1", kind: "fargate", pid: 42, startedAt: Date.now() - 1000, jobs: [id] });
    const res = await call("GET", "/admin/workers", { who: "admin" });
    expect(res.status).toBe(200);
    const w = res.body.workers.find((x: { id: string }) => x.id === "w-ecs-1");
    expect(w).toEqual({
      id: "w-ecs-1",
      kind: "fargate",
      pid: 42,
      startedAt: expect.stringMatching(ISO),
      lastSeenAt: expect.stringMatching(ISO),
      jobs: [id],
      state: "alive",
      diedAt: null,
      deathReason: null,
    });
  });
});

describe("identity", () => {
  it("takes an IAM principal as the caller, admin when listed in the admin principals", async () => {
    const iam = (userArn: string) => ({ iam: { userArn, accountId: "123456789012", callerId: "AIDA" } });
    const mine = await call("POST", "/jobs", { authorizer: iam("arn:aws:iam::123456789012:user/ci"), body: { type: "demo.sleep" } });
    expect(mine.status).toBe(201);
    expect((await services.store.get(mine.body.job.id))?.owner).toBe("arn:aws:iam::123456789012:user/ci");
    expectError(await call("GET", "/admin/workers", { authorizer: iam("arn:aws:iam::123456789012:user/ci") }), 403, "forbidden");
    expect((await call("GET", "/admin/workers", { authorizer: iam(OPS_ARN) })).status).toBe(200);
  });

  it("reads JWT groups in API Gateway's flattened string form and Cognito's claim", async () => {
    const flat = { jwt: { claims: { sub: "erin", groups: "[readers warden-admin]" }, scopes: null } };
    const cognito = { jwt: { claims: { sub: "frank", "cognito:groups": "warden-admin" }, scopes: null } };
    const plain = { jwt: { claims: { sub: "gus", groups: "readers,writers" }, scopes: null } };
    expect((await call("GET", "/admin/workers", { authorizer: flat })).status).toBe(200);
    expect((await call("GET", "/admin/workers", { authorizer: cognito })).status).toBe(200);
    expect((await call("GET", "/admin/workers", { authorizer: plain })).status).toBe(403);
    expectError(await call("GET", "/jobs", { authorizer: { jwt: { claims: {}, scopes: null } } }), 401, "unauthorized");
  });

  it("routes under a named stage's path prefix", async () => {
    const res = await call("GET", "/prod/jobs", { stage: "prod" });
    expect(res.status).toBe(200);
  });
});

describe("failures", () => {
  it("answers an unknown route with 404 in the contract's shape", async () => {
    expectError(await call("GET", "/nope"), 404, "not_found");
    expectError(await call("DELETE", "/jobs"), 404, "not_found");
  });

  it("answers a store failure with a bare 500: no stack, no internal detail", async () => {
    const cfg = loadRuntime({ ...env.emu.env, WARDEN_DYNAMODB_ENDPOINT: "http://127.0.0.1:9" });
    const logged: unknown[] = [];
    const broken = makeHandler(buildServices(cfg), { log: { ...silentLog, error: (m, f) => logged.push({ m, f }) } });
    const res = await call("GET", "/jobs", {}, broken);
    expectError(res, 500, "internal");
    const text = JSON.stringify(res.body);
    expect(text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|\.ts:|\bat \w|Error/);
    expect(logged).toHaveLength(1); // the detail goes to the log instead
  });
});

describe("the deployed handler", () => {
  it("answers a misconfigured deployment in the contract's shape, then builds its services from the environment", async () => {
    const keys = Object.keys(env.emu.env);
    const saved = Object.fromEntries(keys.map((k) => [k, process.env[k]]));
    const quiet = { log: console.log, error: console.error };
    console.log = console.error = () => {}; // its JSON logs and EMF lines
    try {
      for (const k of keys) delete process.env[k];
      const broken = await call("GET", "/jobs", {}, deployedHandler);
      expectError(broken, 500, "internal");
      expect(JSON.stringify(broken.body)).not.toContain("WARDEN_TABLE");
      Object.assign(process.env, env.emu.env);
      expect((await call("GET", "/health", { who: "none" }, deployedHandler)).status).toBe(200);
      const made = await call("POST", "/jobs", { who: "lambda-user" as Who, body: { type: "demo.sleep", input: { items: 1 } } }, deployedHandler);
      expect(made.status).toBe(201);
      expect((await services.store.get(made.body.job.id))?.owner).toBe("lambda-user");
    } finally {
      console.log = quiet.log;
      console.error = quiet.error;
      for (const k of keys) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });
});
