/**
 * Pauses and limits from the command line (docs/cli.md "Pauses and limits"): `warden pause`,
 * `resume`, `limits`, `limits set`, `limits rm` and `submit --concurrency-key`, and how `why`,
 * `status` and `list` show a held job, run as users run them (the `warden` child process over
 * HTTP to the API handler on loopback) with a worker loop taking the jobs' doorbells, so a held
 * job is held by a real claim and a resume's wake is seen to ring it.
 *
 * Each test names types and keys of its own, and takes its pauses and limits away at its end.
 */
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT, main, type Io } from "../cli/main.js";
import { WardenClient, type ApiJob, type Controls } from "../client/index.js";
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

const env = useEmulators("cli-controls");
/** Each test runs several CLI processes and waits for jobs on a machine that may be busy. */
const SLOW = 120_000;
const WAIT_MS = 30_000;

const echo = defineJob<{ n: number }, { n: number }>({
  name: "controls.echo",
  input: z.strictObject({ n: z.number().int() }),
  runsOn: "lambda",
  handler: async (input) => input,
});

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A type of the rate-limit test's own, so no other test's pause or limit can touch it. */
const rated = defineJob<{ n: number }, { n: number }>({
  name: "controls.rated",
  input: z.strictObject({ n: z.number().int() }),
  runsOn: "lambda",
  handler: async (input) => input,
});

/** Runs until the test opens its gate: a job that holds its concurrency slot for as long as the test needs. */
let gate = deferred();
const gated = defineJob<{ n: number }, { n: number }>({
  name: "controls.gated",
  input: z.strictObject({ n: z.number().int() }),
  runsOn: "lambda",
  handler: async (input) => {
    await gate.promise;
    return input;
  },
});

let services: Services;
let server: TestServer;
let worker: WorkerLoop;

beforeAll(async () => {
  services = buildServices(loadRuntime(env.emu.env), { registry: builtinRegistry().register(echo, rated, gated) });
  server = await serveApi(makeHandler(services, { log: silentLog }), { "tok-user": { sub: "user" }, "tok-admin": { sub: "ops", admin: true } });
  worker = startWorkerLoop(services, { leaseMs: 30_000 });
});

afterAll(async () => {
  gate.resolve();
  await worker?.stop();
  await server?.close();
});

const warden = wardenAt(() => server.url);
const admin = (args: string[]): Promise<CliRun> => warden(args, "tok-admin");
const ok = (run: CliRun): CliRun => {
  expect(run.code, run.stderr).toBe(0);
  return run;
};
const lines = (run: CliRun): string[] => run.stdout.trimEnd().split("\n");
const user = (): WardenClient => new WardenClient({ baseUrl: server.url, token: "tok-user" });
const ops = (): WardenClient => new WardenClient({ baseUrl: server.url, token: "tok-admin" });

async function submit(args: string[]): Promise<ApiJob> {
  return (JSON.parse(ok(await warden(["submit", ...args, "--json"])).stdout) as { job: ApiJob }).job;
}

/** Waits until the job's why says `reason` (a claim has tried it and been refused). */
const whyIs = (id: string, reason: string): Promise<unknown> => waitFor(async () => (await user().why(id)).reason === reason, WAIT_MS, `job ${id} to be ${reason}`);
const finished = (id: string): Promise<ApiJob> => user().wait(id, { timeoutMs: WAIT_MS, maxIntervalMs: 500 });

