/**
 * `npm start`'s configuration: flags first, then the environment that API.md ("Running it
 * locally") lists, then defaults that make a demo quick (short leases, frequent sweeps).
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { LAMBDA_WORKER } from "../core/config.js";

export interface LocalConfig {
  port: number;
  /** Where dynalite persists; undefined with `--memory` (a throwaway run). */
  dataDir: string | undefined;
  workers: number;
  leaseSeconds: number;
  sweepIntervalSeconds: number;
  /** Start deadline of a queued job: how long a lost doorbell goes unnoticed. */
  startDeadlineSeconds: number;
  cancelGraceSeconds: number;
  /** The Lambda stand-in's timeout: what `getRemainingTimeInMillis` counts down from. */
  lambdaTimeoutSeconds: number;
  lambdaConcurrency: number;
  /** How often finished jobs past `expiresAt` are deleted (the TTL stand-in). */
  ttlIntervalSeconds: number;
  /**
   * Alarm periods are multiplied by this locally, so a 60 s CloudWatch period becomes a few
   * seconds and an alarm can be seen to fire and clear during a demo. 1 keeps AWS's periods.
   */
  alarmTimeScale: number;
  alarmIntervalSeconds: number;
  /** Tokens by caller; the admin's token is separate. */
  callers: Map<string, string>;
  adminToken: string;
  /** True when the tokens were made up at start (and so must be printed to be usable). */
  generatedTokens: boolean;
}

type Env = Record<string, string | undefined>;

const HELP = `usage: npm start -- [--port N] [--workers N] [--memory] [--data-dir DIR]

  --port N        the API and the dashboard (env PORT, default 4000; 0 picks a free port)
  --workers N     Fargate-style worker processes (env WARDEN_WORKERS, default 2)
  --memory        keep DynamoDB in memory: nothing survives a restart
  --data-dir DIR  persist DynamoDB here (env WARDEN_DATA_DIR, default .warden/)

env: WARDEN_API_TOKENS (caller:token,...), WARDEN_ADMIN_TOKEN, WARDEN_LEASE_SECONDS (6),
     WARDEN_SWEEP_INTERVAL_SECONDS (2), WARDEN_START_DEADLINE_SECONDS (10),
     WARDEN_CANCEL_GRACE_SECONDS (10), WARDEN_LAMBDA_TIMEOUT_SECONDS (120),
     WARDEN_LAMBDA_CONCURRENCY (50),
     WARDEN_ALARM_TIME_SCALE (0.1), WARDEN_TTL_INTERVAL_SECONDS (30)`;

export class UsageError extends Error {
  readonly help = HELP;
}

function number(name: string, raw: string | undefined, fallback: number, min = 0): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`${name} must be a number >= ${min}, not "${raw}"`);
  return n;
}

const token = (): string => randomBytes(18).toString("base64url");

/** Parses `caller:token` pairs; a malformed pair is an error rather than a silently open door. */
export function parseTokens(raw: string | undefined): Map<string, string> {
  const callers = new Map<string, string>();
  for (const pair of (raw ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
    const i = pair.indexOf(":");
    const caller = pair.slice(0, i).trim();
    const tok = pair.slice(i + 1).trim();
    if (i <= 0 || !caller || !tok) throw new UsageError(`WARDEN_API_TOKENS: "${pair}" is not a caller:token pair`);
    callers.set(caller, tok);
  }
  return callers;
}

export function loadLocalConfig(argv: string[] = process.argv.slice(2), env: Env = process.env): LocalConfig {
  const flags = parseFlags(argv);
  const memory = flags.has("memory");
  const callers = parseTokens(env.WARDEN_API_TOKENS);
  const generated = callers.size === 0 || !env.WARDEN_ADMIN_TOKEN;
  if (callers.size === 0) callers.set("local", token());
  return {
    port: number("--port/PORT", flags.get("port") ?? env.PORT, 4000),
    dataDir: memory ? undefined : resolve(flags.get("data-dir") ?? env.WARDEN_DATA_DIR ?? ".warden"),
    workers: Math.floor(number("--workers/WARDEN_WORKERS", flags.get("workers") ?? env.WARDEN_WORKERS, 2)),
    leaseSeconds: number("WARDEN_LEASE_SECONDS", env.WARDEN_LEASE_SECONDS, 6, 1),
    sweepIntervalSeconds: number("WARDEN_SWEEP_INTERVAL_SECONDS", env.WARDEN_SWEEP_INTERVAL_SECONDS, 2, 0.1),
    startDeadlineSeconds: number("WARDEN_START_DEADLINE_SECONDS", env.WARDEN_START_DEADLINE_SECONDS, 10, 1),
    cancelGraceSeconds: number("WARDEN_CANCEL_GRACE_SECONDS", env.WARDEN_CANCEL_GRACE_SECONDS, 10, 1),
    lambdaTimeoutSeconds: number("WARDEN_LAMBDA_TIMEOUT_SECONDS", env.WARDEN_LAMBDA_TIMEOUT_SECONDS, LAMBDA_WORKER.timeoutSeconds, 1),
    lambdaConcurrency: Math.floor(number("WARDEN_LAMBDA_CONCURRENCY", env.WARDEN_LAMBDA_CONCURRENCY, LAMBDA_WORKER.maxConcurrency, 1)),
    ttlIntervalSeconds: number("WARDEN_TTL_INTERVAL_SECONDS", env.WARDEN_TTL_INTERVAL_SECONDS, 30, 0.1),
    alarmTimeScale: number("WARDEN_ALARM_TIME_SCALE", env.WARDEN_ALARM_TIME_SCALE, 0.1, 0.001),
    alarmIntervalSeconds: number("WARDEN_ALARM_INTERVAL_SECONDS", env.WARDEN_ALARM_INTERVAL_SECONDS, 1, 0.1),
    callers,
    adminToken: env.WARDEN_ADMIN_TOKEN || token(),
    generatedTokens: generated,
  };
}

function parseFlags(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const valued = new Set(["port", "workers", "data-dir"]);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") throw new UsageError("");
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new UsageError(`unexpected argument "${arg}"`);
    const name = m[1]!;
    if (name === "memory") {
      out.set(name, "true");
    } else if (valued.has(name)) {
      const value = m[2] ?? argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      out.set(name, value);
    } else {
      throw new UsageError(`unknown flag --${name}`);
    }
  }
  return out;
}
