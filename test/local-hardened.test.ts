/**
 * `npm start` as a new user meets it:
 *
 * - its tokens are kept in the data directory (tokens.json, mode 0600) across restarts, replaced
 *   by --rotate-tokens, made up afresh with --memory, and overridden by the environment;
 * - the emulators' ports are fixed by default (8000, 9324), chosen by flag or variable, and a
 *   taken port is a clear error;
 * - SIGTERM or SIGINT sent to the npm process itself (the real `npm start`, npm in between)
 *   stops Warden: the worker hands its job back ("released", not "worker_lost"), every process
 *   exits and every port is free;
 * - nothing it opens (dynalite, fauxqs, the API gateway) accepts a connection on the machine's
 *   non-loopback addresses;
 * - `npm run demo` uses the running instance when WARDEN_URL and the tokens are set, says so,
 *   and otherwise says why it starts its own.
 *
 * Every launch here uses free ports (local/launch.ts sets them to 0), so this file runs beside
 * the others and beside an `npm start` on the default ports.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { connect, createServer, type AddressInfo } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadLocalConfig, TOKENS_FILE, UsageError } from "../local/config.js";
import { PortInUseError, startEmulators } from "../local/emulators.js";
import { REPO_ROOT } from "../local/fleet.js";
import { client, launchLocal, type Launched } from "../local/launch.js";
import { waitFor } from "./support/emulators.js";

const dirs: string[] = [];
const tempDir = (name: string) => {
  const d = mkdtempSync(join(tmpdir(), `warden-${name}-`));
  dirs.push(d);
  return d;
};
const launched = new Set<Launched>();
async function launch(...args: Parameters<typeof launchLocal>): Promise<Launched> {
  const l = await launchLocal(...args);
  launched.add(l);
  return l;
}
/** Stops it; one that did not exit 0 is left to afterAll's crash(), which kills its process group and workers. */
async function stopped(l: Launched, signal?: NodeJS.Signals): Promise<number | null> {
  const code = await l.stop(30_000, signal);
  if (code === 0) launched.delete(l);
  return code;
}

afterAll(async () => {
  for (const l of launched) await l.crash();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const portOf = (url: string) => Number(new URL(url).port);

/** What a TCP connect to host:port gets: "connected", "refused", or another error's code. */
function probe(host: string, port: number, timeoutMs = 3_000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (r: string) => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done("timeout"), timeoutMs);
    s.once("connect", () => done("connected"));
    s.once("error", (e: NodeJS.ErrnoException) => done(e.code === "ECONNREFUSED" ? "refused" : (e.code ?? String(e))));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });

