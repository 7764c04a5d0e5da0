/**
 * The on-call person's commands (issue 16) as users run them: the `warden` child process over
 * HTTP to the handler on loopback. No worker loop: the test runs each job itself, through a
 * Runner whose log lines it keeps (the API reads them back as the job's logs), so which jobs have
 * run, failed or still wait is decided here and never by timing.
 *
 * The last part runs `main` in-process against a stub API, to see a bulk run follow its cursors.
 */
import { spawn } from "node:child_process";
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, type Io } from "../cli/main.js";
import { WardenClient } from "../client/index.js";
import { silentLog } from "../core/api/jobs.js";
import { PermanentError } from "../core/errors.js";
import { jobLogLineOf } from "../core/job-log.js";
import { builtinRegistry } from "../core/jobs/index.js";
import type { JobLogLine, JobLogSource } from "../core/logs.js";
import { defineJob, type JobLogger } from "../core/registry.js";
import { Runner } from "../core/runner.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { makeHandler } from "../functions/api.js";
import { useEmulators } from "./support/emulators.js";
import { serveApi, type TestServer } from "./support/http-api.js";
import { WARDEN_BIN as BIN, wardenAt, type CliRun } from "./support/cli.js";

const env = useEmulators("cli-oncall");

/** Logs two lines of its own, with fields, then succeeds. */
const chatty = defineJob<{ rows: number }, { rows: number }>({
  name: "oncall.chatty",
  input: z.strictObject({ rows: z.number().int() }),
  runsOn: "lambda",
  async handler(input, ctx) {
    ctx.log.info("imported", { rows: input.rows, file: "report 1.xml" });
    ctx.log.warn("slow row", { row: 7 });
    return { rows: input.rows };
  },
});

/** Fails for good on its first attempt; a type of its own, so the bulk counts are this file's alone. */
const broken = defineJob<Record<string, never>, never>({
  name: "oncall.broken",
  input: z.strictObject({}),
  runsOn: "lambda",
  async handler() {
    throw new PermanentError("oncall.broken: the input names a file that is not there");
  },
});

/** Every job line the runner wrote (its own and the handlers' ctx.log), as the local log keeps them. */
const written: JobLogLine[] = [];
const capture =
  (level: string) =>
  (message: string, extra?: Record<string, unknown>): void => {
    const line = jobLogLineOf({ level: level.toUpperCase(), message, timestamp: new Date().toISOString(), ...extra });
    if (line) written.push(line);
  };
const keptLog: JobLogger = { info: capture("info"), warn: capture("warn"), error: capture("error") };

/** The local source over those lines: the job's, oldest first, at most `limit`. */
const logs: JobLogSource = {
  name: "local",
  async lines(q) {
    const mine = written.filter((l) => l.jobId === q.jobId);
    return { lines: mine.slice(0, q.limit), complete: mine.length <= q.limit };
  },
};

let services: Services;
let server: TestServer;
let runner: Runner;

beforeAll(async () => {
  services = buildServices(loadRuntime(env.emu.env), { registry: builtinRegistry().register(chatty, broken), logs });
  server = await serveApi(makeHandler(services, { log: silentLog }), { "tok-user": { sub: "user" }, "tok-other": { sub: "other" }, "tok-admin": { sub: "ops", admin: true } });
  runner = new Runner(services, { workerId: "oncall-worker", kind: "local", leaseMs: 30_000, log: keptLog });
});

afterAll(async () => {
  runner?.shutdown();
  await server?.close();
});

/** Runs the CLI; the URL and token come from the environment unless the args give them. */
const warden = wardenAt(() => server.url);
type Run = CliRun;

const ok = (run: Run): Run => {
  expect(run.code, run.stderr).toBe(0);
  return run;
};

/** Submits through the API as that caller (the typed client: a CLI process per setup step only slows the file), then runs it here to its end. */
async function submitAndRun(type: string, input: unknown, token = "tok-user"): Promise<string> {
  const { job } = await new WardenClient({ baseUrl: server.url, token }).submit(type, input);
  const outcome = await runner.run(job.id, "default");
  expect(outcome.claimed, JSON.stringify(outcome)).toBe(true);
  return job.id;
}

