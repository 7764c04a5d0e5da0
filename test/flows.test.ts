/**
 * Flows end to end (docs/jobs.md "Flows"), through the real API handler, runner and sweeper
 * against the emulators: fan-out at submit and from a handler, fan-in exactly once with every
 * child's result, the two policies, cascades of cancel and retry, chains, and tenancy.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { silentLog } from "../core/api/jobs.js";
import { builtinRegistry } from "../core/jobs/index.js";
import { defineJob } from "../core/registry.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { makeHandler, type ApiHandler } from "../functions/api.js";
import { startWorkerLoop, type WorkerLoop } from "./support/api-worker.js";
import { useEmulators, waitFor } from "./support/emulators.js";
import { callerOf } from "./support/http-api.js";

const env = useEmulators("flows");
let services: Services;
let handler: ApiHandler;
let worker: WorkerLoop;

/** Children whose number is in `broken` fail every attempt (quickly), the others succeed with it. */
const broken = new Set<number>();
const flaky = defineJob<{ n: number; ms: number }, { n: number }>({
  name: "test.flaky",
  input: z.object({ n: z.number().int(), ms: z.number().int().default(0) }).strict(),
  runsOn: "lambda",
  limits: { maxAttempts: 2, backoffBaseMs: 50, backoffMaxMs: 100 },
  handler: async ({ n, ms }, ctx) => {
    if (broken.has(n)) throw new Error(`child ${n} is broken`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      ctx.signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
    });
    if (ctx.signal.aborted) throw new Error("stopped");
    return { n };
  },
});
/** A child that counts how many of its kind run at once in this process (all the test's workers are). */
const inFlight = { now: 0, max: 0 };
const counted = defineJob<{ ms: number }, { ok: true }>({
  name: "test.counted",
  input: z.object({ ms: z.number().int() }).strict(),
  runsOn: "lambda",
  handler: async ({ ms }) => {
    inFlight.max = Math.max(inFlight.max, ++inFlight.now);
    try {
      await new Promise((r) => setTimeout(r, ms));
    } finally {
      inFlight.now--;
    }
    return { ok: true };
  },
});
/** A parent that spawns `n` counted children under `concurrencyKey`, waits, and reports their ends. */
const spawnKeyed = defineJob<{ n: number; concurrencyKey: string }, { ended: number }>({
  name: "test.spawn-keyed",
  input: z.object({ n: z.number().int(), concurrencyKey: z.string() }).strict(),
  runsOn: "lambda",
  handler: async ({ n, concurrencyKey }, ctx) => {
    const done = await ctx.children();
    if (done) return { ended: done.counts.succeeded };
    ctx.spawn(Array.from({ length: n }, () => ({ type: counted.name, input: { ms: 150 }, concurrencyKey })));
    return ctx.wait();
  },
});
/** A chain's job that takes whatever its last step returned. */
const sink = defineJob<unknown, { got: unknown }>({ name: "test.sink", input: z.unknown(), runsOn: "lambda", handler: async (input) => ({ got: input }) });
/** A parent that reports what it saw of its children, in order. */
const gather = defineJob<Record<string, never>, { seen: string[] }>({
  name: "test.gather",
  input: z.object({}).strict(),
  runsOn: "lambda",
  handler: async (_i, ctx) => {
    const done = await ctx.children();
    return { seen: (done?.children ?? []).map((c) => `${c.index}:${c.status}`) };
  },
});

beforeAll(() => {
  services = buildServices(loadRuntime(env.emu.env), { registry: builtinRegistry().register(flaky, gather, counted, spawnKeyed, sink) });
  handler = makeHandler(services, { log: silentLog });
  worker = startWorkerLoop(services, { leaseMs: 30_000 });
});
afterAll(async () => worker?.stop());

const call = callerOf(() => handler);

const finished = (who: string, id: string) =>
  waitFor(async () => {
    const r = await call("GET", `/jobs/${id}`, who);
    return ["succeeded", "failed", "cancelled"].includes(r.body.job?.status) ? r.body.job : undefined;
  }, 60_000, `job ${id} to finish`);