describe("tokens kept in the data directory", () => {
  const noEnv = {};

  it("are made once, mode 0600, and read back at every later start", () => {
    const dir = tempDir("tokens");
    const first = loadLocalConfig(["--data-dir", dir], noEnv);
    const file = join(dir, TOKENS_FILE);
    expect(first.tokensFile).toBe(file);
    expect(first.tokensFileEvent).toBe("created");
    expect(first.tokenSources).toEqual({ callers: "file", admin: "file" });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const kept = JSON.parse(readFileSync(file, "utf8"));
    expect(kept.admin).toBe(first.adminToken);
    expect(kept.callers).toEqual(Object.fromEntries(first.callers));
    expect(first.adminToken).not.toBe(first.callers.get("local"));

    const second = loadLocalConfig([], { WARDEN_DATA_DIR: dir });
    expect(second.tokensFileEvent).toBe("read");
    expect(second.adminToken).toBe(first.adminToken);
    expect([...second.callers]).toEqual([...first.callers]);
  });

  it("--rotate-tokens replaces them; --memory makes up new ones every time and writes nothing", () => {
    const dir = tempDir("tokens");
    const first = loadLocalConfig(["--data-dir", dir], {});
    const rotated = loadLocalConfig(["--data-dir", dir, "--rotate-tokens"], {});
    expect(rotated.tokensFileEvent).toBe("rotated");
    expect(rotated.adminToken).not.toBe(first.adminToken);
    expect(rotated.callers.get("local")).not.toBe(first.callers.get("local"));
    expect(statSync(join(dir, TOKENS_FILE)).mode & 0o777).toBe(0o600);
    expect(loadLocalConfig(["--data-dir", dir], {}).adminToken).toBe(rotated.adminToken);
    // No temporary file is left behind.
    expect(readdirSync(dir)).toEqual([TOKENS_FILE]);

    const m1 = loadLocalConfig(["--memory"], { WARDEN_DATA_DIR: dir });
    const m2 = loadLocalConfig(["--memory"], { WARDEN_DATA_DIR: dir });
    expect(m1.tokensFile).toBeUndefined();
    expect(m1.tokenSources).toEqual({ callers: "run", admin: "run" });
    expect(m1.adminToken).not.toBe(m2.adminToken);
    expect(m1.adminToken).not.toBe(rotated.adminToken);
    expect(() => loadLocalConfig(["--memory", "--rotate-tokens"], {})).toThrow(UsageError);
  });

  it("the environment wins, token by token; a file is never made for tokens the environment names", () => {
    const dir = tempDir("tokens");
    const both = loadLocalConfig(["--data-dir", dir], { WARDEN_API_TOKENS: "alice:a-token", WARDEN_ADMIN_TOKEN: "env-admin" });
    expect(both.tokenSources).toEqual({ callers: "env", admin: "env" });
    expect(both.tokensFile).toBeUndefined();
    expect(readdirSync(dir)).toEqual([]);

    const file = loadLocalConfig(["--data-dir", dir], {});
    const adminFromEnv = loadLocalConfig(["--data-dir", dir], { WARDEN_ADMIN_TOKEN: "env-admin" });
    expect(adminFromEnv.adminToken).toBe("env-admin");
    expect(adminFromEnv.callers.get("local")).toBe(file.callers.get("local"));
    expect(adminFromEnv.tokenSources).toEqual({ callers: "file", admin: "env" });
    const callersFromEnv = loadLocalConfig(["--data-dir", dir], { WARDEN_API_TOKENS: "alice:a-token" });
    expect([...callersFromEnv.callers]).toEqual([["alice", "a-token"]]);
    expect(callersFromEnv.adminToken).toBe(file.adminToken);
  });

  it("a damaged file is an error naming the way out; a file readable by others is narrowed to its owner", () => {
    const dir = tempDir("tokens");
    const file = join(dir, TOKENS_FILE);
    writeFileSync(file, "{ not json");
    expect(() => loadLocalConfig(["--data-dir", dir], {})).toThrow(/tokens\.json is not JSON: .*--rotate-tokens/);
    writeFileSync(file, JSON.stringify({ callers: {}, admin: "x" }));
    expect(() => loadLocalConfig(["--data-dir", dir], {})).toThrow(/is not \{"callers"/);
    // --rotate-tokens is the way out.
    expect(loadLocalConfig(["--data-dir", dir, "--rotate-tokens"], {}).tokensFileEvent).toBe("rotated");

    writeFileSync(file, JSON.stringify({ callers: { local: "kept-caller" }, admin: "kept-admin" }));
    chmodSync(file, 0o644);
    const cfg = loadLocalConfig(["--data-dir", dir], {});
    expect(cfg.adminToken).toBe("kept-admin");
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it("npm start prints them, keeps them across restarts (the old ones still work), and --rotate-tokens retires them", async () => {
    const dir = tempDir("tokens-run");
    const start = (...extra: string[]) => launch({ ownTokens: true, args: ["--data-dir", dir, "--workers", "0", ...extra] });
    let sys = await start();
    const first = { caller: sys.callerToken, admin: sys.adminToken };
    expect(sys.output.join("\n")).toContain(`warden: tokens     made now and kept in ${join(dir, TOKENS_FILE)}`);
    expect(JSON.parse(readFileSync(join(dir, TOKENS_FILE), "utf8"))).toMatchObject({ callers: { local: first.caller }, admin: first.admin });
    expect(sys.output).toContain(`  use them: export WARDEN_URL=${sys.url} WARDEN_TOKEN=${first.caller} WARDEN_ADMIN_TOKEN=${first.admin}`);
    expect(await stopped(sys)).toBe(0);

    sys = await start();
    expect(sys.output.join("\n")).toContain(`warden: tokens     kept in ${join(dir, TOKENS_FILE)}`);
    expect({ caller: sys.callerToken, admin: sys.adminToken }).toEqual(first);
    // What a user exported, and what the dashboard saved, still work.
    expect((await client(sys.url, first.caller)("GET", "/jobs?limit=1")).status).toBe(200);
    expect((await client(sys.url, first.admin)("GET", "/admin/workers")).status).toBe(200);
    expect(await stopped(sys)).toBe(0);

    sys = await start("--rotate-tokens");
    expect(sys.output.join("\n")).toContain("warden: tokens     new (--rotate-tokens), kept in");
    expect(sys.callerToken).not.toBe(first.caller);
    expect(sys.adminToken).not.toBe(first.admin);
    expect((await client(sys.url, first.caller)("GET", "/jobs?limit=1")).status).toBe(401);
    expect((await client(sys.url, first.admin)("GET", "/admin/workers")).status).toBe(401);
    expect((await client(sys.url, sys.callerToken)("GET", "/jobs?limit=1")).status).toBe(200);
    expect(await stopped(sys)).toBe(0);
  }, 90_000);
});

describe("the emulators' ports", () => {
  it("are 8000 and 9324 unless a flag or a variable says otherwise", () => {
    const dir = tempDir("ports");
    const d = loadLocalConfig(["--data-dir", dir], {});
    expect([d.port, d.dynamoPort, d.sqsPort]).toEqual([4000, 8000, 9324]);
    const env = loadLocalConfig(["--data-dir", dir], { WARDEN_DYNAMODB_PORT: "8100", WARDEN_SQS_PORT: "0" });
    expect([env.dynamoPort, env.sqsPort]).toEqual([8100, 0]);
    const flags = loadLocalConfig(["--data-dir", dir, "--dynamodb-port", "8200", "--sqs-port=9400"], { WARDEN_DYNAMODB_PORT: "8100" });
    expect([flags.dynamoPort, flags.sqsPort]).toEqual([8200, 9400]);
    expect(() => loadLocalConfig(["--data-dir", dir, "--sqs-port", "70000"], {})).toThrow(/port number/);
    expect(() => loadLocalConfig(["--data-dir", dir, "--dynamodb-port", "x"], {})).toThrow(UsageError);
    // A start refused for its flags writes no tokens file.
    const untouched = tempDir("ports");
    expect(() => loadLocalConfig(["--data-dir", untouched, "--port", "70000"], {})).toThrow(UsageError);
    expect(readdirSync(untouched)).toEqual([]);
  });

  it("a taken port is a PortInUseError naming the emulator, and nothing is left running", async () => {
    const holder = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => holder.once("listening", r));
    const port = (holder.address() as AddressInfo).port;
    try {
      for (const what of ["dynamodb", "sqs"] as const) {
        const e = await startEmulators(what === "dynamodb" ? { dynamoPort: port } : { sqsPort: port }).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(e).toBeInstanceOf(PortInUseError);
        expect(e).toMatchObject({ what, port, code: "EADDRINUSE" });
      }
      // The fixed ports a test chose are used as given.
      const [dynamoPort, sqsPort] = [await freePort(), await freePort()];
      const emu = await startEmulators({ stage: "fixed", dynamoPort, sqsPort });
      expect([emu.dynamoEndpoint, emu.sqsEndpoint]).toEqual([`http://127.0.0.1:${dynamoPort}`, `http://127.0.0.1:${sqsPort}`]);
      await emu.stop();
    } finally {
      holder.close();
    }
  });

  it("npm start with a taken port exits 1 with the flag that moves it", async () => {
    const holder = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => holder.once("listening", r));
    const port = (holder.address() as AddressInfo).port;
    try {
      const e = await launchLocal({ args: ["--memory", "--workers", "0", "--sqs-port", String(port)] }).then(
        (l) => (launched.add(l), undefined),
        (err: unknown) => err as Error,
      );
      expect(e?.message).toMatch(/exited \(1\) before it was ready/);
      expect(e?.message).toContain(`warden: 127.0.0.1:${port}, the SQS emulator (fauxqs)'s port, is taken by another process`);
      expect(e?.message).toContain("--sqs-port N (WARDEN_SQS_PORT), 0 for any free one");
      expect(e?.message).toContain(`WARDEN_SQS_ENDPOINT=http://127.0.0.1:${port}`);
    } finally {
      holder.close();
    }
  }, 60_000);
});

describe("npm start stops on a signal sent to the npm process itself", () => {
  it.each(["SIGTERM", "SIGINT", "SIGKILL"] as const)(
    "%s to npm: the worker hands its job back, every process exits, every port is free",
    async (signal) => {
      const dir = tempDir("signal");
      // A long lease: a job not handed back would still be "running" at the restart below.
      const env = { WARDEN_LEASE_SECONDS: "60", WARDEN_API_TOKENS: "local:signal-caller", WARDEN_ADMIN_TOKEN: "signal-admin" };
      // Not told of this process (WARDEN_PARENT_PID): npm is the parent Warden watches, as under a terminal.
      const sys = await launch({ via: "npm", args: ["--data-dir", dir, "--workers", "1"], env: { ...env, WARDEN_PARENT_PID: "" } });
      const call = client(sys.url, sys.callerToken);
      const sub = await call<{ job: { id: string } }>("POST", "/jobs", { type: "demo.sleep", queue: "large", input: { items: 200, msPerItem: 200, checkpointEvery: 2 } });
      expect(sub.status).toBe(201);
      const id = sub.body.job.id;
      await waitFor(async () => {
        const j = (await call<{ job: { status: string; progress: { done: number } | null } }>("GET", `/jobs/${id}`)).body.job;
        return j.status === "running" && (j.progress?.done ?? 0) >= 3;
      }, 30_000, "the job to run on the worker process");

      expect(sys.mainPid).toBeGreaterThan(0);
      expect(sys.output).toContain(`warden: stop       Ctrl-C, or kill -TERM ${sys.mainPid} (this process) or ${sys.child.pid} (npm): workers hand their jobs back first`);
      expect(sys.workerPids.size).toBe(1);
      const ports = [sys.url, sys.dynamoEndpoint!, sys.sqsEndpoint!].map(portOf);

      // To npm's pid only (it leads its own process group; nothing else is signalled).
      const t0 = Date.now();
      const code = await stopped(sys, signal);
      if (signal === "SIGKILL") {
        // npm dies at once; Warden notices its parent is gone and stops the same way.
        expect(code).toBeNull();
        await waitFor(() => !alive(sys.mainPid!), 35_000, "Warden to stop after npm was killed");
        launched.delete(sys);
      } else {
        expect(code).toBe(0);
        expect(Date.now() - t0).toBeLessThan(25_000);
      }
      // Warden holds the pipes npm passed it, so what it printed after npm's death still arrives.
      const said = (text: string) => waitFor(() => sys.output.join("\n").includes(text), 5_000, `"${text}" in the output`);
      await said(signal === "SIGKILL" ? "warden: parent process exited; stopping" : `warden: ${signal}: stopping (workers hand their jobs back)`);
      await said("handing running jobs back");
      if (signal !== "SIGKILL") await said("warden: stopped");

      for (const pid of [sys.mainPid!, ...sys.workerPids]) await waitFor(() => !alive(pid), 5_000, `pid ${pid} to exit`);
      for (const port of ports) expect(await probe("127.0.0.1", port)).toBe("refused");
      // The API's port can be listened on again at once.
      const again = createServer().listen(ports[0], "127.0.0.1");
      await new Promise((resolve, reject) => (again.once("listening", resolve), again.once("error", reject)));
      await new Promise((r) => again.close(r));

      // The job was handed back, not lost: its attempt ended "released" and it is queued again.
      const next = await launch({ args: ["--data-dir", dir, "--workers", "0"], env });
      const job = (await client(next.url, next.callerToken)<{ job: { status: string; history: { outcome: string | null }[] } }>("GET", `/jobs/${id}`)).body.job;
      expect(job.history[0]!.outcome).toBe("released");
      expect(job.status).toBe("queued");
      expect(await stopped(next)).toBe(0);
    },
    150_000,
  );
});

/** This machine's addresses other than loopback; IPv6 link-local ones carry their interface. */
function externalAddresses(): string[] {
  const out: string[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.internal) continue;
      out.push(a.family === "IPv6" && a.address.startsWith("fe80:") ? `${a.address}%${name}` : a.address);
    }
  }
  return out;
}

