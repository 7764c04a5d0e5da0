/**
 * Schedules: the tick rules (core/schedule.ts), and firing through the real sweeper and store
 * against the emulators, with the sweep killed between a tick's job and the schedule's own write
 * (that write refused on the wire below the SDK's retries, as a crash there leaves it).
 */
import { afterEach, describe, expect, test } from "vitest";
import { isTerminal, type Job, type RunningJob } from "../core/job.js";
import { MemoryMetrics } from "../core/metrics.js";
import { type QueueName, type Lane } from "../core/config.js";
import type { Doorbell } from "../core/queue.js";
import { checkCadence, nextTicks, planTicks, tickKey, type Schedule } from "../core/schedule.js";
import { idempotentId, type JobStore } from "../core/store.js";
import { Sweeper } from "../core/sweeper.js";
import { manualClock } from "./support/emulators.js";
import { useWireFaults } from "./support/wire.js";

const MIN = 60_000;
const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);

describe("tick rules", () => {
  const every = (over: Partial<Schedule> = {}) => ({ cadence: { everyMs: MIN }, anchor: T0, nextAt: T0 + MIN, catchUp: "one" as const, catchUpMax: 100, ...over });

  test("catch-up after ten missed minutes: none fires nothing late, one fires the newest, all fires every one up to its bound", () => {
    const now = T0 + 10 * MIN + 30_000; // ten ticks came, the newest 30 s ago
    const late = T0 + 12 * MIN + 30_000; // the newest 90 s ago: past `none`'s minute
    expect(planTicks(every({ catchUp: "none" }), now)).toEqual({ fire: [T0 + 10 * MIN], missed: { count: 9, last: T0 + 9 * MIN }, nextAt: T0 + 11 * MIN });
    // Every five minutes, the newest tick 90 s ago: too late for `none`, which fires nothing.
    const fives = every({ cadence: { everyMs: 5 * MIN }, nextAt: T0 + 5 * MIN });
    expect(planTicks({ ...fives, catchUp: "none" }, T0 + 20 * MIN + 90_000)).toEqual({ fire: [], missed: { count: 4, last: T0 + 20 * MIN }, nextAt: T0 + 25 * MIN });
    expect(planTicks(every({ catchUp: "one" }), late)).toEqual({ fire: [T0 + 12 * MIN], missed: { count: 11, last: T0 + 11 * MIN }, nextAt: T0 + 13 * MIN });
    expect(planTicks(every({ catchUp: "all" }), now).fire).toEqual(Array.from({ length: 10 }, (_, i) => T0 + (i + 1) * MIN));
    expect(planTicks(every({ catchUp: "all", catchUpMax: 3 }), now)).toEqual({ fire: [T0 + 8 * MIN, T0 + 9 * MIN, T0 + 10 * MIN], missed: { count: 7, last: T0 + 7 * MIN }, nextAt: T0 + 11 * MIN });
    expect(planTicks(every(), T0 + MIN - 1)).toEqual({ fire: [], missed: undefined, nextAt: T0 + MIN });
  });

  test("a fixed rate a year behind is counted, not walked; a cron's ticks follow its time zone across a clock change", () => {
    const year = planTicks({ cadence: { everyMs: 1_000 }, anchor: T0, nextAt: T0 + 1_000, catchUp: "one", catchUpMax: 100 }, T0 + 365 * 24 * 3600_000);
    expect(year.fire).toEqual([T0 + 365 * 24 * 3600_000]);
    expect(year.missed?.count).toBe(365 * 24 * 3600 - 1);
    // 09:00 in Paris on weekdays: 08:00 UTC before the spring change (29 March 2026), 07:00 after.
    const paris = { cron: "0 9 * * 1-5", timeZone: "Europe/Paris" };
    expect(nextTicks(paris, 0, Date.UTC(2026, 2, 27), 3).map((t) => new Date(t).toISOString())).toEqual([
      "2026-03-27T08:00:00.000Z",
      "2026-03-30T07:00:00.000Z",
      "2026-03-31T07:00:00.000Z",
    ]);
  });

  test("a cron expression that is invalid, an unknown time zone and a rate below a second are refused with what is wrong", () => {
    expect(checkCadence({ cron: "61 * * * *", timeZone: "UTC" })).toContain("invalid cron expression");
    expect(checkCadence({ cron: "* * * * *", timeZone: "Mars/Olympus" })).toContain("unknown time zone");
    expect(checkCadence({ everyMs: 500 })).toContain("every must be");
    expect(checkCadence({ cron: "*/5 * * * *", timeZone: "America/New_York" })).toBeUndefined();
  });
});

function recordingDoorbell(): Doorbell & { rung: string[] } {
  const rung: string[] = [];
  return { rung, send: async (_q: Lane, ids: string[]) => void rung.push(...ids) };
}

const w = useWireFaults("schedules");

