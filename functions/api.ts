/**
 * The API's Lambda entry point, behind an API Gateway HTTP API (payload format 2.0): routes the
 * request, reads the caller from the authorizer, bounds and parses the body, and maps core's
 * answers and errors onto HTTP. It knows nothing of DynamoDB or SQS; `core/api` does the work.
 *
 * Identity comes only from `requestContext.authorizer`, which API Gateway (or the local gateway,
 * after checking the bearer token) fills in:
 *  - a JWT authorizer: `jwt.claims.sub` is the caller, its groups come from `cognito:groups` or
 *    `groups` (an array, API Gateway's flattened "[a b]" string, or a comma list);
 *  - IAM: `iam.userArn` (else `callerId`, else `accountId`) is the caller.
 * The caller is admin when its groups include `warden-admin` or it is listed in
 * `WARDEN_ADMIN_PRINCIPALS` (comma-separated).
 */
import type {
  APIGatewayEventRequestContextV2,
  APIGatewayProxyEventV2WithRequestContext,
  APIGatewayProxyStructuredResultV2,
  Context,
} from "aws-lambda";
import { AdminApi } from "../core/api/admin.js";
import { ControlsApi } from "../core/api/controls.js";
import { SchedulesApi } from "../core/api/schedules.js";
import { ApiError, toApiError, type ApiErrorCode } from "../core/api/errors.js";
import { ADMIN_GROUP, requireAdmin, type Caller } from "../core/api/identity.js";
import { JobsApi, type ApiLog } from "../core/api/jobs.js";
import { decodeUtf8, parseJson } from "../core/api/json.js";
import { bulkRequest, childrenQuery, emptyRequest, limitRequest, listQuery, logsQuery, parseRequest, redriveRequest, scheduleCreate, scheduleUpdate, submitRequest } from "../core/api/requests.js";
import { routePattern, type RouteKey, type RoutePattern } from "../core/api/routes.js";
import { LIMITS } from "../core/config.js";
import { errorMessage } from "../core/errors.js";
import { emfMetrics } from "../core/metrics-emf.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { appRegistry } from "./registry.js";

export type ApiEvent = APIGatewayProxyEventV2WithRequestContext<APIGatewayEventRequestContextV2 & { authorizer?: unknown }>;
export type ApiResult = APIGatewayProxyStructuredResultV2;
export type ApiHandler = (event: ApiEvent, context?: Context) => Promise<ApiResult>;

export interface HandlerOptions {
  /** Principals (JWT subjects or IAM ARNs) with the admin role; default: env WARDEN_ADMIN_PRINCIPALS. */
  adminPrincipals?: readonly string[];
  log?: ApiLog;
}

const STATUS: Record<ApiErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
};

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

interface Request {
  caller: Caller;
  params: string[];
  /** The parsed JSON body; undefined when there was none. */
  body: unknown;
  query: Record<string, string>;
}

interface RouteSpec {
  /** `required`: a JSON body must be sent; `optional`: a JSON body may be sent; `none`: it is ignored. */
  body: "none" | "optional" | "required";
  /** Checked before the body is read, so a non-admin learns nothing about an admin route's input. */
  admin?: true;
  run(r: Request, jobs: JobsApi, admin: AdminApi, more: { controls: ControlsApi; schedules: SchedulesApi }): Promise<Answer>;
}

const ok = (status: number, body: unknown, headers?: Record<string, string>): Answer => ({ status, body, ...(headers ? { headers } : {}) });

/**
 * Every route of the contract but `GET /health`, which needs no caller and is handled first.
 * Keyed by core/api/routes.ts's route keys, so leaving one out does not compile.
 */
