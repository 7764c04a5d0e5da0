/**
 * The controls' admin routes through the real API handler against the emulators: pause and
 * resume, limits set and removed, a held job's view and why, and bad input refused with a 400
 * that names what is wrong and writes nothing.
 */
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, test } from "vitest";
import { SETTINGS_ID } from "../core/controls.js";
import { useEmulators } from "./support/emulators.js";
import { useApiHandler } from "./support/http-api.js";

const env = useEmulators("api-controls");
const api = useApiHandler(env);
const call = api.call;
const settingsItem = async () => (await env.doc.send(new GetCommand({ TableName: env.emu.tableName, Key: { id: SETTINGS_ID }, ConsistentRead: true }))).Item;

describe("pauses", () => {
  test("a paused type's job is held and says why; GET /admin/controls counts it; the resume wakes it", async () => {
    expect((await call("POST", `/admin/pauses/${encodeURIComponent("type:demo.fail")}`, "admin")).status).toBe(200);
    const submitted = await call("POST", "/jobs", "alice", { type: "demo.fail", input: {} });
    expect(submitted.status).toBe(201);
    const id = submitted.body.job.id as string;
    const claim = await api.services.store.claim(id, "w", 30_000);
    expect(claim).toMatchObject({ ok: false, reason: "held" });

    const view = await call("GET", `/jobs/${id}`, "alice");
    expect(view.body.job).toMatchObject({ status: "queued", attempts: 0, held: { by: "pause", key: "type:demo.fail", until: null } });
    expect(view.body.job.held.message).toContain("paused");
    const why = await call("GET", `/jobs/${id}/why`, "alice");
    expect(why.body.why).toMatchObject({ state: "queued", reason: "paused" });
    const controls = await call("GET", "/admin/controls", "admin");
    expect(controls.body.pauses).toEqual([{ target: "type:demo.fail", since: expect.any(String), by: "admin", held: 1 }]);

    const resumed = await call("DELETE", `/admin/pauses/${encodeURIComponent("type:demo.fail")}`, "admin");
    expect(resumed.body).toMatchObject({ pauses: [], woken: 1 });
    expect((await call("GET", `/jobs/${id}`, "alice")).body.job.held).toBeNull();
    expect((await api.services.store.claim(id, "w", 30_000)).ok).toBe(true);
  });

  test("only the admin may pause, and a target that is neither a queue nor a type is a 400 that writes nothing", async () => {
    const before = await settingsItem();
    expect((await call("POST", "/admin/pauses/queue:default", "alice")).status).toBe(403);
    const unknown = await call("POST", "/admin/pauses/queue:nope", "admin");
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain("unknown queue");
    const bare = await call("POST", "/admin/pauses/default", "admin");
    expect(bare.status).toBe(400);
    expect(bare.body.error.message).toContain("queue:<queue> or type:<job type>");
    expect(await settingsItem()).toEqual(before);
  });
});

describe("limits", () => {
  test("set, listed with what runs under it, and removed; a job's concurrencyKey is kept and shown", async () => {
    const set = await call("PUT", `/admin/limits/${encodeURIComponent("key:tenant-a")}`, "admin", { concurrency: 2, rate: { starts: 5, perSeconds: 1 } });
    expect(set.status).toBe(200);
    expect(set.body.limits).toEqual([{ key: "key:tenant-a", concurrency: 2, rate: { starts: 5, perSeconds: 1 }, running: 0, held: 0, updatedAt: expect.any(String), by: "admin" }]);
    const job = await call("POST", "/jobs", "alice", { type: "demo.sleep", input: {}, concurrencyKey: "tenant-a" });
    expect(job.body.job.concurrencyKey).toBe("tenant-a");
    expect((await api.services.store.claim(job.body.job.id, "w", 30_000)).ok).toBe(true);
    expect((await call("GET", "/admin/controls", "admin")).body.limits[0]).toMatchObject({ running: 1 });
    const removed = await call("DELETE", `/admin/limits/${encodeURIComponent("key:tenant-a")}`, "admin");
    expect(removed.body).toMatchObject({ limits: [], woken: 0 });
  });

  test.each([
    [{ concurrency: 0 }, "concurrency must be at least 1"],
    [{ concurrency: -3 }, "concurrency must be at least 1"],
    [{ concurrency: 1.5 }, "concurrency is a whole number"],
    [{ rate: { starts: 0, perSeconds: 1 } }, "rate.starts must be at least 1"],
    [{ rate: { starts: 5, perSeconds: 0 } }, "rate.perSeconds must be at least 0.1"],
    [{}, "a limit sets concurrency, rate or both"],
    [{ concurrency: 2, burst: 4 }, "unknown field(s) burst"],
  ])("the limit %j is a 400 saying %s, and nothing is written", async (body, says) => {
    const before = await settingsItem();
    const r = await call("PUT", `/admin/limits/${encodeURIComponent("key:tenant-b")}`, "admin", body);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain(says);
    expect(await settingsItem()).toEqual(before);
  });

  test("a limit key that is neither type: nor key:, and a malformed concurrencyKey on a submit, are 400s", async () => {
    const r = await call("PUT", "/admin/limits/tenant-b", "admin", { concurrency: 1 });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain("type:<job type> or key:<concurrency key>");
    const bad = await call("POST", "/jobs", "alice", { type: "demo.sleep", input: {}, concurrencyKey: "has spaces" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain("concurrencyKey");
  });
});
