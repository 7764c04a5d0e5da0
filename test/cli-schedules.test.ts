/**
 * Schedules from the command line (docs/cli.md "Schedules"): `warden schedules`, `schedules show`,
 * `add`, `set`, `rm`, `pause` and `resume`, run as users run them (the `warden` child process
 * over HTTP to the API handler on loopback, against the emulators), and a schedule's tick fired
 * by `warden sweep` into a job that a worker loop runs. A schedule fires at most once a minute:
 * so that the firing test need not wait one, the API's clock (and the worker's) can be moved
 * ahead of the wall clock, and the tick comes at once.
 *
 * Each test names schedules of its own and removes them at its end.
 */
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { EXIT, main, type Io } from "../cli/main.js";
import { WardenClient, type Schedule, type SweepReport } from "../client/index.js";
import { silentLog } from "../core/api/jobs.js";
import { builtinRegistry } from "../core/jobs/index.js";
import { defineJob } from "../core/registry.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { makeHandler } from "../functions/api.js";
import { startWorkerLoop, type WorkerLoop } from "./support/api-worker.js";
import { expectUsageMistakes, offline, wardenAt, type CliRun } from "./support/cli.js";
import { useEmulators, waitFor } from "./support/emulators.js";
import { serveApi, type TestServer } from "./support/http-api.js";

const env = useEmulators("cli-schedules");
/** Each test runs several CLI processes on a machine that may be busy. */
const SLOW = 120_000;
const WAIT_MS = 30_000;

const echo = defineJob<{ n?: number | undefined }, { n?: number | undefined }>({
  name: "sched.echo",
  input: z.strictObject({ n: z.number().int().optional() }),
  runsOn: "lambda",
  handler: async (input) => input,
});

/** How far the API's clock runs ahead of the wall clock. */
let ahead = 0;
let services: Services;
let server: TestServer;
let worker: WorkerLoop;

beforeAll(async () => {
  services = buildServices(loadRuntime(env.emu.env), { registry: builtinRegistry().register(echo), now: () => Date.now() + ahead });
  server = await serveApi(makeHandler(services, { log: silentLog }), { "tok-user": { sub: "user" }, "tok-other": { sub: "other" }, "tok-admin": { sub: "ops", admin: true } });
  worker = startWorkerLoop(services, { leaseMs: 30_000 });
});

afterAll(async () => {
  await worker?.stop();
  await server?.close();
});

const warden = wardenAt(() => server.url);
const admin = (args: string[]): Promise<CliRun> => warden(args, "tok-admin");
const other = (args: string[]): Promise<CliRun> => warden(args, "tok-other");
const ok = (run: CliRun): CliRun => {
  expect(run.code, run.stderr).toBe(0);
  return run;
};
const lines = (run: CliRun): string[] => run.stdout.trimEnd().split("\n");
const user = (): WardenClient => new WardenClient({ baseUrl: server.url, token: "tok-user" });
const scheduleOf = (run: CliRun): Schedule => (JSON.parse(ok(run).stdout) as { schedule: Schedule }).schedule;
const stored = async (): Promise<string[]> => (await services.store.schedules.list()).map((s) => s.id);

/** A time as the CLI shows one: a clock time today (UTC), else the date too. */
const AT = String.raw`(\d\d:\d\d:\d\dZ|\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)`;

