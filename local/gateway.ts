/**
 * The API Gateway stand-in: an HTTP server on loopback that authenticates the bearer token (as
 * the cloud's authorizer would), turns each request into an HTTP API payload-v2 event with the
 * caller's identity in `requestContext.authorizer.jwt.claims`, invokes the API handler as Lambda
 * would, and turns its result back into the HTTP response. It also serves the dashboard's files
 * (dashboard/, the same files `warden dashboard` serves for a deployed stage) and the local-only
 * routes under `/local/` (alarms, history, processes), which never reach the API handler.
 */
import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyResultV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { ADMIN_GROUP } from "../core/api/identity.js";
import { ROUTE_KEYS, routePattern } from "../core/api/routes.js";
import { lambdaContext } from "./lambda-context.js";

export type ApiHandler = (event: APIGatewayProxyEventV2WithJWTAuthorizer, context: Context) => Promise<APIGatewayProxyResultV2>;

/** API Gateway's own limits: HTTP API payloads up to 10 MB, integrations up to 30 s. */
const MAX_PAYLOAD_BYTES = 10 * 1024 * 1024;
const INTEGRATION_TIMEOUT_MS = 30_000;

/** The routes API Gateway declares; a request matching none goes to `$default`, as a catch-all would. */
const ROUTES = ROUTE_KEYS.map(routePattern);

/** The dashboard's files (plain HTML, CSS and JS), at the top of the repository. */
export const DASHBOARD_DIR = fileURLToPath(new URL("../dashboard", import.meta.url));

export interface Identity {
  sub: string;
  admin: boolean;
}

export interface Auth {
  callers: ReadonlyMap<string, string>;
  adminToken: string;
}

/** Local-only JSON routes (`GET /local/...`); admin only. Return undefined for unknown paths. */
export type LocalRoutes = (method: string, path: string, body: unknown) => Promise<{ status: number; body: unknown } | undefined>;

export interface GatewayOptions {
  port: number;
  api: ApiHandler;
  auth: Auth;
  local: LocalRoutes;
  dashboardDir: string;
  /** Counts the API function's own failures (an invocation that throws), for its Lambda alarm. */
  onInvocation?: (outcome: "ok" | "error") => void;
  log?: (line: string) => void;
}

export interface Gateway {
  url: string;
  server: Server;
  close(): Promise<void>;
}

const digest = (s: string): Buffer => createHash("sha256").update(s).digest();
const sameToken = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b));

export function identify(auth: Auth, header: string | undefined): Identity | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (!m) return undefined;
  const given = m[1]!;
  if (sameToken(given, auth.adminToken)) return { sub: "admin", admin: true };
  for (const [caller, token] of auth.callers) if (sameToken(given, token)) return { sub: caller, admin: false };
  return undefined;
}

export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const server = createServer((req, res) => {
    handle(opts, req, res).catch((e: unknown) => {
      opts.log?.(`gateway: ${String((e as Error)?.stack ?? e)}`);
      if (!res.headersSent) send(res, 500, { "content-type": "application/json" }, errorBody("internal", "the local gateway failed; see the server's log"));
      else res.destroy();
    });
  });
  // Keep-alive sockets would hold `close()` open on shutdown.
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, "127.0.0.1", () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(opts: GatewayOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://local");
  const method = (req.method ?? "GET").toUpperCase();
  if (method === "GET" && isDashboardPath(url.pathname)) return serveDashboardFile(opts.dashboardDir, url.pathname, res);
  const raw = await readBody(req);
  if (raw === undefined) return send(res, 413, json, errorBody("payload_too_large", "the request body is over API Gateway's 10 MB limit"));

  const isHealth = method === "GET" && url.pathname === "/health";
  const who = identify(opts.auth, req.headers.authorization);
  if (!who && !isHealth) {
    return send(res, 401, { ...json, "www-authenticate": "Bearer" }, errorBody("unauthorized", "send Authorization: Bearer <token>; npm start prints the tokens (or set WARDEN_API_TOKENS)"));
  }

  if (url.pathname.startsWith("/local/")) {
    if (!who?.admin) return send(res, 403, json, errorBody("forbidden", "the local routes need the admin token"));
    let body: unknown;
    try {
      body = raw.length ? JSON.parse(raw.toString("utf8")) : undefined;
    } catch {
      return send(res, 400, json, errorBody("invalid_request", "the body is not valid JSON"));
    }
    const out = await opts.local(method, url.pathname, body);
    if (!out) return send(res, 404, json, errorBody("not_found", `no local route ${method} ${url.pathname}`));
    return send(res, out.status, json, JSON.stringify(out.body));
  }

  const event = toEvent({ url, method, raw, headers: req.headers, httpVersion: req.httpVersion, sourceIp: req.socket.remoteAddress }, who);
  const context = lambdaContext("api", INTEGRATION_TIMEOUT_MS, 512);
  let result: APIGatewayProxyResultV2;
  try {
    result = await withTimeout(opts.api(event, context), INTEGRATION_TIMEOUT_MS);
    opts.onInvocation?.("ok");
  } catch (e) {
    opts.onInvocation?.("error");
    opts.log?.(`api: invocation failed: ${String((e as Error)?.stack ?? e)}`);
    // API Gateway answers a failed integration with its own 500; ours keeps the contract's shape.
    return send(res, 500, json, errorBody("internal", "the API function failed; see the server's log"));
  }
  writeResult(res, result);
}