/** The TCP sockets these processes listen on, as "address:port" (Linux's /proc; undefined elsewhere). */
function listeningSockets(pids: number[]): string[] | undefined {
  const read = (f: string) => {
    try {
      return readFileSync(f, "utf8");
    } catch {
      return undefined;
    }
  };
  const v4 = read("/proc/net/tcp");
  if (v4 === undefined) return undefined;
  const inodes = new Set<string>();
  for (const pid of pids) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const m = /^socket:\[(\d+)\]$/.exec((() => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ""; } })());
      if (m) inodes.add(m[1]!);
    }
  }
  const word = (hex: string) => hex.match(/../g)!.reverse().join("");
  const address = (hex: string): string => {
    if (hex.length === 8) return word(hex).match(/../g)!.map((b) => parseInt(b, 16)).join(".");
    const groups = (hex.match(/.{8}/g) ?? []).map(word).join("").match(/.{4}/g)!;
    return groups.map((g) => g.replace(/^0+(?=.)/, "")).join(":");
  };
  const out: string[] = [];
  for (const table of [v4, read("/proc/net/tcp6") ?? ""]) {
    for (const line of table.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== "0A" || !inodes.has(f[9]!)) continue; // 0A: LISTEN
      const [addr, port] = f[1]!.split(":");
      out.push(`${address(addr!)}:${parseInt(port!, 16)}`);
    }
  }
  return out;
}

