/**
 * What an on-call person does through the API (issue: operating Warden in the cloud), through the
 * real Lambda handler against the emulators: act on any caller's job as the admin, recorded with
 * who asked; read every attempt's error and stack; ask why a job is not running; find jobs by
 * owner, queue, time and id; retry or cancel in bulk with a dry run; and presence that does not
 * claim jobs a worker no longer holds.
 */
import { describe, expect, it } from "vitest";
import { silentLog } from "../core/api/jobs.js";
import { LIMITS } from "../core/config.js";
import type { QueuedJob, RunningJob } from "../core/job.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { presenceState, type WorkerInfo } from "../core/workers.js";
import { makeHandler } from "../functions/api.js";
import { BULK_LIMITS, next, type Position } from "../core/api/bulk.js";
import * as life from "../core/lifecycle.js";
import type { JobLogLine, JobLogSource } from "../core/logs.js";
import { useEmulators } from "./support/emulators.js";
import { apiEvent, jwtAuthorizer, useApiHandler } from "./support/http-api.js";

const env = useEmulators("api-oncall");
const api = useApiHandler(env);
const call = api.call;

const submit = async (who: string, type: string, input: unknown = {}, extra: Record<string, unknown> = {}): Promise<string> => {
  const r = await call("POST", "/jobs", who, { type, input, ...extra });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.job.id as string;
};

/** Fails the job's next attempt the way the runner does: with what the handler threw. */
async function failAttempt(id: string, worker: string, thrown: Error, retryable: boolean): Promise<void> {
  const claim = await api.services.store.claim(id, worker, 60_000);
  if (!claim.ok) throw new Error(`claim refused: ${claim.reason}`);
  await api.services.store.fail(claim.lease, { code: "handler_error", message: thrown.message, stack: thrown.stack! }, { retryable, backoffMs: 0 });
}

describe("the admin acts on any caller's job", () => {
  it("cancels another caller's running job and retries it, each recorded with who asked; another caller still gets 404", async () => {
    const id = await submit("customer-1", "demo.sleep", { items: 100 });
    const claim = await api.services.store.claim(id, "w-runaway", 60_000);
    expect(claim.ok).toBe(true);
    expect((await call("POST", `/jobs/${id}/cancel`, "customer-2")).status).toBe(404);

    const cancelled = await call("POST", `/jobs/${id}/cancel`, "admin");
    expect(cancelled.status).toBe(202);
    expect(cancelled.body.job).toMatchObject({ status: "running", cancelRequested: true, worker: "w-runaway" });
    expect(cancelled.body.job.actions).toEqual([{ at: expect.any(String), action: "cancel", by: "admin" }]);

    // The worker acknowledges; the admin retries it; both requests stay with the job.
    const lease = claim.ok ? claim.lease : undefined;
    lease!.job = (await api.services.store.getRecord(id)) as RunningJob;
    await api.services.store.acknowledgeCancel(lease!);
    const retried = await call("POST", `/jobs/${id}/retry`, "admin");
    expect(retried.status).toBe(202);
    expect(retried.body.job.actions.map((a: { action: string; by: string }) => `${a.action}:${a.by}`)).toEqual(["cancel:admin", "retry:admin"]);
    expect(retried.body.job.worker, "a queued job names no worker").toBeNull();
    expect((await api.services.store.getRecord(id))?.owner, "the job stays the customer's").toBe("customer-1");
  });
});

describe("errors per attempt", () => {
  it("keeps each attempt's code, message and bounded stack; the job object carries them short, /attempts whole", async () => {
    const id = await submit("ops", "demo.fail", { times: 5 }, { maxAttempts: 3 });
    const long = "x".repeat(600);
    const deep = new Error(`first ${long}`);
    deep.stack = [`Error: first ${long}`, ...Array.from({ length: 200 }, (_, i) => `    at frame${i} (/app/handler.js:${i}:1)`)].join("\n");
    await failAttempt(id, "w-a", deep, true);
    await failAttempt(id, "w-b", new TypeError("second: cannot read properties of undefined"), false);

    const job = (await call("GET", `/jobs/${id}`, "ops")).body.job;
    expect(job.status).toBe("failed");
    expect(job.history.map((h: { worker: string; error: { code: string } }) => [h.worker, h.error.code])).toEqual([
      ["w-a", "handler_error"],
      ["w-b", "handler_error"],
    ]);
    expect(job.history[0].error.message.length, "the record keeps a short message").toBeLessThanOrEqual(240);

    const { attempts } = (await call("GET", `/jobs/${id}/attempts`, "ops")).body;
    expect(attempts).toHaveLength(2);
    expect(attempts[0].error.message, "the whole message").toBe(`first ${long}`);
    expect(attempts[0].error.stack).toContain("at frame0 (/app/handler.js:0:1)");
    expect(attempts[0].error.stack.split("\n").length, "bounded in lines").toBeLessThanOrEqual(LIMITS.stackLines + 1);
    expect(attempts[0].error.stack.length).toBeLessThanOrEqual(LIMITS.stackChars + 40);
    expect(attempts[1].error).toMatchObject({ code: "handler_error", message: "second: cannot read properties of undefined" });
    expect(attempts[1].error.stack).toMatch(/^TypeError: second/);

    const record = await api.services.store.getRecord(id);
    expect(JSON.stringify(record), "no stack in the record the heartbeats rewrite").not.toContain("frame0");
  });
});

