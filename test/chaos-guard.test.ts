/**
 * A deliberately broken build must fail the chaos check. Worker processes get the test-only
 * switch WARDEN_UNSAFE_UNFENCED_SUCCEED=1 (core/store.ts), which drops the fence (token and
 * state) from `succeed`.
 *
 * What a fence is for: a write that reaches DynamoDB after its sender gave up on it. The proxy in
 * front of DynamoDB holds the first `succeed` write (a hang: its worker's try times out at the end
 * of its lease, and it writes nothing more), the sweeper takes the job back, another worker
 * finishes it, and only then does the held write arrive (the run delivers it, as a network or a
 * front end that kept it would). With the fence it fails its condition; without it DynamoDB ends
 * the job a second time, and the chaos check, whose ledger is what DynamoDB applied as the proxy
 * saw it, must report it. No other faults, kills or callers: nothing else may end a job.
 *
 * (The completer bounds every try by what is left of the lease, and refuses the SDK's resend of a
 * write that landed, so neither a worker frozen past its lease nor a lost reply makes the broken
 * build fail any more: only a write delivered late does.)
 */
import { describe, expect, it } from "vitest";
import { printChaos, runChaos } from "../local/chaos.js";
import { sets, target } from "./support/wire.js";

const lateSucceed = (unsafeUnfencedSucceed: boolean) =>
  runChaos({
    jobs: 2,
    minutes: 0.1,
    workers: 2,
    killEveryMs: 0,
    sweeperKillEveryMs: 0,
    faultRate: 0,
    planned: [{ service: "dynamodb", kind: "late", match: (t, body) => target("UpdateItem")(t) && sets(body, "status", "succeeded") }],
    dropEnqueueRate: 0,
    duplicatesPerSecond: 0,
    callersPerSecond: 0,
    mix: { "chaos.long": 1 },
    unsafeUnfencedSucceed,
    drainMs: 40_000,
    save: false,
    log: () => {},
  });

describe("chaos check against a broken fence", () => {
  it("reports a job ended twice when succeed is not fenced and a held succeed arrives after another worker's", async () => {
    const run = await lateSucceed(true);
    const report = printChaos(run);
    expect(run.late, report).toMatchObject([{ applied: true }]);
    expect(run.verdict.ok, report).toBe(false);
    expect(run.verdict.violations, report).toEqual([expect.stringMatching(/has 2 accepted terminal writes: succeeded by worker pid \d+ on token none \(v\d+\); succeeded by worker .*on token none/)]);
    expect(run.verdict.rows.find((r) => r.check.startsWith("≤ 1 committed"))?.ok, report).toBe(false);
  }, 120_000);

  it("passes the same run with the fence in place: the late write fails its condition", async () => {
    const run = await lateSucceed(false);
    const report = printChaos(run);
    expect(run.late, report).toMatchObject([{ applied: false, answer: "ConditionalCheckFailedException" }]);
    expect(run.verdict.violations, report).toEqual([]);
    // The held write's sender gave up on it and the sweeper took the job back.
    expect(run.verdict.jobsNeedingSweeper, report).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
