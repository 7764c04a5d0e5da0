/**
 * `npm start`'s configuration: flags first, then the environment that docs/local.md lists, then
 * defaults that make a demo quick (short leases, frequent sweeps).
 *
 * Tokens: WARDEN_API_TOKENS and WARDEN_ADMIN_TOKEN win, each on its own. What they leave unset
 * comes from `<data dir>/tokens.json`, made (mode 0600) on the first start that needs it and
 * read by every later one, so an exported WARDEN_TOKEN and the dashboard's saved token keep
 * working across restarts; `--rotate-tokens` replaces the file's tokens with new ones.
 * `--memory` keeps nothing, tokens included: they are made up for each run.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { LAMBDA_WORKER } from "../core/config.js";

/** Where a token came from: the environment, the data directory's tokens.json, or made up for this run only. */
export type TokenSource = "env" | "file" | "run";

export interface LocalConfig {
  port: number;
  /** dynalite's port (default 8000; 0 picks a free one). Unused with WARDEN_DYNAMODB_ENDPOINT. */
  dynamoPort: number;
  /** fauxqs's port (default 9324; 0 picks a free one). Unused with WARDEN_SQS_ENDPOINT. */
  sqsPort: number;
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
  /** Where the callers' tokens and the admin's came from. */
  tokenSources: { callers: TokenSource; admin: TokenSource };
  /** The data directory's tokens file, when one was read or written (not with --memory, nor when the environment names every token). */
  tokensFile: string | undefined;
  /** What happened to the tokens file at this start: made, rotated, or read as it was. */
  tokensFileEvent: "created" | "rotated" | "read" | undefined;
}

type Env = Record<string, string | undefined>;

const HELP = `usage: npm start -- [--port N] [--dynamodb-port N] [--sqs-port N] [--workers N]
                    [--memory] [--data-dir DIR] [--rotate-tokens]

  --port N           the API and the dashboard (env PORT, default 4000; 0 picks a free port)
  --dynamodb-port N  the DynamoDB emulator, dynalite (env WARDEN_DYNAMODB_PORT, default 8000)
  --sqs-port N       the SQS emulator, fauxqs (env WARDEN_SQS_PORT, default 9324)
  --workers N        Fargate-style worker processes (env WARDEN_WORKERS, default 2)
  --memory           keep DynamoDB in memory, and make up tokens for this run: nothing survives
  --data-dir DIR     persist DynamoDB and the tokens here (env WARDEN_DATA_DIR, default .warden/)
  --rotate-tokens    replace the tokens kept in the data directory with new ones

Everything listens on 127.0.0.1 only.

env: WARDEN_API_TOKENS (caller:token,...), WARDEN_ADMIN_TOKEN (each wins over tokens.json),
     WARDEN_DYNAMODB_ENDPOINT, WARDEN_SQS_ENDPOINT (use these instead of starting emulators),
     WARDEN_LEASE_SECONDS (6), WARDEN_SWEEP_INTERVAL_SECONDS (2),
     WARDEN_START_DEADLINE_SECONDS (10), WARDEN_CANCEL_GRACE_SECONDS (10),
     WARDEN_LAMBDA_TIMEOUT_SECONDS (120), WARDEN_LAMBDA_CONCURRENCY (50),
     WARDEN_ALARM_TIME_SCALE (0.1), WARDEN_ALARM_INTERVAL_SECONDS (1),
     WARDEN_TTL_INTERVAL_SECONDS (30)`;

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

function portNumber(name: string, raw: string | undefined, fallback: number): number {
  const n = number(name, raw, fallback);
  if (!Number.isInteger(n) || n > 65535) throw new UsageError(`${name} must be a port number from 0 to 65535, not "${raw}"`);
  return n;
}

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
  const rotate = flags.has("rotate-tokens");
  if (memory && rotate) throw new UsageError("--rotate-tokens concerns the tokens kept in the data directory; --memory keeps none (it makes up new ones at every start)");
  const dataDir = memory ? undefined : resolve(flags.get("data-dir") ?? env.WARDEN_DATA_DIR ?? ".warden");
  const envCallers = parseTokens(env.WARDEN_API_TOKENS);
  const envAdmin = env.WARDEN_ADMIN_TOKEN || undefined;
  const settings = {
    port: portNumber("--port/PORT", flags.get("port") ?? env.PORT, 4000),
    dynamoPort: portNumber("--dynamodb-port/WARDEN_DYNAMODB_PORT", flags.get("dynamodb-port") ?? env.WARDEN_DYNAMODB_PORT, 8000),
    sqsPort: portNumber("--sqs-port/WARDEN_SQS_PORT", flags.get("sqs-port") ?? env.WARDEN_SQS_PORT, 9324),
    dataDir,
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
  };
  // Last: a usage error above writes no tokens file.
  return { ...settings, ...resolveTokens({ dataDir, rotate, envCallers, envAdmin }) };
}

