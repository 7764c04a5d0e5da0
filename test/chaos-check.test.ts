/**
 * The chaos proof's own parts, so they can fail on their own:
 * - the ledger's store side (local/chaos-ledger.ts fromApplied) reads each transition core's
 *   store really writes, as DynamoDB applied it behind the wire-fault proxy, a lost reply the
 *   SDK resent included;
 * - each check of local/chaos-check.ts reports the broken run it exists for, and passes the
 *   same run mended; the concurrency limit's on runs the real runner made, through the real
 *   store behind the proxy, with the chaos handlers recording into a real ledger.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import type { ChildSpec } from "../core/flow.js";
import type { Job, QueuedJob, RunningJob, WaitingJob } from "../core/job.js";
import { Runner, type RunOutcome } from "../core/runner.js";
import type { NewJob } from "../core/store.js";
import { checkChaos, flowChildren, type ChaosFacts, type FaultCounts, type Kill, type Submitted } from "../local/chaos-check.js";
import { executionScore, registerChaosJobs, type EvaluateInput } from "../local/chaos-jobs.js";
import { appliedReader, LEDGER_ENV, readLedger, record, type LedgerEntry } from "../local/chaos-ledger.js";
import { sets, target, useWireFaults } from "./support/wire.js";
import { manualClock } from "./support/emulators.js";

const w = useWireFaults("chaos-ledger");

const spec = (): NewJob => ({ owner: "chaos", type: "chaos.long", queue: "large", input: { steps: 3, stepMs: 1 }, maxAttempts: 5, timeoutMs: 600_000 });
const ledgerOf = (id: string) =>
  w.applied
    .flatMap(appliedReader())
    .filter((e) => "job" in e && e.job === id)
    .map((e) => {
      const { job: _j, at: _a, appliedAt: _p, ...rest } = e as LedgerEntry & { job: string; at: number; appliedAt: number };
      return rest;
    });
const claimed = async (r: Promise<{ ok: boolean }>) => {
  const c = await r;
  if (!c.ok) throw new Error(`claim refused: ${JSON.stringify(c)}`);
  return c as Extract<Awaited<ReturnType<ReturnType<typeof w.store>["claim"]>>, { ok: true }>;
};

describe("the ledger reads what DynamoDB applied, from the wire", () => {
  test("a worker's writes: claims, a heartbeat with its checkpoint, a retried failure, a hand-back, the end under its fence", async () => {
    const store = w.store();
    const { job } = await store.create(spec());
    const c1 = await claimed(store.claim(job.id, "w-1", 60_000));
    await store.heartbeat(c1.lease, { checkpoint: { next: 2 } });
    await store.fail(c1.lease, { code: "handler_error", message: "once" }, { retryable: true });
    const c2 = await claimed(store.claim(job.id, "w-2", 60_000));
    await store.release(c2.lease, {});
    const c3 = await claimed(store.claim(job.id, "w-3", 60_000));
    await store.succeed(c3.lease, { ok: true });
    expect(ledgerOf(job.id)).toMatchObject([
      { k: "create", version: 1 },
      { k: "claim", version: 2, token: 1, attempt: 1, worker: "w-1", resume: null, replyLost: false },
      { k: "beat", version: 3, token: 1, resume: 2 },
      { k: "release", version: 4, token: 1, outcome: "retried", code: "handler_error", resume: 2 },
      { k: "claim", version: 5, token: 2, attempt: 2, worker: "w-2", resume: 2 },
      { k: "release", version: 6, token: 2, outcome: "released" },
      { k: "claim", version: 7, token: 3, attempt: 2, worker: "w-3", resume: 2 },
      { k: "commit", version: 8, status: "succeeded", token: 3, by: "worker" },
    ]);
  });

  test("a checkpoint too large for the record is read from its value item, and one a worker wrote after losing its lease is not what the record holds", async () => {
    const clock = manualClock();
    const store = w.store({ now: clock.now });
    const { job } = await store.create(spec());
    const big = (next: number) => ({ next, pad: "c".repeat(2_000) });
    const c1 = await claimed(store.claim(job.id, "w-1", 1_000));
    await store.heartbeat(c1.lease, { checkpoint: big(2) });
    clock.advance(1_001);
    const c2 = await claimed(store.claim(job.id, "w-2", 60_000));
    await expect(store.heartbeat(c1.lease, { checkpoint: big(3) })).rejects.toThrow(/claimed it after this lease expired/);
    await store.heartbeat(c2.lease, { checkpoint: big(4) });
    expect(ledgerOf(job.id)).toMatchObject([
      { k: "create", version: 1 },
      { k: "claim", version: 2, token: 1, resume: null },
      { k: "beat", version: 3, token: 1, resume: 2 },
      { k: "claim", version: 4, token: 2, resume: 2 },
      { k: "beat", version: 5, token: 2, resume: 4 },
    ]);
  });

  test("callers' cancels and retries, and a worker acknowledging a cancel", async () => {
    const store = w.store();
    const { job } = await store.create(spec());
    await store.requestCancel(job.id); // queued: cancelled at once
    await store.retry(job.id);
    const c = await claimed(store.claim(job.id, "w-1", 60_000));
    await store.requestCancel(job.id); // running: marked
    await store.acknowledgeCancel(c.lease);
    expect(ledgerOf(job.id)).toMatchObject([
      { k: "create", version: 1 },
      { k: "call", action: "cancel", version: 2 },
      { k: "commit", status: "cancelled", by: "api", token: null, version: 2 },
      { k: "call", action: "retry", version: 3 },
      { k: "claim", version: 4, token: 1 },
      { k: "call", action: "cancel", version: 5 },
      { k: "commit", status: "cancelled", by: "worker", token: 1, version: 6 },
    ]);
  });

  test("the sweeper's repairs: reclaim, resend, expire, and a cancel no worker acknowledged", async () => {
    const store = w.store();
    const { job } = await store.create(spec());
    await claimed(store.claim(job.id, "w-1", 60_000));
    await store.reclaim((await store.mustGet(job.id)) as RunningJob);
    await store.pushStartDeadline((await store.mustGet(job.id)) as QueuedJob);
    await claimed(store.claim(job.id, "w-2", 60_000));
    await store.expire((await store.mustGet(job.id)) as RunningJob);
    const other = (await store.create(spec())).job;
    await claimed(store.claim(other.id, "w-3", 60_000));
    await store.requestCancel(other.id);
    await store.cancelSilent((await store.mustGet(other.id)) as RunningJob);
    expect(ledgerOf(job.id)).toMatchObject([
      { k: "create" },
      { k: "claim", token: 1 },
      { k: "swept", transition: "reclaim", to: "queued" },
      { k: "swept", transition: "resend", to: "queued" },
      { k: "claim", token: 3 },
      { k: "swept", transition: "expire", to: "failed" },
      { k: "commit", status: "failed", by: "sweeper", token: null },
    ]);
    expect(ledgerOf(other.id).slice(-3)).toMatchObject([
      { k: "call", action: "cancel" },
      { k: "swept", transition: "cancelSilent", to: "cancelled" },
      { k: "commit", status: "cancelled", by: "sweeper" },
    ]);
  });

  test("a flow's writes: the parent's wait, its children's creates and ends, the sweeper's look, the last child's resume", async () => {
    const store = w.store();
    const { job } = await store.create({ owner: "chaos", type: "chaos.evaluate", queue: "default", input: {}, maxAttempts: 5, timeoutMs: 600_000 });
    const c1 = await claimed(store.claim(job.id, "w-1", 60_000));
    const specs: ChildSpec[] = [0, 1].map((i) => ({ type: "chaos.execution", input: { i }, key: `k${i}`, queue: "default", maxAttempts: 3, timeoutMs: 600_000 }));
    const parent = (await store.wait(c1.lease, specs, "collect")) as WaitingJob;
    await store.spawnRound(parent, specs);
    await store.checkFlow((await store.mustGet(job.id)) as WaitingJob); // both children still queued: its next look
    const children = (await store.childOutcomes(parent, { limit: 10 })).children;
    for (const child of children) {
      const c = await claimed(store.claim(child.id, "w-2", 60_000));
      await store.succeed(c.lease, { ok: true }); // the second one's end completes the round and resumes the parent
    }
    expect(ledgerOf(job.id)).toMatchObject([
      { k: "create", version: 1 },
      { k: "claim", version: 2, token: 1, attempt: 1 },
      { k: "wait", version: 3, token: 1, round: 0, total: 2 },
      { k: "swept", version: 4, transition: "recheck", to: "waiting" },
      { k: "resume", version: 5, round: 0, conditional: true },
    ]);
    expect(children.map((c) => ledgerOf(c.id))).toMatchObject([0, 1].map((index) => [
      { k: "create", version: 1, parent: { id: job.id, round: 0, index, key: `k${index}` } },
      { k: "claim", version: 2 },
      { k: "commit", version: 3, status: "succeeded", by: "worker" },
    ]));
    const fanIn = w.applied.flatMap(appliedReader()).filter((e) => e.k === "fanin" && e.parent === job.id);
    expect(fanIn).toMatchObject([
      { op: "end", round: 0, shard: 0, sets: { s: [expect.any(Number)], f: [], c: [] } },
      { op: "end", round: 0, shard: 0, sets: { s: [0, 1], f: [], c: [] } },
    ]);
  });

  test("a claim whose reply was lost is one applied claim: the SDK's resend failed its condition and is not counted", async () => {
    const store = w.store();
    const { job } = await store.create(spec());
    const lost = w.dynamo.injectNext("lostReply", (t, body) => target("UpdateItem")(t) && sets(body, "claimId"));
    const c = await claimed(store.claim(job.id, "w-lost", 60_000));
    await lost;
    const claims = ledgerOf(job.id).filter((e) => e.k === "claim");
    expect(claims).toMatchObject([{ token: 1, worker: "w-lost", replyLost: true }]);
    expect(c.lease.token).toBe(1);
  });
});

// ─── the checks, on small hand-made runs ──────────────────────────────────────────────────────

const ZERO: FaultCounts = { lostReply: 0, hang: 0, server: 0, throttle: 0 };
const ID = "KAAAAAAAAAAAAAAAAAAAAAAAAA";

interface Run {
  type: string;
  input?: Record<string, unknown>;
  ledger: LedgerEntry[];
  job: Partial<Job>;
  kills?: Kill[];
}

function verdict(r: Run) {
  const submitted: Submitted[] = [{ id: ID, type: r.type, input: r.input ?? {}, enqueueDropped: false, at: 0 }];
  const facts: ChaosFacts = {
    submitted,
    jobs: new Map([[ID, { id: ID, type: r.type, token: 1, history: [], ...r.job } as Job]]),
    ledger: [{ k: "proc", role: "fargate", worker: "w-a", pid: 10, at: 0 }, { k: "proc", role: "fargate", worker: "w-b", pid: 11, at: 0 }, ...r.ledger],
    kills: r.kills ?? [],
    heartbeatMs: 1000,
    leaseMs: 3000,
    stepMs: 200,
    duplicates: { immediate: 0, delayed: 0 },
    faults: { dynamodb: ZERO, sqs: ZERO },
  };
  return checkChaos(facts);
}

const at = (t: number) => ({ at: t, appliedAt: t + 5, replyLost: false, job: ID });
const create = (): LedgerEntry => ({ k: "create", version: 1, ...at(0) });
const claim = (version: number, token: number, attempt: number, worker: string, t: number, resume: number | null = null): LedgerEntry => ({ k: "claim", version, token, attempt, worker, resume, ...at(t) });
const start = (attempt: number, pid: number, t: number, resume = 0): LedgerEntry => ({ k: "start", job: ID, attempt, resume, pid, at: t });
/** The steps `from` to `to` (exclusive) of one attempt, 10 ms apart from `t0`. */
const steps = (pid: number, attempt: number, from: number, to: number, t0: number): LedgerEntry[] =>
  Array.from({ length: to - from }, (_, i) => ({ k: "step", job: ID, attempt, step: from + i, pid, at: t0 + i * 10 }));
