/**
 * junit.import: streams a JUnit XML report (tens of thousands of test cases; the import a 120 s web-worker timeout used to kill
 * that outgrew its worker) through a streaming parser, so memory stays flat whatever the size,
 * and checkpoints by test-case offset so a killed import resumes where it stopped.
 *
 * Sources: a file under WARDEN_JUNIT_ROOT (default: the OS temp directory) or a small inline
 * string. A file outside that root is refused, so a job's input cannot read arbitrary files on
 * a worker. An S3 reference is future work (docs/jobs.md).
 */
import { createReadStream, realpathSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { sep } from "node:path";
import { SaxesParser } from "saxes";
import { z } from "zod";
import { LAMBDA_WORKER, MEMORY } from "../config.js";
import { PermanentError, errorMessage } from "../errors.js";
import { defineJob, type JobContext } from "../registry.js";
import { AbortedError, pause } from "./abort.js";

const Outcomes = ["passed", "failed", "errored", "skipped"] as const;
type CaseOutcome = (typeof Outcomes)[number];

export interface SlowCase {
  name: string;
  classname: string;
  time: number;
}

export interface JunitSummary {
  tests: number;
  /** The test-case offset this attempt resumed from (0 for a run in one go). */
  resumedFrom: number;
  byOutcome: Record<CaseOutcome, number>;
  slowest: SlowCase[];
}

/** Where an import stands: the cases counted so far, and the offset (in cases) they cover. */
export interface JunitCheckpoint {
  offset: number;
  byOutcome: Record<CaseOutcome, number>;
  /** Kept with each case's offset so ties sort the same way in a resumed run as in one go. */
  slowest: (SlowCase & { at: number })[];
}

const input = z
  .object({
    source: z.union([
      z.object({ path: z.string().min(1).max(1024) }).strict(),
      z.object({ inline: z.string().max(150 * 1024) }).strict(),
    ]),
    slowest: z.number().int().min(0).max(50).default(10),
    checkpointEvery: z.number().int().min(1).max(1_000_000).default(1_000),
    /** Simulated per-batch storage cost (a real import writes the cases somewhere); demos and tests. */
    pacing: z
      .object({ everyCases: z.number().int().min(1), ms: z.number().int().min(0).max(10_000) })
      .strict()
      .optional(),
  })
  .strict();
export type JunitInput = z.infer<typeof input>;

const NAME_CHARS = 200;
const CHUNK_CHARS = 64 * 1024;

export const junitImport = defineJob<JunitInput, JunitSummary, JunitCheckpoint>({
  name: "junit.import",
  input,
  runsOn: "auto",
  // Parsing streams, so memory is flat; the estimate only keeps very large files off Lambda,
  // where they would spend invocation after invocation hitting the deadline.
  estimateMb: (i) => 64 + sourceBytes(i) / (1024 * 1024),
  lambdaMaxMb: Math.floor((LAMBDA_WORKER.memoryMb * MEMORY.warnPercent) / 100),
  handler: (i, ctx) => importReport(i, ctx),
});

function sourceBytes(i: JunitInput): number {
  if ("inline" in i.source) return Buffer.byteLength(i.source.inline);
  try {
    return statSync(i.source.path).size;
  } catch {
    return 0;
  }
}

/** The report's file, resolved, refused unless it lies under the allowed root. */
export function allowedPath(path: string, root = process.env.WARDEN_JUNIT_ROOT || tmpdir()): string {
  let real: string;
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(path);
  } catch (e) {
    throw new PermanentError(`cannot read the report at ${path}: ${errorMessage(e)}`);
  }
  if (!real.startsWith(realRoot + sep)) {
    throw new PermanentError(`the report must be a file under ${realRoot} (WARDEN_JUNIT_ROOT); ${path} is not`);
  }
  return real;
}

async function* chunks(source: JunitInput["source"]): AsyncGenerator<string> {
  if ("inline" in source) {
    for (let i = 0; i < source.inline.length; i += CHUNK_CHARS) yield source.inline.slice(i, i + CHUNK_CHARS);
    return;
  }
  const stream = createReadStream(allowedPath(source.path), { encoding: "utf8", highWaterMark: CHUNK_CHARS });
  try {
    for await (const chunk of stream) yield chunk as string;
  } catch (e) {
    throw new PermanentError(`cannot read the report at ${source.path}: ${errorMessage(e)}`);
  } finally {
    stream.destroy();
  }
}