describe("warden schedules", () => {
  it("adds one at a fixed rate and one on a cron in a zone, lists both, shows five next runs in the zone, pauses, resumes, sets a new cadence and removes them", { timeout: SLOW }, async () => {
    const every = ok(await warden(["schedules", "add", "cli.every", "sched.echo", "--every", "5m", "--input", '{"n":1}']));
    expect(every.stdout).toMatch(new RegExp(`^added schedule cli\\.every: sched\\.echo every 5m, overlap skip, catch-up one; next run ${AT} \\(in (5m|4m \\d+s)\\)\\n$`));
    const tokyo = scheduleOf(await warden(["schedules", "add", "cli.tokyo", "sched.echo", "--cron", "30 2 * * *", "--tz", "Asia/Tokyo", "--overlap", "allow", "--catch-up", "none", "--json"]));
    expect(tokyo).toMatchObject({ id: "cli.tokyo", type: "sched.echo", cron: "30 2 * * *", timeZone: "Asia/Tokyo", everySeconds: null, overlap: "allow", catchUp: "none", paused: false, input: {} });
    expect(await stored()).toEqual(["cli.every", "cli.tokyo"]);

    // The list: both, with their cadence, policies, next run and counts.
    const list = lines(ok(await warden(["schedules"])));
    expect(list[0]).toMatch(/^ID\s+CADENCE\s+TYPE\s+OVERLAP\/CATCH-UP\s+PAUSED\s+NEXT RUN\s+FIRED\/SKIPPED\/MISSED$/);
    expect(list.slice(1)).toEqual([
      expect.stringMatching(new RegExp(`^cli\\.every\\s+every 5m\\s+sched\\.echo\\s+skip/one\\s+no\\s+${AT} \\(in [^)]+\\)\\s+0/0/0$`)),
      expect.stringMatching(new RegExp(`^cli\\.tokyo\\s+30 2 \\* \\* \\* \\(Asia/Tokyo\\)\\s+sched\\.echo\\s+allow/none\\s+no\\s+${AT} \\(in [^)]+\\)\\s+0/0/0$`)),
    ]);
    const listed = (JSON.parse(ok(await warden(["schedules", "--json"])).stdout) as { schedules: Schedule[] }).schedules;
    expect(listed.map((s) => [s.id, s.everySeconds, s.cron])).toEqual([
      ["cli.every", 300, null],
      ["cli.tokyo", null, "30 2 * * *"],
    ]);

    // show: five next runs, each 02:30 in Tokyo, which is 17:30 UTC the day before.
    const show = ok(await warden(["schedules", "show", "cli.tokyo"]));
    expect(show.stdout).toMatch(/^cadence\s+30 2 \* \* \* \(Asia\/Tokyo\)$/m);
    expect(show.stdout).toMatch(/^overlap\s+allow$/m);
    expect(show.stdout).toMatch(/^catch-up\s+none$/m);
    expect(show.stdout).toMatch(/^counts\s+fired 0, skipped 0, missed 0$/m);
    const shown = lines(show);
    const head = shown.indexOf("next runs:");
    expect(head, show.stdout).toBeGreaterThan(0);
    expect(shown[head + 1]).toMatch(/^ {2}AT\s+IN Asia\/Tokyo\s+WHEN$/);
    const runs = shown.slice(head + 2, head + 7).map((l) => /^ {2}(\d{4}-\d\d-\d\d) 17:30:00Z {2}(\d{4}-\d\d-\d\d) 02:30:00 {2}in \S+( \S+)?$/.exec(l));
    expect(runs.every(Boolean), shown.slice(head, head + 7).join("\n")).toBe(true);
    for (const [, utc, local] of runs as RegExpExecArray[]) expect(Date.parse(local!) - Date.parse(utc!)).toBe(86_400_000);
    expect(shown[head + 7]).toBe("last runs: none yet");
    // The same days as the API's nextRuns.
    expect(runs.map((m) => `${m![1]}T17:30:00.000Z`)).toEqual(tokyo.nextRuns);

    // Pause: no next run, listed as paused; resume: a next run again.
    expect(ok(await warden(["schedules", "pause", "cli.every"])).stdout).toBe("paused schedule cli.every: no tick fires until `warden schedules resume cli.every`\n");
    const paused = ok(await warden(["schedules", "show", "cli.every"]));
    expect(paused.stdout).toMatch(/^paused\s+yes: no tick fires until `warden schedules resume cli\.every`$/m);
    expect(paused.stdout).toMatch(/^next runs: none while paused$/m);
    expect(lines(ok(await warden(["schedules"])))).toContainEqual(expect.stringMatching(/^cli\.every\s+every 5m\s+sched\.echo\s+skip\/one\s+yes\s+-\s+0\/0\/0$/));
    const resumed = ok(await warden(["schedules", "resume", "cli.every"]));
    expect(resumed.stdout).toMatch(new RegExp(`^resumed schedule cli\\.every: sched\\.echo every 5m, overlap skip, catch-up one; next run ${AT} \\(in [^)]+\\)\\n$`));
    expect((await user().schedule("cli.every")).paused).toBe(false);

    // set replaces: a new cadence (counted from now), a new input, a new overlap.
    const set = ok(await warden(["schedules", "set", "cli.every", "sched.echo", "--every", "1h", "--input", '{"n":2}', "--overlap", "cancelPrevious"]));
    expect(set.stdout).toMatch(new RegExp(`^updated schedule cli\\.every: sched\\.echo every 1h, overlap cancelPrevious, catch-up one; next run ${AT} \\(in (1h|59m \\d+s)\\)\\n$`));
    const changed = await user().schedule("cli.every");
    expect(changed).toMatchObject({ everySeconds: 3600, cron: null, input: { n: 2 }, overlap: "cancelPrevious", paused: false });
    const [a, b] = changed.nextRuns.map((t) => Date.parse(t));
    expect(b! - a!).toBe(3_600_000);
    // A cron schedule set to a fixed rate loses its zone.
    expect(scheduleOf(await warden(["schedules", "set", "cli.tokyo", "sched.echo", "--every", "90s", "--json"]))).toMatchObject({ cron: null, timeZone: null, everySeconds: 90, overlap: "skip", catchUp: "one" });
    expect(ok(await warden(["schedules", "show", "cli.tokyo"])).stdout).toMatch(/^cadence\s+every 90s$/m);

    // rm: gone from the list and the store; show is a 404.
    expect(ok(await warden(["schedules", "rm", "cli.every"])).stdout).toBe("removed schedule cli.every\n");
    expect(JSON.parse(ok(await warden(["schedules", "rm", "cli.tokyo", "--json"])).stdout)).toEqual({ deleted: "cli.tokyo" });
    expect(ok(await warden(["schedules"])).stdout).toBe("no schedules\n");
    expect(await stored()).toEqual([]);
    const gone = await warden(["schedules", "show", "cli.every"]);
    expect(gone.code).toBe(EXIT.apiError);
    expect(gone.stderr).toBe('warden: 404 not_found: no schedule "cli.every"\n');
  });

  it("keeps a schedule to its owner: another caller neither sees nor changes it, the admin sees it; a second add of its id is a 409", { timeout: SLOW }, async () => {
    ok(await warden(["schedules", "add", "cli.mine", "sched.echo", "--every", "10m"]));
    const [list, show, pause, set, rm, seen] = await Promise.all([
      other(["schedules"]),
      other(["schedules", "show", "cli.mine"]),
      other(["schedules", "pause", "cli.mine"]),
      other(["schedules", "set", "cli.mine", "sched.echo", "--every", "1m"]),
      other(["schedules", "rm", "cli.mine"]),
      admin(["schedules"]),
    ]);
    expect(ok(list).stdout).toBe("no schedules\n");
    for (const r of [show, pause, set, rm]) {
      expect(r.code, r.stderr).toBe(EXIT.apiError);
      expect(r.stderr).toBe('warden: 404 not_found: no schedule "cli.mine"\n');
    }
    expect(lines(ok(seen))).toContainEqual(expect.stringMatching(/^cli\.mine\s+every 10m\s+sched\.echo\s+skip\/one\s+no\s/));
    // Untouched by the other caller's tries.
    expect(await user().schedule("cli.mine")).toMatchObject({ everySeconds: 600, paused: false });

    const again = await other(["schedules", "add", "cli.mine", "sched.echo", "--every", "1m"]);
    expect(again.code).toBe(EXIT.apiError);
    expect(again.stderr).toMatch(/^warden: 409 conflict: a schedule "cli\.mine" exists already/);
    ok(await warden(["schedules", "rm", "cli.mine"]));
    expect(await stored()).toEqual([]);
  });

  it("prints the API's 400 for an invalid cron, an unknown zone and a rate out of range, with exit 3, and writes nothing", { timeout: SLOW }, async () => {
    const [cron, zone, zero, type] = await Promise.all([
      warden(["schedules", "add", "cli.bad", "sched.echo", "--cron", "61 * * * *"]),
      warden(["schedules", "add", "cli.bad", "sched.echo", "--cron", "0 9 * * *", "--tz", "Mars/Olympus"]),
      warden(["schedules", "add", "cli.bad", "sched.echo", "--every", "0s"]),
      warden(["schedules", "add", "cli.bad", "sched.nope", "--every", "1m"]),
    ]);
    for (const r of [cron, zone, zero, type]) {
      expect(r.code, r.stderr).toBe(EXIT.apiError);
      expect(r.stdout).toBe("");
    }
    expect(cron.stderr).toMatch(/^warden: 400 invalid_request: the schedule is not valid: cron: invalid cron expression "61 \* \* \* \*": .+\n {2}cron: invalid cron expression "61 \* \* \* \*": .+\n$/);
    expect(zone.stderr).toBe(
      'warden: 400 invalid_request: the schedule is not valid: timeZone: unknown time zone "Mars/Olympus"; use an IANA name such as Europe/Paris or UTC\n' +
        '  timeZone: unknown time zone "Mars/Olympus"; use an IANA name such as Europe/Paris or UTC\n',
    );
    expect(zero.stderr.split("\n")[0]).toMatch(/^warden: 400 invalid_request: the schedule is not valid: everySeconds: everySeconds must be at least \d+/);
    expect(type.stderr.split("\n")[0]).toMatch(/^warden: 400 invalid_request: unknown job type "sched\.nope"/);
    // --json carries the same error, with its details.
    const json = await warden(["schedules", "add", "cli.bad", "sched.echo", "--cron", "61 * * * *", "--json"]);
    expect(JSON.parse(json.stdout).error).toMatchObject({ status: 400, code: "invalid_request", details: [{ path: "cron", message: expect.stringContaining("invalid cron expression") }] });
    expect(await stored()).toEqual([]);
  });

  it("fires: a schedule every minute, a sweep once its tick has come, its job in show's last runs, and the job runs", { timeout: SLOW }, async () => {
    onTestFinished(() => {
      ahead = 0;
    });
    const made = scheduleOf(await warden(["schedules", "add", "cli.tick", "sched.echo", "--every", "1m", "--input", '{"n":42}', "--json"]));
    expect(made.lastRuns).toEqual([]);
    const first = Date.parse(made.nextRuns[0]!);
    expect(first - services.now()).toBeGreaterThan(50_000);
    // A sweep before the tick fires nothing.
    const early = JSON.parse(ok(await admin(["sweep", "--json"])).stdout) as { report: SweepReport };
    expect(early.report.counts.scheduled).toBe(0);
    expect(scheduleOf(await warden(["schedules", "show", "cli.tick", "--json"])).lastRuns).toEqual([]);
    // The API's clock a minute on; nothing fires a tick but a sweep, once the API's clock says it has come.
    ahead += 60_000;
    await waitFor(() => services.now() >= first, WAIT_MS, "the schedule's first tick to come");
    const swept = JSON.parse(ok(await admin(["sweep", "--json"])).stdout) as { report: SweepReport };
    expect(swept.report.counts.scheduled, JSON.stringify(swept.report)).toBeGreaterThanOrEqual(1);

    const after = scheduleOf(await warden(["schedules", "show", "cli.tick", "--json"]));
    const fired = after.lastRuns.filter((r) => r.outcome === "fired");
    expect(after.lastRuns, JSON.stringify(after.lastRuns)).toHaveLength(1);
    expect(fired).toHaveLength(1);
    const jobId = fired[0]!.jobId!;
    expect(jobId).toEqual(expect.any(String));
    expect(Date.parse(fired[0]!.at)).toBe(first);
    expect(after.counts.fired).toBe(1);
    expect(after.lastJobId).toBe(jobId);

    const show = ok(await warden(["schedules", "show", "cli.tick"]));
    expect(show.stdout).toMatch(/^counts\s+fired 1, skipped 0, missed 0$/m);
    const tick = new Date(first).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
    expect(show.stdout).toMatch(new RegExp(`^last runs \\(oldest first\\):\\n {2}AT\\s+OUTCOME\\s+JOB\\n {2}${tick}\\s+fired\\s+${jobId}$`, "m"));
    expect(show.stdout).toMatch(new RegExp(`^last job\\s+${jobId}$`, "m"));
    // The schedule's job is its owner's: submitted with its input, and run.
    ok(await warden(["schedules", "pause", "cli.tick"]));
    const job = await user().wait(jobId, { timeoutMs: WAIT_MS, maxIntervalMs: 500 });
    expect(job).toMatchObject({ type: "sched.echo", input: { n: 42 }, status: "succeeded", result: { n: 42 } });
    expect(ok(await warden(["status", jobId])).stdout).toMatch(/^status\s+succeeded$/m);
    ok(await warden(["schedules", "rm", "cli.tick"]));
  });
});