const done = (attempt: number, pid: number, t: number): LedgerEntry => ({ k: "done", job: ID, attempt, pid, at: t });
const commit = (version: number, token: number | null, status: string, t: number, code: string | null = null, by: "worker" | "sweeper" | "api" = "worker"): LedgerEntry => ({ k: "commit", version, token, status, by, code, ...at(t) });
const release = (version: number, token: number, outcome: string, t: number, code: string | null = null): LedgerEntry => ({ k: "release", version, token, outcome, code, resume: null, ...at(t) });
const call = (version: number, action: "cancel" | "retry", t: number): LedgerEntry => ({ k: "call", version, action, ...at(t) });
const flakyDone = { status: "succeeded", result: { attempt: 1 } } as Partial<Job>;

describe("the checks report the runs they exist for", () => {
  test("a clean run passes", () => {
    const v = verdict({ type: "chaos.flaky", ledger: [create(), claim(2, 1, 1, "w-a", 100), start(1, 10, 110), done(1, 10, 120), commit(3, 1, "succeeded", 130)], job: { ...flakyDone, version: 3 } });
    expect(v.violations).toEqual([]);
  });

  test("an attempt spent without its handler starting, its worker alive and writing under the claim", () => {
    const ledger = [create(), claim(2, 1, 1, "w-a", 100), release(3, 1, "retried", 200, "handler_error"), claim(4, 2, 2, "w-b", 300), start(2, 11, 310), commit(5, 2, "succeeded", 400)];
    const v = verdict({ type: "chaos.flaky", ledger, job: { ...flakyDone, version: 5, token: 2 } });
    expect(v.violations).toEqual([expect.stringMatching(/attempt 1 \(token 1, worker w-a, pid 10\) never started its handler, yet its worker lived and wrote release retried/)]);
    // The same claim is no violation when its worker was killed, or when it wrote nothing (lease lost).
    const killed = verdict({ type: "chaos.flaky", ledger, job: { ...flakyDone, version: 5, token: 2 }, kills: [{ pid: 10, signal: "SIGKILL", target: "fargate", at: 150 }] });
    expect(killed.violations).toEqual([]);
    expect(killed.unstarted.killed).toBe(1);
    const leaseLost = [create(), claim(2, 1, 1, "w-a", 100), claim(3, 2, 2, "w-b", 3200), start(2, 11, 3210), commit(4, 2, "succeeded", 3300)];
    const lost = verdict({ type: "chaos.flaky", ledger: leaseLost, job: { ...flakyDone, version: 4, token: 2 } });
    expect(lost.violations).toEqual([]);
    expect(lost.unstarted.leaseLost).toBe(1);
    // And a write the ledger never saw is itself reported.
    const gap = verdict({ type: "chaos.flaky", ledger: leaseLost.filter((e) => !("version" in e && e.version === 3)), job: { ...flakyDone, version: 4, token: 2 } });
    expect(gap.violations).toEqual(expect.arrayContaining([expect.stringMatching(/is at version 4; the ledger never saw DynamoDB apply v3/)]));
  });

  test("a claim handed straight back with its attempt returned spent nothing (the store could not read the job's values)", () => {
    const ledger = [create(), claim(2, 1, 1, "w-a", 100), { k: "release", version: 3, token: 1, outcome: "released", code: null, resume: null, attempts: 0, ...at(150) } as LedgerEntry, claim(4, 2, 1, "w-b", 300), start(1, 11, 310), commit(5, 2, "succeeded", 400)];
    const v = verdict({ type: "chaos.flaky", ledger, job: { ...flakyDone, version: 5, token: 2 } });
    expect(v.violations).toEqual([]);
    expect(v.unstarted.handedBack).toBe(1);
  });

  test("a handler started again after its job's result was committed", () => {
    const v = verdict({ type: "chaos.flaky", ledger: [create(), claim(2, 1, 1, "w-a", 100), start(1, 10, 110), commit(3, 1, "succeeded", 130), start(1, 10, 500)], job: { ...flakyDone, version: 3 } });
    expect(v.violations).toEqual([expect.stringMatching(/attempt 1 started in pid 10 \d+ ms after the job was committed succeeded/)]);
  });

  test("a handler started without a claim DynamoDB applied", () => {
    const v = verdict({ type: "chaos.flaky", ledger: [create(), claim(2, 1, 1, "w-a", 100), start(1, 10, 110), start(1, 11, 120), commit(3, 1, "succeeded", 130)], job: { ...flakyDone, version: 3 } });
    expect(v.violations).toEqual([expect.stringMatching(/attempt 1 started in pid 11 .* without a claim/)]);
  });

  test("two ends in one run are a double completion; an end, a caller's retry and an end are not", () => {
    const doomed = { status: "failed", error: { code: "handler_error", message: "doomed" } } as Partial<Job>;
    const twice = verdict({ type: "chaos.doomed", ledger: [create(), claim(2, 1, 1, "w-a", 100), start(1, 10, 110), commit(3, 1, "failed", 130, "handler_error"), commit(4, null, "failed", 140, "handler_error")], job: { ...doomed, version: 4 } });
    expect(twice.violations).toEqual([expect.stringMatching(/has 2 accepted terminal writes/)]);
    const retried = verdict({
      type: "chaos.doomed",
      ledger: [create(), claim(2, 1, 1, "w-a", 100), start(1, 10, 110), commit(3, 1, "failed", 130, "handler_error"), call(4, "retry", 200), claim(5, 2, 1, "w-b", 300), start(1, 11, 310), commit(6, 2, "failed", 330, "handler_error")],
      job: { ...doomed, version: 6, token: 2 },
    });
    expect(retried.violations).toEqual([]);
    expect(retried.calls.retries).toBe(1);
  });

  test("a resumed attempt that did not start from the checkpoint DynamoDB held", () => {
    const ledger = [
      create(),
      claim(2, 1, 1, "w-a", 100),
      start(1, 10, 110),
      ...steps(10, 1, 0, 2, 120),
      { k: "beat", version: 3, token: 1, resume: 2, ...at(150) } as LedgerEntry,
      claim(4, 2, 2, "w-b", 3500, 2),
      start(2, 11, 3510, 0), // should have resumed at 2
      ...steps(11, 2, 0, 3, 3520),
      commit(5, 2, "succeeded", 3600),
    ];
    const v = verdict({ type: "chaos.long", input: { steps: 3 }, ledger, job: { status: "succeeded", result: { steps: 3, sum: 3 }, version: 5, token: 2 } });
    expect(v.violations).toEqual([expect.stringMatching(/attempt 2 \(token 2\) resumed at step 0, but DynamoDB held checkpoint 2/)]);
  });

  test("a stored checkpoint older than the work done when it was captured, and redone work past the lease", () => {
    const run = (beatResume: number, stepsAfter: number) => [
      create(),
      claim(2, 1, 1, "w-a", 100),
      start(1, 10, 110),
      ...steps(10, 1, 0, 4, 120), // steps 0-3 done by 150
      { k: "beat", version: 3, token: 1, resume: beatResume, ...at(160) } as LedgerEntry,
      ...steps(10, 1, 4, 4 + stepsAfter, 170),
      claim(4, 2, 2, "w-b", 9000, beatResume),
      start(2, 11, 9010, beatResume),
      ...steps(11, 2, beatResume, 30, 9020),
      commit(5, 2, "succeeded", 9900),
    ];
    const ok = { status: "succeeded", result: { steps: 30, sum: 435 }, version: 5, token: 2 } as Partial<Job>;
    expect(verdict({ type: "chaos.long", input: { steps: 30 }, ledger: run(4, 3), job: ok }).violations).toEqual([]);
    // The beat captured at 160 held step 2 although steps 2 and 3 were done by then.
    expect(verdict({ type: "chaos.long", input: { steps: 30 }, ledger: run(2, 3), job: ok }).violations).toEqual([expect.stringMatching(/redid steps 2, 3, done before the checkpoint it resumed from was captured \(v3\)/)]);
    // 20 steps (4 s of work) after the last durable checkpoint: more than the 3 s lease allows.
    expect(verdict({ type: "chaos.long", input: { steps: 30 }, ledger: run(4, 20), job: ok }).violations).toEqual([expect.stringMatching(/had done 20 steps \(4000 ms\) past it, more than its lease allows \(3200 ms\)/)]);
  });

  test("a caller's retry starts the job over: the run before it is not redone work", () => {
    const ledger = [
      create(),
      claim(2, 1, 1, "w-a", 100),
      start(1, 10, 110),
      ...steps(10, 1, 0, 20, 120), // 20 steps, then a caller cancels it
      call(3, "cancel", 400),
      commit(4, 1, "cancelled", 410, "cancelled"),
      call(5, "retry", 5000),
      claim(6, 2, 1, "w-b", 5100),
      start(1, 11, 5110, 0), // from the beginning, as a retry must
      ...steps(11, 1, 0, 30, 5120),
      commit(7, 2, "succeeded", 5500),
    ];
    const v = verdict({ type: "chaos.long", input: { steps: 30 }, ledger, job: { status: "succeeded", result: { steps: 30, sum: 435 }, version: 7, token: 2 } });
    expect(v.violations).toEqual([]);
    expect(v.redo.resumed).toBe(0);
  });

  test("a cancel request that was lost: the job was claimed again", () => {
    const ledger = [create(), claim(2, 1, 1, "w-a", 100), start(1, 10, 110), call(3, "cancel", 120), claim(4, 2, 2, "w-b", 5000), start(2, 11, 5010), commit(5, 2, "succeeded", 5100)];
    const v = verdict({ type: "chaos.flaky", ledger, job: { ...flakyDone, version: 5, token: 2 }, kills: [{ pid: 10, signal: "SIGKILL", target: "fargate", at: 130 }] });
    expect(v.violations).toEqual([expect.stringMatching(/a cancel request DynamoDB applied \(v3\) was lost: the job was claimed again \(v4/)]);
  });

  test("an unstorable result queued for another try instead of failing the job", () => {
    const bad = { status: "failed", error: { code: "invalid_result", message: "a Date" } } as Partial<Job>;
    const ledger = [create(), claim(2, 1, 1, "w-a", 100), start(1, 10, 110), done(1, 10, 111), release(3, 1, "retried", 120, "invalid_result"), claim(4, 2, 2, "w-b", 300), start(2, 11, 310), done(2, 11, 311), commit(5, 2, "failed", 320, "invalid_result")];
    const v = verdict({ type: "chaos.unstorable", input: { kind: "date" }, ledger, job: { ...bad, version: 5, token: 2 } });
    expect(v.violations).toEqual([expect.stringMatching(/attempt 1 was queued again \(retried, invalid_result\) and its handler re-run/)]);
    const once = verdict({ type: "chaos.unstorable", input: { kind: "date" }, ledger: [create(), claim(2, 1, 1, "w-a", 100), start(1, 10, 110), done(1, 10, 111), commit(3, 1, "failed", 120, "invalid_result")], job: { ...bad, version: 3 } });
    expect(once.violations).toEqual([]);
  });

  test("a job that ended cancelled though no caller asked", () => {
    const v = verdict({ type: "chaos.flaky", ledger: [create(), claim(2, 1, 1, "w-a", 100), start(1, 10, 110), commit(3, 1, "cancelled", 130, "cancelled")], job: { status: "cancelled", error: { code: "cancelled", message: "?" }, version: 3 } as Partial<Job> });
    expect(v.violations).toEqual([expect.stringMatching(/ended cancelled .* but no caller asked for a cancel/)]);
  });
});

// ─── the flow checks, on a small hand-made evaluation: 1 region × 1 model × 2 questions ───────

const PID = "KBBBBBBBBBBBBBBBBBBBBBBBBB";
const evalInput: EvaluateInput = { regions: ["r"], models: ["m"], questions: ["a", "b"], stepMs: 1, doomed: [], flaky: [] };
const parentSub: Submitted = { id: PID, type: "chaos.evaluate", input: evalInput as unknown as Record<string, unknown>, enqueueDropped: false, at: 0 };
const kids = flowChildren([parentSub]);
const on = (job: string, t: number) => ({ at: t, appliedAt: t + 5, replyLost: false, job });
const score = (q: string) => executionScore("r", "m", q);

interface FlowRun {
  parent: LedgerEntry[];
  /** Each child's entries (none: never written). */
  children: LedgerEntry[][];
  result?: Record<string, unknown>;
  parentVersion?: number;
  childVersions?: number[];
}

/** A clean evaluation: the parent waits, both children run once, the last one's end resumes the parent, which combines. */
function cleanFlow(): FlowRun {
  const P = (t: number) => on(PID, t);
  return {
    parent: [
      { k: "create", version: 1, ...P(0) },
      { k: "claim", version: 2, token: 1, attempt: 1, worker: "w-a", resume: null, ...P(100) },
      { k: "start", job: PID, attempt: 1, resume: 0, pid: 10, at: 110 },
      { k: "wait", version: 3, token: 1, round: 0, total: 2, ...P(200) },
      { k: "resume", version: 4, round: 0, by: "worker", conditional: true, ...P(600) },
      { k: "claim", version: 5, token: 2, attempt: 1, worker: "w-a", resume: null, ...P(700) },
      { k: "start", job: PID, attempt: 1, resume: 0, pid: 10, at: 710 },
      { k: "commit", version: 6, token: 2, status: "succeeded", by: "worker", code: null, ...P(800) },
    ],
    children: kids.map((k, i) => [
      { k: "create", version: 1, parent: k.parent!, by: "worker", ...on(k.id, 210) },
      { k: "claim", version: 2, token: 1, attempt: 1, worker: "w-b", resume: null, ...on(k.id, 300 + i) },
      { k: "start", job: k.id, attempt: 1, resume: 0, pid: 11, at: 310 + i },
      { k: "commit", version: 3, token: 1, status: "succeeded", by: "worker", code: null, ...on(k.id, 400 + i) },
    ]),
    result: { executions: 2, succeeded: 2, failed: 0, meanScore: (score("a") + score("b")) / 2 },
  };
}

function flowVerdict(r: FlowRun) {
  const jobs = new Map<string, Job | undefined>();
  const versionOf = (entries: LedgerEntry[]) => Math.max(0, ...entries.map((e) => ("version" in e ? e.version : 0)));
  jobs.set(PID, { id: PID, type: "chaos.evaluate", status: "succeeded", token: 2, history: [], version: r.parentVersion ?? versionOf(r.parent), result: r.result } as unknown as Job);
  kids.forEach((k, i) => {
    const entries = r.children[i] ?? [];
    if (!entries.length) return;
    const q = String(k.input.question);
    jobs.set(k.id, { id: k.id, type: k.type, status: "succeeded", token: 1, history: [], version: r.childVersions?.[i] ?? versionOf(entries), parent: { ...k.parent!, of: kids.length }, result: { answer: "?", score: score(q) } } as unknown as Job);
  });
  const facts: ChaosFacts = {
    submitted: [parentSub],
    jobs,
    ledger: [{ k: "proc", role: "lambda", worker: "w-a", pid: 10, at: 0 }, { k: "proc", role: "lambda", worker: "w-b", pid: 11, at: 0 }, ...r.parent, ...r.children.flat()],
    kills: [],
    heartbeatMs: 1000,
    leaseMs: 3000,
    stepMs: 200,
    duplicates: { immediate: 0, delayed: 0 },
    faults: { dynamodb: ZERO, sqs: ZERO },
  };
  return checkChaos(facts);
}

describe("the flow checks report the broken fan-ins they exist for", () => {
  test("a clean evaluation passes, its figures counted", () => {
    const v = flowVerdict(cleanFlow());
    expect(v.violations).toEqual([]);
    expect(v.flows).toMatchObject({ evaluations: 1, executions: 2, written: 2, missing: 0, waits: 1, resumes: 1, resumedBy: { worker: 1 }, badResumes: 0, badResults: 0 });
  });

  test("an execution never written", () => {
    const r = cleanFlow();
    r.children[1] = [];
    r.parent = r.parent.filter((e) => e.k !== "resume" && e.k !== "claim" && e.k !== "start" && e.k !== "commit");
    const v = flowVerdict({ ...r, parentVersion: 3 });
    expect(v.violations).toContainEqual(expect.stringMatching(/1 of its 2 executions were never written \(indexes 1\)/));
    expect(v.flows.missing).toBe(1);
  });

  test("an execution claimed again after its success was committed", () => {
    const r = cleanFlow();
    r.children[0]!.push({ k: "claim", version: 4, token: 2, attempt: 2, worker: "w-b", resume: null, ...on(kids[0]!.id, 900) });
    const v = flowVerdict(r);
    expect(v.violations).toContainEqual(expect.stringMatching(/\(child 0 of K[B]+\) was claimed again \(v4, token 2, worker w-b\) after its success was committed \(v3\)/));
    expect(v.flows.claimsAfterSuccess).toBe(1);
  });

  test("a parent resumed twice in one round", () => {
    const r = cleanFlow();
    const P = (t: number) => on(PID, t);
    r.parent = [
      ...r.parent.slice(0, 5),
      { k: "resume", version: 5, round: 0, by: "sweeper", conditional: false, ...P(650) },
      { k: "claim", version: 6, token: 2, attempt: 1, worker: "w-a", resume: null, ...P(700) },
      { k: "start", job: PID, attempt: 1, resume: 0, pid: 10, at: 710 },
      { k: "commit", version: 7, token: 2, status: "succeeded", by: "worker", code: null, ...P(800) },
    ];
    const v = flowVerdict(r);
    expect(v.violations).toContainEqual(expect.stringMatching(/round 0: 1 waits and 2 resumes applied \(v4 by worker; v5 by sweeper, unconditional\)/));
    expect(v.flows.badResumes).toBe(1);
  });

  test("a parent resumed before its last execution ended", () => {
    const r = cleanFlow();
    r.parent = r.parent.map((e) => (e.k === "resume" ? { ...e, at: 350, appliedAt: 355 } : e));
    const v = flowVerdict(r);
    expect(v.violations).toEqual([expect.stringMatching(/was resumed \(v4, by worker\) while 2 of its executions had not ended \(indexes 0, 1\)/)]);
  });

  test("a parent whose result does not report its executions' real ends", () => {
    const r = cleanFlow();
    const v = flowVerdict({ ...r, result: { executions: 2, succeeded: 1, failed: 0, meanScore: score("a") } });
    expect(v.violations).toEqual([expect.stringMatching(/succeeded with a result not true to its executions: succeeded \+ failed = 1, not 2; succeeded 1, the records say 2; mean score/)]);
    expect(v.flows.badResults).toBe(1);
  });
});

// ─── the limit check, on runs the real runner made ───────────────────────────────────────────

const quiet = { info() {}, warn() {}, error() {} };

/**
 * Three keyed chaos.long jobs run by three runners at once, as three workers would: the claims,
 * heartbeats and ends through the real store behind the proxy (the ledger's store side, as the
 * chaos run reads it), the handlers (the chaos types, as the workers register them) recording
 * their starts, steps and ends into a ledger file of their own, exactly as in a chaos run. A run
 * the store held (its limit full) is run again once the others have ended, as its doorbell would.
 * The check is told the key's limit is 2, whatever the store enforced.
 */
async function keyedRun(key: string, storeLimit: number | undefined) {
  const ledgerPath = join(mkdtempSync(join(tmpdir(), "warden-chaos-limit-")), "ledger.jsonl");
  const before = process.env[LEDGER_ENV];
  process.env[LEDGER_ENV] = ledgerPath;
  try {
    const s = w.services({ WARDEN_LEASE_SECONDS: "5" });
    registerChaosJobs(s.registry);
    if (storeLimit !== undefined) await s.store.controls.setLimit(`key:${key}`, { concurrency: storeLimit }, "test", Date.now());
    const from = w.applied.length;
    const input = { steps: 4, stepMs: 100 };
    const jobs = await Promise.all([0, 1, 2].map(async () => (await s.store.create({ ...spec(), input, concurrencyKey: key })).job));
    const runners = ["w-a", "w-b", "w-c"].map((workerId) => {
      record({ k: "proc", role: "fargate", worker: workerId, pid: process.pid, at: Date.now() });
      return new Runner(s, { workerId, kind: "fargate", log: quiet });
    });
    const outcomes: RunOutcome[][] = jobs.map(() => []);
    await Promise.all(jobs.map(async (j, i) => outcomes[i]!.push(await runners[i]!.run(j.id))));
    for (const [i, j] of jobs.entries()) if (!outcomes[i]![0]!.claimed) outcomes[i]!.push(await runners[i]!.run(j.id));
    const ids = new Set(jobs.map((j) => j.id));
    const stored = w.applied.slice(from).flatMap(appliedReader()).filter((e) => "job" in e && ids.has(e.job));
    const submitted: Submitted[] = jobs.map((j) => ({ id: j.id, type: j.type, input, enqueueDropped: false, at: j.createdAt, concurrencyKey: key }));
    const facts: ChaosFacts = {
      submitted,
      jobs: new Map(await Promise.all(jobs.map(async (j) => [j.id, await s.store.get(j.id)] as const))),
      ledger: [...readLedger(ledgerPath), ...stored],
      kills: [],
      heartbeatMs: Math.floor(5_000 / 3),
      leaseMs: 5_000,
      stepMs: input.stepMs,
      duplicates: { immediate: 0, delayed: 0 },
      faults: { dynamodb: ZERO, sqs: ZERO },
      limits: { key, limit: 2, holders: await s.store.controls.holders(`key:${key}`) },
    };
    return { verdict: checkChaos(facts), outcomes, jobs, stored };
  } finally {
    if (before === undefined) delete process.env[LEDGER_ENV];
    else process.env[LEDGER_ENV] = before;
  }
}

describe("the limit check reports keyed jobs over their limit", () => {
  test("three keyed runs at once under a limit of 2, as a gate that let the third claim through would leave them", async () => {
    const { verdict: v, outcomes } = await keyedRun("guard-unlimited", undefined);
    expect(outcomes.map((o) => o.map((x) => x.claimed))).toEqual([[true], [true], [true]]);
    expect(v.violations).toEqual([
      expect.stringMatching(/^3 keyed jobs \(key:guard-unlimited, limit 2\) ran their handlers at once while their runs held slots, at [\dT:.Z-]+: \w{26}, \w{26}, \w{26}$/),
      expect.stringMatching(/^DynamoDB had 3 keyed jobs \(key:guard-unlimited, limit 2\) running at once/),
    ]);
    expect(v.limits).toMatchObject({ keyed: 3, handlers: 3, maxRunning: 3, maxRunningStore: 3, holds: 0, spentOnHold: 0, attemptsUnstarted: 0, notTerminal: 0 });
    expect(v.rows.find((r) => r.check === "≤ 2 keyed jobs running at once (key:guard-unlimited)")?.ok).toBe(false);
  });

  test("the same jobs with the limit in force: the third is held, spends no attempt, runs when a slot is handed to it, and the check passes", async () => {
    const { verdict: v, outcomes, jobs, stored } = await keyedRun("guard-limited", 2);
    // Exactly one of the three was held at its first claim, and ran at its second.
    const held = outcomes.findIndex((o) => !o[0]!.claimed);
    expect(outcomes.filter((o) => !o[0]!.claimed)).toHaveLength(1);
    expect(outcomes[held]).toMatchObject([{ claimed: false, reason: "held" }, { claimed: true, outcome: "succeeded" }]);
    // The gates' writes, as the ledger reads them: held with its attempts untouched, woken by the hand-off, then claimed as attempt 1.
    expect(stored.filter((e) => "job" in e && e.job === jobs[held]!.id).map((e) => ({ k: e.k, attempts: "attempts" in e ? e.attempts : undefined }))).toEqual([
      { k: "create", attempts: 0 },
      { k: "hold", attempts: 0 },
      { k: "unhold", attempts: 0 },
      { k: "claim", attempts: 1 },
      ...Array(stored.filter((e) => "job" in e && e.job === jobs[held]!.id && e.k === "beat").length).fill({ k: "beat", attempts: 1 }),
      { k: "commit", attempts: 1 },
    ]);
    expect(v.violations).toEqual([]);
    expect(v.limits).toMatchObject({ keyed: 3, handlers: 3, maxRunning: 2, maxRunningStore: 2, holds: 1, heldJobs: 1, unholds: 1, spentOnHold: 0, attemptsUnstarted: 0, notTerminal: 0, holdersLeft: 0 });
    expect(v.rows.filter((r) => r.check.startsWith("≤ 2 keyed") || r.check.includes("keyed")).every((r) => r.ok)).toBe(true);
  });
});