interface ParsedCase extends SlowCase {
  outcome: CaseOutcome;
}

/** Wires a saxes parser that appends each completed test case to `out`. */
function caseParser(out: ParsedCase[]): SaxesParser {
  const parser = new SaxesParser();
  let root: string | undefined;
  let current: ParsedCase | undefined;
  parser.on("opentag", (tag) => {
    if (root === undefined) {
      root = tag.name;
      if (root !== "testsuites" && root !== "testsuite") {
        throw new PermanentError(`not a JUnit report: the root element is <${root}>, not <testsuites> or <testsuite>`);
      }
    }
    const a = tag.attributes as Record<string, string>;
    if (tag.name === "testcase") {
      const time = Number(a.time ?? 0);
      current = {
        name: String(a.name ?? "").slice(0, NAME_CHARS),
        classname: String(a.classname ?? "").slice(0, NAME_CHARS),
        time: Number.isFinite(time) && time >= 0 ? time : 0,
        outcome: "passed",
      };
    } else if (current) {
      // An error outranks a failure, which outranks a skip, whatever order they come in.
      if (tag.name === "error") current.outcome = "errored";
      else if (tag.name === "failure" && current.outcome !== "errored") current.outcome = "failed";
      else if (tag.name === "skipped" && current.outcome === "passed") current.outcome = "skipped";
    }
  });
  parser.on("closetag", (tag) => {
    if (tag.name === "testcase" && current) {
      out.push(current);
      current = undefined;
    }
  });
  parser.on("error", (e) => {
    throw new PermanentError(`the report is not well-formed XML: ${e.message}`);
  });
  return parser;
}

/** Adds a case to the top-N, keeping ties in document order so any run sorts them alike. */
function addSlow(top: JunitCheckpoint["slowest"], c: SlowCase & { at: number }, n: number): void {
  if (n === 0) return;
  const last = top[top.length - 1];
  if (top.length >= n && last && c.time <= last.time) return;
  top.push(c);
  top.sort((a, b) => b.time - a.time || a.at - b.at);
  if (top.length > n) top.length = n;
}

export async function importReport(i: JunitInput, ctx: JobContext<JunitCheckpoint>): Promise<JunitSummary> {
  const resume = ctx.resumeFrom;
  const state: JunitCheckpoint = {
    offset: 0,
    byOutcome: { ...(resume?.byOutcome ?? { passed: 0, failed: 0, errored: 0, skipped: 0 }) },
    slowest: [...(resume?.slowest ?? [])],
  };
  const skip = resume?.offset ?? 0;
  const total = "inline" in i.source ? i.source.inline.length : sourceBytes(i);
  const completed: ParsedCase[] = [];
  const parser = caseParser(completed);
  let read = 0;
  const stopHere = (): never => {
    ctx.checkpoint(snapshot(state, skip));
    throw new AbortedError(ctx.signal.reason);
  };
  for await (const chunk of chunks(i.source)) {
    parser.write(chunk);
    read += chunk.length;
    // Cases before the checkpoint are parsed again (parsing is cheap) but never counted again.
    for (const c of completed.splice(0)) {
      const at = state.offset++;
      if (at < skip) continue;
      state.byOutcome[c.outcome]++;
      addSlow(state.slowest, { name: c.name, classname: c.classname, time: c.time, at }, i.slowest);
      if (state.offset % i.checkpointEvery === 0) ctx.checkpoint(snapshot(state, skip));
      if (i.pacing && state.offset % i.pacing.everyCases === 0 && !(await pause(i.pacing.ms, ctx.signal))) stopHere();
      if (ctx.signal.aborted) stopHere();
    }
    ctx.progress(Math.min(read, total), total, `${state.offset} test cases read`);
  }
  parser.close();
  return {
    tests: Outcomes.reduce((n, o) => n + state.byOutcome[o], 0),
    resumedFrom: skip,
    byOutcome: state.byOutcome,
    slowest: state.slowest.map(({ name, classname, time }) => ({ name, classname, time })),
  };
}

/** Never behind the offset resumed from: the counts already cover every case before it. */
const snapshot = (s: JunitCheckpoint, skip: number): JunitCheckpoint => ({
  offset: Math.max(s.offset, skip),
  byOutcome: { ...s.byOutcome }, slowest: s.slowest.map((c) => ({ ...c })) });