describe("why a job is not running", () => {
  it("names runAt, backoff, a lease, and a doorbell the sweeper rang again", async () => {
    const later = new Date(Date.now() + 3600_000).toISOString();
    const scheduled = await submit("ops", "demo.sleep", {}, { runAt: later });
    expect((await call("GET", `/jobs/${scheduled}/why`, "ops")).body.why).toMatchObject({ state: "queued", reason: "run_at", until: later });

    const id = await submit("ops", "demo.sleep", { items: 1 });
    const waiting = (await call("GET", `/jobs/${id}/why`, "ops")).body.why;
    expect(waiting).toMatchObject({ state: "queued", reason: "waiting", rings: 0 });
    // The sweeper's resend of a job nobody claimed: still ready since its creation, rung once.
    const pushed = await api.services.store.pushStartDeadline((await api.services.store.getRecord(id)) as QueuedJob);
    expect(pushed.rings).toBe(1);
    const notClaimed = (await call("GET", `/jobs/${id}/why`, "ops")).body.why;
    expect(notClaimed).toMatchObject({ reason: "not_claimed", rings: 1, since: waiting.since });
    expect(notClaimed.message).toContain("no worker claimed it");

    const claim = await api.services.store.claim(id, "w-holder", 60_000);
    expect(claim.ok).toBe(true);
    expect((await call("GET", `/jobs/${id}/why`, "ops")).body.why).toMatchObject({ state: "running", reason: "running", worker: "w-holder" });

    const retrying = await submit("ops", "demo.fail", { times: 5 });
    const c2 = await api.services.store.claim(retrying, "w-x", 60_000);
    if (!c2.ok) throw new Error("claim");
    await api.services.store.fail(c2.lease, { code: "handler_error", message: "flaky" }, { retryable: true, backoffMs: 600_000 });
    expect((await call("GET", `/jobs/${retrying}/why`, "ops")).body.why).toMatchObject({ state: "queued", reason: "backoff" });
  });
});

describe("the job's log lines", () => {
  it("answers only lines its own attempts wrote: one that merely names the job id (a handler echoing its input) is left out", async () => {
    const id = await submit("logger", "demo.sleep", { items: 1 });
    const claim = await api.services.store.claim(id, "w-genuine", 60_000);
    if (!claim.ok) throw new Error("claim");
    const line = (attempt: number | null, workerId: string | null, message: string): JobLogLine => ({ at: new Date().toISOString(), level: "info", message, jobId: id, attempt, workerId, fields: {} });
    const source: JobLogSource = {
      name: "local",
      lines: async () => ({ lines: [line(1, "w-genuine", "mine"), line(1, "w-other", "forged by another job's handler"), line(null, null, "untagged")], complete: true }),
    };
    const h = makeHandler(buildServices(loadRuntime(env.emu.env), { logs: source }), { log: silentLog });
    const res = await h(apiEvent({ method: "GET", path: `/jobs/${id}/logs`, headers: {}, authorizer: jwtAuthorizer({ sub: "logger", admin: false }) }));
    expect(JSON.parse(res.body ?? "{}").lines.map((l: JobLogLine) => l.message)).toEqual(["mine"]);
  });
});

