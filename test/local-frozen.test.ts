/**
 * A queue whose workers are all frozen pages (issue 16, item 7), through `npm start` with short
 * timings: every Fargate-style worker process is SIGSTOPped (alive to ECS, useless to its jobs,
 * and no exit, so no death event), jobs are submitted to `large`, and the JobsNotStarting-large
 * alarm must go to ALARM within twice the start deadline of the first submission, while the
 * sweeper keeps re-ringing their doorbells; the stuck report lists the jobs with their wait and
 * rings, and `GET /jobs/{id}/why` names the cause. Then the workers are continued, the jobs run,
 * and the alarm clears.
 */
import { describe, expect, it } from "vitest";
import { notStartingThresholdSeconds } from "../core/alarms.js";
import type { StuckReport } from "../core/stuck.js";
import { wardenAt } from "./support/cli.js";
import { waitFor } from "./support/emulators.js";
import { useLaunchedWithFreezes } from "./support/frozen.js";

/** Long enough that a loaded machine's slow sweeps and HTTP round trips (about a second) fit inside the margin to twice it. */
const START_DEADLINE_S = 6;
const ALARM = "JobsNotStarting-large";

interface LocalAlarm {
  id: string;
  state: "OK" | "ALARM" | "INSUFFICIENT_DATA";
  threshold: number;
}

describe("every Fargate-style worker frozen", () => {
  const { sys, call, admin, freeze, thaw } = useLaunchedWithFreezes({
    args: ["--memory", "--workers", "2"],
    env: {
      WARDEN_LEASE_SECONDS: "3",
      WARDEN_SWEEP_INTERVAL_SECONDS: "0.5",
      WARDEN_START_DEADLINE_SECONDS: String(START_DEADLINE_S),
      // JobsNotStarting's 60 s period becomes 1.2 s; its threshold follows the start deadline itself.
      WARDEN_ALARM_TIME_SCALE: "0.02",
      WARDEN_ALARM_INTERVAL_SECONDS: "0.25",
    },
  });
  const frozen: number[] = [];

  const alarm = async (id: string): Promise<LocalAlarm | undefined> =>
    (await admin<{ alarms: LocalAlarm[] }>("GET", "/local/alarms")).body.alarms.find((a) => a.id === id);

  it("JobsNotStarting-large fires within twice the start deadline, the stuck report lists the jobs, and why names the cause", async () => {
    const threshold = notStartingThresholdSeconds(START_DEADLINE_S * 1000);
    expect((await alarm(ALARM))?.threshold).toBe(threshold);
    expect((await alarm(ALARM))?.state).not.toBe("ALARM");

    const { body } = await admin<{ processes: { pid?: number; ready: boolean }[] }>("GET", "/local/processes");
    expect(body.processes.length).toBe(2);
    for (const p of body.processes) {
      expect(p.ready && p.pid).toBeTruthy();
      freeze(p.pid!);
      frozen.push(p.pid!);
    }

    const submittedAt = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await call<{ job: { id: string } }>("POST", "/jobs", { type: "demo.sleep", queue: "large", input: { items: 2, msPerItem: 50 } });
      expect(r.status).toBe(201);
      ids.push(r.body.job.id);
    }

    // Polled well past the bound, so a late alarm fails on the measured time, not on a timeout.
    await waitFor(async () => (await alarm(ALARM))?.state === "ALARM", 4 * START_DEADLINE_S * 1000, `${ALARM} to fire`);
    const tookMs = Date.now() - submittedAt;
    console.log(`${ALARM} fired ${tookMs} ms after the first submission (start deadline ${START_DEADLINE_S} s, threshold ${threshold} s)`);
    // Not before a job had waited past the threshold (it is the wait that fires it), and within twice the start deadline.
    expect(tookMs).toBeGreaterThan(threshold * 1000);
    expect(tookMs).toBeLessThan(2 * START_DEADLINE_S * 1000);
    expect((await alarm("JobsNotStarting-default"))?.state).not.toBe("ALARM");

    // The stuck report's not-starting list: the jobs, each waited a start deadline or more and rung again.
    const stuck = (await admin<StuckReport>("GET", "/admin/stuck")).body;
    expect(stuck.notStarting.large.oldestWaitSeconds).toBeGreaterThanOrEqual(Math.floor(threshold));
    expect(stuck.notStarting.large.jobs.map((j) => j.id).sort()).toEqual([...ids].sort());
    for (const j of stuck.notStarting.large.jobs) {
      expect(j.waitedSeconds).toBeGreaterThanOrEqual(START_DEADLINE_S);
      expect(j.rings).toBeGreaterThanOrEqual(1);
    }
    expect(stuck.notStarting.default.jobs).toEqual([]);

    // Why: queued, rung again, and nobody claimed it.
    const why = await admin<{ why: { state: string; reason: string; rings: number | null } }>("GET", `/jobs/${ids[0]}/why`);
    expect(why.status).toBe(200);
    // The stuck report above saw it rung again (rings >= 1), and nothing has claimed it since.
    expect(why.body.why).toMatchObject({ state: "queued", reason: "not_claimed" });
    expect(why.body.why.rings).toBeGreaterThanOrEqual(1);
    // And `warden why` says so to the person on call, pointing at the workers.
    const cli = await wardenAt(() => sys().url)(["why", ids[0]!], sys().adminToken);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/^queued, not claimed: doorbell rung \d+ times? since .* and no worker claimed it; check `warden workers`/);

    // Continued, the workers take the jobs, and the alarm clears once the wait is gone.
    for (const pid of frozen.splice(0)) thaw(pid);
    for (const id of ids) {
      await waitFor(async () => (await call<{ job: { status: string } }>("GET", `/jobs/${id}`)).body.job.status === "succeeded", 30_000, `job ${id} to succeed`);
    }
    await waitFor(async () => (await alarm(ALARM))?.state === "OK", 15_000, `${ALARM} to clear`);
  }, 60_000);
});
