/**
 * Your own job types live in jobs/ (a folder Warden never edits) and every entry point picks
 * them up; core/testing.ts runs a handler against a fake context to test it without AWS.
 */
import { describe, expect, test } from "vitest";
import { JobsApi } from "../core/api/jobs.js";
import { AbortedError } from "../core/jobs/abort.js";
import { defineJob } from "../core/registry.js";
import { Runner } from "../core/runner.js";
import { runHandler } from "../core/testing.js";
import { appRegistry } from "../functions/registry.js";
import { countWords } from "../jobs/example.js";
import { jobs } from "../jobs/index.js";
import { useEmulators } from "./support/emulators.js";
import { testServices } from "./worker-support.js";
import { z } from "zod";

const env = useEmulators("userjobs");
const texts = Array.from({ length: 12 }, (_, i) => `text number ${i} has six words`);

describe("testing a handler with runHandler", () => {
  test("stopped by its signal after two checkpoints, it saves where it is; resumed from there, it finishes with the same count", async () => {
    const stopped = await runHandler(countWords, { texts, checkpointEvery: 3 }, { abortAfterCheckpoints: 2, abortReason: "shutdown" });
    expect(stopped.aborted).toBe("shutdown");
    expect(stopped.error).toBeInstanceOf(AbortedError);
    expect(stopped.lastCheckpoint).toEqual({ next: 6, words: 36 });
    expect(stopped.progress.at(-1)).toEqual({ done: 6, total: 12 });

    const resumed = await runHandler(countWords, { texts, checkpointEvery: 3 }, { resumeFrom: stopped.lastCheckpoint });
    const whole = await runHandler(countWords, { texts, checkpointEvery: 3 });
    expect(resumed.result).toEqual({ words: 72, resumedFrom: 6 });
    expect(whole.result).toEqual({ words: 72, resumedFrom: 0 });
    expect(resumed.progress[0]).toEqual({ done: 7, total: 12 });
  });

  test("bad input is refused as a submission would be, naming the field", async () => {
    await expect(runHandler(countWords, { texts: "not a list" })).rejects.toMatchObject({ name: "ValidationError", details: [{ path: "texts" }] });
  });
});

describe("jobs/ is picked up by every entry point", () => {
  test("the app registry holds the built-in types and every type jobs/index.ts lists", () => {
    const r = appRegistry();
    for (const t of jobs) expect(r.get(t.name)).toBe(t);
    expect(r.get("demo.sleep")).toBeDefined();
  });

  test("a type whose name is taken is refused with the file to fix", () => {
    const clash = defineJob({ name: "demo.sleep", input: z.object({}), runsOn: "lambda", handler: async () => null });
    jobs.push(clash);
    try {
      expect(() => appRegistry()).toThrow(/jobs\/index\.ts: job type "demo.sleep" is already defined/);
    } finally {
      jobs.pop();
    }
  });

  test("submitted through the API and run by a worker, your type succeeds", async () => {
    const s = { ...testServices(env), registry: appRegistry() };
    const { job } = await new JobsApi(s).submit({ id: "alice", admin: false }, { type: "example.countWords", input: { texts: texts.slice(0, 4) } });
    const out = await new Runner(s, { workerId: "w-user", kind: "local", log: { info() {}, warn() {}, error() {} } }).run(job.id);
    expect(out).toMatchObject({ claimed: true, outcome: "succeeded" });
    expect(await s.store.get(job.id)).toMatchObject({ status: "succeeded", result: { words: 24, resumedFrom: 0 } });
  });
});
