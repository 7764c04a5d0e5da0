/**
 * An example job type to copy: counts the words of a list of texts, reports progress as it
 * goes, checkpoints every few texts, and when its signal fires (shutdown, deadline, cancel)
 * saves where it is and stops, so the next attempt resumes there.
 */
import { z } from "zod";
import { AbortedError } from "../core/jobs/abort.js";
import { defineJob } from "../core/registry.js";

export const countWords = defineJob<{ texts: string[]; checkpointEvery: number }, { words: number; resumedFrom: number }, { next: number; words: number }>({
  name: "example.countWords",
  input: z
    .object({
      texts: z.array(z.string().max(10_000)).min(1).max(1_000),
      checkpointEvery: z.number().int().min(1).max(1_000).default(5),
    })
    .strict(),
  runsOn: "lambda",
  limits: { softLimitMs: 60_000, maxAttempts: 3 },
  async handler(input, ctx) {
    const start = ctx.resumeFrom?.next ?? 0;
    let words = ctx.resumeFrom?.words ?? 0;
    for (let i = start; i < input.texts.length; i++) {
      if (ctx.signal.aborted) {
        ctx.checkpoint({ next: i, words });
        throw new AbortedError(String(ctx.signal.reason));
      }
      words += input.texts[i]!.split(/\s+/).filter(Boolean).length;
      ctx.progress(i + 1, input.texts.length);
      if ((i + 1) % input.checkpointEvery === 0) ctx.checkpoint({ next: i + 1, words });
      await new Promise((r) => setImmediate(r));
    }
    return { words, resumedFrom: start };
  },
});
