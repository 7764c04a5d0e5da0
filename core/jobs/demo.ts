/**
 * Demo job types: small, predictable behaviours (sleep, fail, fail for good, eat memory, ignore
 * the signal) that the tests, the dashboard and the chaos runs drive the whole system with.
 */
import { z } from "zod";
import { LAMBDA_WORKER, LIMITS, MEMORY } from "../config.js";
import { PermanentError } from "../errors.js";
import { defineJob } from "../registry.js";
import { AbortedError, checkAborted, pause } from "./abort.js";

/**
 * Reports progress per item, checkpoints every few items, and resumes from its checkpoint.
 * `payload`, a string it ignores, only makes the input larger: what a payload costs can be
 * measured through the API (the whole input stays within LIMITS.maxInputBytes).
 */
export const demoSleep = defineJob<
  { items: number; msPerItem: number; checkpointEvery: number; payload?: string | undefined },
  { items: number; resumedFrom: number },
  { done: number }
>({
  name: "demo.sleep",
  input: z
    .object({
      items: z.number().int().min(0).max(100_000).default(10),
      msPerItem: z.number().int().min(0).max(60_000).default(1_000),
      checkpointEvery: z.number().int().min(1).max(100_000).default(5),
      payload: z
        .string({ error: "payload must be a string (demo.sleep ignores it; it only makes the input larger)" })
        .max(LIMITS.maxInputBytes, { error: `payload must be at most ${LIMITS.maxInputBytes} characters (the input limit)` })
        .optional(),
    })
    .strict(),
  runsOn: "lambda",
  // A long sleep that keeps hitting the Lambda deadline without progress may finish on Fargate.
  canMoveToLarge: true,
  async handler(input, ctx) {
    const resumedFrom = ctx.resumeFrom?.done ?? 0;
    for (let done = resumedFrom; done < input.items; done++) {
      const full = await pause(input.msPerItem, ctx.signal);
      if (!full) {
        // Hand back exactly where it stopped: the unfinished item is redone, nothing before it.
        ctx.checkpoint({ done });
        throw new AbortedError(ctx.signal.reason);
      }
      ctx.progress(done + 1, input.items, `item ${done + 1} of ${input.items}`);
      if ((done + 1) % input.checkpointEvery === 0) ctx.checkpoint({ done: done + 1 });
    }
    return { items: input.items, resumedFrom };
  },
});

/** Fails its first `times` attempts with an ordinary (retryable) error, then succeeds. */
export const demoFail = defineJob<{ times: number }, { attempt: number }>({
  name: "demo.fail",
  input: z.object({ times: z.number().int().min(0).max(20).default(1) }).strict(),
  runsOn: "lambda",
  // Short enough to watch the retries happen, long enough to see the backoff between them.
  limits: { backoffBaseMs: 1_000, backoffMaxMs: 10_000 },
  async handler(input, ctx) {
    // A line per attempt, so `warden logs ID` and the dashboard show a handler's own lines.
    ctx.log.info("demo.fail attempt starting", { attempt: ctx.attempt, failsUntil: input.times });
    if (ctx.attempt <= input.times) {
      throw new Error(`demo.fail: attempt ${ctx.attempt} fails on purpose (the first ${input.times} do)`);
    }
    return { attempt: ctx.attempt };
  },
});

/** Fails at once with an error retrying cannot fix. */
export const demoPermanent = defineJob<{ message?: string | undefined }, never>({
  name: "demo.permanent",
  input: z.object({ message: z.string().max(200).optional() }).strict(),
  runsOn: "lambda",
  async handler(input) {
    throw new PermanentError(input.message ?? "demo.permanent always fails: the input can never succeed, so it is not retried");
  },
});

/** Above glibc's largest mmap threshold (32 MB), so freed chunks go straight back to the OS. */
const CHUNK_MB = 64;

/**
 * Allocates `mb` megabytes (filled, so the pages are really committed), holds them for `holdMs`,
 * then lets go. It allocates a chunk at a time and yields between chunks, so the memory guard
 * gets to sample while it grows, as it would with a real job reading a large input.
 */
export const demoMemory = defineJob<{ mb: number; holdMs: number }, { mb: number }>({
  name: "demo.memory",
  input: z
    .object({
      mb: z.number().int().min(1).max(16_384),
      holdMs: z.number().int().min(0).max(600_000).default(1_000),
    })
    .strict(),
  runsOn: "auto",
  estimateMb: (input) => input.mb,
  lambdaMaxMb: Math.floor((LAMBDA_WORKER.memoryMb * MEMORY.warnPercent) / 100),
  async handler(input, ctx) {
    let held: Buffer[] = [];
    try {
      for (let mb = 0; mb < input.mb; mb += CHUNK_MB) {
        checkAborted(ctx.signal);
        held.push(Buffer.alloc(Math.min(CHUNK_MB, input.mb - mb) * 1024 * 1024, 1));
        ctx.progress(Math.min(input.mb, mb + CHUNK_MB), input.mb, "MB allocated");
        await pause(2);
      }
      await pause(input.holdMs, ctx.signal);
      checkAborted(ctx.signal);
      return { mb: held.reduce((n, b) => n + b.length, 0) / (1024 * 1024) };
    } finally {
      held = [];
    }
  },
});

/** Ignores its signal: only the runner's hard limit (abort grace) gets rid of it. */
export const demoHang = defineJob<{ ms: number }, { hungMs: number }>({
  name: "demo.hang",
  input: z.object({ ms: z.number().int().min(0).max(7 * 24 * 3600_000).default(24 * 3600_000) }).strict(),
  runsOn: "lambda",
  async handler(input) {
    // Unref'd, so a hung handler never keeps a finished process alive.
    await new Promise<void>((resolve) => setTimeout(resolve, input.ms).unref());
    return { hungMs: input.ms };
  },
});
