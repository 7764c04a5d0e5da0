/**
 * Races and crashes in a flow, each a sequence an adversarial review found (docs/jobs.md
 * "Flows"): each failed against the first version of flows and passes now. Where a sequence needs
 * two writers interleaved at one exact point, the test holds one of them there by wrapping a
 * method of the flow's own I/O (never an AWS client); crashes and lost calls are on the wire.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { childId } from "../core/flow.js";
import type { RunningJob } from "../core/job.js";
import { ConflictError } from "../core/errors.js";
import { defineJob } from "../core/registry.js";
import { Runner } from "../core/runner.js";
import { Sweeper } from "../core/sweeper.js";
import { chainSpec } from "../core/child-specs.js";
import { manualClock } from "./support/emulators.js";
import { useWireFaults, target } from "./support/wire.js";
import { idempotentId } from "../core/store.js";

const w = useWireFaults("flow-races");
const START_DEADLINE = 60_000;
const quiet = { info() {}, warn() {}, error() {} };

const failer = defineJob<{ fail: boolean }, { ok: true }>({
  name: "test.failer",
  input: z.object({ fail: z.boolean().default(false) }).strict(),
  runsOn: "lambda",
  limits: { maxAttempts: 1 },
  handler: async ({ fail }) => {
    if (fail) throw new Error("boom");
    return { ok: true };
  },
});
const spawner = defineJob<Record<string, never>, { seen: number }>({
  name: "test.spawner",
  input: z.object({}).strict(),
  runsOn: "lambda",
  limits: { timeoutMs: 60_000 },
  handler: async (_i, ctx) => {
    const done = await ctx.children();
    if (!done) {
      ctx.spawn([{ type: "demo.chunk", input: { from: 0, to: 1 } }]);
      return ctx.wait();
    }
    return { seen: done.counts.succeeded };
  },
});
const lenient = defineJob<{ file?: string | undefined }, { ran: true; file: string | null }>({
  name: "test.lenient",
  input: z.object({ file: z.string().optional() }).strict(),
  runsOn: "lambda",
  handler: async ({ file }) => ({ ran: true, file: file ?? null }),
});

function world() {
  const clock = manualClock(Date.now());
  const s = w.services({ WARDEN_START_DEADLINE_SECONDS: String(START_DEADLINE / 1000), WARDEN_LEASE_SECONDS: "30" }, { now: clock.now });
  s.registry.register(failer).register(spawner).register(lenient);
  const runner = new Runner(s, { workerId: "races-worker", kind: "local", leaseMs: 30_000, log: quiet });
  const sweeper = new Sweeper(s);
  const status = async (id: string) => (await s.store.getRecord(id))?.status;
  return { clock, s, runner, sweeper, status };
}
const chunk = (i: number) => ({ type: "demo.chunk", input: { from: i, to: i + 1 }, queue: "default" as const, maxAttempts: 3, timeoutMs: 60_000 });
const fail1 = { type: "test.failer", input: { fail: true }, queue: "default" as const, maxAttempts: 1, timeoutMs: 60_000 };
const gatherSpec = { owner: "t", type: "demo.combine", queue: "default" as const, input: {}, maxAttempts: 3, timeoutMs: 60_000 };

describe("a flow under races and crashes", () => {
  it("a resumed parent that waited longer than its runtime limit is not overdue at its claim: the wait is not counted", async () => {
    const x = world();
    const { job } = await x.s.store.create({ owner: "t", type: "test.spawner", queue: "default", input: {}, maxAttempts: 3, timeoutMs: 60_000 });
    expect(await x.runner.run(job.id)).toMatchObject({ outcome: "waiting" });
    x.clock.advance(2 * 60_000);
    expect(await x.runner.run(childId(job.id, 0, { index: 0 }))).toMatchObject({ outcome: "succeeded" });
    const claim = await x.s.store.claim(job.id, "live-worker", 30_000);
    expect(claim.ok).toBe(true);
    const running = (await x.s.store.getRecord(job.id)) as RunningJob;
    expect(running.dueAt).toBe(running.leaseExpiresAt);
    expect((await x.s.store.listOverdue(x.clock.now(), 100)).jobs.map((j) => j.id)).not.toContain(job.id);
  });

  it("a child retried between the sweeper's read of the children and its recount does not let the parent resume while it runs", async () => {
    const x = world();
    const { job: p } = await x.s.store.createFlow(gatherSpec, [fail1, chunk(1)], "collect");
    const a = childId(p.id, 0, { index: 0 });
    const b = childId(p.id, 0, { index: 1 });
    expect(await x.runner.run(a)).toMatchObject({ outcome: "failed" });
    x.clock.advance(START_DEADLINE + 1_000);
    const flows = x.s.store.flows as unknown as { readFanIn: (...a: unknown[]) => Promise<unknown> };
    const real = flows.readFanIn.bind(flows);
    let armed = true;
    flows.readFanIn = async (...args: unknown[]) => {
      if (armed) {
        armed = false;
        await x.s.store.retry(a, "t"); // the owner retries child A right here
      }
      return real(...args);
    };
    await x.sweeper.sweep();
    flows.readFanIn = real;
    expect(await x.status(a)).toBe("queued");
    expect(await x.runner.run(b)).toMatchObject({ outcome: "succeeded" });
    expect(await x.status(p.id), "A has not ended").toBe("waiting");
    (x.s.registry.get("test.failer") as unknown as { handler: unknown }).handler = async () => ({ ok: true });
    expect(await x.runner.run(a)).toMatchObject({ outcome: "succeeded" });
    expect(await x.status(p.id)).toBe("queued");
  });

  it("a chain whose step was cancelled ends cancelled instead of running on nothing", async () => {
    const x = world();
    const spec = chainSpec(x.s.registry, [{ type: "demo.download", input: { url: "u" } }]);
    const { job: j } = await x.s.store.createFlow({ owner: "t", type: "test.lenient", queue: "default", input: null, maxAttempts: 3, timeoutMs: 60_000 }, [spec], "failFast", { chain: true });
    await x.s.store.requestCancel(childId(j.id, 0, { index: 0 }), "t");
    expect(await x.s.store.getRecord(j.id)).toMatchObject({ status: "cancelled", error: { code: "cancelled", message: expect.stringMatching(/the chain stops here/) } });
  });

  it("a parent cannot be retried while a child's cancel is still on its way: that child would never be retried", async () => {
    const x = world();
    const { job: p } = await x.s.store.createFlow(gatherSpec, [chunk(0), chunk(1)], "collect");
    const a = childId(p.id, 0, { index: 0 });
    const claim = await x.s.store.claim(a, "slow-worker", 30_000);
    if (!claim.ok) throw new Error("claim");
    await x.s.store.requestCancel(p.id, "t");
    await expect(x.s.store.retry(p.id, "t")).rejects.toThrow(ConflictError);
    await x.s.store.acknowledgeCancel(claim.lease);
    expect(await x.s.store.retry(p.id, "t")).toMatchObject({ status: "waiting" });
    for (const i of [0, 1]) expect(await x.runner.run(childId(p.id, 0, { index: i }))).toMatchObject({ outcome: "succeeded" });
    expect(await x.status(p.id)).toBe("queued");
  });

  it("a waiting step of an ended chain is cancelled by the sweeper, and so is its own child, which never runs", async () => {
    const x = world();
    const spec = chainSpec(x.s.registry, [{ type: "demo.download", input: { url: "u" } }, { type: "test.lenient" }]);
    const { job: j } = await x.s.store.createFlow({ owner: "t", type: "test.lenient", queue: "default", input: null, maxAttempts: 3, timeoutMs: 60_000 }, [spec], "failFast", { chain: true });
    const step2 = childId(j.id, 0, { index: 0 });
    const step1 = childId(step2, 0, { index: 0 });
    const flows = x.s.store.flows as unknown as { cascade: (...a: unknown[]) => Promise<void> };
    const real = flows.cascade.bind(flows);
    flows.cascade = async () => {
      throw new Error("the API function died after the cancel's write");
    };
    await x.s.store.requestCancel(j.id, "t");
    flows.cascade = real;
    x.clock.advance(START_DEADLINE + 1_000);
    const r = await x.sweeper.sweep();
    expect(r.touched.orphanCancelled).toContain(step2);
    expect(await x.status(step2)).toBe("cancelled");
    expect(await x.runner.run(step1)).toMatchObject({ claimed: false });
    expect(await x.status(step1)).toBe("cancelled");
  });

  it("a parent submitted with children that waits for hours keeps its own runtime limit", async () => {
    const x = world();
    const { job: p } = await x.s.store.createFlow(gatherSpec, [chunk(0)], "collect");
    x.clock.advance(3 * 3600_000);
    await x.runner.run(childId(p.id, 0, { index: 0 }));
    const claim = await x.s.store.claim(p.id, "w", 30_000);
    if (!claim.ok) throw new Error("claim");
    expect(claim.lease.runtimeDeadline - x.clock.now()).toBe(60_000);
  });

  it("a submit whose parent was written answers the parent when a child's put fails; the sweeper writes that child", async () => {
    const x = world();
    const id = idempotentId("t", "races-i");
    const victim = childId(id, 0, { index: 1 });
    const itemId = (b: unknown) => (b as { Item?: { id?: { S?: string } } })?.Item?.id?.S;
    const faults = Promise.all([1, 2, 3].map(() => w.dynamo.injectNext("server", (t, b) => target("PutItem")(t) && itemId(b) === victim)));
    const made = await x.s.store.createFlow({ ...gatherSpec, idempotencyKey: "races-i" }, [chunk(0), chunk(1), chunk(2)], "collect");
    await faults;
    expect(made).toMatchObject({ created: true, job: { id, status: "waiting" } });
    expect(await x.status(victim)).toBeUndefined();
    x.clock.advance(START_DEADLINE + 1_000);
    expect((await x.sweeper.sweep()).touched.flowRepaired).toEqual([id]);
    expect(await x.status(victim)).toBe("queued");
  });

  it("a child that ends while the sweeper looks at its parent stays counted: the round's last end resumes the parent", async () => {
    const x = world();
    const { job: p } = await x.s.store.createFlow(gatherSpec, [chunk(0), chunk(1), chunk(2)], "collect");
    const ids = [0, 1, 2].map((i) => childId(p.id, 0, { index: i }));
    await x.runner.run(ids[0]!);
    x.clock.advance(START_DEADLINE + 1_000);
    const flows = x.s.store.flows as unknown as { children: (...a: unknown[]) => Promise<unknown> };
    const real = flows.children.bind(flows);
    let armed = true;
    flows.children = async (...args: unknown[]) => {
      const records = await real(...args);
      if (armed) {
        armed = false;
        await x.runner.run(ids[1]!); // child 1 ends right after the look read the records
      }
      return records;
    };
    await x.sweeper.sweep();
    flows.children = real;
    expect(await x.status(p.id)).toBe("waiting");
    await x.runner.run(ids[2]!);
    expect(await x.status(p.id), "all three ended").toBe("queued");
  });

  it("the children that were written are rung when another could not be", async () => {
    const x = world();
    const { job } = await x.s.store.create({ owner: "t", type: "test.spawner", queue: "default", input: {}, maxAttempts: 3, timeoutMs: 60_000 });
    const claim = await x.s.store.claim(job.id, "w", 30_000);
    if (!claim.ok) throw new Error("claim");
    const specs = [chunk(0), chunk(1), chunk(2)];
    const parent = await x.s.store.wait(claim.lease, specs, "collect");
    if (parent.status !== "waiting") throw new Error("not waiting");
    const ids = [0, 1, 2].map((i) => childId(job.id, 0, { index: i }));
    const itemId = (b: unknown) => (b as { Item?: { id?: { S?: string } } })?.Item?.id?.S;
    const faults = Promise.all([1, 2, 3].map(() => w.dynamo.injectNext("server", (t, b) => target("PutItem")(t) && itemId(b) === ids[2])));
    const rung: string[] = [];
    const send = x.s.queue.send.bind(x.s.queue);
    x.s.queue.send = async (q, jobIds, delay) => {
      rung.push(...jobIds);
      return send(q, jobIds, delay);
    };
    await expect(x.s.store.spawnRound(parent, specs)).rejects.toThrow();
    await faults;
    expect(rung.sort()).toEqual([ids[0]!, ids[1]!].sort());
  });
});
