/**
 * The short chaos run inside `npm test`: the same harness as `npm run chaos`, smaller and
 * faster (40 jobs, 30 s of chaos, kills every ~4 s, store faults, duplicate and late messages,
 * dropped enqueues, sweeper kills), with more frozen-worker jobs so the fence is exercised every
 * time. Any violation fails the suite.
 */
import { describe, expect, it } from "vitest";
import { printChaos, runChaos } from "../local/chaos.js";

describe("chaos (short)", () => {
  it("loses nothing and completes nothing twice under kills, store faults and duplicate messages", async () => {
    const run = await runChaos({
      jobs: 40,
      minutes: 0.5,
      workers: 3,
      killEveryMs: 4_000,
      sweeperKillEveryMs: 8_000,
      faultRate: 0.05,
      mix: { "chaos.steps": 30, "chaos.long": 30, "chaos.flaky": 10, "chaos.doomed": 10, "chaos.stall": 10 },
      drainMs: 40_000,
      save: false,
      log: () => {},
    });
    const report = printChaos(run);
    expect(run.verdict.violations, report).toEqual([]);
    expect(run.drained, report).toBe(true);
    // The chaos must actually have happened, or passing proves nothing.
    const kills = Object.entries(run.verdict.kills).filter(([k]) => !k.includes("sweeper")).reduce((n, [, c]) => n + c, 0);
    expect(kills, report).toBeGreaterThanOrEqual(4);
    expect(Object.values(run.verdict.faults).reduce((a, b) => a + b, 0), report).toBeGreaterThan(0);
  }, 150_000);
});