describe("warden pause and resume", () => {
  it("pauses a type: its job is held (why, status, list, limits say so), and the resume wakes it and it runs", { timeout: SLOW }, async () => {
    const paused = ok(await admin(["pause", "type:controls.echo"]));
    expect(paused.stdout).toMatch(
      /^paused type:controls\.echo \(since \d\d:\d\d:\d\dZ \((now|\ds ago)\), by ops\): its queued jobs are held, not started, until `warden resume type:controls\.echo`\n$/,
    );
    // Pausing twice is the same pause.
    const again = JSON.parse(ok(await admin(["pause", "type:controls.echo", "--json"])).stdout) as Controls;
    expect(again.pauses).toEqual([{ target: "type:controls.echo", since: expect.any(String), by: "ops", held: 0 }]);

    const job = await submit(["controls.echo", "--input", '{"n":7}']);
    expect(job).toMatchObject({ status: "queued", held: null });
    // The worker loop took its doorbell; its claim was refused and held it, spending no attempt.
    await whyIs(job.id, "paused");
    await waitFor(async () => (await ops().controls()).pauses.find((p) => p.target === "type:controls.echo")?.held === 1, WAIT_MS, "the pause to count its held job");

    const [why, whyJson, status, show, list, limits, limitsJson] = await Promise.all([
      warden(["why", job.id]),
      warden(["why", job.id, "--json"]),
      warden(["status", job.id]),
      warden(["show", job.id]),
      warden(["list", "--type", "controls.echo"]),
      admin(["limits"]),
      admin(["limits", "--json"]),
    ]);
    expect(ok(why).stdout).toMatch(/^queued, held: type:controls\.echo is paused since \d\d:\d\d:\d\dZ \((now|\d+s ago)\); it starts when `warden resume type:controls\.echo` ends the pause\n$/);
    expect(JSON.parse(ok(whyJson).stdout).why).toMatchObject({ state: "queued", reason: "paused", message: expect.stringContaining("type controls.echo is paused") });
    expect(ok(status).stdout).toMatch(/^status\s+queued \(paused\)\nheld\s+type:controls\.echo is paused \(since \S+ \S+Z\); it starts when `warden resume type:controls\.echo` ends the pause$/m);
    expect(ok(status).stdout).toMatch(/^attempts\s+0 of 3$/m);
    // show's why line says what holds it, in the held row's place.
    expect(ok(show).stdout).toMatch(/^status\s+queued \(paused\)\nwhy\s+queued, held: type:controls\.echo is paused since .*; it starts when `warden resume type:controls\.echo` ends the pause\nprogress\s/m);
    expect(show.stdout).not.toMatch(/^held\s/m);
    expect(lines(ok(list))[1]).toMatch(new RegExp(`^${job.id}\\s+controls\\.echo\\s+default\\s+queued \\(paused\\)\\s+-\\s+0/3\\s`));
    const table = lines(ok(limits));
    expect(table[0]).toMatch(/^PAUSED\s+SINCE\s+BY\s+HELD$/);
    expect(table).toContainEqual(expect.stringMatching(/^type:controls\.echo\s+\d\d:\d\d:\d\dZ \(\S+( ago)?\)\s+ops\s+1$/));
    expect((JSON.parse(ok(limitsJson).stdout) as Controls).pauses).toEqual([{ target: "type:controls.echo", since: again.pauses[0]!.since, by: "ops", held: 1 }]);

    const resumed = ok(await admin(["resume", "type:controls.echo"]));
    expect(resumed.stdout).toBe("resumed type:controls.echo: woke 1 held job\n");
    const done = await finished(job.id);
    expect(done).toMatchObject({ status: "succeeded", result: { n: 7 }, attempts: 1, held: null });
    // Nothing is paused now: the resume took it away.
    const after = JSON.parse(ok(await admin(["limits", "--json"])).stdout) as Controls;
    expect(after.pauses.map((p) => p.target)).not.toContain("type:controls.echo");
    // A second resume wakes nothing, and says so.
    expect(ok(await admin(["resume", "type:controls.echo"])).stdout).toBe("resumed type:controls.echo: woke 0 held jobs\n");
  });
});

