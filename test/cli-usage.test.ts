/**
 * How `warden` treats a person at the keyboard: help per command, `--version`, did-you-mean, and
 * every mistake answered in one line with a hint and exit 2, before any request is sent. Runs
 * `main` in-process (quick); the last part serves a job on loopback to time `--wait`'s polling.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT, RUNNING_POLL_MS, main, type Io } from "../cli/main.js";

const VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
const COMMANDS = ["submit", "status", "wait", "list", "cancel", "retry", "health", "stuck", "sweep", "dead-letters", "workers", "show", "why", "logs", "queues", "dashboard"];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Requests the CLI tried to send (usage errors must send none). */
  requests: string[];
  /** When each stderr line was written (ms since the epoch). */
  stderrAt: { at: number; line: string }[];
}

async function warden(args: string[], env: Record<string, string | undefined> = { WARDEN_URL: "http://127.0.0.1:9", WARDEN_TOKEN: "t" }): Promise<Run> {
  const run: Run = { code: -1, stdout: "", stderr: "", requests: [], stderrAt: [] };
  const refuse: typeof fetch = async (input) => {
    run.requests.push(String(input));
    return new Response(JSON.stringify({ error: { code: "internal", message: "this test expects no request" } }), { status: 500 });
  };
  const io: Io = {
    stdout: { write: (s: string) => (run.stdout += s) },
    stderr: {
      write: (s: string) => {
        run.stderr += s;
        for (const line of s.split("\n").filter(Boolean)) run.stderrAt.push({ at: Date.now(), line });
      },
    },
    env,
    ...(env.WARDEN_URL?.endsWith(":9") ? { fetch: refuse } : {}),
  };
  run.code = await main(args, io);
  return run;
}

/** A usage error: exit 2, nothing sent, and exactly the message line and the hint line on stderr. */
function expectUsage(run: Run, message: string | RegExp, hint: string | undefined): void {
  expect(run.code, run.stderr).toBe(EXIT.usage);
  expect(run.requests).toEqual([]);
  const lines = run.stderr.split("\n");
  expect(lines.at(-1)).toBe("");
  expect(lines.slice(0, -1), run.stderr).toHaveLength(2);
  if (typeof message === "string") expect(lines[0]).toBe(`warden: ${message}`);
  else expect(lines[0]).toMatch(message);
  expect(lines[1]).toBe(hint ? `run 'warden ${hint} --help' for its options` : "run 'warden --help' for the commands and options");
  expect(run.stdout).toBe("");
}

describe("help", () => {
  it("gives each command its own help, with `COMMAND --help`, `-h` and `help COMMAND` alike", async () => {
    for (const name of COMMANDS) {
      const [flag, short, viaHelp] = await Promise.all([warden([name, "--help"]), warden([name, "-h"]), warden(["help", name])]);
      expect(flag.code, flag.stderr).toBe(EXIT.ok);
      expect(flag.stdout.split("\n")[0]).toMatch(new RegExp(`^Usage: warden ${name}\\b`));
      expect(flag.stdout).toContain("Global Options:");
      // Not the program's help: no list of commands.
      expect(flag.stdout).not.toContain("Commands:");
      expect(short).toEqual(flag);
      expect(viaHelp).toEqual(flag);
    }
    const submit = await warden(["submit", "--help"]);
    for (const opt of ["--input <json>", "--queue <queue>", "--max-attempts <n>", "--timeout <seconds>", "--run-at <iso>", "--idempotency-key <key>", "--wait ", "--wait-timeout <seconds>"]) {
      expect(submit.stdout).toContain(opt);
    }
    expect((await warden(["list", "--help"])).stdout).toMatch(/--status <status>[^]*"queued",\s+"running",\s+"waiting",\s+"succeeded",\s+"failed",\s+"cancelled"/);
  });

  it("shows the program's help for `help`, `--help` and `-h` on stdout, and on stderr with exit 2 for no command", async () => {
    const [help, flag, short, bare] = await Promise.all([warden(["help"]), warden(["--help"]), warden(["-h"]), warden([])]);
    expect(help.code).toBe(EXIT.ok);
    expect(help.stdout.split("\n")[0]).toBe("Usage: warden <command> [options]");
    for (const name of COMMANDS) expect(help.stdout).toMatch(new RegExp(`^  ${name} `, "m"));
    expect(help.stdout).toContain("Exit codes: 0 ok, 1 job failed or cancelled, 2 usage, 3 API error, 4 wait gave up");
    expect(flag).toEqual(help);
    expect(short).toEqual(help);
    expect(bare).toMatchObject({ code: EXIT.usage, stdout: "", stderr: help.stdout, requests: [] });
  });

  it("prints the version from package.json", async () => {
    for (const flag of ["--version", "-V"]) {
      expect(await warden([flag])).toMatchObject({ code: EXIT.ok, stdout: `${VERSION}\n`, stderr: "" });
    }
  });
});

