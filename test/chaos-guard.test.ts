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
 *
 * The same for a flow's fan-in: WARDEN_CHAOS_UNSAFE_UNCONDITIONAL_RESUME=1 (local/chaos-broken.ts,
 * set in the chaos processes only) drops the condition from a parent's `resume`. The proxy holds
 * the first resume of an evaluation (its sender gives up; the sweeper's recount resumes the
 * parent, which combines its executions and succeeds), then delivers the held one: without its
 * condition it queues the finished parent again, and the flow check must report the round
 * resumed twice. The counterpart with the condition in place, the late resume refused, runs in
 * test/chaos.test.ts under the full chaos.
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

/** A parent's resume (core/lifecycle.ts): waiting → queued, counting the time it waited. */
const resumeWrite = (t: string, body: unknown) => target("UpdateItem")(t) && sets(body, "status", "queued") && sets(body, "waitedMs");

describe("chaos check against a broken fan-in", () => {
  it("reports an evaluation resumed twice in one round when resume is not conditional and a held resume arrives after the parent finished", async () => {
    const run = await runChaos({
      jobs: 0,
      flows: 1,
      flowShape: { regions: 1, models: 2, questions: 3 },
      minutes: 0.1,
      workers: 2,
      killEveryMs: 0,
      sweeperKillEveryMs: 0,
      faultRate: 0,
      planned: [{ service: "dynamodb", kind: "late", match: resumeWrite }],
      dropEnqueueRate: 0,
      duplicatesPerSecond: 0,
      callersPerSecond: 0,
      unsafeUnconditionalResume: true,
      drainMs: 40_000,
      save: false,
      log: () => {},
    });
    const report = printChaos(run);
    expect(run.late, report).toMatchObject([{ applied: true }]);
    expect(run.verdict.ok, report).toBe(false);
    expect(run.verdict.violations, report).toContainEqual(expect.stringMatching(/\(chaos\.evaluate\) round 0: 1 waits and 2 resumes applied \(v\d+ by \w+, unconditional; v\d+ by \w+, unconditional\)/));
    expect(run.verdict.rows.find((r) => r.check.startsWith("every evaluation waited once"))?.ok, report).toBe(false);
    // The rest of the flow held: every execution written once, none claimed after its success.
    expect(run.verdict.flows, report).toMatchObject({ evaluations: 1, executions: 6, written: 6, missing: 0, claimsAfterSuccess: 0 });
  }, 120_000);
});
