/**
 * Every stuck state of a flow (docs/jobs.md "Flows", "What the sweeper repairs"), made on purpose
 * against the emulators, each found by the stuck report and repaired by one sweep, which also
 * publishes it in StuckJobs:
 * - children recorded on the parent but never written (a crash between the two writes);
 * - a parent still waiting when all its children ended: its last child's fan-in write lost, or
 *   the resume write lost (wire faults below the SDK's retries, every try of the call);
 * - counts that drifted from the children's real states (a fan-in item overwritten with an older
 *   copy, as a recount racing a child's end would leave it);
 * - a child whose parent is gone: cancelled, never run (by the sweeper, and at its claim).
 * A child's ADD whose reply is lost and resent by the SDK counts once (the set is idempotent).
 */
import { DeleteCommand, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, it } from "vitest";
import { childId, fanInKey } from "../core/flow.js";
import type { Job, WaitingJob } from "../core/job.js";
import { defineJob } from "../core/registry.js";
import { Runner } from "../core/runner.js";
import { z } from "zod";
import { stuckReport } from "../core/stuck.js";
import { Sweeper, type SweepReport } from "../core/sweeper.js";
import { manualClock } from "./support/emulators.js";
import { sets, target, useWireFaults } from "./support/wire.js";

const w = useWireFaults("flow-repair");
const START_DEADLINE = 60_000;
const quiet = { info() {}, warn() {}, error() {} };

function world() {
  const clock = manualClock(Date.now());
  const s = w.services({ WARDEN_START_DEADLINE_SECONDS: String(START_DEADLINE / 1000), WARDEN_LEASE_SECONDS: "30" }, { now: clock.now });
  const runner = new Runner(s, { workerId: "repair-worker", kind: "local", leaseMs: 30_000, log: quiet });
  const sweeper = new Sweeper(s);
  /** A demo.combine parent of `n` demo.chunk children, as POST /jobs makes it. */
  const parent = async (n: number): Promise<WaitingJob> => {
    const children = Array.from({ length: n }, (_, i) => ({ type: "demo.chunk", input: { from: i, to: i + 1 }, queue: "default" as const, maxAttempts: 3, timeoutMs: 60_000 }));
    const { job } = await s.store.createFlow({ owner: "t", type: "demo.combine", queue: "default", input: {}, maxAttempts: 3, timeoutMs: 60_000 }, children, "collect");
    return job as WaitingJob;
  };
  const kids = (p: Job, n: number) => Array.from({ length: n }, (_, i) => childId(p.id, 0, { index: i }));
  const status = async (id: string) => (await s.store.getRecord(id))?.status;
  const stuckMetric = (state: string) => s.metrics.points.filter((p) => p.name === "StuckJobs" && p.dims.State === state).at(-1)?.value;
  /** One sweep once the parent's flow check is due. */
  const sweepLater = async (): Promise<SweepReport> => {
    clock.advance(START_DEADLINE + 1_000);
    return sweeper.sweep();
  };
  return { clock, s, runner, parent, kids, status, stuckMetric, sweepLater };
}

/** Every try the SDK makes of one call (maxAttempts 3) answered with a 500. */
const failEveryTry = (match: (t: string, b: unknown) => boolean) => Promise.all([1, 2, 3].map(() => w.dynamo.injectNext("server", match)));
const keyOf = (b: unknown): string | undefined => (b as { Key?: { id?: { S?: string } } })?.Key?.id?.S;

