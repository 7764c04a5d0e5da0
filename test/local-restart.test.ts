/**
 * Restarting `npm start` on the same data directory keeps every job. A hard stop (SIGKILL of the
 * whole thing, workers included) leaves jobs "running" with nobody holding them: the restarted
 * sweeper recovers them when their leases expire, and queued jobs, whose messages died with the
 * in-memory SQS emulator, get their doorbell rung again at start. A clean stop (SIGTERM) exits 0.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { client, launchLocal, type Launched } from "../local/launch.js";
import { waitFor } from "./support/emulators.js";

interface JobView {
  id: string;
  type: string;
  status: string;
  attempts: number;
  result: { resumedFrom?: number } | null;
  progress: { done: number } | null;
  history: { worker: string; outcome: string | null }[];
}

const dataDir = mkdtempSync(join(tmpdir(), "warden-restart-"));
const env = {
  WARDEN_LEASE_SECONDS: "3",
  WARDEN_SWEEP_INTERVAL_SECONDS: "1",
  WARDEN_API_TOKENS: "local:restart-caller-token",
  WARDEN_ADMIN_TOKEN: "restart-admin-token",
};
const start = () => launchLocal({ args: ["--data-dir", dataDir, "--workers", "1"], env });
let live: Launched | undefined;

afterAll(async () => {
  await live?.crash();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("npm start restarted on the same data directory", () => {
  it("keeps every job and recovers the ones that were running", async () => {
    live = await start();
    let call = client(live.url, live.callerToken);
    // One worker process runs 4 jobs at once: of these 8 large jobs, 4 run and 4 wait queued.
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await call<{ job: JobView }>("POST", "/jobs", { type: "demo.sleep", queue: "large", input: { items: 16, msPerItem: 250, checkpointEvery: 2 } });
      expect(r.status).toBe(201);
      ids.push(r.body.job.id);
    }
    const quick = await call<{ job: JobView }>("POST", "/jobs", { type: "demo.sleep", input: { items: 1, msPerItem: 10 } });
    ids.push(quick.body.job.id);
    await waitFor(async () => (await call<{ job: JobView }>("GET", `/jobs/${quick.body.job.id}`)).body.job.status === "succeeded", 20_000, "the quick job");

    const runningBefore = await waitFor(
      async () => {
        const page = await call<{ jobs: JobView[] }>("GET", "/jobs?status=running&limit=100");
        return page.body.jobs.length > 0 && page.body.jobs.every((j) => (j.progress?.done ?? 0) >= 3) ? page.body.jobs : undefined;
      },
      20_000,
      "running jobs past their first checkpoint",
    );
    const queuedBefore = (await call<{ jobs: JobView[] }>("GET", "/jobs?status=queued&limit=100")).body.jobs;
    expect(queuedBefore.length).toBeGreaterThan(0);

    // A power cut: nothing hands its jobs back.
    await live.crash();

    live = await start();
    call = client(live.url, live.callerToken);
    const all = await call<{ jobs: JobView[] }>("GET", "/jobs?limit=100");
    expect(all.body.jobs.map((j) => j.id).sort()).toEqual([...ids].sort());
    // Nothing was lost or finished by the crash: the running ones are still running (leases not yet expired).
    const after = new Map(all.body.jobs.map((j) => [j.id, j]));
    for (const j of runningBefore) expect(["running", "queued"]).toContain(after.get(j.id)!.status);

    const finals = await waitFor(
      async () => {
        const page = await call<{ jobs: JobView[] }>("GET", "/jobs?limit=100");
        return page.body.jobs.every((j) => j.status === "succeeded") ? page.body.jobs : undefined;
      },
      45_000,
      "every job to succeed after the restart",
    );
    expect(finals).toHaveLength(ids.length);
    for (const before of runningBefore) {
      const j = finals.find((f) => f.id === before.id)!;
      expect(j.attempts).toBeGreaterThanOrEqual(2);
      expect(j.history[0]!.outcome).toBe("worker_lost");
      expect(j.result?.resumedFrom ?? 0).toBeGreaterThan(0);
    }
    expect(live.output.some((l) => /re-sent the doorbell of \d+ queued job/.test(l))).toBe(true);

    // A clean stop exits 0, and the next start still has every job.
    expect(await live.stop()).toBe(0);
    live = await start();
    const again = await client(live.url, live.callerToken)<{ jobs: JobView[] }>("GET", "/jobs?limit=100");
    expect(again.body.jobs.filter((j) => j.status === "succeeded")).toHaveLength(ids.length);
    expect(await live.stop()).toBe(0);
    live = undefined;
    // Three starts and a 45 s recovery: more than the default 60 s on a loaded machine.
  }, 150_000);
});