function setup(start: number) {
  const clock = manualClock(start);
  const bell = recordingDoorbell();
  // A start deadline past the test: no sweep rings these jobs again (nothing claims them).
  const store = w.store({ now: clock.now, doorbell: bell, startDeadlineMs: 7 * 24 * 3_600_000 });
  const sweeper = new Sweeper({ store, queue: bell, metrics: new MemoryMetrics(), now: clock.now, doc: w.doc, cfg: { tableName: w.env.emu.tableName } });
  return { clock, bell, store, sweeper };
}

async function makeSchedule(store: JobStore, now: number, over: Partial<Schedule>): Promise<Schedule> {
  return store.schedules.create({
    id: `s-${Math.random().toString(36).slice(2, 8)}`,
    owner: "ops",
    cadence: { everyMs: MIN },
    overlap: "allow",
    catchUp: "all",
    catchUpMax: 100,
    job: { type: "demo.sleep", queue: "default", input: { items: 1 }, maxAttempts: 3, timeoutMs: 3_600_000 },
    paused: false,
    nextAt: now + MIN,
    anchor: now,
    runs: [],
    counts: { fired: 0, skipped: 0, missed: 0 },
    createdAt: now,
    updatedAt: now,
    ...over,
  });
}

/** The jobs a schedule's ticks made, by tick, read by their derived ids. */
async function tickJobs(store: JobStore, s: Schedule, ticks: number[]): Promise<(Job | undefined)[]> {
  return Promise.all(ticks.map((t) => store.getRecord(idempotentId(s.owner, tickKey(s.id, t)))));
}

/** The schedule's own write that records its fired ticks (a Put of its item with no decision pending): the one after the jobs are made. */
const recordWrite = (id: string) => (target: string, body: unknown) => {
  const item = (body as { Item?: { id?: { S?: string }; pending?: unknown } }).Item;
  return target.endsWith(".PutItem") && item?.id?.S === `@schedule#${id}` && item.pending === undefined;
};

