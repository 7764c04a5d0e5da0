/**
 * junit.import: a 20,000-case JUnit report generated on the fly, summarised in one go, resumed
 * from a checkpoint, and killed half way in a real worker process and finished elsewhere with the
 * same summary. Also the parser's edge cases and refusals. And demo.sleep's `payload`, which it
 * carries and ignores.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, test } from "vitest";
import { LIMITS, laneOf } from "../core/config.js";
import { PermanentError, ValidationError } from "../core/errors.js";
import type { FailedJob, RunningJob, SucceededJob } from "../core/job.js";
import { AbortedError } from "../core/jobs/abort.js";
import { importReport, type JunitCheckpoint, type JunitInput, type JunitSummary } from "../core/jobs/junit.js";
import { WaitRequest, type JobContext } from "../core/registry.js";
import { Runner } from "../core/runner.js";
import { startFargateWorker, type FargateWorker } from "../functions/fargate.js";
import { useEmulators, waitFor } from "./support/emulators.js";
import { spawnWorker, submit, testServices, type WorkerChild } from "./worker-support.js";

const env = useEmulators("jobs");
const quiet = { info() {}, warn() {}, error() {} };
const dir = mkdtempSync(join(tmpdir(), "warden-junit-"));
const children: WorkerChild[] = [];
const workers: FargateWorker[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill("SIGKILL");
  await Promise.all(workers.splice(0).map((w) => w.stop({ force: true })));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Outcome = "passed" | "failed" | "errored" | "skipped";

/** Writes a report of `n` cases and works out, independently of the job, what its summary must be. */
function generate(n: number, file: string, seed = 7): Omit<JunitSummary, "resumedFrom"> {
  let x = seed;
  const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const byOutcome: Record<Outcome, number> = { passed: 0, failed: 0, errored: 0, skipped: 0 };
  const cases: { name: string; classname: string; time: number; at: number }[] = [];
  const parts: string[] = ['<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="generated">\n'];
  for (let s = 0; s * 1000 < n; s++) {
    parts.push(`  <testsuite name="suite${s}" tests="${Math.min(1000, n - s * 1000)}">\n`);
    for (let i = s * 1000; i < Math.min(n, (s + 1) * 1000); i++) {
      // Few distinct times, so ties are common and their order matters.
      const time = Math.round(rand() * 500) / 100;
      const r = rand();
      const outcome: Outcome = r < 0.8 ? "passed" : r < 0.9 ? "failed" : r < 0.95 ? "errored" : "skipped";
      byOutcome[outcome]++;
      const name = `test_${i} &amp; "quoted"`;
      cases.push({ name: `test_${i} & "quoted"`, classname: `pkg.Class${i % 37}`, time, at: i });
      const body =
        outcome === "passed" ? "" :
        outcome === "failed" ? `<failure message="expected 1 &lt; 2">trace\n</failure>` :
        outcome === "errored" ? `<error type="NullPointerException"/><failure message="also"/>` : "<skipped/>";
      parts.push(
        body
          ? `    <testcase name='${name}' classname="pkg.Class${i % 37}" time="${time}">${body}<system-out><![CDATA[<testcase>]]></system-out></testcase>\n`
          : `    <testcase name='${name}' classname="pkg.Class${i % 37}" time="${time}"/>\n`,
      );
    }
    parts.push("  </testsuite>\n");
  }
  parts.push("</testsuites>\n");
  writeFileSync(file, parts.join(""));
  const slowest = cases
    .sort((a, b) => b.time - a.time || a.at - b.at)
    .slice(0, 10)
    .map(({ name, classname, time }) => ({ name, classname, time }));
  return { tests: n, byOutcome, slowest };
}