describe("usage errors", () => {
  it("suggests the command or option that was meant", async () => {
    expectUsage(await warden(["sumbit", "demo.sleep"]), "unknown command 'sumbit' (did you mean submit?)", undefined);
    expectUsage(await warden(["help", "sumbit"]), "unknown command 'sumbit' (did you mean submit?)", undefined);
    expectUsage(await warden(["frobnicate"]), "unknown command 'frobnicate'", undefined);
    expectUsage(await warden(["submit", "demo.sleep", "--wiat"]), "unknown option '--wiat' (did you mean --wait?)", "submit");
    expectUsage(await warden(["list", "--lmit", "5"]), "unknown option '--lmit' (did you mean --limit?)", "list");
    // A flag another command takes is refused, not ignored.
    expectUsage(await warden(["status", "01JOB", "--limit", "5"]), "unknown option '--limit'", "status");
  });

  it("validates numbers and choices before sending anything", async () => {
    expectUsage(await warden(["list", "--limit", "-1"]), '--limit must be a whole number from 1 to 100 (got "-1")', "list");
    expectUsage(await warden(["list", "--limit=0"]), '--limit must be a whole number from 1 to 100 (got "0")', "list");
    expectUsage(await warden(["list", "--limit", "101"]), '--limit must be a whole number from 1 to 100 (got "101")', "list");
    expectUsage(await warden(["list", "--limit", "ten"]), '--limit must be a whole number from 1 to 100 (got "ten")', "list");
    expectUsage(await warden(["list", "--status", "bogus"]), '--status must be one of queued, running, waiting, succeeded, failed, cancelled (got "bogus")', "list");
    expectUsage(await warden(["submit", "demo.sleep", "--max-attempts", "0"]), '--max-attempts must be a whole number of at least 1 (got "0")', "submit");
    expectUsage(await warden(["submit", "demo.sleep", "--timeout", "1.5"]), '--timeout must be a whole number of at least 1 (got "1.5")', "submit");
    expectUsage(await warden(["submit", "demo.sleep", "--queue", "huge"]), '--queue must be one of default, large (got "huge")', "submit");
    expectUsage(await warden(["wait", "01JOB", "--wait-timeout", "-3"]), '--wait-timeout must be a whole number of at least 1 (got "-3")', "wait");
    expectUsage(await warden(["dead-letters", "--redrive", "nowhere"]), '--redrive must be one of default, large (got "nowhere")', "dead-letters");
  });

  it("refuses --wait-timeout without --wait instead of ignoring it", async () => {
    expectUsage(await warden(["submit", "demo.sleep", "--wait-timeout", "5"]), "--wait-timeout needs --wait (or use 'warden wait ID --wait-timeout SECONDS')", "submit");
  });

  it("says what is missing or extra in one line", async () => {
    expectUsage(await warden(["submit"]), `submit needs a job type, e.g. warden submit demo.sleep --input '{"items":5}'`, "submit");
    for (const name of ["status", "wait", "cancel", "retry"]) expectUsage(await warden([name]), `${name} needs a job id`, name);
    expectUsage(await warden(["status", "a", "b"]), "too many arguments for 'status'. Expected 1 argument but got 2", "status");
    expectUsage(await warden(["list", "extra"]), "too many arguments for 'list'. Expected 0 arguments but got 1", "list");
    expectUsage(await warden(["submit", "demo.sleep", "--input", "{nope"]), /^warden: --input is not valid JSON: /, "submit");
    expectUsage(await warden(["submit", "demo.sleep", "--input", "@/nonexistent/input.json"]), /^warden: cannot read --input file: ENOENT/, "submit");
    // A global option's mistake points at the program's help, where the global options are.
    expectUsage(await warden(["list", "--url"]), "option '--url <url>' argument missing", undefined);
    expectUsage(await warden(["list", "--url", "ftp://x"]), '--url must start with http:// or https:// (got "ftp://x")', "list");
    expectUsage(await warden(["list"], { WARDEN_URL: "http://127.0.0.1:9", WARDEN_AUTH: "iam" }), 'WARDEN_AUTH must be sigv4 or bearer (got "iam")', "list");
  });

  it("answers in JSON on stdout too with --json, wherever the flag is", async () => {
    for (const args of [["--json", "list", "--limit", "-1"], ["list", "--limit", "-1", "--json"]]) {
      const run = await warden(args);
      expect(run.code).toBe(EXIT.usage);
      expect(JSON.parse(run.stdout)).toEqual({ error: { name: "UsageError", message: '--limit must be a whole number from 1 to 100 (got "-1")' } });
      expect(run.stderr.split("\n")[0]).toBe('warden: --limit must be a whole number from 1 to 100 (got "-1")');
    }
  });
});

