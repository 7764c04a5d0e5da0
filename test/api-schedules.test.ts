/**
 * The schedules' routes through the real API handler against the emulators: made, listed,
 * read with their next runs, changed, paused, resumed and deleted; another caller sees none of
 * them; bad input is a 400 that says what is wrong and writes nothing.
 */
import { describe, expect, test } from "vitest";
import { silentLog } from "../core/api/jobs.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { makeHandler } from "../functions/api.js";
import { manualClock, useEmulators } from "./support/emulators.js";
import { callerOf, useApiHandler } from "./support/http-api.js";

const env = useEmulators("api-schedules");
const api = useApiHandler(env);
const call = api.call;
const ids = async () => (await api.services.store.schedules.list()).map((s) => s.id).sort();

describe("schedules", () => {
  test("made with a cron in a time zone, listed and read with its next runs; changed to a fixed rate; paused, resumed and deleted", async () => {
    const made = await call("POST", "/schedules", "alice", { id: "nightly-report", type: "demo.sleep", input: { items: 2 }, cron: "30 2 * * *", timeZone: "Asia/Tokyo", overlap: "skip", catchUp: "none" });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect(made.body.schedule).toMatchObject({ id: "nightly-report", type: "demo.sleep", queue: "default", input: { items: 2 }, cron: "30 2 * * *", timeZone: "Asia/Tokyo", everySeconds: null, overlap: "skip", catchUp: "none", paused: false, counts: { fired: 0, skipped: 0, missed: 0 } });
    // 02:30 in Tokyo is 17:30 UTC, every day.
    expect(made.body.schedule.nextRuns).toHaveLength(5);
    for (const at of made.body.schedule.nextRuns) expect(at).toMatch(/T17:30:00\.000Z$/);
    expect((await call("POST", "/schedules", "alice", { id: "nightly-report", type: "demo.sleep", everySeconds: 60 })).status).toBe(409);

    expect((await call("GET", "/schedules", "alice")).body.schedules.map((s: { id: string }) => s.id)).toEqual(["nightly-report"]);
    expect((await call("GET", "/schedules", "bob")).body.schedules).toEqual([]);
    expect((await call("GET", "/schedules/nightly-report", "bob")).status).toBe(404);
    expect((await call("GET", "/schedules", "admin")).body.schedules).toHaveLength(1);

    const changed = await call("PUT", "/schedules/nightly-report", "alice", { type: "demo.sleep", everySeconds: 600, catchUp: "all", catchUpMax: 5 });
    expect(changed.body.schedule).toMatchObject({ cron: null, everySeconds: 600, catchUp: "all", catchUpMax: 5, overlap: "skip" });
    const [a, b] = changed.body.schedule.nextRuns.map((t: string) => Date.parse(t));
    expect(b - a).toBe(600_000);

    expect((await call("POST", "/schedules/nightly-report/pause", "alice")).body.schedule).toMatchObject({ paused: true, nextRuns: [] });
    expect((await call("POST", "/schedules/nightly-report/resume", "alice")).body.schedule.paused).toBe(false);
    expect((await call("DELETE", "/schedules/nightly-report", "bob")).status).toBe(404);
    expect((await call("DELETE", "/schedules/nightly-report", "alice")).body).toEqual({ deleted: "nightly-report" });
    expect(await ids()).toEqual([]);
  });

  test("a PUT that unpauses goes on from the next tick (none it slept through fires); a new cadence records the old one's due ticks as missed", async () => {
    const clock = manualClock(Date.UTC(2026, 6, 1, 0, 0, 0));
    const timed = buildServices(loadRuntime(env.emu.env), { now: clock.now });
    const c = callerOf(() => makeHandler(timed, { log: silentLog }));
    const body = { type: "demo.sleep", everySeconds: 60, catchUp: "all" };
    expect((await c("POST", "/schedules", "alice", { id: "slept", ...body, paused: true })).status).toBe(201);
    clock.advance(30 * 60_000);
    const resumed = await c("PUT", "/schedules/slept", "alice", { ...body, paused: false });
    expect(Date.parse(resumed.body.schedule.nextRuns[0])).toBeGreaterThan(clock.now());
    clock.advance(3 * 60_000 + 1_000); // three ticks come, no sweep fires them
    const changed = await c("PUT", "/schedules/slept", "alice", { type: "demo.sleep", everySeconds: 3_600 });
    expect(changed.body.schedule.counts).toEqual({ fired: 0, skipped: 0, missed: 3 });
    expect(changed.body.schedule.lastRuns.at(-1)).toMatchObject({ outcome: "missed", count: 3 });
    expect((await c("DELETE", "/schedules/slept", "alice")).status).toBe(200);
  });

  test("a submit may not take a schedule's idempotency keys, and an over-long id in the path reads as unknown", async () => {
    const r = await call("POST", "/jobs", "alice", { type: "demo.sleep", idempotencyKey: "schedule:hourly:1780000000000" });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain("a schedule's");
    expect((await call("GET", `/schedules/${"x".repeat(3_000)}`, "alice")).status).toBe(404);
  });

  test.each([
    [{ id: "s1", type: "demo.sleep", cron: "61 * * * *" }, "invalid cron expression"],
    [{ id: "s1", type: "demo.sleep", cron: "* * * * *", timeZone: "Mars/Olympus" }, "unknown time zone"],
    [{ id: "s1", type: "demo.sleep" }, "either cron or everySeconds"],
    [{ id: "s1", type: "demo.sleep", cron: "* * * * *", everySeconds: 60 }, "either cron or everySeconds"],
    [{ id: "s1", type: "demo.sleep", everySeconds: 30 }, "everySeconds must be at least 60"],
    [{ id: "s1", type: "demo.sleep", cron: "*/10 * * * * *" }, "fires 10 s apart"],
    [{ id: "s1", type: "demo.sleep", everySeconds: 60, timeZone: "UTC" }, "timeZone goes with cron"],
    [{ id: "s1", type: "demo.sleep", everySeconds: 60, overlap: "queue" }, "overlap"],
    [{ id: "s1", type: "demo.nope", everySeconds: 60 }, "unknown job type"],
    [{ id: "s1", type: "demo.sleep", everySeconds: 60, input: { items: -1 } }, "input does not match"],
    [{ id: "no spaces", type: "demo.sleep", everySeconds: 60 }, "a schedule id is"],
  ])("%j is a 400 saying %s, and nothing is written", async (body, says) => {
    const r = await call("POST", "/schedules", "alice", body);
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body.error)).toContain(says);
    expect(await ids()).toEqual([]);
  });
});