/** A context for calling the handler directly: checkpoints kept, signal under the test's control. */
function directCtx(resumeFrom: JunitCheckpoint | undefined, ac = new AbortController()) {
  const saved: JunitCheckpoint[] = [];
  const ctx: JobContext<JunitCheckpoint> = {
    jobId: "direct",
    attempt: 1,
    fence: { jobId: "direct", token: 1 },
    effectKey: (step) => `direct:${step}`,
    progress: () => undefined,
    checkpoint: (c) => void saved.push(structuredClone(c)),
    resumeFrom,
    signal: ac.signal,
    remainingMs: () => 60_000,
    log: quiet,
    spawn: () => undefined,
    wait: () => new WaitRequest("collect"),
    children: async () => undefined,
  };
  return { ctx, saved, ac };
}

const big = join(dir, "big.xml");
const expected = generate(20_000, big);

describe("junit.import", () => {
  test("summarises a 20,000-case report in one go, matching the generator's own count", async () => {
    const s = testServices(env);
    const runner = new Runner(s, { workerId: "w-junit", kind: "fargate", log: quiet });
    const job = await submit(s, "junit.import", { source: { path: big } }, { ring: false });
    expect(await runner.run(job.id)).toMatchObject({ claimed: true, outcome: "succeeded" });
    const j = (await s.store.mustGet(job.id)) as SucceededJob;
    expect(j.result).toEqual({ ...expected, resumedFrom: 0 });
    expect(expected.byOutcome.failed).toBeGreaterThan(1000);
    expect(expected.byOutcome.errored).toBeGreaterThan(500);
  });

  test("stopped at an offset and resumed from its checkpoint, it counts no case twice and gives the same summary", async () => {
    const input: JunitInput = { source: { path: big }, slowest: 10, checkpointEvery: 1000 };
    const first = directCtx(undefined);
    let calls = 0;
    const stopAfter = (c: JunitCheckpoint) => {
      first.saved.push(structuredClone(c));
      if (++calls === 7) first.ac.abort("shutdown");
    };
    first.ctx.checkpoint = stopAfter;
    await expect(importReport(input, first.ctx)).rejects.toBeInstanceOf(AbortedError);
    const last = first.saved.at(-1)!;
    expect(last.offset).toBeGreaterThanOrEqual(7_000);
    expect(last.offset).toBeLessThan(20_000);
    const second = directCtx(last);
    const summary = await importReport(input, second.ctx);
    expect(summary).toEqual({ ...expected, resumedFrom: last.offset });
  });

  test("killed half way in a worker process, it resumes from its offset elsewhere and produces the same summary", async () => {
    const s = testServices(env);
    const a = await spawnWorker(env, { WARDEN_LEASE_SECONDS: "1", WARDEN_WORKER_QUEUE: "large", WARDEN_WORKER_CONCURRENCY: "1" });
    children.push(a);
    const job = await submit(s, "junit.import", { source: { path: big }, checkpointEvery: 1000, pacing: { everyCases: 500, ms: 60 } }, { queue: "large" });
    await waitFor(async () => ((await s.store.mustGet(job.id)).checkpoint as JunitCheckpoint | undefined)?.offset! >= 8_000, 30_000, "half way");
    a.child.kill("SIGKILL");
    await a.exited;
    const orphan = (await s.store.mustGet(job.id)) as RunningJob;
    expect(orphan.status).toBe("running");
    const offset = (orphan.checkpoint as JunitCheckpoint).offset;
    expect(offset).toBeLessThan(20_000);
    await waitFor(() => Date.now() > orphan.leaseExpiresAt + 50, 5_000, "the lease to expire");
    await s.store.reclaim(orphan);
    await s.queue.send(laneOf({ queue: "large" }), [job.id]);
    workers.push(startFargateWorker(s, { workerId: "junit-finisher", queue: "large", pollWaitSeconds: 1, log: quiet }));
    const done = (await waitFor(async () => {
      const j = await s.store.mustGet(job.id);
      return j.status === "succeeded" ? j : undefined;
    }, 30_000, "the import to finish")) as SucceededJob;
    expect(done.attempts).toBe(2);
    expect(done.result).toEqual({ ...expected, resumedFrom: offset });
  }, 60_000);

  test("inline reports, and an error outranks a failure, which outranks a skip", async () => {
    const xml = `<testsuite name="s">
      <testcase name="a" time="0.5"/>
      <testcase name="b" classname="C" time="2"><skipped/><failure/></testcase>
      <testcase name="c" time="x"><failure/><error/></testcase>
      <testcase name="d"><skipped/></testcase>
    </testsuite>`;
    const { ctx } = directCtx(undefined);
    const summary = await importReport({ source: { inline: xml }, slowest: 2, checkpointEvery: 1000 }, ctx);
    expect(summary).toEqual({
      tests: 4,
      resumedFrom: 0,
      byOutcome: { passed: 1, failed: 1, errored: 1, skipped: 1 },
      slowest: [
        { name: "b", classname: "C", time: 2 },
        { name: "a", classname: "", time: 0.5 },
      ],
    });
  });

  test("refuses, as permanent failures with readable messages: bad XML, a non-JUnit root, a path outside the allowed root", async () => {
    const { ctx } = directCtx(undefined);
    const run = (source: JunitInput["source"]) => importReport({ source, slowest: 10, checkpointEvery: 1000 }, ctx);
    await expect(run({ inline: "<testsuite><testcase></testsuite>" })).rejects.toThrow(PermanentError);
    await expect(run({ inline: "<testsuite><testcase></testsuite>" })).rejects.toThrow(/not well-formed XML/);
    await expect(run({ inline: "<html><body/></html>" })).rejects.toThrow(/not a JUnit report/);
    await expect(run({ path: "/etc/hostname" })).rejects.toThrow(/must be a file under/);
    await expect(run({ path: join(dir, "missing.xml") })).rejects.toThrow(/cannot read the report/);

    const s = testServices(env);
    const runner = new Runner(s, { workerId: "w-junit-bad", kind: "lambda", log: quiet });
    const job = await submit(s, "junit.import", { source: { inline: "<nope" } }, { ring: false });
    await runner.run(job.id);
    const j = (await s.store.mustGet(job.id)) as FailedJob;
    expect(j.status).toBe("failed");
    expect(j.attempts).toBe(1);
    expect(j.error.message).toMatch(/not well-formed XML/);
  });
});