describe("fan-out at submit, fan-in once", () => {
  it("a parent submitted with 250 children runs once after the last of them, with every child's result", async () => {
    const children = Array.from({ length: 250 }, (_, i) => ({ type: "demo.chunk", input: { from: i * 10, to: i * 10 + 10 } }));
    const r = await call("POST", "/jobs", "alice", { type: "demo.combine", input: {}, children });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body.job).toMatchObject({ status: "waiting", children: { total: 250 } });
    const job = await finished("alice", r.body.job.id);
    expect(job.status).toBe("succeeded");
    expect(job.result).toEqual({ sum: (2500 * 2499) / 2, count: 2500, chunks: 250 });
    expect(job.children).toMatchObject({ total: 250, succeeded: 250, failed: 0, cancelled: 0, live: 0 });
    expect(job.history.map((h: { outcome: string }) => h.outcome), "one run, after the children").toEqual(["succeeded"]);
    const page = await call("GET", `/jobs/${job.id}/children`, "alice", undefined, { limit: "100" });
    expect(page.body.children).toHaveLength(100);
    expect(page.body.children[0]).toMatchObject({ parentId: job.id, childIndex: 0, status: "succeeded", result: { sum: 45, count: 10 } });
    expect(page.body.nextCursor).toBe("100");
    const other = await call("GET", `/jobs/${job.id}/children`, "mallory");
    expect(other.status).toBe(404);
    const child = await call("GET", `/jobs/${page.body.children[0].id}`, "mallory");
    expect(child.status, "a child is its parent's owner's").toBe(404);
  });
});

describe("fan-out from a handler", () => {
  it("demo.evaluate spawns 3 × 4 × 5 executions, waits holding no worker, and combines all 60", async () => {
    const r = await call("POST", "/jobs", "alice", { type: "demo.evaluate", input: { regions: ["us", "eu", "ap"], models: ["a", "b", "c", "d"], questions: ["q1", "q2", "q3", "q4", "q5"] } });
    expect(r.status).toBe(201);
    const job = await finished("alice", r.body.job.id);
    expect(job).toMatchObject({ status: "succeeded", result: { executions: 60, succeeded: 60, failed: 0 } });
    expect(job.history.map((h: { outcome: string }) => h.outcome)).toEqual(["waiting", "succeeded"]);
    expect(job.attempts, "waiting spends no attempt").toBe(1);
  });
  it("under failFast the first failed execution fails the parent and its live siblings are cancelled", async () => {
    const r = await call("POST", "/jobs", "alice", { type: "demo.evaluate", input: { regions: ["us"], models: ["a", "bad"], questions: ["q1", "q2", "q3"], ms: 300, policy: "failFast", failIf: "bad" } });
    const job = await finished("alice", r.body.job.id);
    expect(job.status).toBe("failed");
    expect(job.error.code).toBe("child_failed");
    await waitFor(async () => {
      const kids = (await call("GET", `/jobs/${job.id}/children`, "alice")).body.children as { status: string }[];
      return kids.every((k) => ["succeeded", "failed", "cancelled"].includes(k.status)) ? kids : undefined;
    }, 20_000, "every child to end");
  });
});

describe("chains", () => {
  it("download then transcribe: the transcription runs on the download's result", async () => {
    const r = await call("POST", "/jobs", "alice", { type: "demo.transcribe", after: [{ type: "demo.download", input: { url: "https://example.com/a.mp3", failTimes: 1 } }] });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const job = await finished("alice", r.body.job.id);
    expect(job.status).toBe("succeeded");
    expect(job.input).toMatchObject({ file: "/tmp/https_example_com_a_mp3" });
    expect(job.result.words).toBeGreaterThan(0);
  });
});