const HANDLERS: Record<Exclude<RouteKey, "GET /health">, RouteSpec> = {
  "POST /jobs": {
    body: "required",
    run: async (r, jobs) => {
      const out = await jobs.submit(r.caller, parseRequest(submitRequest, r.body, "the job submission"));
      return ok(out.created ? 201 : 200, { job: out.job });
    },
  },
  "GET /jobs": {
    body: "none",
    run: async (r, jobs) => ok(200, await jobs.list(r.caller, parseRequest(listQuery, r.query, "the query"))),
  },
  "GET /jobs/{id}": {
    body: "none",
    run: async (r, jobs) => {
      const out = await jobs.get(r.caller, r.params[0]!);
      return ok(200, { job: out.job }, out.retryAfterSeconds !== undefined ? { "retry-after": String(out.retryAfterSeconds) } : undefined);
    },
  },
  "POST /jobs/{id}/cancel": {
    body: "optional",
    run: async (r, jobs) => (noFields(r), ok(202, await jobs.cancel(r.caller, r.params[0]!))),
  },
  "POST /jobs/{id}/retry": {
    body: "optional",
    run: async (r, jobs) => (noFields(r), ok(202, await jobs.retry(r.caller, r.params[0]!))),
  },
  "GET /jobs/{id}/attempts": { body: "none", run: async (r, jobs) => ok(200, await jobs.attempts(r.caller, r.params[0]!)) },
  "GET /jobs/{id}/logs": {
    body: "none",
    run: async (r, jobs) => ok(200, await jobs.logs(r.caller, r.params[0]!, parseRequest(logsQuery, r.query, "the query"))),
  },
  "GET /jobs/{id}/why": { body: "none", run: async (r, jobs) => ok(200, await jobs.why(r.caller, r.params[0]!)) },
  "GET /jobs/{id}/children": {
    body: "none",
    run: async (r, jobs) => ok(200, await jobs.children(r.caller, r.params[0]!, parseRequest(childrenQuery, r.query, "the children query"))),
  },
  "GET /admin/stuck": { body: "none", admin: true, run: async (r, _j, a) => ok(200, await a.stuck(r.caller)) },
  "POST /admin/sweep": { body: "optional", admin: true, run: async (r, _j, a) => (noFields(r), ok(200, await a.sweep(r.caller))) },
  "GET /admin/dead-letters": { body: "none", admin: true, run: async (r, _j, a) => ok(200, await a.deadLetters(r.caller)) },
  "POST /admin/dead-letters/redrive": {
    body: "required",
    admin: true,
    run: async (r, _j, a) => ok(202, await a.redrive(r.caller, parseRequest(redriveRequest, r.body, "the redrive request").queue)),
  },
  "GET /admin/workers": { body: "none", admin: true, run: async (r, _j, a) => ok(200, await a.workers(r.caller)) },
  "GET /admin/queues": { body: "none", admin: true, run: async (r, _j, a) => ok(200, await a.queues(r.caller)) },
  "POST /admin/jobs/retry": {
    body: "optional",
    admin: true,
    run: async (r, _j, a) => ok(200, await a.bulk(r.caller, "retry", parseRequest(bulkRequest, r.body ?? {}, "the bulk retry"))),
  },
  "POST /admin/jobs/cancel": {
    body: "optional",
    admin: true,
    run: async (r, _j, a) => ok(200, await a.bulk(r.caller, "cancel", parseRequest(bulkRequest, r.body ?? {}, "the bulk cancel"))),
  },
  "GET /admin/controls": { body: "none", admin: true, run: async (r, _j, _a, { controls: c }) => ok(200, await c.list(r.caller)) },
  "POST /admin/pauses/{target}": { body: "optional", admin: true, run: async (r, _j, _a, { controls: c }) => (noFields(r), ok(200, await c.pause(r.caller, r.params[0]!))) },
  "DELETE /admin/pauses/{target}": { body: "none", admin: true, run: async (r, _j, _a, { controls: c }) => ok(200, await c.resume(r.caller, r.params[0]!)) },
  "PUT /admin/limits/{key}": {
    body: "required",
    admin: true,
    run: async (r, _j, _a, { controls: c }) => ok(200, await c.setLimit(r.caller, r.params[0]!, parseRequest(limitRequest, r.body, "the limit"))),
  },
  "DELETE /admin/limits/{key}": { body: "none", admin: true, run: async (r, _j, _a, { controls: c }) => ok(200, await c.removeLimit(r.caller, r.params[0]!)) },
  "POST /schedules": {
    body: "required",
    run: async (r, _j, _a, { schedules }) => ok(201, { schedule: await schedules.create(r.caller, parseRequest(scheduleCreate, r.body, "the schedule")) }),
  },
  "GET /schedules": { body: "none", run: async (r, _j, _a, { schedules }) => ok(200, await schedules.list(r.caller)) },
  "GET /schedules/{id}": { body: "none", run: async (r, _j, _a, { schedules }) => ok(200, { schedule: await schedules.get(r.caller, r.params[0]!) }) },
  "PUT /schedules/{id}": {
    body: "required",
    run: async (r, _j, _a, { schedules }) => ok(200, { schedule: await schedules.update(r.caller, r.params[0]!, parseRequest(scheduleUpdate, r.body, "the schedule")) }),
  },
  "DELETE /schedules/{id}": { body: "none", run: async (r, _j, _a, { schedules }) => ok(200, await schedules.delete(r.caller, r.params[0]!)) },
  "POST /schedules/{id}/pause": {
    body: "optional",
    run: async (r, _j, _a, { schedules }) => (noFields(r), ok(200, { schedule: await schedules.setPaused(r.caller, r.params[0]!, true) })),
  },
  "POST /schedules/{id}/resume": {
    body: "optional",
    run: async (r, _j, _a, { schedules }) => (noFields(r), ok(200, { schedule: await schedules.setPaused(r.caller, r.params[0]!, false) })),
  },
};
type Route = RoutePattern & RouteSpec;
const ROUTES: Route[] = Object.entries(HANDLERS).map(([key, spec]) => ({ ...routePattern(key as RouteKey), ...spec }));

