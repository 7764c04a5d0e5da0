/**
 * demo.effects: fenced effects to a table of its own (docs/effects.md, "Try it").
 *
 * Each step writes one row to the effects table (core/config.ts EFFECTS_TABLE), keyed by the
 * step's effect key and fenced with the attempt's token, then checkpoints. A re-run after a crash
 * resumes from the checkpoint and rewrites the rows of the steps after it; an attempt frozen past
 * its lease that wakes after a later attempt wrote its step is refused by the fence and stops
 * (FencedOutError). The result reads the rows back, so a job's own result shows which attempt
 * wrote each step.
 */
import { PutCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { z } from "zod";
import { batchGetAll, dynamoClient } from "../aws.js";
import { EFFECTS_TABLE } from "../config.js";
import { PermanentError } from "../errors.js";
import { FencedOutError, fencedPut, FENCE_ATTRIBUTE, isFencedOut } from "../fence.js";
import { defineJob, type JobType } from "../registry.js";
import { loadEndpoints } from "../runtime.js";
import { AbortedError, pause } from "./abort.js";

/** Where the rows go: the table and a client that reaches it. */
export interface EffectsTarget {
  table: string;
  doc: DynamoDBDocumentClient;
}

export interface EffectsInput {
  steps: number;
  msPerStep: number;
}

/** A step's row as the table holds it. */
export interface EffectRow {
  [EFFECTS_TABLE.partitionKey]: string;
  jobId: string;
  step: number;
  attempt: number;
  writtenAt: string;
  [EFFECTS_TABLE.ttlAttribute]: number;
  [FENCE_ATTRIBUTE]: number;
}

export interface EffectsResult {
  steps: number;
  /** Every step's row as the table holds it after the last step: the attempt and token that wrote it. */
  rows: { step: number; attempt: number; token: number }[];
}

const effectsInput = z
  .object({
    steps: z.number().int().min(1).max(100).default(5),
    msPerStep: z.number().int().min(0).max(60_000).default(1_000),
  })
  .strict();

/** The demo type, writing to `target()`'s table (read when a run starts, so a process that never runs it needs no table). */
export function effectsDemo(target: () => EffectsTarget): JobType<EffectsInput, EffectsResult, { next: number }> {
  return defineJob<EffectsInput, EffectsResult, { next: number }>({
    name: "demo.effects",
    input: effectsInput,
    runsOn: "lambda",
    async handler(input, ctx) {
      const { table, doc } = target();
      for (let step = ctx.resumeFrom?.next ?? 0; step < input.steps; step++) {
        if (!(await pause(input.msPerStep, ctx.signal))) throw new AbortedError(ctx.signal.reason);
        const row = {
          [EFFECTS_TABLE.partitionKey]: ctx.effectKey(`step/${step}`),
          jobId: ctx.jobId,
          step,
          attempt: ctx.attempt,
          writtenAt: new Date().toISOString(),
          [EFFECTS_TABLE.ttlAttribute]: Math.floor(Date.now() / 1000) + EFFECTS_TABLE.retentionSeconds,
        };
        try {
          await doc.send(new PutCommand({ TableName: table, ...fencedPut(ctx.fence, row) }));
        } catch (e) {
          if (!isFencedOut(e)) throw e;
          // A later attempt has written this step: the job is no longer this attempt's.
          ctx.log.warn("demo.effects: a later attempt wrote this step first; the fence refused this attempt's write", { step, token: ctx.fence.token });
          throw new FencedOutError(ctx.fence, e);
        }
        ctx.progress(step + 1, input.steps, `step ${step + 1} of ${input.steps} written`);
        ctx.checkpoint({ next: step + 1 });
      }
      const keys = Array.from({ length: input.steps }, (_, step) => ({ [EFFECTS_TABLE.partitionKey]: ctx.effectKey(`step/${step}`) }));
      const rows = (await batchGetAll(doc, table, keys, true)) as unknown as EffectRow[];
      // Every step was written (by this attempt or, before its checkpoint, an earlier one): a row missing is a defect, not a result.
      if (rows.length !== input.steps) throw new Error(`demo.effects: read back ${rows.length} of ${input.steps} step rows from ${table}`);
      return {
        steps: input.steps,
        rows: rows.map((r) => ({ step: r.step, attempt: r.attempt, token: r[FENCE_ATTRIBUTE] })).sort((a, b) => a.step - b.step),
      };
    },
  });
}

/**
 * demo.effects as a stage runs it: to the table `WARDEN_EFFECTS_TABLE` names in `env`, through the
 * endpoints `env` names (none on AWS), the client made at the first run. `env` is a worker
 * process's own environment, or the one the local system gives its in-process Lambda stand-in.
 */
export function stageEffectsDemo(env: Record<string, string | undefined>): JobType<EffectsInput, EffectsResult, { next: number }> {
  let target: EffectsTarget | undefined;
  return effectsDemo(() => {
    const table = env[EFFECTS_TABLE.env];
    if (!table) throw new PermanentError(`${EFFECTS_TABLE.env} is not set: demo.effects writes to the stage's effects table (stacks/Storage.ts and npm start make it)`);
    target ??= { table, doc: dynamoClient(loadEndpoints(env)) };
    return target;
  });
}