describe("rings", () => {
  it("counts re-rings only: a job scheduled past what SQS can delay gets its first doorbell from the sweeper, which is not a repeat", () => {
    const c = { now: 1_000_000, startDeadlineMs: 300_000, cancelGraceMs: 60_000, retentionDays: 7 };
    const runAt = c.now + 24 * 3600_000;
    const created = life.create({ owner: "o", type: "t", queue: "default", input: {}, maxAttempts: 1, timeoutMs: 60_000, runAt }, "01JD0000000000000000000000", c).next;
    const first = life.resend(created, { ...c, now: runAt }).next;
    expect(first.rings, "the first doorbell").toBe(0);
    expect(first.readyAt).toBe(runAt);
    const second = life.resend(first, { ...c, now: runAt + c.startDeadlineMs }).next;
    expect(second.rings, "rung again: no worker claimed it").toBe(1);
    const soon = life.create({ owner: "o", type: "t", queue: "default", input: {}, maxAttempts: 1, timeoutMs: 60_000 }, "01JD0000000000000000000001", c).next;
    expect(life.resend(soon, { ...c, now: c.now + c.startDeadlineMs }).next.rings, "the API rang it at submit").toBe(1);
  });
});

describe("finding a job", () => {
  it("filters by owner (admin only), queue, time range and id, paging through everything", async () => {
    const t0 = Date.now();
    const mine = [await submit("finder", "demo.sleep", {}, { queue: "large" }), await submit("finder", "demo.sleep")];
    const theirs = await submit("someone-else", "demo.sleep", {}, { queue: "large" });
    const ids = (r: { body: { jobs: { id: string }[] } }) => r.body.jobs.map((j) => j.id);

    expect(ids(await call("GET", "/jobs", "admin", undefined, { owner: "finder" }))).toEqual([...mine].reverse());
    expect(ids(await call("GET", "/jobs", "finder", undefined, { owner: "someone-else" })), "another owner reads as none").toEqual([]);
    expect(ids(await call("GET", "/jobs", "finder", undefined, { queue: "large" }))).toEqual([mine[0]]);
    expect(ids(await call("GET", "/jobs", "admin", undefined, { id: theirs }))).toEqual([theirs]);
    expect(ids(await call("GET", "/jobs", "finder", undefined, { id: theirs })), "not readable: not found").toEqual([]);

    const created = (await api.services.store.getRecord(mine[1]!))!.createdAt;
    const range = { createdAfter: new Date(created).toISOString(), createdBefore: new Date(created + 1).toISOString() };
    expect(ids(await call("GET", "/jobs", "finder", undefined, range))).toEqual([mine[1]]);
    expect(ids(await call("GET", "/jobs", "admin", undefined, { createdBefore: new Date(t0).toISOString(), owner: "finder" }))).toEqual([]);
    expect((await call("GET", "/jobs", "admin", undefined, { createdAfter: "yesterday" })).status).toBe(400);
  });
});

