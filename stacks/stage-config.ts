/**
 * What may differ between stages of one deployment: sizes, limits, who gets paged, who may call
 * the API. Everything else (names, timeouts, thresholds) comes from core/ and is the same on
 * every stage and on a laptop. Defaults come from core/config.ts; a stage named in
 * `STAGE_OVERRIDES` changes some of them, and `WARDEN_*` environment variables at deploy time
 * change them for one `sst deploy` run.
 */
import { FARGATE_WORKER, LAMBDA_WORKER, PRIORITIES } from "../core/config.js";

export interface JwtConfig {
  /** The token issuer URL, e.g. `https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc`. */
  issuer: string;
  audience: string[];
}

/** Where the Fargate worker's image comes from: the repository's Dockerfile, or a pushed image. */
export type ImageSource =
  | { kind: "asset"; directory: string; file: string }
  | { kind: "registry"; image: string };

export interface StageConfig {
  stage: string;
  /** Production stages keep their table (RETAIN, deletion protection) and their logs. */
  production: boolean;
  worker: {
    memoryMb: number;
    /** The event source mapping's maximum concurrency (2 to 1000). */
    maxConcurrency: number;
  };
  fargate: {
    cpu: number;
    memoryMb: number;
    /** 0 lets the service scale to zero when the large queue is empty. */
    minTasks: number;
    maxTasks: number;
    image: ImageSource;
    /** Availability zones for the worker's VPC; explicit so synthesis needs no AWS lookup. */
    availabilityZones: string[];
  };
  /** Receives every alarm by email when set (the recipient confirms the subscription once). */
  alarmEmail?: string;
  /** With a JWT issuer the API checks bearer tokens; without one it uses IAM (SigV4) auth. */
  jwt?: JwtConfig;
  /** IAM principal ARNs that get the admin role under IAM auth. */
  adminPrincipals: string[];
  api: { throttleRate: number; throttleBurst: number; memoryMb: number };
  sweeper: { memoryMb: number };
  logRetentionDays: LogRetention;
  /**
   * Customer-managed KMS keys (rotated yearly) for the table, the queues and the alarm topic, one
   * key per stack, instead of AWS-owned and SQS/SNS-managed encryption. Off by default: each key
   * costs $1 a month plus its requests, and AWS's own encryption already encrypts everything at rest.
   */
  kms: boolean;
}

/** The retention periods CloudWatch Logs accepts that a stage is likely to want. */
export type LogRetention = 7 | 14 | 30 | 90 | 365;

/** Fargate's valid CPU units → memory sizes (MiB) for the sizes Warden is likely to use. */
export const FARGATE_SIZES: Record<number, readonly number[]> = {
  256: [512, 1024, 2048],
  512: [1024, 2048, 3072, 4096],
  1024: [2048, 3072, 4096, 5120, 6144, 7168, 8192],
  2048: range(4096, 16384, 1024),
  4096: range(8192, 30720, 1024),
  8192: range(16384, 61440, 4096),
  16384: range(32768, 122880, 8192),
};

function range(from: number, to: number, step: number): number[] {
  const out: number[] = [];
  for (let n = from; n <= to; n += step) out.push(n);
  return out;
}

export type StageOverrides = {
  production?: boolean;
  worker?: Partial<StageConfig["worker"]>;
  fargate?: Partial<StageConfig["fargate"]>;
  alarmEmail?: string;
  jwt?: JwtConfig;
  adminPrincipals?: string[];
  api?: Partial<StageConfig["api"]>;
  sweeper?: Partial<StageConfig["sweeper"]>;
  logRetentionDays?: LogRetention;
  kms?: boolean;
};

/** Per-stage changes to the defaults. Edit this to size a stage; `prod` is production. */
export const STAGE_OVERRIDES: Record<string, StageOverrides> = {
  prod: {
    production: true,
    worker: { maxConcurrency: 100 },
    fargate: { minTasks: 1, maxTasks: 20 },
    api: { throttleRate: 200, throttleBurst: 400 },
    logRetentionDays: 90,
  },
};

export const defaultStageConfig = (stage: string, region = "us-east-1"): StageConfig => ({
  stage,
  production: false,
  worker: { memoryMb: LAMBDA_WORKER.memoryMb, maxConcurrency: LAMBDA_WORKER.maxConcurrency },
  fargate: {
    cpu: FARGATE_WORKER.cpu,
    memoryMb: FARGATE_WORKER.memoryMb,
    minTasks: FARGATE_WORKER.minTasks,
    maxTasks: FARGATE_WORKER.maxTasks,
    image: { kind: "asset", directory: ".", file: "Dockerfile" },
    availabilityZones: [`${region}a`, `${region}b`],
  },
  adminPrincipals: [],
  api: { throttleRate: 50, throttleBurst: 100, memoryMb: 512 },
  sweeper: { memoryMb: 256 },
  logRetentionDays: 14,
  kms: false,
});

type Env = Record<string, string | undefined>;

const list = (v: string | undefined): string[] | undefined =>
  v === undefined || v.trim() === "" ? undefined : v.split(",").map((s) => s.trim()).filter(Boolean);

