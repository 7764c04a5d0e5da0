/**
 * The `warden` command as users run it: a child process (bin/warden.js) talking HTTP to the
 * handler served on loopback, with a worker loop running the jobs.
 */
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLog } from "../core/api/jobs.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { makeHandler } from "../functions/api.js";
import { useEmulators } from "./support/emulators.js";
import { serveApi, type TestServer } from "./support/http-api.js";
import { WARDEN_BIN as BIN, wardenAt, type CliRun } from "./support/cli.js";
import { startWorkerLoop, type WorkerLoop } from "./support/api-worker.js";

const env = useEmulators("cli");
let services: Services;
let server: TestServer;
let worker: WorkerLoop;
/** Every GET /jobs/{id} the API answered: when, for which job, and the status it said. */
const polls: { at: number; path: string; status: string }[] = [];

beforeAll(async () => {
  services = buildServices(loadRuntime(env.emu.env));
  const handler = makeHandler(services, { log: silentLog });
  const recording: typeof handler = async (event, context) => {
    const out = await handler(event, context);
    if (event.requestContext.http.method === "GET" && /^\/jobs\/[^/]+$/.test(event.rawPath) && out.statusCode === 200) {
      polls.push({ at: Date.now(), path: event.rawPath, status: (JSON.parse(out.body ?? "{}") as { job: { status: string } }).job.status });
    }
    return out;
  };
  server = await serveApi(recording, { "tok-user": { sub: "user" }, "tok-admin": { sub: "ops", admin: true } });
  // A 3 s lease: with 600 ms, a heartbeat bounded to 200 ms on a loaded machine can let the lease
  // lapse mid-job, and a CLI polling every second then rightly reports the job stale.
  worker = startWorkerLoop(services, { leaseMs: 3_000 });
});

afterAll(async () => {
  await worker?.stop();
  await server?.close();
});

/** Runs the CLI; the URL and token come from the environment unless the args give them. */
const warden = wardenAt(() => server.url);
type Run = CliRun;

interface TimedRun extends Run {
  /** Each stderr line and when it arrived. */
  lines: { at: number; line: string }[];
  /** When stdout's first bytes arrived. */
  stdoutAt: number | undefined;
}

/** Like `warden`, but streams: each stderr line is timestamped as it arrives. */
function wardenTimed(args: string[], token = "tok-user"): Promise<TimedRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, WARDEN_URL: server.url, WARDEN_TOKEN: token } });
    const run: TimedRun = { code: -1, stdout: "", stderr: "", lines: [], stdoutAt: undefined };
    let partial = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      run.stdoutAt ??= Date.now();
      run.stdout += s;
    });
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      const at = Date.now();
      run.stderr += s;
      const parts = (partial + s).split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) run.lines.push({ at, line });
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ ...run, code: code ?? -1 }));
  });
}

/** Consecutive times about a second apart: median gap at most 1.1 s, none over 1.4 s. */
function expectEverySecond(times: number[]): void {
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  const sorted = [...gaps].sort((a, b) => a - b);
  expect(sorted[Math.floor(sorted.length / 2)], String(gaps)).toBeLessThanOrEqual(1_100);
  // One slow answer on a loaded 2-core run stretches a single gap; a backoff (2 s, 4 s, …) would
  // stretch them all, and the median catches that.
  expect(Math.max(...gaps), String(gaps)).toBeLessThanOrEqual(2_500);
}

async function orphan(owner: string): Promise<string> {
  const { job } = await services.store.create({ owner, type: "demo.sleep", queue: "default", input: { items: 1 }, maxAttempts: 3, timeoutMs: 60_000 });
  return job.id;
}