describe("firing through the sweeper", () => {
  // The tests share a table and each moves its clock on: another test's schedule would fire in it.
  afterEach(async () => {
    const store = w.store();
    for (const s of await store.schedules.list()) await store.schedules.delete(s.id);
  });

  test("every minute for an hour, the sweep killed between a tick's job and the schedule's write five times: 60 jobs, one per tick, none missed", async () => {
    const { clock, store, sweeper, bell } = setup(T0);
    const s = await makeSchedule(store, T0, {});
    const killedAt = new Set([3, 11, 12, 30, 59]);
    for (let minute = 1; minute <= 60; minute++) {
      clock.set(T0 + minute * MIN + 2_000); // the sweep comes a moment after the tick
      if (killedAt.has(minute)) {
        // Refused on every try the SDK makes: the sweep dies there, its tick's job already written.
        for (let i = 0; i < 3; i++) void w.dynamo.injectNext("server", recordWrite(s.id));
        const killed = await sweeper.sweep();
        expect(killed.errors?.map((e) => e.jobId), `minute ${minute}`).toEqual([`@schedule#${s.id}`]);
      }
      await sweeper.sweep();
    }
    const ticks = Array.from({ length: 60 }, (_, i) => T0 + (i + 1) * MIN);
    const jobs = await tickJobs(store, s, ticks);
    expect(jobs.filter(Boolean)).toHaveLength(60);
    expect(new Set(jobs.map((j) => j!.id)).size).toBe(60);
    const after = (await store.schedules.get(s.id))!;
    expect(after.counts).toEqual({ fired: 60, skipped: 0, missed: 0 });
    expect(after.nextAt).toBe(T0 + 61 * MIN);
    // Each job rung once when it was made: a tick fired again found its job and rang nothing.
    expect(bell.rung.filter((id) => jobs.some((j) => j!.id === id))).toHaveLength(60);
  });

  test("with skip overlap and a run longer than the interval, the ticks it overlaps are skipped and recorded, and the next tick after it ends fires", async () => {
    const { clock, store, sweeper } = setup(T0 + 10 * 3_600_000);
    const start = clock.now();
    const s = await makeSchedule(store, start, { overlap: "skip", catchUp: "one" });
    clock.set(start + MIN + 1_000);
    await sweeper.sweep();
    const first = (await store.schedules.get(s.id))!.lastJobId!;
    const claim = await store.claim(first, "w", 10 * MIN);
    if (!claim.ok) throw new Error("claim refused");
    for (let m = 2; m <= 4; m++) {
      clock.set(start + m * MIN + 1_000);
      await store.heartbeat(claim.lease);
      const report = await sweeper.sweep();
      expect(report.counts.scheduleSkipped, `minute ${m}`).toBe(1);
    }
    await store.succeed(claim.lease, 1);
    clock.set(start + 5 * MIN + 1_000);
    await sweeper.sweep();
    const after = (await store.schedules.get(s.id))!;
    expect(after.counts).toEqual({ fired: 2, skipped: 3, missed: 0 });
    expect(after.runs.map((r) => r.outcome)).toEqual(["fired", "skipped", "skipped", "skipped", "fired"]);
    expect(after.runs.filter((r) => r.outcome === "skipped").every((r) => r.jobId === first)).toBe(true);
  });

  test("cancelPrevious asks the live run to stop and fires; after ten minutes down, catch-up one fires once and records nine missed", async () => {
    const { clock, store, sweeper } = setup(T0 + 20 * 3_600_000);
    const start = clock.now();
    const s = await makeSchedule(store, start, { overlap: "cancelPrevious", catchUp: "one" });
    clock.set(start + MIN + 1_000);
    await sweeper.sweep();
    const first = (await store.schedules.get(s.id))!.lastJobId!;
    const claim = await store.claim(first, "w", 30 * MIN);
    if (!claim.ok) throw new Error("claim refused");
    clock.set(start + 11 * MIN + 1_000); // the sweeper was down for ten ticks
    await sweeper.sweep();
    const after = (await store.schedules.get(s.id))!;
    expect(after.counts).toEqual({ fired: 2, skipped: 0, missed: 9 });
    expect(after.runs.slice(-2)).toEqual([
      { tick: start + 10 * MIN, outcome: "missed", count: 9 },
      { tick: start + 11 * MIN, outcome: "cancelledPrevious", jobId: after.lastJobId },
    ]);
    expect(((await store.getRecord(first)) as RunningJob).cancelRequested).toBe(true);
    const second = await store.getRecord(after.lastJobId!);
    expect(second && !isTerminal(second.status)).toBe(true);
  });

  test("killed after making a tick's job and found again only after the next tick, with skip overlap: the killed tick is kept, the next one skipped, one run live", async () => {
    const { clock, store, sweeper } = setup(T0 + 40 * 3_600_000);
    const start = clock.now();
    const s = await makeSchedule(store, start, { overlap: "skip", catchUp: "one" });
    clock.set(start + MIN + 1_000);
    for (let i = 0; i < 3; i++) void w.dynamo.injectNext("server", recordWrite(s.id));
    expect((await sweeper.sweep()).errors?.map((e) => e.jobId)).toEqual([`@schedule#${s.id}`]);
    clock.set(start + 2 * MIN + 1_000); // the next sweep comes after the next tick
    await sweeper.sweep(); // finishes the pending tick
    await sweeper.sweep(); // and plans the next one
    const [first, second] = await tickJobs(store, s, [start + MIN, start + 2 * MIN]);
    expect(first).toBeDefined();
    expect(second).toBeUndefined(); // skipped: the first run is live
    const after = (await store.schedules.get(s.id))!;
    expect(after.runs.map((r) => [r.outcome, r.jobId])).toEqual([["fired", first!.id], ["skipped", first!.id]]);
    expect(after).toMatchObject({ lastJobId: first!.id, counts: { fired: 1, skipped: 1, missed: 0 } });
  });

  test("two looks at one schedule decide once: the one that read it later finds it decided and makes no job of its own", async () => {
    const { clock, store } = setup(T0 + 50 * 3_600_000);
    const start = clock.now();
    const s = await makeSchedule(store, start, { overlap: "skip", catchUp: "one" });
    clock.set(start + MIN + 1_000);
    const stale = (await store.schedules.get(s.id))!;
    await store.schedules.fire(stale, clock.now());
    clock.set(start + 2 * MIN + 1_000);
    await expect(store.schedules.fire(stale, clock.now())).rejects.toThrow(/changed meanwhile/);
    expect((await tickJobs(store, s, [start + 2 * MIN]))[0]).toBeUndefined();
  });

  test("a schedule deleted and made again under the same id is not overwritten by a look decided on the old one", async () => {
    const { clock, store } = setup(T0 + 60 * 3_600_000);
    const start = clock.now();
    const old = await makeSchedule(store, start, { id: "reused-id" });
    clock.set(start + MIN + 1_000);
    const read = (await store.schedules.get(old.id))!;
    await store.schedules.delete(old.id);
    const again = await makeSchedule(store, clock.now(), { id: "reused-id", owner: "bob", cadence: { everyMs: 60 * MIN } });
    await expect(store.schedules.fire(read, clock.now())).rejects.toThrow(/changed meanwhile/);
    expect(await store.schedules.get(again.id)).toMatchObject({ owner: "bob", cadence: { everyMs: 60 * MIN } });
  });

  test("a paused schedule fires nothing; resumed, it goes on from the next tick without firing the ones it slept through", async () => {
    const { clock, store, sweeper } = setup(T0 + 30 * 3_600_000);
    const start = clock.now();
    const s = await makeSchedule(store, start, {});
    const paused = await store.schedules.setPaused(s, true);
    clock.set(start + 5 * MIN + 1_000);
    expect((await sweeper.sweep()).counts.scheduled).toBe(0);
    const resumed = await store.schedules.setPaused(paused, false);
    expect(resumed.nextAt).toBe(start + 6 * MIN);
    clock.set(start + 6 * MIN + 1_000);
    expect((await sweeper.sweep()).counts.scheduled).toBe(1);
  });
});