function int(env: Env, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number, got "${v}"`);
  return n;
}

/** The deploy-time environment's overrides: for one-off runs and CI secrets (alarm email, issuer). */
export function envOverrides(env: Env): StageOverrides {
  const issuer = env.WARDEN_JWT_ISSUER;
  const audience = list(env.WARDEN_JWT_AUDIENCE);
  if (issuer && !audience) throw new Error("WARDEN_JWT_ISSUER is set but WARDEN_JWT_AUDIENCE is not: a JWT authorizer needs both");
  const prune = <T extends object>(o: T): Partial<T> | undefined => {
    const kept = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
    return Object.keys(kept).length ? kept : undefined;
  };
  const worker = prune({ memoryMb: int(env, "WARDEN_WORKER_MEMORY_MB"), maxConcurrency: int(env, "WARDEN_WORKER_MAX_CONCURRENCY") });
  const fargate = prune({
    cpu: int(env, "WARDEN_FARGATE_CPU"),
    memoryMb: int(env, "WARDEN_FARGATE_MEMORY_MB"),
    minTasks: int(env, "WARDEN_FARGATE_MIN_TASKS"),
    maxTasks: int(env, "WARDEN_FARGATE_MAX_TASKS"),
    image: env.WARDEN_FARGATE_IMAGE ? ({ kind: "registry", image: env.WARDEN_FARGATE_IMAGE } as const) : undefined,
  });
  const admins = list(env.WARDEN_ADMIN_PRINCIPALS);
  return {
    ...(env.WARDEN_PRODUCTION ? { production: env.WARDEN_PRODUCTION === "true" } : {}),
    ...(env.WARDEN_KMS ? { kms: env.WARDEN_KMS === "true" } : {}),
    ...(worker ? { worker } : {}),
    ...(fargate ? { fargate } : {}),
    ...(env.WARDEN_ALARM_EMAIL ? { alarmEmail: env.WARDEN_ALARM_EMAIL } : {}),
    ...(issuer && audience ? { jwt: { issuer, audience } } : {}),
    ...(admins ? { adminPrincipals: admins } : {}),
  };
}

function merge(base: StageConfig, o: StageOverrides): StageConfig {
  return {
    ...base,
    ...(o.production !== undefined ? { production: o.production } : {}),
    worker: { ...base.worker, ...o.worker },
    fargate: { ...base.fargate, ...o.fargate },
    api: { ...base.api, ...o.api },
    sweeper: { ...base.sweeper, ...o.sweeper },
    ...(o.alarmEmail !== undefined ? { alarmEmail: o.alarmEmail } : {}),
    ...(o.jwt !== undefined ? { jwt: o.jwt } : {}),
    ...(o.adminPrincipals !== undefined ? { adminPrincipals: o.adminPrincipals } : {}),
    ...(o.logRetentionDays !== undefined ? { logRetentionDays: o.logRetentionDays } : {}),
    ...(o.kms !== undefined ? { kms: o.kms } : {}),
  };
}

/** Lambda's bounds on an SQS event source mapping's maximum concurrency. */
export const MAPPING_CONCURRENCY = { min: 2, max: 1000 } as const;
/** The least Lambda worker cap: one mapping per priority lane, each at its least (stacks/Workers.ts splits the cap over them). */
export const LEAST_WORKER_CAP = MAPPING_CONCURRENCY.min * PRIORITIES.length;

/** Refuses a configuration AWS would refuse at deploy time, so the mistake shows up at synthesis. */
export function validateStageConfig(c: StageConfig): StageConfig {
  const problems: string[] = [];
  const { worker, fargate, api } = c;
  if (worker.memoryMb < 128 || worker.memoryMb > 10240) problems.push(`worker.memoryMb ${worker.memoryMb} is outside Lambda's 128–10240 MB`);
  if (!Number.isInteger(worker.maxConcurrency) || worker.maxConcurrency < LEAST_WORKER_CAP) {
    problems.push(`worker.maxConcurrency ${worker.maxConcurrency} cannot be split over the ${PRIORITIES.length} priority lanes' event source mappings, each at least ${MAPPING_CONCURRENCY.min}: give ${LEAST_WORKER_CAP} or more`);
  }
  if (!FARGATE_SIZES[fargate.cpu]?.includes(fargate.memoryMb)) problems.push(`Fargate has no task size of ${fargate.cpu} CPU units with ${fargate.memoryMb} MiB`);
  if (fargate.minTasks > fargate.maxTasks) problems.push(`fargate.minTasks ${fargate.minTasks} exceeds fargate.maxTasks ${fargate.maxTasks}`);
  if (fargate.maxTasks < 1) problems.push("fargate.maxTasks must be at least 1");
  if (fargate.availabilityZones.length < 1) problems.push("fargate.availabilityZones is empty");
  if (api.throttleRate <= 0 || api.throttleBurst <= 0) problems.push("api throttling limits must be positive");
  if (c.jwt && (!/^https:\/\//.test(c.jwt.issuer) || c.jwt.audience.length === 0)) problems.push("jwt needs an https issuer and at least one audience");
  if (c.alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+$/.test(c.alarmEmail)) problems.push(`alarmEmail "${c.alarmEmail}" is not an email address`);
  if (problems.length) throw new Error(`Stage "${c.stage}" is misconfigured:\n  ${problems.join("\n  ")}`);
  return c;
}

/** The stage's configuration: defaults, then the stage's overrides, then the environment's. */
export function stageConfig(stage: string, opts: { env?: Env; region?: string; overrides?: StageOverrides } = {}): StageConfig {
  let c = defaultStageConfig(stage, opts.region);
  c = merge(c, STAGE_OVERRIDES[stage] ?? {});
  c = merge(c, envOverrides(opts.env ?? {}));
  if (opts.overrides) c = merge(c, opts.overrides);
  return validateStageConfig(c);
}

/**
 * SST stack functions receive only `{ app, stack }`, so the configuration travels alongside the
 * app: `sst.config.ts` (or a test) provides it once, every stack reads it.
 */
const provided = new WeakMap<object, StageConfig>();

export function provideStageConfig(app: object, config: StageConfig): void {
  provided.set(app, config);
}

export function useStageConfig(app: { stage: string; region: string }): StageConfig {
  let c = provided.get(app);
  if (!c) {
    c = stageConfig(app.stage, { env: process.env, region: app.region });
    provided.set(app, c);
  }
  return c;
}