/**
 * A job on loopback that is queued for three looks, running for four, then done; it asks every
 * poller to come back in 30 s while running (as the real API does for a job minutes old).
 */
describe("--wait's polling", () => {
  let server: Server;
  let url: string;
  const polls: { at: number; status: string }[] = [];
  const SCRIPT = ["queued", "queued", "queued", "running", "running", "running", "running", "succeeded"] as const;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const status = SCRIPT[Math.min(polls.length, SCRIPT.length - 1)]!;
      polls.push({ at: Date.now(), status });
      const done = polls.filter((p) => p.status === "running").length;
      const job = {
        id: "01POLLED",
        type: "demo.sleep",
        queue: "default",
        status,
        progress: status === "queued" ? null : { done, total: 4, percent: status === "succeeded" ? 100 : done * 25, message: `item ${done} of 4` },
        attempts: status === "queued" ? 0 : 1,
        maxAttempts: 3,
        createdAt: new Date(Date.now() - 10 * 60_000).toISOString(),
        startedAt: null,
        firstStartedAt: null,
        heartbeatAt: null,
        finishedAt: status === "succeeded" ? new Date().toISOString() : null,
        runAt: null,
        cancelRequested: false,
        stale: false,
        error: null,
        result: status === "succeeded" ? { items: 4 } : null,
        history: [],
      };
      expect(req.url).toBe("/jobs/01POLLED");
      res.writeHead(200, { "content-type": "application/json", ...(status === "succeeded" ? {} : { "retry-after": status === "queued" ? "1" : "30" }) });
      res.end(JSON.stringify({ job }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
  });

  it("looks every second while the job runs, past Retry-After, and backs off while it is queued", async () => {
    const run = await warden(["wait", "01POLLED"], { WARDEN_URL: url, WARDEN_TOKEN: "t" });
    expect(run.code, run.stderr).toBe(EXIT.ok);
    expect(polls.map((p) => p.status)).toEqual(SCRIPT);
    const gaps = polls.slice(1).map((p, i) => p.at - polls[i]!.at);
    // Queued: 1 s (Retry-After), 1 s, then 2 s as the doubling passes Retry-After.
    expect(gaps[2], String(gaps)).toBeGreaterThanOrEqual(1_900);
    // Running: once a second, although the API asked for 30 s.
    for (const gap of gaps.slice(3)) {
      expect(gap, String(gaps)).toBeGreaterThanOrEqual(RUNNING_POLL_MS - 300);
      expect(gap, String(gaps)).toBeLessThanOrEqual(RUNNING_POLL_MS + 300);
    }
    const bars = run.stderrAt.filter((l) => l.line.startsWith("["));
    expect(bars.map((b) => b.line.replace(/^\[[#-]+\]\s+/, ""))).toEqual([
      "0.0%  queued",
      "25.0%  running  item 1 of 4",
      "50.0%  running  item 2 of 4",
      "75.0%  running  item 3 of 4",
      "100.0%  running  item 4 of 4",
      "100.0%  succeeded  item 4 of 4",
    ]);
    expect(run.stdout).toMatch(/status\s+succeeded/);
  }, 20_000);
});