describe("a flow's stuck states, each repaired by one sweep", () => {
  it("children recorded on the parent but never written are written from its spec", async () => {
    const x = world();
    const p = await x.parent(5);
    const ids = x.kids(p, 5);
    // The state a crash between the parent's write and its children's leaves: children 1 and 3 never written.
    for (const i of [1, 3]) await w.doc.send(new DeleteCommand({ TableName: w.env.emu.tableName, Key: { id: ids[i] } }));
    x.clock.advance(START_DEADLINE + 1_000);
    expect((await stuckReport(x.s)).states.waiting).toMatchObject({ count: 1, sample: [p.id] });
    const r = await new Sweeper(x.s).sweep();
    expect(r.touched.flowRepaired).toEqual([p.id]);
    expect(x.stuckMetric("waiting")).toBe(1);
    expect(await Promise.all(ids.map(x.status))).toEqual(["queued", "queued", "queued", "queued", "queued"]);
    for (const id of ids) expect(await x.runner.run(id)).toMatchObject({ claimed: true, outcome: "succeeded" });
    expect(await x.status(p.id), "the last child resumed it").toBe("queued");
    expect(await x.runner.run(p.id)).toMatchObject({ outcome: "succeeded" });
    expect(await x.s.store.get(p.id)).toMatchObject({ result: { sum: 0 + 1 + 2 + 3 + 4, count: 5, chunks: 5 } });
  });

  it("a parent still waiting after its last child's fan-in write was lost is resumed", async () => {
    const x = world();
    const p = await x.parent(3);
    const ids = x.kids(p, 3);
    for (const id of ids.slice(0, 2)) await x.runner.run(id);
    const lost = failEveryTry((t, b) => target("UpdateItem")(t) && keyOf(b) === fanInKey(p.id, 0, 0));
    expect(await x.runner.run(ids[2]!)).toMatchObject({ outcome: "succeeded" });
    await lost;
    expect(await x.status(p.id), "all three ended, the parent never heard").toBe("waiting");
    x.clock.advance(START_DEADLINE + 1_000);
    expect((await stuckReport(x.s)).states.waiting.count).toBe(1);
    const r = await new Sweeper(x.s).sweep();
    expect(r.touched.resumed).toEqual([p.id]);
    expect(r.touched.flowRepaired, "its fan-in item was rewritten from the children").toEqual([p.id]);
    expect(x.stuckMetric("waiting")).toBe(1);
    expect(await x.status(p.id)).toBe("queued");
  });

  it("a parent whose resume write was lost is resumed by the sweep, once", async () => {
    const x = world();
    const p = await x.parent(2);
    const ids = x.kids(p, 2);
    await x.runner.run(ids[0]!);
    const lost = failEveryTry((t, b) => target("UpdateItem")(t) && keyOf(b) === p.id && sets(b, "status", "queued"));
    await x.runner.run(ids[1]!);
    await lost;
    expect(await x.status(p.id)).toBe("waiting");
    const r = await x.sweepLater();
    expect(r.touched.resumed).toEqual([p.id]);
    expect(r.touched.flowRepaired, "the fan-in was right; only the resume was missing").toBeUndefined();
    expect(x.stuckMetric("waiting")).toBe(1);
    const resumed = await x.s.store.getRecord(p.id);
    expect(resumed).toMatchObject({ status: "queued", attempts: 0 });
    // A second sweep finds nothing: the parent is queued and within its start deadline.
    expect((await new Sweeper(x.s).sweep()).counts.resumed).toBe(0);
  });

  it("counts that drifted from the children's states are recounted from the children", async () => {
    const x = world();
    const p = await x.parent(4);
    const ids = x.kids(p, 4);
    const shard = { TableName: w.env.emu.tableName, Key: { id: fanInKey(p.id, 0, 0) } };
    await x.runner.run(ids[0]!);
    const older = (await w.doc.send(new GetCommand({ ...shard, ConsistentRead: true }))).Item!;
    await x.runner.run(ids[1]!);
    await x.runner.run(ids[2]!);
    // An older copy written back over the newer one, as a recount racing two children's ends leaves it.
    await w.doc.send(new PutCommand({ TableName: w.env.emu.tableName, Item: older }));
    await x.runner.run(ids[3]!);
    expect(await x.status(p.id), "the fan-in says 2 of 4 ended").toBe("waiting");
    const r = await x.sweepLater();
    expect(r.touched.flowRepaired).toEqual([p.id]);
    expect(r.touched.resumed).toEqual([p.id]);
    expect(x.stuckMetric("waiting")).toBe(1);
    const counted = await x.s.store.childCounts((await x.s.store.getRecord(p.id))!);
    expect(counted).toMatchObject({ total: 4, succeeded: 4 });
  });

  it("a child whose parent is gone is cancelled, by the sweeper and at its claim, and never runs", async () => {
    const x = world();
    const p = await x.parent(2);
    const ids = x.kids(p, 2);
    await w.doc.send(new DeleteCommand({ TableName: w.env.emu.tableName, Key: { id: p.id } }));
    const claimed = await x.runner.run(ids[0]!);
    expect(claimed).toMatchObject({ claimed: false, reason: "finished" });
    expect(await x.s.store.getRecord(ids[0]!)).toMatchObject({ status: "cancelled", error: { message: expect.stringMatching(/its parent .* no longer exists/) } });
    x.clock.advance(START_DEADLINE + 1_000);
    expect((await stuckReport(x.s)).states.orphaned).toMatchObject({ count: 1, sample: [ids[1]] });
    const r = await new Sweeper(x.s).sweep();
    expect(r.touched.orphanCancelled).toEqual([ids[1]]);
    expect(r.counts.resent, "not rung again for a parent nobody has").toBe(0);
    expect(x.stuckMetric("orphaned")).toBe(1);
    expect(await x.s.store.getRecord(ids[1]!)).toMatchObject({ status: "cancelled", history: [] });
  });

  it("a child's fan-in write whose reply is lost, resent by the SDK, counts once", async () => {
    const x = world();
    const p = await x.parent(2);
    const ids = x.kids(p, 2);
    const lost = w.dynamo.injectNext("lostReply", (t, b) => target("UpdateItem")(t) && keyOf(b) === fanInKey(p.id, 0, 0));
    await x.runner.run(ids[0]!);
    await lost;
    expect(await x.status(p.id)).toBe("waiting");
    await x.runner.run(ids[1]!);
    expect(await x.status(p.id)).toBe("queued");
    expect(await x.s.store.childCounts((await x.s.store.getRecord(p.id))!)).toMatchObject({ succeeded: 2, queued: 0 });
  });
});