function noFields(r: Request): void {
  if (r.body !== undefined) parseRequest(emptyRequest, r.body, "the body");
}

export function makeHandler(services: Services, opts: HandlerOptions = {}): ApiHandler {
  const log = opts.log ?? consoleLog;
  const admins = new Set(opts.adminPrincipals ?? parseList(process.env.WARDEN_ADMIN_PRINCIPALS));
  const jobs = new JobsApi(services, log);
  const admin = new AdminApi(services, log);
  const more = { controls: new ControlsApi(services, log), schedules: new SchedulesApi(services, log) };

  return async (event, context) => {
    const started = Date.now();
    const requestId = event.requestContext?.requestId ?? context?.awsRequestId ?? "";
    const method = (event.requestContext?.http?.method ?? "GET").toUpperCase();
    let answer: Answer;
    let caller: Caller | undefined;
    try {
      caller = callerOf(event, admins);
      answer = await serve(event, method, caller, jobs, admin, more);
    } catch (e) {
      answer = failure(e, log, requestId);
    } finally {
      await services.metrics.flush().catch((e: unknown) => log.warn("metrics flush failed", { error: errorMessage(e).slice(0, 200) }));
    }
    log.info("request", {
      requestId,
      method,
      path: (event.rawPath ?? "").slice(0, 120),
      status: answer.status,
      ms: Date.now() - started,
      ...(caller ? { caller: caller.id } : {}),
    });
    return respond(answer);
  };
}

async function serve(event: ApiEvent, method: string, caller: Caller | undefined, jobs: JobsApi, admin: AdminApi, more: Parameters<RouteSpec["run"]>[3]): Promise<Answer> {
  const path = routePath(event);
  if (method === "GET" && path === "/health") {
    const health = await jobs.health();
    if (health.ok) return ok(200, health);
    // Both shapes at once: the contract's error for generic clients, the checks for monitors.
    return ok(503, { ...health, ...new ApiError("internal", "a dependency cannot be reached; see checks", { checks: health.checks }).body() });
  }
  const match = findRoute(method, path);
  if (!match) throw new ApiError("not_found", `no route ${method} ${path.slice(0, 100)}; the routes are listed in docs/api.md`);
  if (!caller) throw new ApiError("unauthorized", "no caller identity: send a valid credential (a bearer token locally, IAM or a JWT in the cloud)");
  if (match.route.admin) requireAdmin(caller);
  const body = match.route.body === "none" ? undefined : readBody(event, match.route.body === "required");
  const query = event.queryStringParameters ?? {};
  return match.route.run({ caller, params: match.params, body, query: definedValues(query) }, jobs, admin, more);
}

/**
 * The path without a stage prefix: with a named stage API Gateway puts `/<stage>` in front of
 * the route's path.
 */
function routePath(event: ApiEvent): string {
  const raw = event.rawPath ?? event.requestContext?.http?.path ?? "/";
  const stage = event.requestContext?.stage;
  if (stage && stage !== "$default" && raw.startsWith(`/${stage}/`)) return raw.slice(stage.length + 1);
  return raw.length > 1 && raw.endsWith("/") ? raw.slice(0, -1) : raw;
}

function findRoute(method: string, path: string): { route: Route; params: string[] } | undefined {
  for (const route of ROUTES) {
    if (route.method !== method) continue;
    const m = route.re.exec(path);
    if (!m) continue;
    try {
      return { route, params: m.slice(1).map((p) => decodeURIComponent(p)) };
    } catch {
      throw new ApiError("invalid_request", "the path has a malformed %-escape");
    }
  }
  return undefined;
}

/** Bounds, decodes and parses the body: 413 over the limit, 415 unless JSON, 400 unless well-formed. */
function readBody(event: ApiEvent, required: boolean): unknown {
  const raw = event.body ?? "";
  // A cheap bound first: base64 and UTF-8 text are never shorter than a quarter of their bytes.
  if (raw.length > LIMITS.maxBodyBytes * 4) throw tooLarge(raw.length);
  const bytes = Buffer.from(raw, event.isBase64Encoded ? "base64" : "utf8");
  if (bytes.length > LIMITS.maxBodyBytes) throw tooLarge(bytes.length);
  if (bytes.length === 0) {
    if (required) throw new ApiError("invalid_request", "this route needs a JSON body");
    return undefined;
  }
  const contentType = header(event, "content-type");
  if (!isJson(contentType)) {
    throw new ApiError("unsupported_media_type", `send the body as content-type: application/json (got ${JSON.stringify((contentType ?? "none").slice(0, 80))})`);
  }
  return parseJson(decodeUtf8(bytes));
}

