import { describe, expect, it } from "vitest";
import { ALARMS, alarmDefinitions, notStartingThresholdSeconds, type AlarmDefinition } from "../core/alarms.js";
import { TIMINGS } from "../core/config.js";
import { AlarmBoard, evaluateAlarm, type Sample } from "../local/alarms.js";
import { Recorder } from "../local/recorder.js";
import { manualClock } from "./support/emulators.js";

const byId = (id: string): AlarmDefinition => {
  const d = ALARMS.find((a) => a.id === id);
  if (!d) throw new Error(`no alarm ${id}`);
  return d;
};

describe("local alarm evaluation (CloudWatch rules over recorded points)", () => {
  const stuck = byId("StuckJobs"); // Maximum > 0 for 2 periods of 60 s, missing = not breaching
  const t0 = 1_000_000_000;

  it("fires only when every one of the last evaluationPeriods periods breaches", () => {
    const one: Sample[] = [{ at: t0 + 90_000, value: 2 }];
    expect(evaluateAlarm(stuck, one, t0 + 120_000).state).toBe("OK");
    const two: Sample[] = [...one, { at: t0 + 30_000, value: 1 }];
    const r = evaluateAlarm(stuck, two, t0 + 120_000);
    expect(r.state).toBe("ALARM");
    expect(r.periods.map((p) => p.value)).toEqual([1, 2]);
    // A later zero in the latest period takes Maximum, so it still breaches; a period of only zeros clears.
    expect(evaluateAlarm(stuck, [...two, { at: t0 + 100_000, value: 0 }], t0 + 120_000).state).toBe("ALARM");
    expect(evaluateAlarm(stuck, [...two, { at: t0 + 150_000, value: 0 }], t0 + 180_000).state).toBe("OK");
  });

  it("uses the statistic: Sum over the period against the threshold", () => {
    const conflicts = byId("ClaimConflicts"); // Sum > 100 in 300 s
    const many = Array.from({ length: 101 }, (_, i) => ({ at: t0 + i * 1000, value: 1 }));
    expect(evaluateAlarm(conflicts, many, t0 + 200_000).state).toBe("ALARM");
    expect(evaluateAlarm(conflicts, many.slice(1), t0 + 200_000).state).toBe("OK");
    // Points older than the period no longer count.
    expect(evaluateAlarm(conflicts, many, t0 + 400_000).state).toBe("OK");
  });

  it("treats missing data as the definition says: SweeperMissing breaches without sweeps", () => {
    const sweeper = byId("SweeperMissing"); // Sum < 1 in 300 s, missing = breaching
    expect(evaluateAlarm(sweeper, [], t0).state).toBe("ALARM");
    expect(evaluateAlarm(sweeper, [{ at: t0 - 10_000, value: 1 }], t0).state).toBe("OK");
    // ...but periods before recording started have no history, so a fresh start is not an alarm.
    expect(evaluateAlarm(sweeper, [], t0, { since: t0 - 1000 }).state).toBe("INSUFFICIENT_DATA");
    expect(evaluateAlarm(sweeper, [], t0, { since: t0 - 400_000 }).state).toBe("ALARM");
    // Not-breaching missing data never fires.
    expect(evaluateAlarm(stuck, [], t0).state).toBe("OK");
  });

  it("scales periods by timeScale", () => {
    const r = evaluateAlarm(stuck, [{ at: t0 - 1000, value: 1 }, { at: t0 - 7000, value: 1 }], t0, { timeScale: 0.1 });
    expect(r.periodMs).toBe(6000);
    expect(r.state).toBe("ALARM");
    expect(evaluateAlarm(stuck, [{ at: t0 - 1000, value: 1 }, { at: t0 - 13_000, value: 1 }], t0, { timeScale: 0.1 }).state).toBe("OK");
  });

  it("LessThanThreshold compares the other way", () => {
    const sweeper = byId("SweeperMissing");
    expect(evaluateAlarm(sweeper, [{ at: t0 - 1, value: 0 }], t0).state).toBe("ALARM");
    expect(evaluateAlarm(sweeper, [{ at: t0 - 1, value: 3 }], t0).state).toBe("OK");
  });

  it("the board reads each source from the recorder and keeps since-when", () => {
    const clock = manualClock(t0);
    const rec = new Recorder(clock.now);
    const board = new AlarmBoard(ALARMS, (s, since) => rec.read(s, since), { timeScale: 0.1, since: t0 });
    const state = (id: string) => board.evaluate(clock.now()).find((a) => a.id === id)!;
    clock.advance(1000);
    rec.metrics.emit("StuckJobs", 1, { State: "running" });
    clock.advance(6000);
    rec.metrics.emit("StuckJobs", 1, { State: "running" });
    clock.advance(1000);
    expect(state("StuckJobs").state).toBe("ALARM");
    const firedAt = state("StuckJobs").since;
    clock.advance(1000);
    expect(state("StuckJobs").since).toBe(firedAt);
    rec.metrics.emit("StuckJobs", 0, { State: "running" });
    clock.advance(6500);
    rec.metrics.emit("StuckJobs", 0, { State: "running" });
    expect(state("StuckJobs").state).toBe("OK");

    // A per-queue metric alarm reads its own queue's points only.
    rec.metrics.emit("OldestUnclaimedSeconds", notStartingThresholdSeconds(TIMINGS.startDeadlineMs) + 1, { Queue: "large" });
    rec.metrics.emit("OldestUnclaimedSeconds", 0, { Queue: "default" });
    clock.advance(10);
    expect(state("JobsNotStarting-large").state).toBe("ALARM");
    expect(state("JobsNotStarting-default").state).toBe("OK");

    // Queue gauges and the Lambda stand-ins' own counts.
    rec.queue("default", true, "ApproximateNumberOfMessagesVisible", 2);
    clock.advance(10);
    expect(state("DeadLetters-default").state).toBe("ALARM");
    expect(state("DeadLetters-large").state).not.toBe("ALARM");
    for (let i = 0; i < 6; i++) rec.lambda("worker", "Errors");
    clock.advance(10);
    expect(state("LambdaErrors-worker").state).toBe("ALARM");
    expect(state("LambdaErrors-api").state).not.toBe("ALARM");
  });

  it("JobsNotStarting pages a frozen queue within twice the start deadline at the deployed timings, and not a lost message the resend repairs", () => {
    const sd = TIMINGS.startDeadlineMs;
    const large = byId("JobsNotStarting-large");
    expect(large.source).toEqual({ kind: "metric", metric: "OldestUnclaimedSeconds", statistic: "Maximum", dims: { Queue: "large" } });
    expect(large.threshold).toBe(notStartingThresholdSeconds(sd));
    /** What a sweep every 13 s (the longest gap) publishes while one job waits from t0 until `claimedAt`. */
    const sweeps = (claimedAt: number): Sample[] =>
      Array.from({ length: Math.ceil((3 * sd) / 13_000) }, (_, i) => t0 + (i + 1) * 13_000).map((at) => ({ at, value: at < claimedAt ? (at - t0) / 1000 : 0 }));
    /** When the alarm first reads ALARM, evaluated every second; undefined when it never does. */
    const firesAt = (samples: Sample[]): number | undefined => {
      for (let now = t0; now <= t0 + 3 * sd; now += 1000) if (evaluateAlarm(large, samples, now).state === "ALARM") return now;
      return undefined;
    };
    const frozen = firesAt(sweeps(Infinity));
    expect(frozen).toBeDefined();
    // CloudWatch closes the 60 s period that holds the breaching point before it acts: within
    // that period on top of the local (sliding) evaluation, still inside twice the start deadline.
    expect(frozen! - t0 + large.periodSeconds * 1000).toBeLessThan(2 * sd);
    // A lost message: the sweeper re-rings at the start deadline (plus a sweep) and a worker claims it seconds later.
    expect(firesAt(sweeps(t0 + sd + 13_000 + 20_000))).toBeUndefined();
    // The local runtime's short start deadline gets its own threshold.
    expect(alarmDefinitions({ startDeadlineMs: 4_000 }).find((a) => a.id === "JobsNotStarting-large")!.threshold).toBe(6);
    expect(alarmDefinitions().map((a) => a.id)).toEqual(ALARMS.map((a) => a.id));
  });

  it("parses EMF lines from worker processes into metric points", () => {
    const rec = new Recorder(() => t0);
    const line = JSON.stringify({
      _aws: { Timestamp: t0, CloudWatchMetrics: [{ Namespace: "Warden", Dimensions: [["Stage", "Queue"]], Metrics: [{ Name: "JobsStarted", Unit: "Count" }] }] },
      Stage: "local",
      Queue: "large",
      JobsStarted: [1, 1],
    });
    expect(rec.emfLine(line)).toBe(true);
    expect(rec.emfLine("warden-worker: ready w1")).toBe(false);
    expect(rec.emfLine('{"not":"emf"}')).toBe(false);
    expect(rec.metrics.sum("JobsStarted", 0, { Queue: "large" })).toBe(2);
  });
});
