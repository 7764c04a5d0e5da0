/**
 * demo.effects, the built-in type that writes fenced effects to a table of its own
 * (docs/effects.md, "Try it"): its handler against a real table on dynalite, and the whole local
 * system (`npm start`), where a worker frozen mid-job (SIGSTOP) loses the job to another worker
 * and, continued, changes none of the rows its takeover wrote.
 */
import { ScanCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { dynamoClient } from "../core/aws.js";
import { EFFECTS_TABLE, physicalName } from "../core/config.js";
import { ValidationError } from "../core/errors.js";
import { FencedOutError, FENCE_ATTRIBUTE } from "../core/fence.js";
import { effectsDemo, type EffectsResult } from "../core/jobs/effects.js";
import { runHandler, TEST_JOB_ID } from "../core/testing.js";
import { ensureAppTable } from "../local/emulators.js";
import { EFFECTS_TTL, expireItems } from "../local/ttl.js";
import { useEmulators, waitFor, type TestEnv } from "./support/emulators.js";
import { useLaunchedWithFreezes } from "./support/frozen.js";

describe("demo.effects' handler on a real table", () => {
  const env: TestEnv = useEmulators("demo-effects", { dynamodb: "dynalite" });
  const table = "demo-effects-rows";
  beforeAll(async () => {
    await ensureAppTable(env.emu.dynamoEndpoint, table);
  });
  const demo = effectsDemo(() => ({ table, doc: env.doc }));
  const rows = async () => (await env.doc.send(new ScanCommand({ TableName: table, ConsistentRead: true }))).Items ?? [];

  it("writes one fenced row per step; a takeover rewrites the steps after the checkpoint; the earlier attempt, continued, is refused and stops", async () => {
    // Attempt 1 (token 5) writes steps 0 and 1, then stops: as if frozen after its second checkpoint.
    const first = await runHandler(demo, { steps: 4, msPerStep: 0 }, { attempt: 1, token: 5, abortAfterCheckpoints: 2 });
    expect(first.checkpoints).toEqual([{ next: 1 }, { next: 2 }]);
    // Attempt 2 (token 8) resumes from the checkpoint DynamoDB held, the first one: step 1 is written again.
    const second = await runHandler(demo, { steps: 4, msPerStep: 0 }, { attempt: 2, token: 8, resumeFrom: { next: 1 } });
    expect(second.error).toBeUndefined();
    const expected: EffectsResult["rows"] = [
      { step: 0, attempt: 1, token: 5 },
      { step: 1, attempt: 2, token: 8 },
      { step: 2, attempt: 2, token: 8 },
      { step: 3, attempt: 2, token: 8 },
    ];
    expect(second.result).toEqual({ steps: 4, rows: expected });
    // Attempt 1 continues where it was frozen: its write of step 2 is refused, and it stops.
    const woken = await runHandler(demo, { steps: 4, msPerStep: 0 }, { attempt: 1, token: 5, resumeFrom: { next: 2 } });
    expect(woken.error).toBeInstanceOf(FencedOutError);
    expect((woken.error as FencedOutError).fence).toEqual({ jobId: TEST_JOB_ID, token: 5 });
    expect(woken.checkpoints).toEqual([]);
    expect(woken.logs.map((l) => l.message)).toContainEqual(expect.stringContaining("the fence refused"));
    // One row per step, each as the last attempt to write it left it.
    const stored = (await rows()).map((r) => ({ step: r.step, attempt: r.attempt, token: r[FENCE_ATTRIBUTE], id: r.id }));
    expect(stored.sort((a, b) => a.step - b.step)).toEqual(expected.map((r) => ({ ...r, id: `${TEST_JOB_ID}:step/${r.step}` })));
    // Every row expires (DynamoDB's TTL, npm start's stand-in locally): trying the demo leaves nothing behind.
    expect(await expireItems(env.doc, table, Date.now(), EFFECTS_TTL)).toBe(0);
    expect(await expireItems(env.doc, table, Date.now() + (EFFECTS_TABLE.retentionSeconds + 60) * 1000, EFFECTS_TTL)).toBe(4);
    expect(await rows()).toEqual([]);
  });

  it("refuses a step count outside 1 to 100 and an unknown field before writing anything", async () => {
    const cases: [unknown, string][] = [
      [{ steps: 0 }, "steps"],
      [{ steps: 101 }, "steps"],
      [{ steps: 2, extra: true }, ""],
    ];
    const before = (await rows()).length;
    for (const [input, path] of cases) {
      const e = await runHandler(demo, input).then(() => undefined, (x: unknown) => x);
      expect(e, JSON.stringify(input)).toMatchObject({ name: "ValidationError", message: 'input does not match job type "demo.effects"' });
      expect((e as ValidationError).details, JSON.stringify(input)).toContainEqual(expect.objectContaining({ path }));
    }
    expect(await rows()).toHaveLength(before);
  });
});

describe("demo.effects through npm start, its worker frozen mid-job", () => {
  const { sys, call, admin, freeze, thaw } = useLaunchedWithFreezes({ args: ["--memory", "--workers", "2"], env: { WARDEN_LEASE_SECONDS: "3", WARDEN_SWEEP_INTERVAL_SECONDS: "0.5" } });

  interface JobView {
    status: string;
    worker: string | null;
    progress: { done: number } | null;
    result: EffectsResult | null;
    history: { worker: string }[];
  }
  const get = async (id: string) => (await call<{ job: JobView }>("GET", `/jobs/${id}`)).body.job;

  it("runs on the Lambda stand-in too, which lives in npm start's own process: its rows in the same table", async () => {
    const submitted = await call<{ job: { id: string } }>("POST", "/jobs", { type: "demo.effects", input: { steps: 3, msPerStep: 0 } });
    expect(submitted.status).toBe(201);
    const id = submitted.body.job.id;
    const done = await waitFor(async () => {
      const j = await get(id);
      return j.status === "succeeded" || j.status === "failed" ? j : undefined;
    }, 20_000, "the job to end");
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    expect(done.result!.rows.map((r) => [r.step, r.attempt])).toEqual([[0, 1], [1, 1], [2, 1]]);
    expect(done.history.map((h) => h.worker)).toEqual([expect.stringMatching(/^lambda:/)]);
  });

  it("ends with one row per step in warden-local-effects, the steps after the checkpoint written by the takeover, none changed by the frozen worker once continued", async () => {
    // Long enough (8 s) that a loaded machine's polls still find it mid-job when they freeze its worker.
    const steps = 20;
    const submitted = await call<{ job: { id: string } }>("POST", "/jobs", { type: "demo.effects", queue: "large", input: { steps, msPerStep: 400 } });
    expect(submitted.status).toBe(201);
    const id = submitted.body.job.id;

    // Freeze the worker holding it once it has written a few steps.
    const running = await waitFor(async () => {
      const j = await get(id);
      return j.status === "running" && j.worker && (j.progress?.done ?? 0) >= 2 ? j : undefined;
    }, 20_000, "the job to write two steps");
    const { body } = await admin<{ processes: { id: string; pid?: number }[] }>("GET", "/local/processes");
    const pid = body.processes.find((p) => p.id === running.worker)?.pid;
    expect(pid, `worker ${running.worker} among ${JSON.stringify(body.processes)}`).toBeTruthy();
    freeze(pid!);
    const frozenAt = await get(id);
    expect(frozenAt.status === "running" && (frozenAt.progress?.done ?? 0) < steps, `frozen too late: ${JSON.stringify(frozenAt.progress)}`).toBe(true);

    // Its lease runs out; the sweeper hands the job to the other worker, which finishes it.
    const done = await waitFor(async () => {
      const j = await get(id);
      return j.status === "succeeded" ? j : undefined;
    }, 30_000, "the job to succeed on the other worker");
    const rows = done.result!.rows;
    expect(rows.map((r) => r.step)).toEqual([...Array(steps).keys()]);
    const tokens = new Set(rows.map((r) => r.token));
    expect(tokens.size, JSON.stringify(rows)).toBe(2);
    const takeover = Math.max(...tokens);
    // The frozen attempt's rows come first; from the checkpoint on, the takeover's (a higher token).
    const firstOfTakeover = rows.findIndex((r) => r.token === takeover);
    expect(firstOfTakeover).toBeGreaterThan(0);
    expect(rows.slice(firstOfTakeover).every((r) => r.token === takeover && r.attempt === 2)).toBe(true);
    expect(rows.slice(0, firstOfTakeover).every((r) => r.attempt === 1)).toBe(true);

    // Continued, the frozen attempt learns it is over (the fence or its heartbeat) and stops.
    thaw(pid!);
    await waitFor(async () => {
      const lines = (await call<{ lines: { attempt: number | null; message: string }[] }>("GET", `/jobs/${id}/logs`)).body.lines;
      return lines.some((l) => l.attempt === 1 && /lease lost|the fence refused/.test(l.message)) || undefined;
    }, 15_000, "the continued attempt to stop");
    // The table holds one row per step, exactly as the job's result read them.
    const doc = dynamoClient({ dynamodb: sys().dynamoEndpoint! });
    const items = (await doc.send(new ScanCommand({ TableName: physicalName("local", EFFECTS_TABLE.name), ConsistentRead: true }))).Items ?? [];
    const mine = items.filter((r) => r.jobId === id).sort((a, b) => a.step - b.step);
    expect(mine.map((r) => ({ step: r.step, attempt: r.attempt, token: r[FENCE_ATTRIBUTE] }))).toEqual(rows);
    expect(mine.map((r) => r.id)).toEqual(rows.map((r) => `${id}:step/${r.step}`));
  }, 90_000);
});
