/**
 * Recovery in seconds through `npm start` at the cloud's default timings (a 60 s lease, a sweep
 * every 10 s): a SIGKILLed Fargate-style worker's job runs again within seconds, because the
 * fleet reports the death (local/fleet.ts → core/deaths.ts), not after its lease runs out; and
 * GET /admin/workers lists the holder of a job at once and the killed worker as dead.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiJob, ApiWorker } from "../core/api/view.js";
import { TIMINGS } from "../core/config.js";
import { client, launchLocal, type Launched } from "../local/launch.js";
import { waitFor } from "./support/emulators.js";

describe("recovery from a worker's death at default timings", () => {
  let sys: Launched;
  let call: ReturnType<typeof client>;
  let admin: ReturnType<typeof client>;

  beforeAll(async () => {
    sys = await launchLocal({
      args: ["--workers", "2"],
      env: { WARDEN_LEASE_SECONDS: String(TIMINGS.leaseMs / 1000), WARDEN_SWEEP_INTERVAL_SECONDS: String(TIMINGS.sweepIntervalMs / 1000) },
    });
    call = client(sys.url, sys.callerToken);
    admin = client(sys.url, sys.adminToken);
  });
  afterAll(async () => {
    expect(await sys?.stop()).toBe(0);
  });

  it("a SIGKILLed worker's job is running again on another worker within seconds, far inside its 60 s lease", async () => {
    const r = await call<{ job: ApiJob }>("POST", "/jobs", { type: "demo.sleep", queue: "large", input: { items: 400, msPerItem: 100 } });
    expect(r.status).toBe(201);
    const id = r.body.job.id;
    const holder = await waitFor(
      async () => {
        const { body } = await admin<{ workers: ApiWorker[] }>("GET", "/admin/workers");
        return body.workers.find((w) => w.jobs.includes(id) && w.pid);
      },
      20_000,
      "the worker holding the job listed with its pid",
    );
    const killedAt = Date.now();
    process.kill(holder.pid!, "SIGKILL");
    const again = await waitFor(
      async () => {
        const { body } = await call<{ job: ApiJob }>("GET", `/jobs/${id}`);
        const last = body.job.history.at(-1);
        return body.job.status === "running" && last && last.worker !== holder.id ? body.job : undefined;
      },
      TIMINGS.leaseMs - 10_000,
      "the job running again under another worker",
    );
    const tookMs = Date.now() - killedAt;
    expect(tookMs).toBeLessThan(15_000);
    expect(again.history.at(-2)).toMatchObject({ worker: holder.id, outcome: "worker_lost" });
    const { body } = await admin<{ workers: ApiWorker[] }>("GET", "/admin/workers");
    expect(body.workers.find((w) => w.id === holder.id)).toMatchObject({ state: "dead", jobs: [] });
    await call("POST", `/jobs/${id}/cancel`);
  }, 90_000);
});
