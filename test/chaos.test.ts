/**
 * The short chaos run inside `npm test`: the same harness as `npm run chaos`, smaller and
 * faster (40 jobs, 30 s of chaos, kills every ~4 s, wire faults on DynamoDB and SQS below the
 * SDK's retries, duplicate and late messages, dropped enqueues, sweeper kills, callers' cancels
 * and retries, unstorable results and near-limit checkpoints), with more frozen-worker jobs so
 * the fence is exercised every time. Any violation fails the suite.
 *
 * With two flows among them (an evaluation fanned out over regions × models × questions, here 2 × 2 × 5
 * = 20 executions each, spawned from the parent's handler; `npm run chaos` runs six of the full
 * 3 × 4 × 5 = 60): some of the first one's executions are
 * never written by its worker (their creates refused on the wire), so the sweeper writes them
 * from the spec; and the first resume of a parent is held on the wire and delivered after the
 * parent finished, which its condition must refuse (test/chaos-guard.test.ts shows the check
 * catching it without the condition).
 *
 * With the controls: about a third of the keyable jobs carry a concurrency key limited to 2 at
 * once (frozen-worker jobs among them), and a schedule ticks every 2 s through the chaos window,
 * fired by the sweeper that is killed mid-sweep (test/chaos-check.test.ts shows the limit check
 * catching three keyed runs at once).
 */
import { describe, expect, it } from "vitest";
import { printChaos, runChaos } from "../local/chaos.js";
import { sets, target } from "./support/wire.js";

/** A parent's resume (core/lifecycle.ts): waiting → queued, counting the time it waited. */
const resumeWrite = (t: string, body: unknown) => target("UpdateItem")(t) && sets(body, "status", "queued") && sets(body, "waitedMs");

