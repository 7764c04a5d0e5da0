/**
 * ECS task scale-in protection: a loopback HTTP server stands in for the ECS agent's
 * `${ECS_AGENT_URI}/task-protection/v1/state` endpoint and records every PUT, answering as the
 * agent does (`{"protection": {...}}` on success, `{"failure": {...}}` with HTTP 200 or
 * `{"error": {...}}` with an error status otherwise). A real Fargate worker runs in this process
 * against the emulators with its agent URI pointed at that server.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import { PROTECTION_PATH, SCALE_IN_PROTECTION, ScaleInProtection } from "../core/ecs-protection.js";
import type { SucceededJob } from "../core/job.js";
import { startFargateWorker, type FargateWorker } from "../functions/fargate.js";
import { manualClock, useEmulators, waitFor } from "./support/emulators.js";
import { submit, testServices } from "./worker-support.js";

const env = useEmulators("protection");
const quiet = { info() {}, warn() {}, error() {} };
const TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/warden-test-cluster/0123456789abcdef";

interface Put {
  at: number;
  method: string;
  path: string;
  contentType: string | undefined;
  body: { ProtectionEnabled?: boolean; ExpiresInMinutes?: number };
  /** What the stand-in answered. */
  answer: "protection" | "failure" | "error";
}

type Answer = Put["answer"];

