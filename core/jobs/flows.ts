/**
 * Demo job types for flows (docs/jobs.md "Flows"), modelled on the incidents the product answers:
 * an evaluation fanned out over regions × models × questions and combined (demo.evaluate spawns
 * demo.execution children from its handler); a dataset split into chunks and combined (submit
 * demo.combine with `children` of demo.chunk); and a download chained into a transcription (submit
 * demo.transcribe with `after: [{type: "demo.download", input}]`).
 */
import { z } from "zod";
import { defineJob } from "../registry.js";

const pause = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

/** One execution of an evaluation: a model answers a question in a region. */
export const demoExecution = defineJob<{ region: string; model: string; question: string; ms: number; failIf?: string | undefined }, { answer: string; score: number }>({
  name: "demo.execution",
  input: z.object({ region: z.string().max(64), model: z.string().max(64), question: z.string().max(200), ms: z.number().int().min(0).max(60_000).default(0), failIf: z.string().max(64).optional() }).strict(),
  runsOn: "lambda",
  limits: { maxAttempts: 3, backoffBaseMs: 100, backoffMaxMs: 1_000 },
  handler: async (input, ctx) => {
    await pause(input.ms, ctx.signal);
    if (input.failIf !== undefined && input.failIf === input.model) throw new Error(`model ${input.model} refused the question`);
    const score = [...`${input.region}/${input.model}/${input.question}`].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) % 101, 7);
    return { answer: `${input.model} in ${input.region}: ${input.question}`, score };
  },
});

/**
 * An evaluation: spawns one execution per region × model × question, waits for them, then
 * combines their scores. Its first run spawns; the run after the children end combines.
 */
export const demoEvaluate = defineJob<
  { regions: string[]; models: string[]; questions: string[]; ms: number; policy: "collect" | "failFast"; failIf?: string | undefined },
  { executions: number; succeeded: number; failed: number; meanScore: number | null }
>({
  name: "demo.evaluate",
  input: z
    .object({
      regions: z.array(z.string().max(64)).min(1).max(20),
      models: z.array(z.string().max(64)).min(1).max(20),
      questions: z.array(z.string().max(200)).min(1).max(100),
      ms: z.number().int().min(0).max(60_000).default(0),
      policy: z.enum(["collect", "failFast"]).default("collect"),
      failIf: z.string().max(64).optional(),
    })
    .strict(),
  runsOn: "lambda",
  handler: async (input, ctx) => {
    const done = await ctx.children();
    if (!done) {
      for (const region of input.regions)
        for (const model of input.models)
          ctx.spawn(input.questions.map((question) => ({ type: "demo.execution", key: `${region}/${model}/${question}`, input: { region, model, question, ms: input.ms, ...(input.failIf ? { failIf: input.failIf } : {}) } })));
      return ctx.wait({ policy: input.policy });
    }
    let scores: number[] = [];
    for (let page = done; ; ) {
      scores = scores.concat(page.children.flatMap((c) => (c.status === "succeeded" ? [(c.result as { score: number }).score] : [])));
      if (page.next === null) break;
      page = (await ctx.children({ from: page.next }))!;
    }
    return { executions: done.counts.total, succeeded: done.counts.succeeded, failed: done.counts.failed, meanScore: scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : null };
  },
});

/** One chunk of a dataset: sums its numbers. */
export const demoChunk = defineJob<{ from: number; to: number }, { sum: number; count: number }>({
  name: "demo.chunk",
  input: z.object({ from: z.number().int(), to: z.number().int() }).strict(),
  runsOn: "lambda",
  handler: async ({ from, to }) => {
    let sum = 0;
    for (let i = from; i < to; i++) sum += i;
    return { sum, count: Math.max(0, to - from) };
  },
});

/** Combines the chunks it was submitted with (`children`): the total of their sums. */
export const demoCombine = defineJob<Record<string, never>, { sum: number; count: number; chunks: number }>({
  name: "demo.combine",
  input: z.object({}).strict(),
  runsOn: "lambda",
  handler: async (_input, ctx) => {
    const done = await ctx.children();
    if (!done) throw new Error("demo.combine runs after its children: submit it with children");
    let sum = 0;
    let count = 0;
    for (let page = done; ; ) {
      for (const c of page.children) if (c.status === "succeeded") ({ sum, count } = { sum: sum + (c.result as { sum: number }).sum, count: count + (c.result as { count: number }).count });
      if (page.next === null) break;
      page = (await ctx.children({ from: page.next }))!;
    }
    return { sum, count, chunks: done.counts.succeeded };
  },
});

/** A chain's first step: "downloads" a file. */
export const demoDownload = defineJob<{ url: string; failTimes: number }, { file: string; bytes: number }>({
  name: "demo.download",
  input: z.object({ url: z.string().max(500), failTimes: z.number().int().min(0).max(10).default(0) }).strict(),
  runsOn: "lambda",
  limits: { backoffBaseMs: 100, backoffMaxMs: 500 },
  handler: async ({ url, failTimes }, ctx) => {
    if (ctx.attempt <= failTimes) throw new Error(`download of ${url} failed (attempt ${ctx.attempt})`);
    return { file: `/tmp/${url.replace(/[^a-z0-9]+/gi, "_")}`, bytes: url.length * 1000 };
  },
});

/** A chain's next step: "transcribes" the file the step before it downloaded (its result is this input). */
export const demoTranscribe = defineJob<{ file: string; bytes: number }, { transcript: string; words: number }>({
  name: "demo.transcribe",
  input: z.object({ file: z.string(), bytes: z.number() }).passthrough(),
  runsOn: "lambda",
  handler: async ({ file, bytes }) => ({ transcript: `transcript of ${file}`, words: Math.round(bytes / 6) }),
});

export const FLOW_DEMO_TYPES = [demoExecution, demoEvaluate, demoChunk, demoCombine, demoDownload, demoTranscribe] as const;
