/**
 * A deliberately broken build must fail the chaos check. Worker processes get the test-only
 * switch WARDEN_UNSAFE_UNFENCED_SUCCEED=1 (core/store.ts), which drops the fence from `succeed`.
 * A `chaos.stall` job freezes its worker past its lease right before returning; the sweeper
 * takes the job back, another worker finishes it, and then the frozen worker wakes and commits
 * its own result. Without the fence DynamoDB accepts that second result, and the chaos check
 * must report the job completed twice. (With the fence, test/chaos.test.ts runs the same jobs
 * and expects no violation.)
 */
import { describe, expect, it } from "vitest";
import { printChaos, runChaos } from "../local/chaos.js";

const stallOnly = (unsafeUnfencedSucceed: boolean) =>
  runChaos({
    jobs: 2,
    minutes: 0.1,
    workers: 2,
    leaseSeconds: 1,
    killEveryMs: 0,
    sweeperKillEveryMs: 0,
    faultRate: 0,
    dropEnqueueRate: 0,
    duplicatesPerSecond: 0,
    mix: { "chaos.stall": 1 },
    unsafeUnfencedSucceed,
    drainMs: 30_000,
    save: false,
    log: () => {},
  });

describe("chaos check against a broken fence", () => {
  it("reports a job completed twice when succeed is not fenced", async () => {
    const run = await stallOnly(true);
    const report = printChaos(run);
    expect(run.verdict.ok, report).toBe(false);
    expect(run.verdict.violations.some((v) => /accepted terminal writes/.test(v)), report).toBe(true);
    expect(run.verdict.rows.find((r) => r.check.startsWith("≤ 1 committed"))?.ok, report).toBe(false);
  }, 120_000);

  it("passes the same frozen-worker run with the fence in place, the frozen worker's result refused", async () => {
    const run = await stallOnly(false);
    const report = printChaos(run);
    expect(run.verdict.violations, report).toEqual([]);
    expect(run.verdict.fencedOut, report).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