describe("bulk retry and cancel", () => {
  it("counts in a dry run, then retries every failed job of a type, each recorded as the admin's", async () => {
    const type = "demo.permanent";
    const failed: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await submit("bulk-owner", type);
      await failAttempt(id, "w-bulk", new Error("bad deploy"), false);
      failed.push(id);
    }
    const untouched = await submit("bulk-owner", type); // queued, not failed: not a match

    const dry = await call("POST", "/admin/jobs/retry", "admin", { type, dryRun: true });
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ dryRun: true, acted: 0, nextCursor: null });
    expect(dry.body.matched).toBeGreaterThanOrEqual(3);
    for (const id of failed) expect((await api.services.store.getRecord(id))?.status).toBe("failed");

    let cursor: string | null = null;
    let acted = 0;
    do {
      const r: { status: number; body: { acted: number; nextCursor: string | null } } = await call("POST", "/admin/jobs/retry", "admin", { type, ...(cursor ? { cursor } : {}) });
      expect(r.status).toBe(200);
      acted += r.body.acted;
      cursor = r.body.nextCursor;
    } while (cursor);
    expect(acted).toBe(dry.body.matched);
    for (const id of failed) {
      const j = await api.services.store.getRecord(id);
      expect(j?.status).toBe("queued");
      expect(j?.actions?.at(-1)).toMatchObject({ action: "retry", by: "admin" });
    }
    expect((await api.services.store.getRecord(untouched))?.actions).toBeUndefined();
  });

  it("refuses a bulk action with no type or queue, a status it does not apply to, and a non-admin", async () => {
    expect((await call("POST", "/admin/jobs/retry", "admin", {})).status).toBe(400);
    expect((await call("POST", "/admin/jobs/cancel", "admin", { type: "demo.sleep", status: "failed" })).status).toBe(400);
    expect((await call("POST", "/admin/jobs/cancel", "someone", { type: "demo.sleep" })).status).toBe(403);
  });

  it("cancels every queued and running job of a queue, naming only the queue", async () => {
    const type = "demo.sleep";
    const queued = [await submit("c-owner", type, {}, { queue: "large" }), await submit("c-owner", type, {}, { queue: "large" })];
    const running = await submit("c-owner", type, {}, { queue: "large" });
    expect((await api.services.store.claim(running, "w-large", 60_000)).ok).toBe(true);
    const elsewhere = await submit("c-owner", type, {}, { queue: "default" });
    const r = await call("POST", "/admin/jobs/cancel", "admin", { queue: "large" });
    expect(r.status).toBe(200);
    expect(r.body.nextCursor).toBeNull();
    for (const id of queued) expect((await api.services.store.getRecord(id))?.status).toBe("cancelled");
    expect(await api.services.store.getRecord(running)).toMatchObject({ status: "running", cancelRequested: true });
    expect((await api.services.store.getRecord(elsewhere))?.status).toBe("queued");
    // Asked again, the running job already being cancelled is not counted as acted on twice.
    const again = await call("POST", "/admin/jobs/cancel", "admin", { queue: "large", status: "running" });
    expect(again.body.acted).toBe(0);
  });

  it("walks a cancel again while its last pass found something, so a job that moved between statuses is not missed", () => {
    const start: Position = { s: 0, c: null, p: 0, a: 0 };
    // queued pass, then the running pass acts on one job: a second pass follows.
    const runningPass = next(start, null, 0, 2, BULK_LIMITS.cancelPasses)!;
    expect(runningPass).toMatchObject({ s: 1, p: 0 });
    expect(next(runningPass, null, 1, 2, BULK_LIMITS.cancelPasses)).toEqual({ s: 0, c: null, p: 1, a: 0 });
    // A pass that acted on nothing ends the walk; so does the last pass allowed.
    expect(next({ s: 1, c: null, p: 1, a: 0 }, null, 0, 2, BULK_LIMITS.cancelPasses)).toBeNull();
    expect(next({ s: 1, c: null, p: BULK_LIMITS.cancelPasses - 1, a: 5 }, null, 1, 2, BULK_LIMITS.cancelPasses)).toBeNull();
    // A retry makes one pass.
    expect(next({ s: 0, c: null, p: 0, a: 3 }, null, 1, 1, 1)).toBeNull();
  });
});

describe("presence", () => {
  it("does not list a job under a worker that no longer holds it", async () => {
    const id = await submit("p-owner", "demo.sleep", { items: 100 });
    const claim = await api.services.store.claim(id, "w-frozen", 60_000);
    if (!claim.ok) throw new Error("claim");
    await api.services.workers.report({ id: "w-frozen", kind: "fargate", startedAt: Date.now() - 60_000, jobs: [id] });
    // The sweeper takes it back and another worker claims it; the frozen worker's entry still names it.
    const queued = await api.services.store.reclaim((await api.services.store.getRecord(id)) as RunningJob);
    expect(queued.status).toBe("queued");
    expect((await api.services.store.claim(id, "w-live", 60_000)).ok).toBe(true);
    const listed = (await call("GET", "/admin/workers", "admin")).body.workers.find((w: { id: string }) => w.id === "w-frozen");
    expect(listed.jobs).toEqual([]);
  });
});

describe("presenceState", () => {
  const w = (o: Partial<WorkerInfo>): WorkerInfo => ({ id: "w", kind: "fargate", startedAt: 0, lastSeenAt: 100_000, jobs: [], ...o });
  it("is unresponsive once a worker is silent past its reporting interval, dead after its death event", () => {
    expect(presenceState(w({}), 100_000 + 14_000, 10_000)).toBe("alive");
    expect(presenceState(w({}), 100_000 + 16_000, 10_000)).toBe("unresponsive");
    expect(presenceState(w({ diedAt: 101_000 }), 100_000 + 2_000, 10_000)).toBe("dead");
  });
  it("does not call an idle Lambda environment unresponsive: it is frozen between invocations by design", () => {
    expect(presenceState(w({ kind: "lambda" }), 100_000 + 60_000, 10_000)).toBe("alive");
    expect(presenceState(w({ kind: "lambda", jobs: ["j"] }), 100_000 + 60_000, 10_000)).toBe("unresponsive");
  });
});
