/**
 * `npm start` end to end, as a child process on a free port: 50 jobs of mixed types over HTTP,
 * a worker process SIGKILLed while it holds jobs, every job at its expected terminal state, and
 * the killed worker's jobs resumed from their checkpoints.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, launchLocal, type Launched } from "../local/launch.js";
import { waitFor } from "./support/emulators.js";
import type { ApiJob } from "../core/api/view.js";

/** The API's job object, with the result demo.sleep returns. */
type JobView = Omit<ApiJob, "result"> & { result: { items?: number; resumedFrom?: number } | null };
interface WorkerView {
  id: string;
  kind: string;
  pid?: number;
  jobs: string[];
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

describe("npm start end to end", () => {
  let sys: Launched;
  let call: ReturnType<typeof client>;
  let admin: ReturnType<typeof client>;

  beforeAll(async () => {
    sys = await launchLocal({
      args: ["--memory", "--workers", "2"],
      env: { WARDEN_LEASE_SECONDS: "3", WARDEN_SWEEP_INTERVAL_SECONDS: "1", WARDEN_START_DEADLINE_SECONDS: "5" },
    });
    call = client(sys.url, sys.callerToken);
    admin = client(sys.url, sys.adminToken);
  });
  afterAll(async () => {
    const code = await sys?.stop();
    expect(code).toBe(0);
  });

  it("authenticates like the API Gateway stand-in should", async () => {
    const health = await fetch(`${sys.url}/health`);
    expect(health.status).toBe(200);
    const anon = await fetch(`${sys.url}/jobs`);
    expect(anon.status).toBe(401);
    expect(((await anon.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    const wrong = await client(sys.url, "not-a-token")("GET", "/jobs");
    expect(wrong.status).toBe(401);
    expect((await call("GET", "/admin/workers")).status).toBe(403);
    expect((await call("GET", "/local/alarms")).status).toBe(403);
    expect((await admin("GET", "/local/alarms")).status).toBe(200);
  });

  it("runs 50 mixed jobs to their terminal states through a SIGKILLed worker", async () => {
    type Spec = { body: Record<string, unknown>; expect: string };
    const specs: Spec[] = [
      ...Array.from({ length: 14 }, () => ({ body: { type: "demo.sleep", input: { items: 4, msPerItem: 100 } }, expect: "succeeded" })),
      ...Array.from({ length: 14 }, () => ({ body: { type: "demo.sleep", queue: "large", input: { items: 12, msPerItem: 250, checkpointEvery: 2 } }, expect: "succeeded" })),
      ...Array.from({ length: 8 }, () => ({ body: { type: "demo.fail", input: { times: 1 } }, expect: "succeeded" })),
      ...Array.from({ length: 7 }, () => ({ body: { type: "demo.permanent", input: {} }, expect: "failed" })),
      ...Array.from({ length: 7 }, () => ({ body: { type: "demo.fail", input: { times: 5 }, maxAttempts: 2 }, expect: "failed" })),
    ];
    expect(specs).toHaveLength(50);
    const submitted = await Promise.all(
      specs.map(async (s) => {
        const r = await call<{ job: JobView }>("POST", "/jobs", s.body);
        expect(r.status, JSON.stringify(r.body)).toBe(201);
        return { id: r.body.job.id, spec: s };
      }),
    );

    // A Fargate worker process holding a demo.sleep job that has reported progress past a
    // checkpoint: the job's current attempt names the worker, GET /admin/workers gives its pid.
    const victim = await waitFor(
      async () => {
        const { body } = await admin<{ workers: WorkerView[] }>("GET", "/admin/workers");
        const fargate = new Map(body.workers.filter((w) => w.kind === "fargate" && w.pid).map((w) => [w.id, w]));
        const page = await call<{ jobs: JobView[] }>("GET", "/jobs?status=running&limit=100");
        const holding = (id: string) => page.body.jobs.filter((j) => j.history.at(-1)?.worker === id);
        for (const job of page.body.jobs) {
          const worker = fargate.get(job.history.at(-1)?.worker ?? "");
          if (worker && job.type === "demo.sleep" && (job.progress?.done ?? 0) >= 3) return { worker, held: holding(worker.id) };
        }
        return undefined;
      },
      30_000,
      "a fargate worker holding a job past its first checkpoint",
    );
    const killedAt = Date.now();
    process.kill(victim.worker.pid!, "SIGKILL");
    // Progress past 2 items means the checkpoint at 2 was written with it or before it.
    const checkpointed = new Set(victim.held.filter((j) => (j.progress?.done ?? 0) >= 3).map((j) => j.id));
    expect(checkpointed.size).toBeGreaterThan(0);

    const finals = await waitFor(
      async () => {
        const all = await Promise.all(submitted.map((s) => call<{ job: JobView }>("GET", `/jobs/${s.id}`)));
        const jobs = all.map((r) => r.body.job);
        return jobs.every((j) => TERMINAL.has(j.status)) ? jobs : undefined;
      },
      50_000,
      "every job to reach a terminal state",
    );
    for (const [i, job] of finals.entries()) expect(`${job.type} ${job.status}`).toBe(`${job.type} ${submitted[i]!.spec.expect}`);

    // The killed worker's jobs came back (a second attempt by another worker) and resumed. A job
    // it finished between the listing and the kill (its first attempt ended before killedAt) was
    // not held when it died.
    const finishedBeforeKill = (j: JobView) => j.attempts === 1 && j.history[0]?.outcome === "succeeded" && Date.parse(j.history[0].endedAt ?? "") <= killedAt;
    const stillHeld = victim.held.filter((h) => !finishedBeforeKill(finals.find((j) => j.id === h.id)!));
    expect(stillHeld.length).toBeGreaterThan(0);
    for (const { id } of stillHeld) {
      const job = finals.find((j) => j.id === id)!;
      expect(job.status).toBe("succeeded");
      expect(job.attempts).toBeGreaterThanOrEqual(2);
      expect(job.history[0]!.worker).toBe(victim.worker.id);
      expect(job.history[0]!.outcome).toBe("worker_lost");
      expect(job.history.at(-1)!.worker).not.toBe(victim.worker.id);
      if (checkpointed.has(id)) expect(job.result?.resumedFrom ?? 0).toBeGreaterThan(0);
    }
    const retried = finals.filter((j) => j.type === "demo.fail" && j.status === "succeeded");
    for (const j of retried) expect(j.attempts).toBe(2);

    // ECS's stand-in replaced the dead process.
    const { body } = await admin<{ processes: { slot: number; restarts: number; pid: number }[] }>("GET", "/local/processes");
    expect(body.processes.some((p) => p.restarts >= 1 && p.pid !== victim.worker.pid)).toBe(true);
  });
});