/** The tokens file's name inside a data directory. */
export const TOKENS_FILE = "tokens.json";

interface TokensFile {
  callers: Record<string, string>;
  admin: string;
}

type Tokens = Pick<LocalConfig, "callers" | "adminToken" | "tokenSources" | "tokensFile" | "tokensFileEvent">;

/**
 * The environment's tokens where it has them; the rest from `<dataDir>/tokens.json`, which is
 * made when missing and remade with `rotate`; made up for this run when there is no data
 * directory (--memory). The file is never touched when the environment names every token.
 */
export function resolveTokens(o: { dataDir: string | undefined; rotate?: boolean; envCallers?: Map<string, string>; envAdmin?: string | undefined }): Tokens {
  const envCallers = o.envCallers ?? new Map<string, string>();
  const fromEnv = { callers: envCallers.size > 0, admin: !!o.envAdmin };
  const fresh = (): TokensFile => ({ callers: { local: token() }, admin: token() });
  let kept: TokensFile | undefined;
  let file: string | undefined;
  let event: Tokens["tokensFileEvent"];
  if (o.dataDir && (o.rotate || !fromEnv.callers || !fromEnv.admin)) {
    file = join(o.dataDir, TOKENS_FILE);
    kept = o.rotate ? undefined : readTokensFile(file);
    event = kept ? "read" : o.rotate ? "rotated" : "created";
    if (!kept) writeTokensFile(file, (kept = fresh()));
  }
  const made = kept ?? fresh();
  const source: TokenSource = kept ? "file" : "run";
  return {
    callers: fromEnv.callers ? envCallers : new Map(Object.entries(made.callers)),
    adminToken: o.envAdmin || made.admin,
    tokenSources: { callers: fromEnv.callers ? "env" : source, admin: fromEnv.admin ? "env" : source },
    tokensFile: file,
    tokensFileEvent: event,
  };
}

/** The file's tokens; undefined when there is no file yet. A file Warden cannot use is an error, never silently replaced. */
function readTokensFile(file: string): TokensFile | undefined {
  let raw: string;
  try {
    raw = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const bad = (why: string) => new UsageError(`${file} ${why}: fix it, delete it, or start with --rotate-tokens to replace it`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw bad("is not JSON");
  }
  const p = parsed as Partial<TokensFile> | null;
  const callers = p && typeof p.callers === "object" && p.callers !== null ? Object.entries(p.callers) : [];
  if (!p || typeof p.admin !== "string" || !p.admin || callers.length === 0 || callers.some(([c, t]) => !c || typeof t !== "string" || !t || /[\s,:]/.test(c) || /[\s,]/.test(t))) {
    throw bad('is not {"callers": {"<caller>": "<token>", ...}, "admin": "<token>"}');
  }
  // Tokens are secrets: a file someone made readable by others is narrowed back to its owner.
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  return { callers: Object.fromEntries(callers) as Record<string, string>, admin: p.admin };
}

/** Written whole (a temporary file renamed over it), readable by its owner only. */
function writeTokensFile(file: string, tokens: TokensFile): void {
  mkdirSync(resolve(file, ".."), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ ...tokens, note: "npm start's tokens; WARDEN_API_TOKENS and WARDEN_ADMIN_TOKEN win over these; npm start -- --rotate-tokens makes new ones" }, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

function parseFlags(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const valued = new Set(["port", "dynamodb-port", "sqs-port", "workers", "data-dir"]);
  const switches = new Set(["memory", "rotate-tokens"]);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") throw new UsageError("");
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new UsageError(`unexpected argument "${arg}"`);
    const name = m[1]!;
    if (switches.has(name)) {
      if (m[2] !== undefined) throw new UsageError(`--${name} takes no value`);
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