describe("warden limits set and rm", () => {
  it("a key's concurrency and rate limit (its name encoded in the path), listed with its running and held jobs; the second job waits for the first", { timeout: SLOW }, async () => {
    gate = deferred();
    const set = ok(await admin(["limits", "set", "key:acme/eu", "--concurrency", "1", "--rate", "10/1s"]));
    expect(set.stdout).toBe("limit on key:acme/eu: concurrency 1, rate 10/1s (10 starts in any 1 s); 0 running, 0 held\n");

    const first = await submit(["controls.gated", "--input", '{"n":1}', "--concurrency-key", "acme/eu"]);
    expect(first.concurrencyKey).toBe("acme/eu");
    await waitFor(async () => (await user().get(first.id)).status === "running", WAIT_MS, "the first job to run");
    const second = await submit(["controls.gated", "--input", '{"n":2}', "--concurrency-key", "acme/eu"]);
    await whyIs(second.id, "concurrency_limit");
    await waitFor(async () => (await ops().controls()).limits.find((l) => l.key === "key:acme/eu")?.held === 1, WAIT_MS, "the limit to count its held job");

    const [limits, why, status] = await Promise.all([admin(["limits"]), warden(["why", second.id]), warden(["status", second.id])]);
    const table = lines(ok(limits));
    const head = table.findIndex((l) => l.startsWith("LIMIT"));
    expect(table[head]).toMatch(/^LIMIT\s+CONCURRENCY\s+RATE\s+RUNNING\s+HELD\s+UPDATED\s+BY$/);
    expect(table.slice(head + 1)).toContainEqual(expect.stringMatching(/^key:acme\/eu\s+1\s+10\/1s\s+1\s+1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+ops$/));
    expect(ok(why).stdout).toMatch(
      /^queued, held by key:acme\/eu's concurrency limit: as many jobs as it allows are running \(held since \d\d:\d\d:\d\dZ \((now|\d+s ago)\)\); it starts when one of them ends \(see `warden limits`\)\n$/,
    );
    expect(ok(status).stdout).toMatch(/^status\s+queued \(at its concurrency limit\)\nheld\s+key:acme\/eu runs as many jobs as its concurrency limit allows/m);
    expect(status.stdout).toMatch(/^concurrencyKey\s+acme\/eu$/m);

    // The first run's end hands its slot to the second.
    gate.resolve();
    expect(await finished(first.id)).toMatchObject({ status: "succeeded", result: { n: 1 } });
    expect(await finished(second.id)).toMatchObject({ status: "succeeded", result: { n: 2 }, attempts: 1 });
    const idle = (JSON.parse(ok(await admin(["limits", "--json"])).stdout) as Controls).limits.find((l) => l.key === "key:acme/eu");
    expect(idle).toMatchObject({ concurrency: 1, rate: { starts: 10, perSeconds: 1 }, running: 0, held: 0, by: "ops" });

    const removed = ok(await admin(["limits", "rm", "key:acme/eu"]));
    expect(removed.stdout).toBe("removed the limit on key:acme/eu: woke 0 held jobs\n");
    expect((JSON.parse(ok(await admin(["limits", "--json"])).stdout) as Controls).limits.map((l) => l.key)).not.toContain("key:acme/eu");
  });

  it("a rate limit holds the job past its window's start, and why says until when", { timeout: SLOW }, async () => {
    expect(ok(await admin(["limits", "set", "type:controls.rated", "--rate", "1/600s"])).stdout).toBe("limit on type:controls.rated: rate 1/600s (1 start in any 600 s); 0 held\n");
    const first = await submit(["controls.rated", "--input", '{"n":1}']);
    expect(await finished(first.id)).toMatchObject({ status: "succeeded" });
    const second = await submit(["controls.rated", "--input", '{"n":2}']);
    await whyIs(second.id, "rate_limit");
    const [why, limits] = await Promise.all([warden(["why", second.id]), admin(["limits"])]);
    // 600 s after the first start, give or take the seconds the test took.
    expect(ok(why).stdout).toMatch(/^queued, held by type:controls\.rated's rate limit: it may start at \d\d:\d\d:\d\dZ \(in (9m \d+s|10m)\) \(see `warden limits`\)\n$/);
    expect(lines(ok(limits))).toContainEqual(expect.stringMatching(/^type:controls\.rated\s+-\s+1\/600s\s+-\s+0\s/));
    // A rate hold is woken by its own delayed doorbell, not by a limit's removal: cancel it instead.
    ok(await warden(["cancel", second.id]));
    ok(await admin(["limits", "rm", "type:controls.rated"]));
  });

  it("refuses a malformed --rate before sending it, passes the API's 400 on for a limit out of range, and writes nothing", { timeout: SLOW }, async () => {
    const key = "type:controls.refused";
    const [malformed, neither, zero, noStarts, tooFast, badKey, badPause, notAdmin, badConcurrencyKey] = await Promise.all([
      admin(["limits", "set", key, "--rate", "10/sec"]),
      admin(["limits", "set", key]),
      admin(["limits", "set", key, "--concurrency", "0"]),
      admin(["limits", "set", key, "--rate", "0/1s"]),
      admin(["limits", "set", key, "--concurrency", "2", "--rate", "5/0.01s"]),
      admin(["limits", "set", "controls.refused", "--concurrency", "2"]),
      admin(["pause", "controls.refused"]),
      warden(["limits", "set", key, "--concurrency", "2"]),
      warden(["submit", "controls.echo", "--input", '{"n":1}', "--concurrency-key", "acme eu"]),
    ]);
    expect([malformed.code, neither.code]).toEqual([2, 2]);
    expect(malformed.stderr).toBe('warden: --rate must be STARTS/SECONDSs, e.g. 10/1s (10 starts a second) or 100/60s (got "10/sec")\nrun \'warden limits set --help\' for its options\n');
    expect(neither.stderr.split("\n")[0]).toBe("warden: limits set needs --concurrency N, --rate STARTS/SECONDSs or both (warden limits rm KEY removes a limit)");

    for (const r of [zero, noStarts, tooFast, badKey, badPause, badConcurrencyKey]) expect(r.code, r.stderr).toBe(3);
    expect(zero.stderr).toBe(
      "warden: 400 invalid_request: the limit is not valid: concurrency: concurrency must be at least 1 (pause the type or key to stop it)\n" +
        "  concurrency: concurrency must be at least 1 (pause the type or key to stop it)\n",
    );
    expect(noStarts.stderr.split("\n")[0]).toBe("warden: 400 invalid_request: the limit is not valid: rate.starts: rate.starts must be at least 1");
    expect(tooFast.stderr.split("\n")[0]).toBe("warden: 400 invalid_request: the limit is not valid: rate.perSeconds: rate.perSeconds must be at least 0.1");
    expect(badKey.stderr).toBe('warden: 400 invalid_request: a limit names type:<job type> or key:<concurrency key>, not "controls.refused"\n');
    expect(badPause.stderr).toBe('warden: 400 invalid_request: a pause names queue:<queue> or type:<job type>, not "controls.refused"\n');
    expect(badConcurrencyKey.stderr.split("\n")[0]).toMatch(/^warden: 400 invalid_request: .*concurrencyKey: a concurrency key is letters, digits and/);
    expect(notAdmin.code).toBe(3);
    expect(notAdmin.stderr).toMatch(/^warden: 403 forbidden: /);

    const controls = JSON.parse(ok(await admin(["limits", "--json"])).stdout) as Controls;
    expect(controls.limits.map((l) => l.key)).not.toContain(key);
    expect(controls.pauses.map((p) => p.target)).not.toContain("type:controls.refused");
    expect(await ops().controls()).toEqual(controls);
  });
});


describe("the command line", () => {
  it("gives pause, resume, limits and limits set / rm their own help, with `--help` and `help …` alike", async () => {
    for (const name of [["pause"], ["resume"], ["limits"], ["limits", "set"], ["limits", "rm"]]) {
      const [flag, viaHelp] = await Promise.all([offline([...name, "--help"]), offline(["help", ...name])]);
      expect(flag.code, flag.stderr).toBe(EXIT.ok);
      expect(flag.stdout.split("\n")[0]).toMatch(new RegExp(`^Usage: warden ${name.join(" ")}\\b`));
      expect(flag.stdout).toContain("Global Options:");
      expect(viaHelp).toEqual(flag);
    }
    const [program, limits, set, submit] = await Promise.all([offline(["help"]), offline(["limits", "--help"]), offline(["limits", "set", "--help"]), offline(["submit", "--help"])]);
    for (const name of ["pause", "resume", "limits"]) expect(program.stdout).toMatch(new RegExp(`^  ${name} `, "m"));
    expect(limits.stdout).toMatch(/^Commands:\n {2}set \[options\] <key>\s+\(admin\) set the limit/m);
    expect(limits.stdout).toMatch(/^ {2}rm <key>\s+\(admin\) remove the limit/m);
    for (const opt of ["--concurrency <n>", "--rate <starts/seconds>", "10/1s"]) expect(set.stdout).toContain(opt);
    expect(submit.stdout).toContain("--concurrency-key <key>");
  });

  it("answers each mistake in one line with the hint for its own command, and sends nothing", async () => {
    const cases: [string[], string, string][] = [
      [["pause"], "pause needs what to pause: type:<job type> or queue:<queue>, e.g. warden pause type:demo.sleep", "pause"],
      [["resume"], "resume needs what to resume: type:<job type> or queue:<queue>, e.g. warden resume type:demo.sleep", "resume"],
      [["limits", "set"], "limits set needs a limit key: type:<job type> or key:<concurrency key>, e.g. warden limits set key:tenant-acme --concurrency 5", "limits set"],
      [["limits", "rm"], "limits rm needs a limit key: type:<job type> or key:<concurrency key>, e.g. warden limits rm key:tenant-acme", "limits rm"],
      [["limits", "set", "type:x"], "limits set needs --concurrency N, --rate STARTS/SECONDSs or both (warden limits rm KEY removes a limit)", "limits set"],
      [["limits", "set", "type:x", "--rate", "10"], '--rate must be STARTS/SECONDSs, e.g. 10/1s (10 starts a second) or 100/60s (got "10")', "limits set"],
      [["limits", "set", "type:x", "--rate", "ten/1s"], '--rate must be STARTS/SECONDSs, e.g. 10/1s (10 starts a second) or 100/60s (got "ten/1s")', "limits set"],
      [["limits", "set", "type:x", "--rate", "10/1m"], '--rate must be STARTS/SECONDSs, e.g. 10/1s (10 starts a second) or 100/60s (got "10/1m")', "limits set"],
      [["limits", "set", "type:x", "--concurrency", "two"], '--concurrency must be a whole number of at least 0 (got "two")', "limits set"],
      [["limits", "set", "type:x", "--concurency", "2"], "unknown option '--concurency' (did you mean --concurrency?)", "limits set"],
      [["limits", "sett", "type:x"], "unknown limits command 'sett' (did you mean set?)", "limits"],
      [["limits", "--concurrency", "2"], "unknown option '--concurrency'", "limits"],
    ];
    await expectUsageMistakes(cases);
  });

  it("sends --rate as starts and seconds, and the key escaped in the path", async () => {
    const sent: { method: string; url: string; body: unknown }[] = [];
    const controls: Controls = { pauses: [], limits: [{ key: "key:acme/eu", concurrency: null, rate: { starts: 5, perSeconds: 0.5 }, running: null, held: 0, updatedAt: new Date().toISOString(), by: "ops" }] };
    let stdout = "";
    const io: Io = {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: () => undefined },
      env: { WARDEN_URL: "http://127.0.0.1:9", WARDEN_TOKEN: "t" },
      fetch: async (input, init) => {
        sent.push({ method: String(init?.method), url: String(input), body: init?.body ? JSON.parse(String(init.body)) : undefined });
        return new Response(JSON.stringify(controls), { status: 200, headers: { "content-type": "application/json" } });
      },
    };
    expect(await main(["limits", "set", "key:acme/eu", "--rate", "5/.5s"], io)).toBe(EXIT.ok);
    expect(await main(["limits", "set", "key:acme/eu", "--rate", "5/s", "--concurrency", "3"], io)).toBe(EXIT.ok);
    expect(sent).toEqual([
      { method: "PUT", url: "http://127.0.0.1:9/admin/limits/key%3Aacme%2Feu", body: { rate: { starts: 5, perSeconds: 0.5 } } },
      { method: "PUT", url: "http://127.0.0.1:9/admin/limits/key%3Aacme%2Feu", body: { concurrency: 3, rate: { starts: 5, perSeconds: 1 } } },
    ]);
    expect(stdout.split("\n")[0]).toBe("limit on key:acme/eu: rate 5/0.5s (5 starts in any 0.5 s); 0 held");
  });
});