/** A job written straight to the store, with no doorbell: it stays queued until a test acts on it. */
async function parked(owner: string): Promise<string> {
  const { job } = await services.store.create({ owner, type: "demo.sleep", queue: "default", input: { items: 1 }, maxAttempts: 3, timeoutMs: 60_000 });
  return job.id;
}

describe("why", () => {
  it("says a job waits for its runAt, and until when", async () => {
    const runAt = new Date(Date.now() + 2 * 3600_000).toISOString();
    const { job } = JSON.parse(ok(await warden(["submit", "demo.sleep", "--run-at", runAt, "--json"])).stdout) as { job: { id: string } };
    const [human, json] = await Promise.all([warden(["why", job.id]), warden(["why", job.id, "--json"])]);
    ok(human);
    expect(human.stdout).toMatch(/^queued, waiting for its runAt: it may start at .+ \(in (1h 59m|2h)\)\n$/);
    expect(human.stdout).toContain(runAt.slice(11, 19));
    expect(JSON.parse(ok(json).stdout).why).toMatchObject({ state: "queued", reason: "run_at", until: runAt });
  });

  it("names the worker holding a running job's lease, and the one whose lease ran out", async () => {
    const [held, lapsed] = [await parked("user"), await parked("user")];
    expect((await services.store.claim(held, "w-holding", 5 * 60_000)).ok).toBe(true);
    // A 1 ms lease has run out long before the CLI process asks.
    expect((await services.store.claim(lapsed, "w-gone", 1)).ok).toBe(true);
    const [human, json, gone] = await Promise.all([warden(["why", held]), warden(["why", held, "--json"]), warden(["why", lapsed])]);
    expect(ok(human).stdout).toMatch(/^running on w-holding, lease held until \S+ \(in [45]m( \d+s)?\)\n$/);
    expect(JSON.parse(ok(json).stdout).why).toMatchObject({ state: "running", reason: "running", worker: "w-holding" });
    expect(ok(gone).stdout).toMatch(/^running, but no heartbeat from w-gone since \S+ \(\d+s ago\); the sweeper takes it back \(see `warden stuck`\)\n$/);
  });

  it("answers 404 for another caller's job, exit 3", async () => {
    const id = await parked("other");
    const run = await warden(["why", id]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain("404 not_found");
  });
});

describe("logs", () => {
  it("prints a job's lines, one per line with time, level, attempt, worker, message and fields, and notes the source", async () => {
    const id = await submitAndRun("oncall.chatty", { rows: 120 });
    const [human, json, one] = await Promise.all([warden(["logs", id]), warden(["logs", id, "--json"]), warden(["logs", id, "--limit", "1"])]);
    ok(human);
    const lines = human.stdout.trimEnd().split("\n");
    const imported = lines.find((l) => l.includes("imported"));
    expect(imported, human.stdout).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z\s+INFO\s+#1\s+oncall-worker\s+imported {2}rows=120 file="report 1\.xml"$/);
    expect(lines.find((l) => l.includes("slow row"))).toMatch(/\sWARN\s+#1\s+oncall-worker\s+slow row {2}row=7$/);
    // Oldest first.
    expect(lines.findIndex((l) => l.includes("imported"))).toBeLessThan(lines.findIndex((l) => l.includes("slow row")));
    expect(human.stderr).toBe(`(${lines.length} lines from the local log for ${id})\n`);

    const answer = JSON.parse(ok(json).stdout);
    expect(answer).toMatchObject({ source: "local", complete: true });
    expect(answer.lines).toContainEqual(expect.objectContaining({ message: "imported", attempt: 1, workerId: "oncall-worker", jobId: id, fields: { rows: 120, file: "report 1.xml" } }));

    ok(one);
    expect(one.stdout.trimEnd().split("\n")).toHaveLength(1);
    expect(one.stderr).toMatch(/^\(1 line from the local log for \S+; incomplete: the source stopped early .*--limit\)\n$/);
  });

  it("refuses a --limit that is not a whole number, before sending anything", async () => {
    const run = await warden(["logs", "01JOB", "--limit", "0"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--limit must be a whole number from 1 to 1000 (got "0")');
  });
});

describe("show", () => {
  it("shows a failed job's input, its attempt with worker, times, error and stack", async () => {
    const id = await submitAndRun("oncall.broken", {});
    const [human, json] = await Promise.all([warden(["show", id]), warden(["show", id, "--json"])]);
    ok(human);
    expect(human.stdout).toMatch(new RegExp(`^id\\s+${id}$`, "m"));
    expect(human.stdout).toMatch(/^status\s+failed$/m);
    expect(human.stdout).toMatch(/^input\s+\{\}$/m);
    // The runner keeps the error's name in front of its message.
    expect(human.stdout).toMatch(/^error\s+handler_error: PermanentError: oncall\.broken: the input names a file that is not there$/m);
    // A finished job has no why line: its error says it.
    expect(human.stdout).not.toMatch(/^why/m);
    expect(human.stdout).toMatch(/^attempts:\n {2}#1 {2}oncall-worker {2}\S+ \S+ → \S+ \S+ \(\d+s\) {2}failed\n {6}handler_error: PermanentError: oncall\.broken: the input names a file that is not there\n/m);
    // The stack, indented under the error, from the handler's frame in this file.
    expect(human.stdout).toMatch(/^ {8}at .*cli-oncall\.test\.ts/m);

    const answer = JSON.parse(ok(json).stdout);
    expect(answer.why).toBeNull();
    expect(answer.attempts).toEqual([
      expect.objectContaining({
        attempt: 1,
        worker: "oncall-worker",
        outcome: "failed",
        error: { code: "handler_error", message: "PermanentError: oncall.broken: the input names a file that is not there", stack: expect.stringContaining("cli-oncall.test.ts") },
      }),
    ]);
  });

  it("shows the why line for an unfinished job", async () => {
    const id = await parked("user");
    expect((await services.store.claim(id, "w-showing", 5 * 60_000)).ok).toBe(true);
    const run = ok(await warden(["show", id]));
    expect(run.stdout).toMatch(/^status\s+running\nworker\s+w-showing\nwhy\s+running on w-showing, lease held until/m);
    expect(run.stdout).toMatch(/^attempts:\n {2}#1 {2}w-showing {2}\S+ \S+ → \(running\) {2}running$/m);
  });
});

describe("list filters", () => {
  it("filters by queue, creation time, id and (the admin) owner", async () => {
    const mine = await parked("user");
    const { job: large } = await new WardenClient({ baseUrl: server.url, token: "tok-user" }).submit("demo.sleep", {}, { queue: "large" });
    const theirs = await parked("other");
    const future = new Date(Date.now() + 3600_000).toISOString();
    const [onLarge, recent, beforeAll_, byId, ownerUser, ownerOther, ownerAsUser, badSince] = await Promise.all([
      warden(["list", "--queue", "large", "--json", "--all"]),
      warden(["list", "--since", "10m", "--until", future, "--json", "--all"]),
      warden(["list", "--until", "2020-01-01", "--json", "--all"]),
      warden(["list", "--id", mine, "--json"]),
      warden(["list", "--owner", "user", "--json", "--all"], "tok-admin"),
      warden(["list", "--owner", "other", "--json", "--all"], "tok-admin"),
      warden(["list", "--owner", "other", "--json", "--all"]),
      warden(["list", "--since", "yesterday"]),
    ]);
    const ids = (r: Run): string[] => (JSON.parse(ok(r).stdout) as { jobs: { id: string }[] }).jobs.map((j) => j.id);
    expect(ids(onLarge)).toContain(large.id);
    expect(ids(onLarge)).not.toContain(mine);
    expect(ids(recent)).toEqual(expect.arrayContaining([mine, large.id]));
    expect(ids(recent)).not.toContain(theirs);
    expect(ids(beforeAll_)).toEqual([]);
    expect(ids(byId)).toEqual([mine]);
    expect(ids(ownerUser)).toEqual(expect.arrayContaining([mine, large.id]));
    expect(ids(ownerUser)).not.toContain(theirs);
    expect(ids(ownerOther)).toContain(theirs);
    expect(ids(ownerOther)).not.toContain(mine);
    // Another caller's owner reads as no jobs for anyone but the admin.
    expect(ids(ownerAsUser)).toEqual([]);
    expect(badSince.code).toBe(2);
    expect(badSince.stderr).toContain('--since must be an ISO time (2024-05-01, 2024-05-01T09:00:00Z) or an age such as 30m, 2h, 3d (got "yesterday")');
  });
});

describe("retry and cancel in bulk, and the admin on another caller's job", () => {
  it("counts with --dry-run, then retries every failed job of a type", async () => {
    const failed = [await submitAndRun("oncall.broken", {}), await submitAndRun("oncall.broken", {}, "tok-other"), await submitAndRun("oncall.broken", {})];
    // The show test's job is failed too: the count is at least these three, and the real run acts on that many.
    const dry = ok(await warden(["retry", "--all", "--type", "oncall.broken", "--dry-run"], "tok-admin"));
    const n = Number(/^would retry (\d+) failed job\(s\) of type oncall\.broken \(dry run: nothing changed\)$/m.exec(dry.stdout)?.[1]);
    expect(n, dry.stdout).toBeGreaterThanOrEqual(failed.length);
    for (const id of failed) expect((await services.store.get(id))?.status).toBe("failed");

    const real = ok(await warden(["retry", "--all", "--type", "oncall.broken", "--json"], "tok-admin"));
    expect(JSON.parse(real.stdout)).toMatchObject({ matched: n, acted: n, skipped: 0, dryRun: false });
    const admin = new WardenClient({ baseUrl: server.url, token: "tok-admin" });
    for (const job of await Promise.all(failed.map((id) => admin.get(id)))) {
      expect(job.status).toBe("queued");
      expect(job.actions).toEqual([expect.objectContaining({ action: "retry", by: "ops" })]);
    }
    const again = ok(await warden(["retry", "--all", "--type", "oncall.broken", "--dry-run"], "tok-admin"));
    expect(again.stdout).toBe("would retry 0 failed job(s) of type oncall.broken (dry run: nothing changed)\n");
  });

  it("refuses --all without the admin, and --all without a type or queue before sending", async () => {
    const [notAdmin, noFilter, both, stray] = await Promise.all([
      warden(["retry", "--all", "--type", "oncall.broken"]),
      warden(["cancel", "--all"], "tok-admin"),
      warden(["cancel", "01JOB", "--all", "--type", "x"], "tok-admin"),
      warden(["retry", "01JOB", "--dry-run"]),
    ]);
    expect(notAdmin.code).toBe(3);
    expect(notAdmin.stderr).toContain("403 forbidden");
    expect(noFilter.code).toBe(2);
    expect(noFilter.stderr).toContain("--all needs --type or --queue (or both): it will not cancel every job at once");
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("give a job id or --all, not both");
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain("--dry-run goes with --all (warden retry --all --type T), not with a job id");
  });

  it("lets the admin cancel another caller's job, and shows who did", async () => {
    const id = await parked("user");
    expect(ok(await warden(["cancel", id], "tok-admin")).stdout).toBe(`cancelled ${id}\n`);
    const [human, json] = await Promise.all([warden(["show", id]), warden(["show", id, "--json"], "tok-admin")]);
    expect(ok(human).stdout).toMatch(/^actions:\n {2}AT\s+ACTION\s+BY\n {2}\S+ \S+\s+cancel\s+ops$/m);
    expect(JSON.parse(ok(json).stdout).job).toMatchObject({ status: "cancelled", actions: [{ action: "cancel", by: "ops" }] });
    // And the owner can retry it, as before.
    expect(JSON.parse(ok(await warden(["retry", id, "--json"])).stdout).job.status).toBe("queued");
  });
});

describe("warden dashboard", () => {
  it("serves the page's calls to --url with the token, and stops on SIGTERM with exit 0", async () => {
    const child = spawn(process.execPath, [BIN, "dashboard", "--url", server.url, "--token", "tok-admin", "--no-open", "--port", "0"], { env: { ...process.env, WARDEN_URL: "", WARDEN_TOKEN: "" } });
    let stderr = "";
    const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
    try {
      // The URL it prints, with this run's session key in the fragment.
      const printed = await new Promise<string>((resolve, reject) => {
        child.stderr.setEncoding("utf8").on("data", (s: string) => {
          stderr += s;
          const m = /open (http:\/\/127\.0\.0\.1:\d+)\/#token=(\S+)/.exec(stderr);
          if (m) resolve(`${m[1]} ${m[2]}`);
        });
        child.on("close", () => reject(new Error(`warden dashboard exited before printing its URL:\n${stderr}`)));
      });
      const [origin, key] = printed.split(" ") as [string, string];
      const session = await fetch(`${origin}/dashboard/session.json`, { headers: { authorization: `Bearer ${key}` } });
      expect(await session.json()).toMatchObject({ mode: "stage", api: server.url, auth: "bearer token" });
      // A call through it reaches the API as the token's caller (the admin): the workers route is admin-only.
      const workers = await fetch(`${origin}/admin/workers`, { headers: { authorization: `Bearer ${key}` } });
      expect(workers.status).toBe(200);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await closed, stderr).toBe(0);
  });
});

describe("a bulk run over several calls (in-process, against a stub API)", () => {
  it("follows nextCursor to the end, sums the calls, and says how far it got after each", async () => {
    const bodies: unknown[] = [];
    const pages = [
      { matched: 1000, acted: 998, skipped: 2, dryRun: false, nextCursor: "c1" },
      { matched: 1000, acted: 1000, skipped: 0, dryRun: false, nextCursor: "c2" },
      { matched: 7, acted: 7, skipped: 0, dryRun: false, nextCursor: null },
    ];
    const stub: typeof fetch = async (input, init) => {
      expect(String(input)).toBe("http://stub.test/admin/jobs/cancel");
      bodies.push(JSON.parse(String(init?.body)));
      return new Response(JSON.stringify(pages[bodies.length - 1]), { status: 200, headers: { "content-type": "application/json" } });
    };
    let stdout = "";
    let stderr = "";
    const io: Io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env: { WARDEN_URL: "http://stub.test", WARDEN_TOKEN: "t" }, fetch: stub };
    const code = await main(["cancel", "--all", "--queue", "large", "--status", "queued"], io);
    expect(code, stderr).toBe(0);
    expect(bodies).toEqual([
      { queue: "large", status: "queued", dryRun: false },
      { queue: "large", status: "queued", dryRun: false, cursor: "c1" },
      { queue: "large", status: "queued", dryRun: false, cursor: "c2" },
    ]);
    expect(stdout).toBe("cancelled 2005 queued job(s) on queue large, skipped 2 that moved meanwhile (matched 2007, in 3 calls)\n");
    expect(stderr).toBe("… 1000 matched, 998 acted on, 2 skipped so far\n… 2000 matched, 1998 acted on, 2 skipped so far\n");
  });
});

describe("list --since/--until that cannot be a time (in-process, no API call)", () => {
  const run = async (args: string[]): Promise<{ code: number; stderr: string; calls: number }> => {
    let calls = 0;
    let stderr = "";
    const stub: typeof fetch = async () => {
      calls++;
      return new Response(JSON.stringify({ jobs: [], nextCursor: null }), { status: 200, headers: { "content-type": "application/json" } });
    };
    const io: Io = { stdout: { write: () => true }, stderr: { write: (s: string) => (stderr += s) }, env: { WARDEN_URL: "http://stub.test", WARDEN_TOKEN: "t" }, fetch: stub };
    const code = await main(["list", ...args], io);
    return { code, stderr, calls };
  };

  it("refuses an age too large for a date as a usage error, not an unexpected one", async () => {
    const r = await run(["--since", "9999999999w"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--since is too far in the past");
    expect(r.stderr).not.toContain("unexpected error");
    expect(r.calls).toBe(0);
  });

  it("refuses a date that does not exist rather than rolling it over", async () => {
    for (const [flag, value] of [["--since", "2024-02-30"], ["--until", "2023-02-29T10:00:00Z"], ["--since", "2024-13-01"]] as const) {
      const r = await run([flag, value]);
      expect(r.code, `${flag} ${value}`).toBe(2);
      expect(r.stderr).toContain(`${flag}: "${value}" is not a real date`);
      expect(r.calls).toBe(0);
    }
    expect((await run(["--since", "2024-02-29"])).code).toBe(0);
  });
});