/** The ECS agent's task-protection endpoint, on 127.0.0.1. `answers` scripts the replies in order; after it runs out, success. */
class FakeAgent {
  readonly puts: Put[] = [];
  answers: Answer[] = [];
  private server!: Server;
  uri = "";

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    // ECS_AGENT_URI looks like http://169.254.170.2/api/<container id>.
    this.uri = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/api/abc123-4567`;
    return this;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  on(): Put[] {
    return this.puts.filter((p) => p.body.ProtectionEnabled === true);
  }

  off(): Put[] {
    return this.puts.filter((p) => p.body.ProtectionEnabled === false);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = "";
    for await (const chunk of req) raw += chunk;
    const body = JSON.parse(raw || "{}") as Put["body"];
    const answer = this.answers.shift() ?? "protection";
    this.puts.push({ at: Date.now(), method: req.method ?? "", path: req.url ?? "", contentType: req.headers["content-type"], body, answer });
    const reply = (status: number, payload: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(payload));
    };
    if (answer === "error") return reply(500, { error: { Arn: TASK_ARN, Code: "ServerException", Message: "agent hiccup" } });
    if (answer === "failure") return reply(200, { failure: { Arn: TASK_ARN, Reason: "TASK_NOT_VALID", Detail: "not part of a service" } });
    const enabled = body.ProtectionEnabled === true;
    const expires = enabled ? new Date(Date.now() + (body.ExpiresInMinutes ?? 120) * 60_000).toISOString() : undefined;
    reply(200, { protection: { ...(expires ? { ExpirationDate: expires } : {}), ProtectionEnabled: enabled, TaskArn: TASK_ARN } });
  }
}

const agents: FakeAgent[] = [];
const workers: FargateWorker[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ force: true })));
  await Promise.all(agents.splice(0).map((a) => a.stop()));
});

async function agent(): Promise<FakeAgent> {
  const a = await new FakeAgent().start();
  agents.push(a);
  return a;
}

function worker(id: string, protection: ConstructorParameters<typeof ScaleInProtection>[0]): FargateWorker {
  const w = startFargateWorker(testServices(env), { workerId: id, queue: "large", pollWaitSeconds: 1, log: quiet, protection });
  workers.push(w);
  return w;
}

const succeeded = (s: ReturnType<typeof testServices>, id: string) =>
  waitFor(async () => {
    const j = await s.store.mustGet(id);
    return j.status === "succeeded" ? (j as SucceededJob) : undefined;
  }, 30_000, `job ${id} to succeed`);

describe("a Fargate worker with an ECS agent", () => {
  test("turns protection on when it claims a job, renews it while jobs run, and turns it off once it holds none", async () => {
    const a = await agent();
    const s = testServices(env);
    worker("protected-1", { agentUri: a.uri, renewEveryMs: 300 });
    const long = await submit(s, "demo.sleep", { items: 25, msPerItem: 100, checkpointEvery: 5 }, { queue: "large" });
    const short = await submit(s, "demo.sleep", { items: 3, msPerItem: 50 }, { queue: "large" });

    await waitFor(() => a.on().length >= 1, 15_000, "protection to go on");
    // Renewals while the long job runs: at least two more PUTs, and the job is still running after them.
    await waitFor(() => a.on().length >= 3, 15_000, "protection to be renewed");
    expect((await s.store.mustGet(long.id)).status).toBe("running");

    const shortDone = await succeeded(s, short.id);
    const longDone = await succeeded(s, long.id);
    expect(longDone.result).toEqual({ items: 25, resumedFrom: 0 });
    await waitFor(() => a.off().length >= 1, 10_000, "protection to go off");

    // Every PUT went to the agent's endpoint as JSON.
    for (const p of a.puts) {
      expect(p.method).toBe("PUT");
      expect(p.path).toBe(`/api/abc123-4567${PROTECTION_PATH}`);
      expect(p.contentType).toBe("application/json");
    }
    for (const p of a.on()) expect(p.body).toEqual({ ProtectionEnabled: true, ExpiresInMinutes: SCALE_IN_PROTECTION.expiresInMinutes });
    expect(a.off().map((p) => p.body)).toEqual([{ ProtectionEnabled: false }]);
    // On once the first claim was written; the job finishing early (the short one) did not turn it
    // off; off only after the last job's outcome was written, and nothing after it.
    const firstOn = a.on()[0]!;
    const firstClaim = Math.min(shortDone.history[0]!.startedAt, longDone.history[0]!.startedAt);
    expect(firstOn.at).toBeGreaterThanOrEqual(firstClaim);
    expect(firstOn.at).toBeLessThan(longDone.finishedAt);
    expect(shortDone.finishedAt).toBeLessThan(longDone.finishedAt);
    const offAt = a.off()[0]!.at;
    expect(offAt).toBeGreaterThanOrEqual(longDone.finishedAt);
    expect(a.puts.at(-1)!.body.ProtectionEnabled).toBe(false);
    expect(a.puts.filter((p) => p.at < longDone.finishedAt).every((p) => p.body.ProtectionEnabled === true)).toBe(true);
    // Renewed at the configured pace, not on every claim: a 2.5 s job at 300 ms needs roughly 8–10 PUTs.
    expect(a.on().length).toBeLessThan(20);

    // Stopping an idle worker sends nothing more: protection is already off.
    const before = a.puts.length;
    await workers.splice(0)[0]!.stop();
    expect(a.puts.length).toBe(before);
  }, 60_000);

  test("agent errors and failures never stop the job; protection is retried and still turned off at the end", async () => {
    const a = await agent();
    a.answers = ["error", "failure"];
    const s = testServices(env);
    worker("protected-2", { agentUri: a.uri, renewEveryMs: 400, retryMs: 100 });
    const job = await submit(s, "demo.sleep", { items: 12, msPerItem: 100 }, { queue: "large" });
    const done = await succeeded(s, job.id);
    expect(done.result).toEqual({ items: 12, resumedFrom: 0 });
    expect(done.attempts).toBe(1);
    await waitFor(() => a.off().some((p) => p.answer === "protection"), 10_000, "protection to go off");
    const answers = a.puts.map((p) => `${p.body.ProtectionEnabled ? "on" : "off"}:${p.answer}`);
    // The HTTP 500 and the HTTP 200 `failure` both count as not protected and are retried until the agent confirms.
    expect(answers.slice(0, 3)).toEqual(["on:error", "on:failure", "on:protection"]);
    expect(answers.at(-1)).toBe("off:protection");
  }, 60_000);

  test("an unreachable agent never stops the job or the worker's shutdown", async () => {
    const a = await agent();
    const uri = a.uri;
    await agents.splice(0)[0]!.stop(); // nothing listens there any more
    const s = testServices(env);
    const w = worker("protected-3", { agentUri: uri, retryMs: 100, requestTimeoutMs: 500 });
    const job = await submit(s, "demo.sleep", { items: 5, msPerItem: 50 }, { queue: "large" });
    expect((await succeeded(s, job.id)).result).toEqual({ items: 5, resumedFrom: 0 });
    const t0 = Date.now();
    await workers.splice(0)[0]!.stop();
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(w.runner.active()).toEqual([]);
  }, 60_000);
});

describe("ScaleInProtection on its own", () => {
  test("without an agent URI (locally) it sends nothing", async () => {
    let calls = 0;
    const p = new ScaleInProtection({ fetch: async () => (calls++, new Response("{}")) });
    expect(p.enabled).toBe(false);
    p.hold(3);
    p.hold(0);
    await p.stop();
    expect(calls).toBe(0);
  });

  test("more jobs while protected send nothing; a hold after the renewal time (a late timer) renews at once", async () => {
    const a = await agent();
    const clock = manualClock();
    const p = new ScaleInProtection({ agentUri: a.uri, now: clock.now, renewEveryMs: 60_000, log: quiet });
    p.hold(1);
    p.hold(2);
    p.hold(3);
    await p.settled();
    expect(a.puts.map((x) => x.body)).toEqual([{ ProtectionEnabled: true, ExpiresInMinutes: SCALE_IN_PROTECTION.expiresInMinutes }]);
    clock.advance(60_000);
    p.hold(2);
    await p.settled();
    expect(a.on()).toHaveLength(2);
    p.hold(0);
    p.hold(0);
    await p.settled();
    expect(a.off()).toHaveLength(1);
    await p.stop();
    expect(a.puts).toHaveLength(3);
  });

  test("keeps the requested minutes within what ECS accepts and never renews later than half of them", async () => {
    const a = await agent();
    const p = new ScaleInProtection({ agentUri: `${a.uri}/`, expiresInMinutes: 5000, log: quiet });
    p.hold(1);
    await p.settled();
    await p.stop();
    expect(a.puts.map((x) => [x.path, x.body])).toEqual([
      [`/api/abc123-4567${PROTECTION_PATH}`, { ProtectionEnabled: true, ExpiresInMinutes: 2880 }],
      [`/api/abc123-4567${PROTECTION_PATH}`, { ProtectionEnabled: false }],
    ]);
  });
});
