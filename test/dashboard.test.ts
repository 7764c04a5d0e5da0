/**
 * The dashboard in headless Chromium (Debian's package, driven by playwright-core): a job's
 * progress bar moves and it reaches succeeded, the cancel button cancels another, and a stuck job
 * made on purpose (its only workers frozen with SIGSTOP) fires the StuckJobs alarm, which clears
 * once the workers are back and the sweep finds nothing overdue. Screenshots go to test/artifacts/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, launchLocal, type Launched } from "../local/launch.js";
import { waitFor } from "./support/emulators.js";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = join(import.meta.dirname, "artifacts");
const available = existsSync(CHROMIUM);
if (!available && process.env.CI) throw new Error(`${CHROMIUM} is missing: .ci/run must install Debian's chromium package`);
if (!available) console.warn(`dashboard tests skipped: ${CHROMIUM} is not installed (apt-get install -y chromium); in CI they run`);

describe.skipIf(!available)("the dashboard in headless Chromium", () => {
  let sys: Launched;
  let ctx: BrowserContext;
  let page: Page;
  let profile: string;
  let call: ReturnType<typeof client>;
  let admin: ReturnType<typeof client>;
  const frozen: number[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    sys = await launchLocal({
      args: ["--memory", "--workers", "1"],
      env: {
        WARDEN_LEASE_SECONDS: "3",
        WARDEN_SWEEP_INTERVAL_SECONDS: "1",
        WARDEN_START_DEADLINE_SECONDS: "1",
        // StuckJobs: 2 periods of 60 s become 2 of 3 s.
        WARDEN_ALARM_TIME_SCALE: "0.05",
        WARDEN_ALARM_INTERVAL_SECONDS: "0.5",
      },
    });
    call = client(sys.url, sys.callerToken);
    admin = client(sys.url, sys.adminToken);
    profile = mkdtempSync(join(tmpdir(), "warden-chromium-"));
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    page = ctx.pages()[0] ?? (await ctx.newPage());
    await page.goto(`${sys.url}/#token=${encodeURIComponent(sys.adminToken)}`);
    await page.waitForSelector("#app:not([hidden])");
  });

  afterAll(async () => {
    for (const pid of frozen) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        /* gone */
      }
    }
    await ctx?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await sys?.stop();
  });

  const submit = async (body: Record<string, unknown>): Promise<string> => {
    const r = await call<{ job: { id: string } }>("POST", "/jobs", body);
    expect(r.status).toBe(201);
    return r.body.job.id;
  };
  const rowStatus = (id: string) => page.locator(`tr[data-job-id="${id}"]`).getAttribute("data-status", { timeout: 1000 }).catch(() => null);

  it("shows a job's progress bar move and its state reach succeeded", async () => {
    const id = await submit({ type: "demo.sleep", input: { items: 12, msPerItem: 400 } });
    const seen: number[] = [];
    await waitFor(
      async () => {
        // Status first: once it says succeeded, the bar read after it is from that render or a later one.
        const done = (await rowStatus(id)) === "succeeded";
        const v = await page.locator(`tr[data-job-id="${id}"] [role=progressbar]`).getAttribute("aria-valuenow", { timeout: 1000 }).catch(() => null);
        if (v !== null && Number(v) !== seen.at(-1)) seen.push(Number(v));
        return done;
      },
      30_000,
      "the job's row to show succeeded",
    );
    // It moved: at least two distinct values strictly between 0 and 100, rising, then 100.
    const partial = seen.filter((v) => v > 0 && v < 100);
    expect(partial.length, `progress seen: ${seen.join(", ")}`).toBeGreaterThanOrEqual(2);
    expect([...partial].sort((a, b) => a - b)).toEqual(partial);
    expect(seen.at(-1)).toBe(100);
  });

  it("cancels a running job from its button", async () => {
    const id = await submit({ type: "demo.sleep", input: { items: 200, msPerItem: 200 } });
    await waitFor(async () => (await rowStatus(id)) === "running", 20_000, "the job to run");
    await page.locator(`tr[data-job-id="${id}"] button[data-action=cancel]`).click();
    await waitFor(async () => (await page.locator("#toast").textContent())?.startsWith("cancel:"), 10_000, "the cancel request's answer");
    await waitFor(async () => (await rowStatus(id)) === "cancelled", 20_000, "the row to show cancelled");
    const { body } = await call<{ job: { status: string; error: { code: string } } }>("GET", `/jobs/${id}`);
    expect(body.job.status).toBe("cancelled");
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
  });

  it("fires StuckJobs for a job nobody picks up, and clears it once the sweep finds nothing overdue", async () => {
    const alarmState = () => page.locator('tr[data-alarm="StuckJobs"]').getAttribute("data-state", { timeout: 1000 }).catch(() => null);
    expect(await alarmState()).not.toBe("ALARM");
    // Freeze the only Fargate worker: alive to ECS, useless to the job (a zombie).
    const { body } = await admin<{ processes: { pid: number; ready: boolean }[] }>("GET", "/local/processes");
    for (const p of body.processes) {
      process.kill(p.pid, "SIGSTOP");
      frozen.push(p.pid);
    }
    const id = await submit({ type: "demo.sleep", queue: "large", input: { items: 4, msPerItem: 100 } });
    await waitFor(async () => (await alarmState()) === "ALARM", 30_000, "StuckJobs to fire on the page");
    expect(await rowStatus(id)).toBe("queued");
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-stuck.png"), fullPage: true });

    for (const pid of frozen.splice(0)) process.kill(pid, "SIGCONT");
    await waitFor(async () => (await rowStatus(id)) === "succeeded", 30_000, "the stuck job to run once its worker is back");
    await page.locator("#sweep").click();
    await waitFor(async () => (await page.locator("#toast").textContent())?.startsWith("sweep:"), 10_000, "the sweep's report");
    await waitFor(async () => (await alarmState()) === "OK", 30_000, "StuckJobs to clear on the page");
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-cleared.png"), fullPage: true });
  });
});