const json = { "content-type": "application/json" };

/** Builds the payload-v2 event API Gateway would send for this request. */
export interface RawRequest {
  url: URL;
  method: string;
  raw: Buffer;
  headers: IncomingMessage["headers"];
  httpVersion?: string;
  sourceIp?: string | undefined;
}

export function toEvent(req: RawRequest, who: Identity | undefined): APIGatewayProxyEventV2WithJWTAuthorizer {
  const { url, method, raw } = req;
  const headers: Record<string, string> = {};
  let cookies: string[] | undefined;
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (lower === "cookie") {
      cookies = String(value).split(";").map((c) => c.trim()).filter(Boolean);
      continue;
    }
    headers[lower] = Array.isArray(value) ? value.join(",") : value;
  }
  const rawQueryString = url.search.startsWith("?") ? url.search.slice(1) : "";
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = k in query ? `${query[k]},${v}` : v;
  const route = ROUTES.find((r) => r.method === method && r.re.test(url.pathname));
  const pathParameters = route ? Object.fromEntries(route.params.map((n, i) => [n, decodeURIComponent(route.re.exec(url.pathname)![i + 1]!)])) : undefined;
  const textual = raw.length === 0 || isTextual(headers["content-type"]);
  const now = Date.now();
  const routeKey = route?.key ?? "$default";
  return {
    version: "2.0",
    routeKey,
    rawPath: url.pathname,
    rawQueryString,
    ...(cookies ? { cookies } : {}),
    headers,
    ...(Object.keys(query).length ? { queryStringParameters: query } : {}),
    ...(pathParameters && Object.keys(pathParameters).length ? { pathParameters } : {}),
    ...(raw.length ? { body: textual ? raw.toString("utf8") : raw.toString("base64") } : {}),
    isBase64Encoded: raw.length > 0 && !textual,
    requestContext: {
      accountId: "000000000000",
      apiId: "local",
      domainName: headers.host ?? "127.0.0.1",
      domainPrefix: (headers.host ?? "127").split(".")[0] ?? "local",
      http: {
        method,
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion ?? "1.1"}`,
        sourceIp: req.sourceIp ?? "127.0.0.1",
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: randomUUID(),
      routeKey,
      stage: "$default",
      time: new Date(now).toUTCString(),
      timeEpoch: now,
      authorizer: {
        principalId: who?.sub ?? null,
        integrationLatency: 0,
        jwt: { claims: who ? { sub: who.sub, groups: who.admin ? [ADMIN_GROUP] : [] } : {}, scopes: null },
      },
    },
  };
}

const isTextual = (ct: string | undefined): boolean =>
  !!ct && /^(text\/|application\/(json|[\w.+-]+\+json|xml|[\w.+-]+\+xml|x-www-form-urlencoded|javascript))/i.test(ct.trim());

/** A result that is not `{statusCode, ...}` is JSON with status 200, as API Gateway infers for v2. */
export function writeResult(res: ServerResponse, result: APIGatewayProxyResultV2): void {
  const structured = typeof result === "object" && result !== null && "statusCode" in result;
  if (!structured) {
    return send(res, 200, json, typeof result === "string" ? result : JSON.stringify(result));
  }
  const r = result as APIGatewayProxyStructuredResultV2;
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = String(v);
  if (r.cookies?.length) headers["set-cookie"] = r.cookies;
  const body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(r.body, r.isBase64Encoded ? "base64" : "utf8");
  send(res, r.statusCode ?? 200, headers, body);
}

export function send(res: ServerResponse, status: number, headers: Record<string, string | string[]>, body: string | Buffer): void {
  res.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** The request's body, or undefined once it passes `maxBytes` (API Gateway's 10 MB by default). */
export async function readBody(req: IncomingMessage, maxBytes: number = MAX_PAYLOAD_BYTES): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the API function ran past API Gateway's ${ms / 1000} s limit`)), ms);
    }),
  ]);
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
};

/**
 * The page loads only its own files and talks only to its own origin; it renders with
 * textContent, and this keeps it so should a change ever slip markup in. No framing, so another
 * page cannot overlay its buttons (the admin's cancel and retry).
 */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // The page is small and changes during development: no caching.
  "cache-control": "no-store",
};

/** `/` (the page) and `/dashboard/<file>` (what it loads). */
export const isDashboardPath = (pathname: string): boolean => pathname === "/" || pathname.startsWith("/dashboard/");

/** Serves `/` as index.html and `/dashboard/<file>` from `dir`; nothing outside it, and only the types above. */
export async function serveDashboardFile(dir: string, pathname: string, res: ServerResponse): Promise<void> {
  const file = pathname === "/" ? "index.html" : pathname.slice("/dashboard/".length);
  const path = normalize(join(dir, file));
  const type = TYPES[extname(path)];
  if (!path.startsWith(dir + sep) || !type) return send(res, 404, json, errorBody("not_found", "no such dashboard file"));
  let body: Buffer;
  try {
    body = await readFile(path);
  } catch {
    return send(res, 404, json, errorBody("not_found", "no such dashboard file"));
  }
  send(res, 200, { ...DASHBOARD_HEADERS, "content-type": type }, body);
}