describe("the command line", () => {
  it("gives schedules and each of its commands their own help, with `--help` and `help …` alike", async () => {
    for (const name of [["schedules"], ["schedules", "show"], ["schedules", "add"], ["schedules", "set"], ["schedules", "rm"], ["schedules", "pause"], ["schedules", "resume"]]) {
      const [flag, viaHelp] = await Promise.all([offline([...name, "--help"]), offline(["help", ...name])]);
      expect(flag.code, flag.stderr).toBe(EXIT.ok);
      expect(flag.stdout.split("\n")[0]).toMatch(new RegExp(`^Usage: warden ${name.join(" ")}\\b`));
      expect(flag.stdout).toContain("Global Options:");
      expect(viaHelp).toEqual(flag);
    }
    const [program, schedules, add, set] = await Promise.all([offline(["help"]), offline(["schedules", "--help"]), offline(["schedules", "add", "--help"]), offline(["schedules", "set", "--help"])]);
    expect(program.stdout).toMatch(/^ {2}schedules /m);
    for (const sub of ["show <id>", "add [options] <id> <type>", "set [options] <id> <type>", "rm <id>", "pause <id>", "resume <id>"]) expect(schedules.stdout).toMatch(new RegExp(`^ {2}${sub.replace(/[[\]]/g, "\\$&")}\\s`, "m"));
    for (const opt of ["--cron <expr>", "--tz <zone>", "--every <interval>", "--input <json>", "--overlap <policy>", "--catch-up <policy>", "--catch-up-max <n>", "--queue <queue>", "--concurrency-key <key>", "--paused"]) {
      expect(add.stdout).toContain(opt);
      expect(set.stdout).toContain(opt);
    }
    expect(set.stdout).toContain("set replaces the schedule's settings");
  });

  it("answers each mistake in one line with the hint for its own command, and sends nothing", async () => {
    const add = ["schedules", "add", "s1", "sched.echo"];
    const cases: [string[], string, string][] = [
      [["schedules", "show"], "schedules show needs a schedule id (warden schedules lists them)", "schedules show"],
      [["schedules", "add"], "schedules add needs an id and a job type, e.g. warden schedules add nightly-report report.render --cron '30 2 * * *' --tz Europe/Paris", "schedules add"],
      [["schedules", "add", "s1"], "schedules add needs an id and a job type, e.g. warden schedules add nightly-report report.render --cron '30 2 * * *' --tz Europe/Paris", "schedules add"],
      [["schedules", "set", "s1"], "schedules set needs an id and a job type, e.g. warden schedules set nightly-report report.render --every 1h", "schedules set"],
      [["schedules", "rm"], "schedules rm needs a schedule id", "schedules rm"],
      [["schedules", "pause"], "schedules pause needs a schedule id", "schedules pause"],
      [["schedules", "resume"], "schedules resume needs a schedule id", "schedules resume"],
      [add, "schedules add needs --cron EXPR (with --tz ZONE) or --every INTERVAL (5m, 1h, 1d)", "schedules add"],
      [["schedules", "set", "s1", "sched.echo", "--tz", "UTC"], "schedules set needs --cron EXPR (with --tz ZONE) or --every INTERVAL (5m, 1h, 1d)", "schedules set"],
      [[...add, "--cron", "* * * * *", "--every", "5m"], "give --cron or --every, not both: a schedule fires on a cron or at a fixed rate", "schedules add"],
      [[...add, "--every", "5m", "--tz", "Europe/Paris"], "--tz goes with --cron (a fixed rate is the same in every zone)", "schedules add"],
      [[...add, "--every", "30"], '--every must be a whole number of seconds, minutes, hours or days: 5m, 1h, 1d, 90s (got "30")', "schedules add"],
      [[...add, "--every", "5 min"], '--every must be a whole number of seconds, minutes, hours or days: 5m, 1h, 1d, 90s (got "5 min")', "schedules add"],
      [[...add, "--every", "1.5h"], '--every must be a whole number of seconds, minutes, hours or days: 5m, 1h, 1d, 90s (got "1.5h")', "schedules add"],
      [["schedules", "set", "s1", "sched.echo", "--every", "-5s"], '--every must be a whole number of seconds, minutes, hours or days: 5m, 1h, 1d, 90s (got "-5s")', "schedules set"],
      [[...add, "--every", "5m", "--overlap", "queue"], '--overlap must be one of skip, allow, cancelPrevious (got "queue")', "schedules add"],
      [[...add, "--every", "5m", "--catch-up", "some"], '--catch-up must be one of none, one, all (got "some")', "schedules add"],
      [[...add, "--every", "5m", "--catch-up-max", "5"], "--catch-up-max goes with --catch-up all (the most missed ticks it fires)", "schedules add"],
      [[...add, "--every", "5m", "--catch-up", "all", "--catch-up-max", "0"], '--catch-up-max must be a whole number of at least 1 (got "0")', "schedules add"],
      [[...add, "--every", "5m", "--queue", "huge"], '--queue must be one of default, large (got "huge")', "schedules add"],
      [[...add, "--evry", "5m"], "unknown option '--evry' (did you mean --every?)", "schedules add"],
      [["schedules", "ad", "s1"], "unknown schedules command 'ad' (did you mean add?)", "schedules"],
      [["schedules", "--every", "5m"], "unknown option '--every'", "schedules"],
    ];
    await expectUsageMistakes(cases);
    // JSON.parse's wording is Node's.
    const input = await offline([...add, "--every", "5m", "--input", "{nope"]);
    expect(input).toMatchObject({ code: EXIT.usage, requests: [], stdout: "" });
    expect(input.stderr).toMatch(/^warden: --input is not valid JSON: .+\nrun 'warden schedules add --help' for its options\n$/);
  });

  it("sends --every in seconds and --cron with its zone, only the fields given, and the id escaped in the path", async () => {
    const sent: { method: string; url: string; body: unknown }[] = [];
    const at = new Date().toISOString();
    const schedule: Schedule = {
      ...{ id: "s1", type: "sched.echo", queue: "default", input: {}, concurrencyKey: null, priority: "normal", maxAttempts: 3, timeoutSeconds: 60, cron: null, timeZone: null, everySeconds: 300 },
      ...{ overlap: "skip", catchUp: "one", catchUpMax: 100, paused: false, nextRuns: [at], lastRuns: [], counts: { fired: 0, skipped: 0, missed: 0 }, lastJobId: null, createdAt: at, updatedAt: at },
    };
    const io: Io = {
      stdout: { write: () => undefined },
      stderr: { write: () => undefined },
      env: { WARDEN_URL: "http://127.0.0.1:9", WARDEN_TOKEN: "t" },
      fetch: async (input, init) => {
        sent.push({ method: String(init?.method), url: String(input), body: init?.body ? JSON.parse(String(init.body)) : undefined });
        return new Response(JSON.stringify({ schedule, deleted: "s1" }), { status: 200, headers: { "content-type": "application/json" } });
      },
    };
    expect(await main(["schedules", "add", "s1", "sched.echo", "--every", "5m"], io)).toBe(EXIT.ok);
    expect(await main(["schedules", "add", "s2", "sched.echo", "--every", "2d", "--paused", "--catch-up", "all", "--catch-up-max", "7", "--max-attempts", "2", "--timeout", "30"], io)).toBe(EXIT.ok);
    expect(await main(["schedules", "set", "a b", "sched.echo", "--cron", "0 9 * * 1-5", "--tz", "Europe/Paris", "--input", '{"n":3}', "--queue", "large", "--concurrency-key", "acme"], io)).toBe(EXIT.ok);
    for (const verb of ["show", "pause", "resume", "rm"]) expect(await main(["schedules", verb, "x/y"], io)).toBe(EXIT.ok);
    expect(sent).toEqual([
      { method: "POST", url: "http://127.0.0.1:9/schedules", body: { id: "s1", type: "sched.echo", everySeconds: 300 } },
      { method: "POST", url: "http://127.0.0.1:9/schedules", body: { id: "s2", type: "sched.echo", everySeconds: 172_800, catchUp: "all", catchUpMax: 7, maxAttempts: 2, timeoutSeconds: 30, paused: true } },
      { method: "PUT", url: "http://127.0.0.1:9/schedules/a%20b", body: { type: "sched.echo", input: { n: 3 }, cron: "0 9 * * 1-5", timeZone: "Europe/Paris", queue: "large", concurrencyKey: "acme" } },
      { method: "GET", url: "http://127.0.0.1:9/schedules/x%2Fy", body: undefined },
      { method: "POST", url: "http://127.0.0.1:9/schedules/x%2Fy/pause", body: undefined },
      { method: "POST", url: "http://127.0.0.1:9/schedules/x%2Fy/resume", body: undefined },
      { method: "DELETE", url: "http://127.0.0.1:9/schedules/x%2Fy", body: undefined },
    ]);
  });
});