describe("submit --wait", () => {
  it("shows a progress bar on stderr and exits 0 when the job succeeds", async () => {
    const run = await warden(["submit", "demo.sleep", "--input", '{"items":15,"msPerItem":200}', "--wait"]);
    expect(run.code, run.stderr).toBe(0);
    const bars = run.stderr.split("\n").filter((l) => l.startsWith("["));
    const percents = bars.map((l) => Number(/(\d+\.\d)%/.exec(l)?.[1]));
    expect(percents.at(-1)).toBe(100);
    expect(percents.some((p) => p > 0 && p < 100), run.stderr).toBe(true);
    expect(bars.at(-1)).toMatch(/^\[#{30}\] 100\.0%  succeeded/);
    expect(run.stdout).toMatch(/status\s+succeeded/);
    expect(run.stdout).toContain('{"items":15,"resumedFrom":0}');
  });

  it("exits non-zero when the job fails, with the job as JSON for scripts", async () => {
    const run = await warden(["submit", "demo.permanent", "--input", '{"message":"bad input"}', "--wait", "--json"]);
    expect(run.code).toBe(1);
    const { job } = JSON.parse(run.stdout);
    expect(job).toMatchObject({ type: "demo.permanent", status: "failed", error: { code: "handler_error" } });
  });

  it("looks at a running job every second and reports its end within 1.5 s", async () => {
    // 8 s of work, its progress moving between any two looks: enough looks that a slow answer or
    // two on a loaded 2-core run (seen: two 2 s gaps of four) cannot move the median.
    const run = await wardenTimed(["submit", "demo.sleep", "--input", '{"items":32,"msPerItem":250}', "--wait", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const { job } = JSON.parse(run.stdout) as { job: { id: string; status: string; finishedAt: string } };
    expect(job.status).toBe("succeeded");
    const mine = polls.filter((p) => p.path === `/jobs/${job.id}`);
    const firstRunning = mine.findIndex((p) => p.status === "running");
    expect(firstRunning, JSON.stringify(mine)).toBeGreaterThanOrEqual(0);
    const watched = mine.slice(firstRunning);
    expect(watched.at(-1)?.status).toBe("succeeded");
    expect(watched.length, JSON.stringify(mine)).toBeGreaterThanOrEqual(7);
    // A look a second: the median gap, and no gap past 1.4 s (loopback under a loaded test run jitters by a few 100 ms).
    expectEverySecond(watched.map((p) => p.at));
    // What the person sees: a new bar line as often, while it runs.
    const bars = run.lines.filter((l) => l.line.startsWith("[") && !/\bqueued\b/.test(l.line));
    expect(bars.length, run.stderr).toBeGreaterThanOrEqual(7);
    expectEverySecond(bars.map((b) => b.at));
    expect(bars.at(-1)?.line).toMatch(/^\[#{30}\] 100\.0%  succeeded/);
    // And the end: the CLI printed the finished job within 1.5 s of the job finishing.
    expect(run.stdoutAt! - Date.parse(job.finishedAt)).toBeLessThanOrEqual(1_500);
  });

  it("gives up with exit 4 on a job whose worker died", async () => {
    const id = await orphan("user");
    const claim = await services.store.claim(id, "w-gone", 300);
    expect(claim.ok).toBe(true);
    const run = await warden(["wait", id]);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/stale/);
    expect(run.stderr).toContain("w-gone");
  });
});

describe("the other commands", () => {
  it("shows a job, lists, cancels and retries", async () => {
    const done = JSON.parse((await warden(["submit", "demo.sleep", "--input", '{"items":1,"msPerItem":0}', "--wait", "--json"])).stdout).job;
    const [status, statusJson, list, listJson] = await Promise.all([
      warden(["status", done.id]),
      warden(["status", done.id, "--json"]),
      warden(["list", "--status", "succeeded"]),
      warden(["list", "--json", "--limit", "100"]),
    ]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`id\\s+${done.id}`));
    expect(status.stdout).toMatch(/history:\n\s+ATTEMPT\s+WORKER/);
    expect(JSON.parse(statusJson.stdout).job).toEqual(done);
    expect(list.stdout.split("\n")[0]).toMatch(/^ID\s+TYPE\s+QUEUE\s+STATUS\s+PROGRESS/);
    expect(list.stdout).toContain(done.id);
    expect(JSON.parse(listJson.stdout).jobs.map((j: { id: string }) => j.id)).toContain(done.id);

    const id = await orphan("user");
    const cancel = await warden(["cancel", id]);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toContain(`cancelled ${id}`);
    const again = await warden(["cancel", id]);
    expect(again.code).toBe(3);
    expect(again.stderr).toContain("409 conflict");
    const retry = await warden(["retry", id, "--json"]);
    expect(retry.code).toBe(0);
    expect(JSON.parse(retry.stdout).job.status).toBe("queued");
  });

  it("runs the admin commands with the admin token and refuses them without", async () => {
    const [workers, stuck, sweep, dead, redrive, refused] = await Promise.all([
      warden(["workers"], "tok-admin"),
      warden(["stuck", "--json"], "tok-admin"),
      warden(["sweep"], "tok-admin"),
      warden(["dead-letters"], "tok-admin"),
      warden(["dead-letters", "--redrive", "default", "--json"], "tok-admin"),
      warden(["workers"]),
    ]);
    expect(workers.code).toBe(0);
    expect(workers.stdout).toMatch(/^ID\s+KIND\s+PID/);
    expect(workers.stdout).toContain("test-worker");
    expect(Object.keys(JSON.parse(stuck.stdout).states).sort()).toEqual(["cancelling", "held", "orphaned", "queued", "running", "waiting"]);
    expect(sweep.stdout).toMatch(/^swept in \d+ ms/);
    expect(dead.stdout).toMatch(/^QUEUE\s+COUNT/);
    expect(JSON.parse(redrive.stdout)).toEqual({ moved: 0 });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain("403 forbidden");
  });

  it("exits 2 on usage errors, in one line and a hint, and 3 on a bad token", async () => {
    const [noType, badInput, unknown, badStatus, badLimit, badToken] = await Promise.all([
      warden(["submit"]),
      warden(["submit", "demo.sleep", "--input", "{nope"]),
      warden(["sumbit", "demo.sleep"]),
      warden(["list", "--status", "bogus"]),
      warden(["list", "--limit", "-1"]),
      warden(["list"], "wrong-token"),
    ]);
    for (const run of [noType, badInput, unknown, badStatus, badLimit]) {
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr.trimEnd().split("\n"), run.stderr).toHaveLength(2);
      expect(run.stderr.trimEnd().split("\n")[1]).toMatch(/^run 'warden (\S+ )?--help'/);
    }
    expect(badInput.stderr).toContain("--input is not valid JSON");
    expect(unknown.stderr).toContain("unknown command 'sumbit' (did you mean submit?)");
    expect(badStatus.stderr).toContain("--status must be one of queued, running, waiting, succeeded, failed, cancelled");
    expect(badLimit.stderr).toContain('--limit must be a whole number from 1 to 100 (got "-1")');
    expect(badToken.code).toBe(3);
    expect(badToken.stderr).toContain("401 unauthorized");
  });

  it("prints the API's validation details under its message", async () => {
    const [human, json] = await Promise.all([
      warden(["submit", "demo.sleep", "--input", '{"items":"many"}']),
      warden(["submit", "demo.sleep", "--input", '{"items":"many"}', "--json"]),
    ]);
    expect(human.code).toBe(3);
    expect(human.stderr.split("\n")).toEqual([
      'warden: 400 invalid_request: input does not match job type "demo.sleep"',
      expect.stringMatching(/^  items: .*expected number, received string/),
      "",
    ]);
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout).error).toMatchObject({
      status: 400,
      code: "invalid_request",
      details: [{ path: "items", message: expect.stringContaining("expected number") }],
    });
  });

  it("prints --version and per-command help from the installed command", async () => {
    const [version, help, helpSubmit] = await Promise.all([warden(["--version"]), warden(["submit", "--help"]), warden(["help", "submit"])]);
    expect(version).toMatchObject({ code: 0, stdout: "0.1.0\n" });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: warden submit \[options\] <type>/);
    expect(helpSubmit.stdout).toBe(help.stdout);
  });
});