const tooLarge = (bytes: number): ApiError =>
  new ApiError("payload_too_large", `the body is over ${LIMITS.maxBodyBytes} bytes; store large data elsewhere and pass a reference`, {
    limit: LIMITS.maxBodyBytes,
    bytes,
  });

function isJson(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const [media, ...params] = contentType.split(";").map((p) => p.trim().toLowerCase());
  if (media !== "application/json") return false;
  return params.every((p) => !p.startsWith("charset=") || /^charset="?utf-8"?$/.test(p));
}

function header(event: ApiEvent, name: string): string | undefined {
  const headers = event.headers ?? {};
  if (headers[name] !== undefined) return headers[name];
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : headers[key];
}

function definedValues(q: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(q).filter((e): e is [string, string] => e[1] !== undefined));
}

// ─── identity ──────────────────────────────────────────────────────────────────────────────

const str = (v: unknown): string | undefined => (typeof v === "string" && v.length > 0 ? v : undefined);
const obj = (v: unknown): Record<string, unknown> | undefined =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

/** The caller from the authorizer's context; undefined when the request carries no identity. */
export function callerOf(event: ApiEvent, adminPrincipals: ReadonlySet<string>): Caller | undefined {
  const authorizer = obj(event.requestContext?.authorizer);
  const claims = obj(obj(authorizer?.jwt)?.claims);
  const iam = obj(authorizer?.iam);
  const sub = str(claims?.sub);
  const id = sub ?? str(iam?.userArn) ?? str(iam?.callerId) ?? str(iam?.accountId);
  if (!id) return undefined;
  const groups = sub ? groupsOf(claims!) : [];
  return { id, admin: groups.includes(ADMIN_GROUP) || adminPrincipals.has(id) };
}

/** API Gateway flattens a JWT's array claims into a string like "[a b]"; accept that, arrays and comma lists. */
export function groupsOf(claims: Record<string, unknown>): string[] {
  const raw = claims["cognito:groups"] ?? claims.groups;
  if (Array.isArray(raw)) return raw.filter((g): g is string => typeof g === "string");
  if (typeof raw !== "string") return [];
  return raw
    .replace(/^\[|\]$/g, "")
    .split(/[\s,]+/)
    .filter(Boolean);
}

const parseList = (v: string | undefined): string[] =>
  (v ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

// ─── answers ───────────────────────────────────────────────────────────────────────────────

/** A caller's mistake gets the contract's error; anything else a bare 500 with the request id, and the detail only in the log. */
function failure(e: unknown, log: ApiLog, requestId: string): Answer {
  const known = toApiError(e);
  if (known) return ok(STATUS[known.code], known.body());
  log.error("request failed", {
    requestId,
    error: e instanceof Error ? e.name : typeof e,
    message: errorMessage(e).slice(0, 300),
    stack: e instanceof Error ? e.stack?.split("\n").slice(0, 8).join("\n") : undefined,
  });
  return ok(500, new ApiError("internal", `the request failed on our side; quote request id ${requestId || "(none)"} when reporting it`).body());
}

function respond(a: Answer): ApiResult {
  return {
    statusCode: a.status,
    headers: {
      "content-type": "application/json",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      ...(a.status === 401 ? { "www-authenticate": "Bearer" } : {}),
      ...a.headers,
    },
    body: JSON.stringify(a.body),
  };
}

const consoleLog: ApiLog = {
  info: (message, fields) => console.log(JSON.stringify({ level: "info", message, ...fields })),
  warn: (message, fields) => console.warn(JSON.stringify({ level: "warn", message, ...fields })),
  error: (message, fields) => console.error(JSON.stringify({ level: "error", message, ...fields })),
};

// ─── the deployed handler ──────────────────────────────────────────────────────────────────

let built: ApiHandler | undefined;

/** The Lambda handler: builds the services from the environment on the first request, then reuses them. */
export const handler = async (event: ApiEvent, context?: Context): Promise<ApiResult> => {
  if (!built) {
    try {
      const cfg = loadRuntime();
      built = makeHandler(buildServices(cfg, { metrics: emfMetrics(cfg.stage), registry: appRegistry() }));
    } catch (e) {
      // A misconfigured deployment still answers in the contract's shape; the next request tries again.
      return respond(failure(e, consoleLog, event.requestContext?.requestId ?? ""));
    }
  }
  return built(event, context);
};
