/**
 * Starts `npm start` (local/main.ts) as a child process and waits for its ready line: what the
 * demo and the end-to-end tests use, so they exercise exactly what a newcomer runs. The child
 * leads its own process group, so `crash()` can SIGKILL it with its workers, as a power cut would.
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
}

export interface Launched {
  url: string;
  callerToken: string;
  adminToken: string;
  child: ChildProcess;
  output: string[];
  /** SIGTERM, as Ctrl-C would; resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL the whole process group: nothing gets to hand its jobs back. */
  crash(): Promise<void>;
}

export async function launchLocal(o: LaunchOptions = {}): Promise<Launched> {
  const callerToken = o.env?.WARDEN_API_TOKENS?.split(":")[1] ?? randomBytes(12).toString("hex");
  const adminToken = o.env?.WARDEN_ADMIN_TOKEN ?? randomBytes(12).toString("hex");
  const child = spawn(process.execPath, ["--import", "tsx", "local/main.ts", ...(o.args ?? [])], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      PORT: "0",
      WARDEN_API_TOKENS: `local:${callerToken}`,
      WARDEN_ADMIN_TOKEN: adminToken,
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
  return {
    url,
    callerToken,
    adminToken,
    child,
    output,
    async stop(timeoutMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill("SIGTERM");
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