describe("chaos (short)", () => {
  it("loses nothing, completes nothing twice and spends no attempt unstarted under kills, wire faults, callers and duplicate messages, flows, limits, schedules, priorities and fenced effects included", async () => {
    const run = await runChaos({
      // A failed run's seed replays its plan here: WARDEN_CHAOS_SEED=N npx vitest run test/chaos.test.ts
      seed: Number(process.env.WARDEN_CHAOS_SEED) || 0,
      jobs: 40,
      minutes: 0.5,
      workers: 3,
      killEveryMs: 4_000,
      sweeperKillEveryMs: 8_000,
      faultRate: 0.05,
      // A 40-job run is too short to be sure of every kind on both services (the full run requires
      // it), so the central one is planned on top: a reply lost after the write applied, on each.
      requireEveryFault: false,
      planned: [
        { service: "dynamodb", kind: "lostReply", match: (t, body) => target("UpdateItem")(t) && sets(body, "status", "succeeded") },
        { service: "sqs", kind: "lostReply", match: target("SendMessage") },
        { service: "dynamodb", kind: "late", match: resumeWrite },
      ],
      flows: 2,
      flowShape: { regions: 2, models: 2, questions: 5 },
      flowUnwritten: 4,
      callersPerSecond: 0.5,
      // Every type at least once (the run places one of each); the large-item ones are the slowest on dynalite, so no more.
      mix: { "chaos.steps": 28, "chaos.long": 28, "chaos.flaky": 10, "chaos.doomed": 10, "chaos.stall": 10, "chaos.unstorable": 8, "chaos.oversize": 1, "chaos.nearlimit": 1 },
      keyedShare: 0.35,
      keyLimit: 2,
      scheduleEveryMs: 2_000,
      priorityShare: 0.3,
      effects: 3,
      drainMs: 60_000,
      save: false,
      log: () => {},
    });
    const report = printChaos(run);
    expect(run.verdict.violations, report).toEqual([]);
    expect(run.drained, report).toBe(true);
    // The chaos must actually have happened, or passing proves nothing.
    const kills = Object.entries(run.verdict.kills).filter(([k]) => !k.includes("sweeper")).reduce((n, [, c]) => n + c, 0);
    expect(kills, report).toBeGreaterThanOrEqual(4);
    const sum = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
    expect(sum(run.verdict.faults.dynamodb), report).toBeGreaterThan(0);
    expect(sum(run.verdict.faults.sqs), report).toBeGreaterThan(0);
    expect(run.plannedInjected, report).toBe(3);
    // The held resume arrived after its parent had finished: its condition refused it.
    expect(run.late, report).toMatchObject([{ applied: false, answer: "ConditionalCheckFailedException" }]);
    expect(run.verdict.faults.dynamodb.lostReply, report).toBeGreaterThan(0);
    expect(run.verdict.faults.sqs.lostReply, report).toBeGreaterThan(0);
    expect(run.verdict.calls.cancels + run.verdict.calls.retries, report).toBeGreaterThan(0);
    // Death events were delivered for the killed processes, each twice (the second after its jobs moved on).
    const deaths = run.verdict.rows.find((r) => r.check.startsWith("death events"))?.value ?? "";
    expect(Number(/^(\d+) delivered/.exec(deaths)?.[1] ?? 0), report).toBeGreaterThanOrEqual(2);
    // The flows ran whole: every execution written (those refused on the wire by the sweeper), each parent waited and was resumed once.
    expect(run.verdict.flows, report).toMatchObject({ evaluations: 2, executions: 40, written: 40, missing: 0, claimsAfterSuccess: 0, waits: 2, resumes: 2, badResumes: 0, badResults: 0 });
    expect(run.verdict.flows.writtenBySweeper, report).toBeGreaterThanOrEqual(4);
    // The keyed jobs: never more than 2 running at once (by their handlers, and as DynamoDB applied their runs), all ended, no attempt spent on a hold, their slots given back.
    expect(run.verdict.limits, report).toMatchObject({ key: "chaos-tenant", limit: 2, notTerminal: 0, spentOnHold: 0, attemptsUnstarted: 0 });
    expect(run.verdict.limits.keyed, report).toBeGreaterThanOrEqual(5);
    expect(run.verdict.limits.maxRunning, report).toBeLessThanOrEqual(2);
    expect(run.verdict.limits.maxRunningStore, report).toBeLessThanOrEqual(2);
    expect(run.verdict.limits.holdersLeft, report).toBe(run.verdict.limits.holdersExcused);
    // The limit bit: some keyed claim was held.
    expect(run.verdict.limits.holds, report).toBeGreaterThan(0);
    // The schedule: one job per tick from its first to its last handled, none beyond, all ended, none missed.
    expect(run.verdict.schedule, report).toMatchObject({ everyMs: 2_000, missing: 0, extra: 0, notTerminal: 0, badRuns: 0, counts: { skipped: 0, missed: 0 } });
    expect(run.verdict.schedule.ticks, report).toBeGreaterThanOrEqual(8);
    expect(run.verdict.schedule.counts.fired, report).toBe(run.verdict.schedule.ticks);
    // Priorities: high and low jobs were submitted and rung on their lanes, none off its lane, none changed on its way.
    expect(run.verdict.priorities, report).toMatchObject({ changed: 0, offLane: 0 });
    expect(run.verdict.priorities!.submitted.high + run.verdict.priorities!.submitted.low, report).toBeGreaterThanOrEqual(4);
    expect(run.verdict.priorities!.rings.high + run.verdict.priorities!.rings.low, report).toBeGreaterThan(0);
    // Fenced effects: every step of every chaos.effects job has its one row, none overwritten by a stale attempt, and the frozen attempts' writes were refused.
    expect(run.verdict.effects, report).toMatchObject({ jobs: 3, steps: 18, rows: 18, missing: 0, extra: 0, overwritten: 0 });
    expect(run.verdict.effects!.refused, report).toBeGreaterThan(0);
  }, 180_000);
});
