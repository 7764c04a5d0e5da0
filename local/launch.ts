/**
 * Starts `npm start` (local/main.ts) as a child process and waits for its ready line: what the
 * demo and the end-to-end tests use, so they exercise exactly what a newcomer runs. By default
 * the child is local/main.ts itself, as the `start` script runs it; `via: "npm"` starts the real
 * `npm start`, npm in between. Every port is a free one (PORT, WARDEN_DYNAMODB_PORT and
 * WARDEN_SQS_PORT are 0 unless `env` says otherwise), so launches run side by side and beside
 * an `npm start` on the default ports, and WARDEN_DYNAMODB_ENDPOINT / WARDEN_SQS_ENDPOINT are
 * not inherited (pass them in `env`). The child leads its own process group, so `crash()` can
 * SIGKILL it with its workers, as a power cut would.
 * It is told this process's pid (WARDEN_PARENT_PID): should this process die without stopping it
 * (a killed test run), it stops by itself instead of holding its port and emulators for ever.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { parentEnv } from "../functions/parent-watch.js";
import { REPO_ROOT } from "./fleet.js";

export interface LaunchOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Every line the child prints, as it prints it. */
  onLine?: (line: string) => void;
  readyTimeoutMs?: number;
  /**
   * Let `npm start` choose its tokens (its data directory's tokens.json, or made up with
   * --memory) instead of being handed fresh ones in WARDEN_API_TOKENS / WARDEN_ADMIN_TOKEN;
   * `callerToken` and `adminToken` are then the ones its banner printed.
   */
  ownTokens?: boolean;
  /** "node" (the default): local/main.ts as the child; "npm": `npm start -- <args>`, npm as the child. */
  via?: "node" | "npm";
}

export interface Launched {
  url: string;
  callerToken: string;
  adminToken: string;
  /** The endpoints its banner printed. */
  dynamoEndpoint: string | undefined;
  sqsEndpoint: string | undefined;
  /** local/main.ts's pid (with `via: "npm"`, npm's child), from its banner. */
  mainPid: number | undefined;
  /** The worker processes' pids, as their ready lines arrive. */
  workerPids: ReadonlySet<number>;
  child: ChildProcess;
  output: string[];
  /** SIGTERM (or `signal`) to the child, as `kill` would; resolves with the exit code. */
  stop(timeoutMs?: number, signal?: NodeJS.Signals): Promise<number | null>;
  /** SIGKILL the whole process group: nothing gets to hand its jobs back. */
  crash(): Promise<void>;
}

export async function launchLocal(o: LaunchOptions = {}): Promise<Launched> {
  const callerToken = o.env?.WARDEN_API_TOKENS?.split(":")[1] ?? randomBytes(12).toString("hex");
  const adminToken = o.env?.WARDEN_ADMIN_TOKEN ?? randomBytes(12).toString("hex");
  const [command, args] =
    o.via === "npm" ? [process.platform === "win32" ? "npm.cmd" : "npm", ["start", "--silent", "--", ...(o.args ?? [])]] : [process.execPath, ["--import", "tsx", "local/main.ts", ...(o.args ?? [])]];
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: {
      // A launch starts its own emulators, whatever the shell points `npm start` at.
      ...withoutEndpoints(process.env),
      PORT: "0",
      WARDEN_DYNAMODB_PORT: "0",
      WARDEN_SQS_PORT: "0",
      WARDEN_API_TOKENS: o.ownTokens ? "" : `local:${callerToken}`,
      WARDEN_ADMIN_TOKEN: o.ownTokens ? "" : adminToken,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      ...parentEnv(),
      ...o.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const output: string[] = [];
  // Worker processes lead their own groups (see fleet.ts): a crash must kill them too.
  const workerPids = new Set<number>();
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let buf = "";
    const onData = (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        output.push(line);
        o.onLine?.(line);
        const w = /^\[[^\]]+\] ready \(pid (\d+)\)/.exec(line);
        if (w) workerPids.add(Number(w[1]));
        const m = /^warden: ready (\S+)/.exec(line);
        if (m) resolve(m[1]!);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    const timer = setTimeout(() => reject(new Error(`npm start was not ready within ${o.readyTimeoutMs ?? 60_000} ms:\n${output.slice(-30).join("\n")}`)), o.readyTimeoutMs ?? 60_000);
    void exited.then((code) => reject(new Error(`npm start exited (${code}) before it was ready:\n${output.slice(-30).join("\n")}`)));
    void exited.finally(() => clearTimeout(timer));
    child.once("error", reject);
  }).catch(async (e: unknown) => {
    killGroup(child, "SIGKILL");
    throw e;
  });
  const printed = (re: RegExp) => output.map((l) => re.exec(l)?.[1]).find((v) => v !== undefined);
  const mainPid = printed(/^warden: stop .*kill -TERM (\d+)/);
  return {
    url,
    callerToken: (o.ownTokens && printed(/^  caller \S+: (\S+)/)) || callerToken,
    adminToken: (o.ownTokens && printed(/^  admin: (\S+)/)) || adminToken,
    dynamoEndpoint: printed(/^warden: dynamodb +(\S+)/),
    sqsEndpoint: printed(/^warden: sqs +(\S+)/),
    mainPid: mainPid === undefined ? undefined : Number(mainPid),
    workerPids,
    child,
    output,
    async stop(timeoutMs = 30_000, signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => killGroup(child, "SIGKILL"), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async crash() {
      killGroup(child, "SIGKILL");
      for (const pid of workerPids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
      await exited;
    },
  };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

/** A small client for the contract's routes, with the caller's or the admin's token. */
export function client(url: string, token: string) {
  return async function call<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
}

/** The environment less WARDEN_DYNAMODB_ENDPOINT and WARDEN_SQS_ENDPOINT: a launch names its backends itself. */
function withoutEndpoints(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { WARDEN_DYNAMODB_ENDPOINT: _d, WARDEN_SQS_ENDPOINT: _s, ...rest } = env;
  return rest;
}