const isLoopbackListen = (s: string) => /^127\./.test(s) || s.startsWith("0:0:0:0:0:0:0:1:") || /^0:0:0:0:0:ffff:7f/i.test(s);

describe("nothing listens beyond loopback", () => {
  const external = externalAddresses();
  const none = "this machine has no non-loopback address (os.networkInterfaces()): nothing to connect to from outside loopback";

  it("the probe sees a server that does listen on every interface (so a refusal below means something)", async (ctx) => {
    if (!external.length) ctx.skip(none);
    const open = createServer((s) => s.destroy()).listen(0, "::");
    await new Promise((r) => open.once("listening", r));
    const port = (open.address() as AddressInfo).port;
    try {
      for (const host of external) expect(`${host}: ${await probe(host, port)}`).toBe(`${host}: connected`);
    } finally {
      open.close();
    }
  });

  it("startEmulators: dynalite and fauxqs refuse connections on every non-loopback address", async (ctx) => {
    if (!external.length) ctx.skip(none);
    const emu = await startEmulators({ stage: "loopback" });
    try {
      for (const [what, endpoint] of [["dynalite", emu.dynamoEndpoint], ["fauxqs", emu.sqsEndpoint]] as const) {
        const port = portOf(endpoint);
        expect(`${what} on 127.0.0.1: ${await probe("127.0.0.1", port)}`).toBe(`${what} on 127.0.0.1: connected`);
        for (const host of external) expect(`${what} on ${host}: ${await probe(host, port)}`).toBe(`${what} on ${host}: refused`);
      }
    } finally {
      await emu.stop();
    }
  });

  it("npm start: the API gateway, dynalite and fauxqs refuse connections on every non-loopback address, and no process of it listens elsewhere", async (ctx) => {
    if (!external.length) ctx.skip(none);
    const sys = await launch({ args: ["--memory", "--workers", "1"] });
    try {
      const ports: [string, number][] = [["API gateway", portOf(sys.url)], ["dynalite", portOf(sys.dynamoEndpoint!)], ["fauxqs", portOf(sys.sqsEndpoint!)]];
      for (const [what, port] of ports) {
        expect(`${what} on 127.0.0.1: ${await probe("127.0.0.1", port)}`).toBe(`${what} on 127.0.0.1: connected`);
        for (const host of external) expect(`${what} on ${host}: ${await probe(host, port)}`).toBe(`${what} on ${host}: refused`);
      }
      // Every listening socket of the whole process tree, whatever opened it.
      const sockets = listeningSockets([sys.mainPid!, ...sys.workerPids]);
      if (sockets) {
        expect(sockets.map((s) => Number(s.slice(s.lastIndexOf(":") + 1))).sort()).toEqual(expect.arrayContaining(ports.map(([, p]) => p).sort()));
        expect(sockets.filter((s) => !isLoopbackListen(s))).toEqual([]);
      }
    } finally {
      await stopped(sys);
    }
  }, 60_000);
});