describe("a parent that waits for hours", () => {
  it("resumes with the checkpoint it saved before it waited: the sweeper's looks copy it before it would expire", async () => {
    const x = world();
    const saved = { stage: "spawned", notes: "n".repeat(500) };
    x.s.registry.register(
      defineJob<Record<string, never>, { resumedFrom: unknown; children: number }>({
        name: "test.checkpointed",
        input: z.object({}).strict(),
        runsOn: "lambda",
        handler: async (_i, ctx) => {
          const done = await ctx.children();
          if (!done) {
            ctx.checkpoint(saved);
            ctx.spawn([{ type: "demo.chunk", input: { from: 0, to: 1 } }]);
            return ctx.wait();
          }
          return { resumedFrom: ctx.resumeFrom, children: done.counts.succeeded };
        },
      }),
    );
    const { job } = await x.s.store.create({ owner: "t", type: "test.checkpointed", queue: "default", input: {}, maxAttempts: 3, timeoutMs: 60_000 });
    expect(await x.runner.run(job.id)).toMatchObject({ claimed: true, outcome: "waiting" });
    const hour = 3_600_000;
    for (const step of [2 * hour, 2.5 * hour, 3 * hour]) {
      x.clock.advance(step);
      expect((await new Sweeper(x.s).sweep()).touched.rechecked).toEqual([job.id]);
    }
    // 7.5 hours on: the checkpoint item written with the wait has expired; the copy has not.
    expect(await x.runner.run(x.kids(job, 1)[0]!)).toMatchObject({ outcome: "succeeded" });
    expect(await x.runner.run(job.id)).toMatchObject({ outcome: "succeeded" });
    const done = await x.s.store.get(job.id);
    expect(done).toMatchObject({ status: "succeeded", result: { resumedFrom: saved, children: 1 } });
    expect(done?.history.map((h) => h.outcome)).toEqual(["waiting", "succeeded"]);
  });
});

describe("a handler's wait under a lost reply", () => {
  it("the SDK's resend of a wait that landed is recognized: one round, its children written once", async () => {
    const x = world();
    const { job } = await x.s.store.create({ owner: "t", type: "demo.evaluate", queue: "default", input: { regions: ["us"], models: ["a", "b"], questions: ["q1", "q2"] }, maxAttempts: 3, timeoutMs: 60_000 });
    const lost = w.dynamo.injectNext("lostReply", (t, b) => target("UpdateItem")(t) && keyOf(b) === job.id && sets(b, "status", "waiting"));
    expect(await x.runner.run(job.id)).toMatchObject({ claimed: true, outcome: "waiting" });
    await lost;
    const parent = (await x.s.store.getRecord(job.id)) as WaitingJob;
    expect(parent).toMatchObject({ status: "waiting", attempts: 0, flow: { round: 0, total: 4 } });
    expect(parent.history.map((h) => h.outcome)).toEqual(["waiting"]);
    const kids = await x.s.store.childOutcomes(parent, { limit: 10 });
    expect(kids.children.map((c) => c.parent?.key)).toEqual(["us/a/q1", "us/a/q2", "us/b/q1", "us/b/q2"]);
    for (const c of kids.children) await x.runner.run(c.id);
    expect(await x.runner.run(job.id)).toMatchObject({ outcome: "succeeded" });
    expect(await x.s.store.get(job.id)).toMatchObject({ result: { executions: 4, succeeded: 4 } });
  });
});