describe("demo.sleep payload", () => {
  test("a demo.sleep with a payload runs and succeeds with the same result as one without: the payload is ignored", async () => {
    const s = testServices(env);
    const runner = new Runner(s, { workerId: "w-demo-payload", kind: "lambda", log: quiet });
    const payload = "p".repeat(150 * 1024);
    expect(s.registry.parseInput("demo.sleep", { items: 3, msPerItem: 1, payload }).input).toMatchObject({ payload });
    const plain = await submit(s, "demo.sleep", { items: 3, msPerItem: 1 }, { ring: false });
    const padded = await submit(s, "demo.sleep", { items: 3, msPerItem: 1, payload }, { ring: false });
    for (const job of [plain, padded]) expect(await runner.run(job.id)).toMatchObject({ claimed: true, outcome: "succeeded" });
    const a = (await s.store.mustGet(plain.id)) as SucceededJob;
    const b = (await s.store.mustGet(padded.id)) as SucceededJob;
    expect(b.status).toBe("succeeded");
    expect(b.result).toEqual({ items: 3, resumedFrom: 0 });
    expect(b.result).toEqual(a.result);
  });

  test("a payload that is not a string, or longer than the input limit, is refused with a message naming the field", () => {
    const s = testServices(env);
    const refusal = (payload: unknown) => {
      try {
        s.registry.parseInput("demo.sleep", { items: 1, payload });
      } catch (e) {
        return e;
      }
      throw new Error("the input was accepted");
    };
    for (const bad of [42, { big: true }, ["x"], null]) {
      const e = refusal(bad) as ValidationError;
      expect(e).toBeInstanceOf(ValidationError);
      expect(e.message).toMatch(/input does not match job type "demo.sleep"/);
      expect(e.details).toEqual([{ path: "payload", message: expect.stringMatching(/payload must be a string/) }]);
    }
    const long = refusal("x".repeat(LIMITS.maxInputBytes + 1)) as ValidationError;
    expect(long.details).toEqual([{ path: "payload", message: expect.stringMatching(/at most \d+ characters/) }]);
  });
});