describe("children and chain steps with a concurrency key of their own", () => {
  const childrenOf = async (id: string) => (await call("GET", `/jobs/${id}/children`, "alice")).body.children as { id: string; type: string; concurrencyKey: string | null }[];

  it("count under their key's limit: with a limit of 1, a parent's 4 keyed children run one at a time, and the parent resumes with all 4", async () => {
    const key = "flows-host-a";
    await services.store.controls.setLimit(`key:${key}`, { concurrency: 1 }, "test", Date.now());
    inFlight.max = 0;
    const children = [0, 1, 2, 3].map(() => ({ type: counted.name, input: { ms: 200 }, concurrencyKey: key }));
    const r = await call("POST", "/jobs", "alice", { type: "test.gather", input: {}, children });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const job = await finished("alice", r.body.job.id);
    expect(job.result).toEqual({ seen: ["0:succeeded", "1:succeeded", "2:succeeded", "3:succeeded"] });
    expect((await childrenOf(job.id)).map((k) => k.concurrencyKey)).toEqual([key, key, key, key]);
    expect(inFlight.max, "keyed children running at once").toBe(1);
  });

  it("spawned from a handler, they count the same; a malformed key fails the spawn before anything is written", async () => {
    const key = "flows-host-c";
    await services.store.controls.setLimit(`key:${key}`, { concurrency: 1 }, "test", Date.now());
    inFlight.max = 0;
    const r = await call("POST", "/jobs", "alice", { type: spawnKeyed.name, input: { n: 3, concurrencyKey: key } });
    const job = await finished("alice", r.body.job.id);
    expect(job).toMatchObject({ status: "succeeded", result: { ended: 3 } });
    expect((await childrenOf(job.id)).map((k) => k.concurrencyKey)).toEqual([key, key, key]);
    expect(inFlight.max).toBe(1);

    const bad = await call("POST", "/jobs", "alice", { type: spawnKeyed.name, input: { n: 2, concurrencyKey: "no spaces" } });
    const failed = await finished("alice", bad.body.job.id);
    expect(failed.status).toBe("failed");
    expect(failed.error.message).toMatch(/children\[0\]\.concurrencyKey: a concurrency key is letters, digits/);
    expect(failed.children).toBeNull();
  });

  it("every step of a chain keeps its own key", async () => {
    const r = await call("POST", "/jobs", "alice", {
      type: sink.name,
      after: [
        { type: "demo.download", input: { url: "https://example.com/b.mp3" }, concurrencyKey: "flows-host-b" },
        { type: "demo.transcribe", concurrencyKey: "flows-api-b" },
      ],
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const job = await finished("alice", r.body.job.id);
    expect(job.status).toBe("succeeded");
    // The job's one child is the chain's last step, which waits on the step before it.
    const [last] = await childrenOf(job.id);
    expect(last).toMatchObject({ type: "demo.transcribe", concurrencyKey: "flows-api-b" });
    const [first] = await childrenOf(last!.id);
    expect(first).toMatchObject({ type: "demo.download", concurrencyKey: "flows-host-b" });
  });
});

describe("a bad flow is a 400 that writes nothing", () => {
  it("an unknown child type, a malformed child, too many children", async () => {
    const before = (await call("GET", "/jobs", "bob")).body.jobs.length;
    const unknown = await call("POST", "/jobs", "bob", { type: "demo.combine", input: {}, children: [{ type: "demo.chunk", input: { from: 0, to: 1 } }, { type: "nope" }] });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/children\[1\].*unknown job type "nope"/);
    const malformed = await call("POST", "/jobs", "bob", { type: "demo.combine", input: {}, children: [{ type: "demo.chunk", input: { from: "x" } }] });
    expect(malformed.status).toBe(400);
    const many = await call("POST", "/jobs", "bob", { type: "demo.combine", input: {}, children: Array.from({ length: 10_001 }, () => ({ type: "demo.chunk" })) });
    expect(many.status).toBe(400);
    expect(JSON.stringify(many.body)).toMatch(/10000/);
    const chainWithInput = await call("POST", "/jobs", "bob", { type: "demo.transcribe", input: { file: "x", bytes: 1 }, after: [{ type: "demo.download", input: { url: "u" } }] });
    expect(chainWithInput.status).toBe(400);
    const dupKeys = await call("POST", "/jobs", "bob", { type: "demo.combine", input: {}, children: [{ type: "demo.chunk", key: "a", input: { from: 0, to: 1 } }, { type: "demo.chunk", key: "a", input: { from: 1, to: 2 } }] });
    expect(dupKeys.status).toBe(400);
    expect(dupKeys.body.error.message).toMatch(/given twice/);
    const badKey = await call("POST", "/jobs", "bob", { type: "demo.combine", input: {}, children: [{ type: "demo.chunk", input: { from: 0, to: 1 }, concurrencyKey: "no spaces" }] });
    expect(badKey.status).toBe(400);
    expect(JSON.stringify(badKey.body)).toMatch(/concurrency key is letters, digits/);
    const both = await call("POST", "/jobs", "bob", { type: "demo.combine", input: {}, children: [{ type: "demo.chunk", input: { from: 0, to: 1 } }], after: [{ type: "demo.download", input: { url: "u" } }] });
    expect(both.status).toBe(400);
    expect((await call("GET", "/jobs", "bob")).body.jobs.length).toBe(before);
  });
  it("a children page with a bad cursor, limit or status is a 400", async () => {
    const r = await call("POST", "/jobs", "bob", { type: "demo.sleep", input: { items: 0 } });
    for (const query of [{ cursor: "abc" }, { limit: "0" }, { limit: "101" }, { status: "sleeping" }, { other: "1" }] as Record<string, string>[]) {
      expect((await call("GET", `/jobs/${r.body.job.id}/children`, "bob", undefined, query)).status, JSON.stringify(query)).toBe(400);
    }
    expect((await call("GET", `/jobs/${r.body.job.id}/children`, "bob")).body).toEqual({ children: [], nextCursor: null, total: 0 });
  });
});

describe("a parent's cancel and retry reach its children", () => {
  it("cancelling a waiting parent cancels its live children, and none of them runs on", async () => {
    const children = Array.from({ length: 6 }, (_, n) => ({ type: "test.flaky", input: { n: 100 + n, ms: 20_000 } }));
    const r = await call("POST", "/jobs", "alice", { type: "test.gather", input: {}, children });
    const id = r.body.job.id as string;
    await waitFor(async () => ((await call("GET", `/jobs/${id}`, "alice")).body.job.children.running > 0 ? true : undefined), 15_000, "a child to run");
    const c = await call("POST", `/jobs/${id}/cancel`, "alice");
    expect(c.body.job.status).toBe("cancelled");
    const kids = await waitFor(async () => {
      const page = (await call("GET", `/jobs/${id}/children`, "alice")).body.children as { status: string }[];
      return page.every((k) => k.status === "cancelled") ? page : undefined;
    }, 20_000, "every child cancelled");
    expect(kids).toHaveLength(6);
  });

  it("retrying a failed parent retries its failed and cancelled children only, keeping the succeeded ones' results", async () => {
    broken.add(2);
    const children = Array.from({ length: 5 }, (_, n) => ({ type: "test.flaky", input: { n } }));
    const r = await call("POST", "/jobs", "alice", { type: "test.gather", input: {}, children, policy: "failFast" });
    const id = r.body.job.id as string;
    const failed = await finished("alice", id);
    expect(failed).toMatchObject({ status: "failed", error: { code: "child_failed" } });
    const before = (await call("GET", `/jobs/${id}/children`, "alice")).body.children as { id: string; status: string; history: unknown[] }[];
    expect(before[2]!.status).toBe("failed");
    broken.delete(2);
    const retried = await call("POST", `/jobs/${id}/retry`, "alice");
    expect(retried.status).toBe(202);
    expect(retried.body.job.status).toBe("waiting");
    const job = await finished("alice", id);
    expect(job.status).toBe("succeeded");
    expect(job.result.seen).toEqual(["0:succeeded", "1:succeeded", "2:succeeded", "3:succeeded", "4:succeeded"]);
    const after = (await call("GET", `/jobs/${id}/children`, "alice")).body.children as { id: string; history: unknown[] }[];
    for (let i = 0; i < 5; i++) {
      if (before[i]!.status === "succeeded") expect(after[i]!.history, `child ${i} kept its run`).toEqual(before[i]!.history);
      else expect(after[i]!.history.length, `child ${i} ran again`).toBeGreaterThan(before[i]!.history.length);
    }
  });

  it("retrying one failed child of a waiting parent takes its end out of the fan-in: the parent waits for its new run", async () => {
    broken.add(7);
    // Child 0 fails at once; run again it takes 4 s, longer than child 1 has left: a parent that
    // resumed on child 0's old end would see it still running.
    const children = [{ type: "test.flaky", input: { n: 7, ms: 4_000 } }, { type: "test.flaky", input: { n: 8, ms: 2_000 } }];
    const r = await call("POST", "/jobs", "alice", { type: "test.gather", input: {}, children });
    const id = r.body.job.id as string;
    const first = await waitFor(async () => {
      const page = (await call("GET", `/jobs/${id}/children`, "alice")).body.children as { id: string; status: string }[];
      return page[0]?.status === "failed" ? page[0] : undefined;
    }, 15_000, "child 0 to fail");
    broken.delete(7);
    expect((await call("POST", `/jobs/${first.id}/retry`, "alice")).status).toBe(202);
    const job = await finished("alice", id);
    expect(job.result.seen).toEqual(["0:succeeded", "1:succeeded"]);
    // Once the parent has moved on, a child's retry is refused: it would be cancelled at its claim.
    broken.add(9);
    const late = await call("POST", "/jobs", "alice", { type: "test.gather", input: {}, children: [{ type: "test.flaky", input: { n: 9 } }] });
    await finished("alice", late.body.job.id);
    const lone = (await call("GET", `/jobs/${late.body.job.id}/children`, "alice")).body.children[0];
    expect(lone.status).toBe("failed");
    const refused = await call("POST", `/jobs/${lone.id}/retry`, "alice");
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/retry the parent instead/);
  });
});
