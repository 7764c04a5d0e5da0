/**
 * The dashboard in headless Chromium (Debian's package, driven by playwright-core), against a
 * real `npm start` with two callers and the admin: a job's progress bar moves and it reaches
 * succeeded; a job nobody can start (its queue's only worker frozen with SIGSTOP) fires
 * JobsNotStarting, which clears once the worker is back; and the admin's day: find an old
 * failed job by a server-side search and by paging, read its attempts (error, stack) and its log,
 * cancel another caller's running job, and retry every failed job of a type after a dry run;
 * the controls and schedules panels show a pause, a limit and two schedules the test made.
 * Screenshots go to test/artifacts/.
 */
import { randomBytes } from "node:crypto";
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

interface Job {
  id: string;
  status: string;
  worker: string | null;
  history: { attempt: number; worker: string }[];
  actions?: { action: string; by: string }[];
}
interface Attempt {
  attempt: number;
  worker: string;
  outcome: string | null;
  error: { code: string; message: string; stack: string | null } | null;
}

describe.skipIf(!available)("the dashboard in headless Chromium", () => {
  let sys: Launched;
  let ctx: BrowserContext;
  let page: Page;
  let profile: string;
  /** Two callers, each seeing only its own jobs, and the admin, who sees and acts on all. */
  let call: ReturnType<typeof client>;
  let other: ReturnType<typeof client>;
  let admin: ReturnType<typeof client>;
  const frozen: number[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const [mine, theirs] = [randomBytes(12).toString("hex"), randomBytes(12).toString("hex")];
    sys = await launchLocal({
      args: ["--memory", "--workers", "1"],
      env: {
        WARDEN_API_TOKENS: `local:${mine},other:${theirs}`,
        WARDEN_LEASE_SECONDS: "3",
        WARDEN_SWEEP_INTERVAL_SECONDS: "1",
        WARDEN_START_DEADLINE_SECONDS: "1",
        // StuckJobs: 2 periods of 60 s become 2 of 3 s.
        WARDEN_ALARM_TIME_SCALE: "0.05",
        WARDEN_ALARM_INTERVAL_SECONDS: "0.5",
      },
    });
    call = client(sys.url, mine);
    other = client(sys.url, theirs);
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
    thaw();
    await ctx?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await sys?.stop();
  });

  /** Freezes the Fargate-style worker processes: alive to the fleet, useless to a job on `large`. */
  const freeze = async () => {
    const { body } = await admin<{ processes: { pid: number }[] }>("GET", "/local/processes");
    for (const p of body.processes) {
      process.kill(p.pid, "SIGSTOP");
      frozen.push(p.pid);
    }
  };
  function thaw(): void {
    for (const pid of frozen.splice(0)) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        /* gone */
      }
    }
  }

  const submitAs = async (who: ReturnType<typeof client>, body: Record<string, unknown>): Promise<string> => {
    const r = await who<{ job: { id: string } }>("POST", "/jobs", body);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body.job.id;
  };
  const submit = (body: Record<string, unknown>) => submitAs(call, body);
  const jobOf = async (id: string, who = admin): Promise<Job> => {
    const r = await who<{ job: Job }>("GET", `/jobs/${id}`);
    expect(r.status).toBe(200);
    return r.body.job;
  };
  const row = (id: string) => page.locator(`#jobs tr[data-job-id="${id}"]`);
  const rowStatus = (id: string) => row(id).getAttribute("data-status", { timeout: 1000 }).catch(() => null);
  const shownIds = () => page.locator("#jobs tbody tr[data-job-id]").evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.jobId!));
  const toastSays = (prefix: string) => waitFor(async () => (await page.locator("#toast").textContent())?.startsWith(prefix), 10_000, `the toast to say ${prefix}`);
  /** Sets the search form and runs it (the fields not given are emptied). */
  const search = async (f: { id?: string; type?: string; owner?: string; status?: string; queue?: string } = {}) => {
    await page.locator("#search-clear").click();
    await page.fill("#f-id", f.id ?? "");
    await page.fill("#f-type", f.type ?? "");
    await page.fill("#f-owner", f.owner ?? "");
    await page.selectOption("#f-status", f.status ?? "");
    await page.selectOption("#f-queue", f.queue ?? "");
    await page.locator("#search-go").click();
  };

  it("shows a job's progress bar move and its state reach succeeded", async () => {
    const id = await submit({ type: "demo.sleep", input: { items: 12, msPerItem: 400 } });
    const seen: number[] = [];
    await waitFor(
      async () => {
        // Status first: once it says succeeded, the bar read after it is from that render or a later one.
        const done = (await rowStatus(id)) === "succeeded";
        const v = await row(id).locator("[role=progressbar]").getAttribute("aria-valuenow", { timeout: 1000 }).catch(() => null);
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

  it("fires JobsNotStarting for a job nobody picks up, and clears it once the job runs", async () => {
    const alarmState = () => page.locator('tr[data-alarm="JobsNotStarting-large"]').getAttribute("data-state", { timeout: 1000 }).catch(() => null);
    expect(await alarmState()).not.toBe("ALARM");
    await freeze();
    try {
      const id = await submit({ type: "demo.sleep", queue: "large", input: { items: 4, msPerItem: 100 } });
      await waitFor(async () => (await alarmState()) === "ALARM", 30_000, "JobsNotStarting-large to fire on the page");
      expect(await rowStatus(id)).toBe("queued");
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-stuck.png"), fullPage: true });

      thaw();
      await waitFor(async () => (await rowStatus(id)) === "succeeded", 30_000, "the stuck job to run once its worker is back");
      await page.locator("#sweep").click();
      await toastSays("sweep:");
      // The toast names the repair counts (report.counts), never the report's other fields.
      expect(await page.locator("#toast").textContent()).toMatch(/^sweep: (nothing to repair|((reclaimed|failedExhausted|failedTimeout|cancelled|resent|skipped) \d+(, )?)+)$/);
      await waitFor(async () => (await alarmState()) === "OK", 30_000, "JobsNotStarting-large to clear on the page");
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-cleared.png"), fullPage: true });
    } finally {
      thaw();
    }
  });

  it("finds an old failed job by search and by paging, shows its attempts and log, cancels another caller's job and retries every failed job of a type", async () => {
    // Markup in the error message: the page must show it as text, never as an element.
    const marker = `<b class="injected">marker ${randomBytes(4).toString("hex")}</b>`;
    // Failed jobs of one type, on the Fargate-style worker, the first of them older than 100+ newer jobs.
    const failed: string[] = [];
    for (let i = 0; i < 3; i++) failed.push(await submit({ type: "demo.permanent", queue: "large", input: { message: `${marker} #${i}` } }));
    const old = failed[0]!;
    await waitFor(async () => (await Promise.all(failed.map((id) => jobOf(id)))).every((j) => j.status === "failed"), 30_000, "the demo.permanent jobs to fail");
    for (let i = 0; i < 110; i += 10) {
      await Promise.all(Array.from({ length: 10 }, () => submit({ type: "demo.sleep", input: { items: 0, msPerItem: 0 } })));
    }
    // Another caller's long job, newest of all.
    const theirs = await submitAs(other, { type: "demo.sleep", input: { items: 300, msPerItem: 200 } });
    expect((await call("GET", `/jobs/${theirs}`)).status, "a caller cannot see another's job").toBe(404);

    // The unfiltered table starts with the newest page: the old job is not on it...
    await search();
    await waitFor(async () => (await shownIds()).includes(theirs), 10_000, "the newest job on the first page");
    expect(await shownIds()).not.toContain(old);
    expect(await page.locator("#more").isVisible()).toBe(true);
    // ...and Load more follows nextCursor down to it.
    for (let clicks = 0; !(await shownIds()).includes(old); clicks++) {
      expect(clicks, "Load more clicks before the old job shows").toBeLessThan(10);
      await page.locator("#more:not([disabled])").click();
      await page.locator("#more:not([disabled]), #more[hidden]").first().waitFor({ state: "attached" });
    }
    expect((await shownIds()).length).toBeGreaterThan(100);

    // A search by type and status asks the server, and finds exactly the failed ones however old.
    await search({ type: "demo.permanent", status: "failed" });
    await waitFor(async () => (await shownIds()).sort().join() === [...failed].sort().join(), 10_000, "the search to show the three failed jobs");
    // By id: that one job.
    await search({ id: old });
    await waitFor(async () => (await shownIds()).join() === old, 10_000, "the search by id to show the one job");
    // By owner and status: the other caller's running job and nothing of ours.
    await search({ owner: "other", status: "running" });
    await waitFor(async () => (await shownIds()).join() === theirs, 20_000, "the other caller's job, running");

    // Its detail: attempts with their worker, error and stack, why it is where it is, its log.
    await search({ id: old });
    await row(old).click();
    await page.locator(`#detail[data-job-id="${old}"][data-loaded]`).waitFor();
    const { body: apiAttempts } = await admin<{ attempts: Attempt[] }>("GET", `/jobs/${old}/attempts`);
    expect(apiAttempts.attempts.length).toBeGreaterThanOrEqual(1);
    const attempts = page.locator("#d-attempts .attempt");
    await expect.poll(() => attempts.count()).toBe(apiAttempts.attempts.length);
    for (const [i, a] of apiAttempts.attempts.entries()) {
      const shown = attempts.nth(i);
      expect(await shown.getAttribute("data-attempt")).toBe(String(a.attempt));
      expect(await shown.locator(".attempt-head .mono").textContent()).toBe(a.worker);
      expect(a.error, "a failed attempt keeps its error").not.toBeNull();
      expect(await shown.locator(".error-code").textContent()).toBe(a.error!.code);
      expect(await shown.locator(".error-message").textContent()).toBe(a.error!.message);
      expect(a.error!.message).toContain(marker);
      expect(a.error!.stack).toMatch(/PermanentError[\s\S]*\n\s+at /);
      expect(await shown.locator("pre.stack").textContent()).toBe(a.error!.stack);
    }
    expect(await page.locator("#detail .injected").count(), "markup in job data stays text").toBe(0);
    expect(await page.locator("#d-input").textContent()).toBe(JSON.stringify({ message: `${marker} #0` }, null, 2));
    expect(await page.locator("#d-why .why-message").textContent()).not.toBe("");
    const { body: apiLogs } = await admin<{ lines: { message: string }[] }>("GET", `/jobs/${old}/logs?limit=500`);
    expect(apiLogs.lines.length, "the runner logs about the attempt it ran").toBeGreaterThan(0);
    await expect.poll(() => page.locator("#d-logs tbody tr.log-line").count()).toBe(apiLogs.lines.length);
    expect(await page.locator("#d-logs tbody tr.log-line .log-message").first().textContent()).toContain(apiLogs.lines[0]!.message);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-detail.png"), fullPage: true });
    await page.locator("#detail-close").click();

    // Cancel the other caller's running job as the admin, through POST /jobs/{id}/cancel.
    await search({ owner: "other" });
    await waitFor(async () => (await rowStatus(theirs)) === "running", 20_000, "their job to run");
    const running = await jobOf(theirs);
    expect(await row(theirs).locator("td.worker").textContent(), "a running job names its worker").toBe(running.worker ?? "");
    expect(running.worker).toBeTruthy();
    // Its progress and heartbeat move on every poll, and its Cancel button stays the same node.
    const cancelSel = `#jobs tr[data-job-id="${theirs}"] button[data-action=cancel]`;
    await page.evaluate((sel) => ((window as unknown as { kept: Element | null }).kept = document.querySelector(sel)), cancelSel);
    await page.waitForTimeout(2500);
    expect(await page.evaluate((sel) => (window as unknown as { kept: Element | null }).kept === document.querySelector(sel), cancelSel), "the Cancel button kept across polls").toBe(true);
    await row(theirs).locator("button[data-action=cancel]").click();
    await toastSays("cancel:");
    await waitFor(async () => (await rowStatus(theirs)) === "cancelled", 20_000, "the row to show cancelled");
    const cancelled = await jobOf(theirs, other);
    expect(cancelled.status, "its owner sees it cancelled").toBe("cancelled");
    expect(cancelled.actions, "and who asked").toContainEqual(expect.objectContaining({ action: "cancel", by: "admin" }));

    // Retry every failed demo.permanent job: a dry run counts, Confirm acts. The worker on `large`
    // is frozen, so the retried jobs stay queued for the API to show.
    await freeze();
    try {
    await page.fill("#bulk-type", "demo.permanent");
    await page.locator("#bulk-retry").click();
    await waitFor(async () => (await page.locator("#bulk-msg").getAttribute("data-matched")) === "3", 20_000, "the dry run to count three");
    expect(await page.locator("#bulk-msg").textContent()).toContain("dry run: 3 failed job(s) of type demo.permanent");
    expect((await Promise.all(failed.map((id) => jobOf(id)))).map((j) => j.status), "a dry run changes nothing").toEqual(["failed", "failed", "failed"]);
    await page.locator("#bulk-confirm").click();
    await waitFor(async () => (await page.locator("#bulk-msg").getAttribute("data-acted")) === "3", 20_000, "the retry to act on three");
    const retried = await Promise.all(failed.map((id) => jobOf(id)));
    expect(retried.map((j) => j.status), "queued again, as the API says").toEqual(["queued", "queued", "queued"]);
    expect(retried.map((j) => j.actions?.at(-1))).toEqual(failed.map(() => expect.objectContaining({ action: "retry", by: "admin" })));
    // A queued job has no worker: the table shows none.
    await search({ type: "demo.permanent" });
    await waitFor(async () => (await Promise.all(failed.map(rowStatus))).every((s) => s === "queued"), 10_000, "the retried rows to show queued");
    for (const id of failed) expect(await row(id).locator("td.worker").textContent()).toBe("");
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
    } finally {
      thaw();
    }
  });

  it("shows a parent's children as a tree with their counts, pages them, opens a child and goes back to its parent, and opens a chain's nested steps in place", async () => {
    // 60 children: counted from their records (up to 100 are), and more than one page (50) of the tree.
    const children = Array.from({ length: 60 }, (_, i) => ({ type: "demo.chunk", input: { from: i, to: i + 2 }, ...(i === 7 ? { key: "seventh" } : {}) }));
    const parent = await submit({ type: "demo.combine", input: {}, children });
    // A chain of two steps is nested two deep under its job. Its job (demo.transcribe again) is
    // handed the second step's result, which is not its input: it fails, and the tree shows the steps that ran.
    const chain = await submit({ type: "demo.transcribe", after: [{ type: "demo.download", input: { url: "https://example.com/tree.mp3" } }, { type: "demo.transcribe" }] });
    await waitFor(async () => (await jobOf(parent)).status === "succeeded", 60_000, "the parent to succeed after its 60 children");
    const { body: firstPage } = await admin<{ children: { id: string; childIndex: number; result: unknown }[]; total: number }>("GET", `/jobs/${parent}/children?limit=60`);
    expect(firstPage.total).toBe(60);
    const seventh = firstPage.children.find((c) => c.childIndex === 7)!;

    await search({ id: parent });
    await row(parent).click();
    await page.locator(`#detail[data-job-id="${parent}"][data-loaded]`).waitFor();
    await page.locator("#d-children[data-loaded]").waitFor();
    expect(await page.locator("#d-children-box").isVisible()).toBe(true);
    const count = (k: string) => page.locator(`#d-children-counts [data-count="${k}"]`).getAttribute("data-value", { timeout: 1000 }).catch(() => null);
    expect(await count("total")).toBe("60");
    expect(await count("succeeded")).toBe("60");
    expect(await count("failed")).toBe("0");
    expect(await count("queued"), "up to 100 children, the live ones are counted by status").toBe("0");
    expect(await page.locator("#d-parent").isVisible(), "a parent that is no child has no parent link").toBe(false);

    // The first page, by place, then Load more for the rest.
    const items = page.locator("#d-children > ul.tree > li.tree-item");
    const indexes = () => items.evaluateAll((lis) => lis.map((li) => Number((li as HTMLElement).dataset.index)));
    await expect.poll(indexes, { timeout: 15_000 }).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const foot = page.locator("#d-children > ul.tree > li.tree-foot");
    expect(await foot.locator(".hint").textContent()).toBe("50 of 60 shown");
    await foot.locator("button[data-action=more-children]:not([disabled])").click();
    await expect.poll(indexes, { timeout: 15_000 }).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(await foot.locator("button[data-action=more-children]").isVisible(), "no more pages").toBe(false);
    const line = items.nth(7).locator(".child-line");
    expect(await line.locator(".child-key").textContent()).toBe("seventh");
    expect(await line.locator(".child-outcome").textContent()).toBe(`→ ${JSON.stringify(seventh.result)}`);
    expect(seventh.result).toEqual({ sum: 15, count: 2 });
    expect(await line.locator(".badge.status").textContent()).toBe("succeeded");
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-children.png"), fullPage: true });

    // A child opens its own detail, which links back to its parent.
    await line.click();
    await page.locator(`#detail[data-job-id="${seventh.id}"][data-loaded]`).waitFor();
    await page.locator("#d-parent-link").waitFor();
    expect(await page.locator("#d-parent").textContent()).toBe(`child #7 (key seventh) of ${parent}`);
    expect(await page.locator("#d-children-box").isVisible(), "a child with no children of its own has no tree").toBe(false);
    expect(await page.locator("#d-input").textContent()).toBe(JSON.stringify({ from: 7, to: 9 }, null, 2));
    await page.locator("#d-parent-link").click();
    await page.locator(`#detail[data-job-id="${parent}"][data-loaded]`).waitFor();
    await page.locator("#d-children[data-loaded]").waitFor();
    await expect.poll(indexes, { message: "the parent's tree from its first page again", timeout: 15_000 }).toEqual(Array.from({ length: 50 }, (_, i) => i));

    // The chain: its job's one child is the last step, which waited on the first; it opens in place.
    await waitFor(async () => ["succeeded", "failed", "cancelled"].includes((await jobOf(chain)).status), 60_000, "the chain's job to end");
    await page.locator("#detail-close").click();
    await search({ id: chain });
    await row(chain).click();
    await page.locator(`#detail[data-job-id="${chain}"][data-loaded]`).waitFor();
    await page.locator("#d-children[data-loaded]").waitFor();
    const step = page.locator("#d-children > ul.tree > li.tree-item");
    await expect.poll(() => step.count(), { timeout: 15_000 }).toBe(1);
    expect(await step.locator(".child-line .child-type").first().textContent()).toBe("demo.transcribe");
    expect(await step.locator(".child-line .badge.status").first().textContent()).toBe("succeeded");
    await step.locator(".child-line button[data-action=expand]").click();
    const nested = step.locator("ul.tree > li.tree-item");
    await expect.poll(() => nested.count(), { timeout: 15_000 }).toBe(1);
    expect(await nested.locator(".child-type").textContent()).toBe("demo.download");
    expect(await nested.locator(".child-outcome").textContent()).toBe(`→ ${JSON.stringify({ file: "/tmp/https_example_com_tree_mp3", bytes: 28000 })}`);
    expect(await page.locator("#detail").getAttribute("data-job-id"), "the expander opens the branch, not the step's detail").toBe(chain);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-chain.png"), fullPage: true });
    // The nested step opens its own detail too: a child of the step, not of the chain's job.
    const [stepId, download] = [await step.getAttribute("data-job-id"), await nested.getAttribute("data-job-id")];
    await nested.locator(".child-line").click();
    await page.locator(`#detail[data-job-id="${download}"][data-loaded]`).waitFor();
    expect(await page.locator("#d-parent-link").getAttribute("data-job-id")).toBe(stepId);
    expect(await page.locator("#d-parent").textContent()).toBe(`child #0 of ${stepId}`);
    await page.locator("#detail-close").click();
  });

  it("shows the pauses and limits, and every caller's schedules with their cadence, next run and counts, as they change", async () => {
    const controlRow = (kind: string, target: string) => page.locator(`#controls tr[data-control="${kind}"][data-target="${target}"]`);
    const scheduleRow = (id: string) => page.locator(`#schedules tr[data-schedule="${id}"]`);

    expect((await admin("POST", "/admin/pauses/type:demo.hang")).status).toBe(200);
    expect((await admin("PUT", `/admin/limits/${encodeURIComponent("key:dash/acme")}`, { concurrency: 2, rate: { starts: 5, perSeconds: 1 } })).status).toBe(200);
    // A caller's cron in a zone (it fires next at 02:30 Paris time), and another caller's fixed rate.
    const cron = await call("POST", "/schedules", { id: "dash.nightly", type: "demo.sleep", input: { items: 1 }, cron: "30 2 * * *", timeZone: "Europe/Paris" });
    expect(cron.status, JSON.stringify(cron.body)).toBe(201);
    const rate = await other("POST", "/schedules", { id: "dash.tick", type: "demo.sleep", input: { items: 0, msPerItem: 0 }, everySeconds: 3600, overlap: "allow" });
    expect(rate.status, JSON.stringify(rate.body)).toBe(201);

    await controlRow("pause", "type:demo.hang").waitFor({ timeout: 10_000 });
    const pause = controlRow("pause", "type:demo.hang");
    expect(await pause.locator(".badge.paused").textContent()).toBe("paused");
    expect(await pause.locator("td").nth(1).textContent()).toMatch(/^\d+s ago by admin$/);
    expect(await pause.getAttribute("data-held")).toBe("0");
    const limit = controlRow("limit", "key:dash/acme");
    await limit.waitFor({ timeout: 10_000 });
    expect(await limit.locator("td.limit").textContent()).toBe("at most 2 at once · 5/1s starts");
    expect(await limit.locator("td.running").textContent()).toBe("0");
    expect(await limit.locator("td.held").textContent()).toBe("0");

    // The admin sees both callers' schedules.
    await scheduleRow("dash.nightly").waitFor({ timeout: 10_000 });
    const nightly = scheduleRow("dash.nightly");
    expect(await nightly.locator("td.cadence").textContent()).toBe("30 2 * * * (Europe/Paris)");
    expect(await nightly.locator("td").nth(2).textContent()).toBe("demo.sleep");
    expect(await nightly.getAttribute("data-paused")).toBe("false");
    expect(await nightly.locator("td.next").textContent()).toMatch(/^in \d+(s|m( \d+s)?|h)$/);
    const nextAt = await page.evaluate((iso: string) => new Date(iso).toLocaleString(), cron.body.schedule.nextRuns[0] as string);
    expect(await nightly.locator("td.next").getAttribute("title"), "the next run's time, in the browser's own way").toBe(nextAt);
    expect(await nightly.locator("td.counts").textContent()).toBe("0 / 0 / 0");
    const tick = scheduleRow("dash.tick");
    await tick.waitFor({ timeout: 10_000 });
    expect(await tick.locator("td.cadence").textContent()).toBe("every 1h");
    expect(await tick.locator("td.next").textContent()).toMatch(/^in (1h|59m \d+s)$/);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-controls-schedules.png"), fullPage: true });

    // A paused schedule says so, with no next run.
    expect((await other("POST", "/schedules/dash.tick/pause")).status).toBe(200);
    await waitFor(async () => (await tick.getAttribute("data-paused", { timeout: 1000 }).catch(() => null)) === "true", 10_000, "dash.tick to show paused");
    expect(await tick.locator(".badge.paused").textContent()).toBe("paused");
    expect(await tick.locator("td.next").textContent()).toBe("–");

    // Taken away, the panels say there is nothing.
    expect((await admin("DELETE", "/admin/pauses/type:demo.hang")).status).toBe(200);
    expect((await admin("DELETE", `/admin/limits/${encodeURIComponent("key:dash/acme")}`)).status).toBe(200);
    expect((await call("DELETE", "/schedules/dash.nightly")).status).toBe(200);
    expect((await other("DELETE", "/schedules/dash.tick")).status).toBe(200);
    await waitFor(async () => (await page.locator("#controls tbody").textContent()) === "no pauses and no limits", 10_000, "the controls panel to be empty");
    await waitFor(async () => (await page.locator("#schedules tbody").textContent()) === "no schedules", 10_000, "the schedules panel to be empty");
  });
});