/** `npm run demo` with exactly this Warden environment; its lines as they arrive. */
function runDemo(env: Record<string, string>): { child: ChildProcess; lines: string[]; exited: Promise<number | null>; line(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray> } {
  const base = { ...process.env };
  for (const k of ["WARDEN_URL", "WARDEN_TOKEN", "WARDEN_ADMIN_TOKEN", "WARDEN_DATA_DIR"]) delete base[k];
  const child = spawn("npm", ["run", "--silent", "demo"], { cwd: REPO_ROOT, env: { ...base, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const lines: string[] = [];
  let buf = "";
  const onData = (c: Buffer) => {
    buf += c.toString("utf8");
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  demos.add(child);
  void exited.then(() => demos.delete(child));
  return {
    child,
    lines,
    exited,
    line: (re, timeoutMs = 60_000) => waitFor(() => lines.map((l) => re.exec(l)).find(Boolean) ?? undefined, timeoutMs, `a line ${re} from the demo:\n${lines.join("\n")}`),
  };
}
const demos = new Set<ChildProcess>();
afterAll(() => {
  for (const c of demos) {
    try {
      process.kill(-c.pid!, "SIGKILL");
    } catch {
      /* gone */
    }
  }
});

describe("npm run demo", () => {
  let running: Launched;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = tempDir("demo");
    running = await launch({ ownTokens: true, args: ["--data-dir", dataDir, "--workers", "2"] });
  }, 60_000);
  afterAll(async () => {
    if (running) await stopped(running);
  });

  it("with WARDEN_URL, WARDEN_TOKEN and WARDEN_ADMIN_TOKEN set, runs on that instance, says so, and leaves it running", async () => {
    const demo = runDemo({ WARDEN_URL: running.url, WARDEN_TOKEN: running.callerToken, WARDEN_ADMIN_TOKEN: running.adminToken });
    expect(await demo.exited).toBe(0);
    const out = demo.lines.join("\n");
    expect(out).toContain(`using the Warden already running at ${running.url} (WARDEN_URL, WARDEN_TOKEN; the admin token from WARDEN_ADMIN_TOKEN); it is left running at the end`);
    expect(out).not.toContain("starting a Warden of its own");
    expect(out).toMatch(/resumedFrom [1-9]/);
    // Its ten jobs are on the running instance, which is still up.
    const jobs = (await client(running.url, running.callerToken)<{ jobs: unknown[] }>("GET", "/jobs?limit=100")).body.jobs;
    expect(jobs.length).toBeGreaterThanOrEqual(10);
    expect(running.child.exitCode).toBeNull();
  }, 120_000);

  it("without WARDEN_ADMIN_TOKEN, takes the admin token from the data directory's tokens.json when that instance accepts it", async () => {
    const demo = runDemo({ WARDEN_URL: running.url, WARDEN_TOKEN: running.callerToken, WARDEN_DATA_DIR: dataDir });
    await demo.line(new RegExp(`using the Warden already running at ${running.url} \\(WARDEN_URL, WARDEN_TOKEN; the admin token from ${join(dataDir, TOKENS_FILE).replace(/[.]/g, "\\.")}\\)`));
    await demo.line(/submitting 10 jobs/);
    process.kill(demo.child.pid!, "SIGTERM");
    expect(await demo.exited).not.toBe(0);
    expect(running.child.exitCode).toBeNull();
    expect((await client(running.url, running.callerToken)("GET", "/jobs?limit=1")).status).toBe(200);
  }, 60_000);

  it("says why it starts its own (WARDEN_TOKEN missing), and a SIGTERM to npm stops the one it started", async () => {
    const demo = runDemo({ WARDEN_URL: running.url });
    await demo.line(/WARDEN_URL is set but WARDEN_TOKEN is not: starting a Warden of its own on this machine/);
    const [, url] = await demo.line(/Warden is up at (\S+)\. Dashboard/);
    expect(url).not.toBe(running.url);
    process.kill(demo.child.pid!, "SIGTERM");
    expect(await demo.exited).toBe(143);
    expect(demo.lines.join("\n")).toContain("SIGTERM: stopping the Warden it started");
    expect(await probe("127.0.0.1", portOf(url!))).toBe("refused");
  }, 90_000);

  it("with WARDEN_URL and WARDEN_TOKEN set but nothing answering there, fails saying so instead of starting its own", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const demo = runDemo({ WARDEN_URL: url, WARDEN_TOKEN: "whatever", WARDEN_ADMIN_TOKEN: "whatever" });
    expect(await demo.exited).toBe(1);
    const out = demo.lines.join("\n");
    expect(out).toContain(`demo failed: nothing answers at WARDEN_URL=${url}`);
    expect(out).not.toContain("starting a Warden of its own");
  }, 30_000);
});
