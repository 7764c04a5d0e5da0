/**
 * Test-only: serves the API handler over node:http on loopback, with bearer tokens mapped to the
 * JWT-shaped authorizer context the local gateway (local/gateway.ts) and API Gateway produce.
 * Deliberately minimal; the production stand-in lives in local/.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { beforeAll } from "vitest";
import { silentLog } from "../../core/api/jobs.js";
import { loadRuntime } from "../../core/runtime.js";
import { buildServices, type Services } from "../../core/services.js";
import { makeHandler, type ApiEvent, type ApiHandler } from "../../functions/api.js";
import type { TestEnv } from "./emulators.js";
import { ADMIN_GROUP } from "../../core/api/identity.js";

export interface TestCaller {
  sub: string;
  admin?: boolean;
}

export interface TestServer {
  url: string;
  close(): Promise<void>;
}

export async function serveApi(handler: ApiHandler, tokens: Record<string, TestCaller>): Promise<TestServer> {
  const server = createServer((req, res) => {
    void handle(handler, tokens, req, res).catch(() => {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "internal", message: "test server failed" } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(handler: ApiHandler, tokens: Record<string, TestCaller>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  const url = new URL(req.url ?? "/", "http://test");
  const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
  const who = token !== undefined ? tokens[token] : undefined;
  const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(",") : (v ?? "")]));
  const event = apiEvent({
    method: req.method ?? "GET",
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers,
    ...(raw.length ? { rawBody: raw.toString("base64"), base64: true } : {}),
    ...(who ? { authorizer: jwtAuthorizer(who) } : {}),
  });
  const out = await handler(event);
  res.writeHead(out.statusCode ?? 200, out.headers as Record<string, string>);
  res.end(out.body ?? "");
}

export interface EventSpec {
  method: string;
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** The body exactly as API Gateway passes it (base64 when `base64`). */
  rawBody?: string;
  base64?: boolean;
  authorizer?: unknown;
  stage?: string;
}

export const jwtAuthorizer = (who: TestCaller): unknown => ({
  jwt: { claims: { sub: who.sub, groups: who.admin ? [ADMIN_GROUP] : [] }, scopes: null },
});

/** An HTTP API payload-v2 event as API Gateway builds it. */
export function apiEvent(spec: EventSpec): ApiEvent {
  const rawQueryString = new URLSearchParams(spec.query ?? {}).toString();
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: spec.path,
    rawQueryString,
    headers: spec.headers ?? {},
    ...(spec.query && Object.keys(spec.query).length ? { queryStringParameters: spec.query } : {}),
    ...(spec.rawBody !== undefined ? { body: spec.rawBody } : {}),
    isBase64Encoded: spec.base64 === true,
    requestContext: {
      accountId: "000000000000",
      apiId: "test",
      domainName: "127.0.0.1",
      domainPrefix: "127",
      http: { method: spec.method, path: spec.path, protocol: "HTTP/1.1", sourceIp: "127.0.0.1", userAgent: "" },
      requestId: randomUUID(),
      routeKey: "$default",
      stage: spec.stage ?? "$default",
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
      ...(spec.authorizer !== undefined ? { authorizer: spec.authorizer } : {}),
    },
  } as ApiEvent;
}

/**
 * Calls the API handler as API Gateway would, as `who` (a JWT subject; "admin" is the admin),
 * and answers the status and the parsed body.
 */
export function callerOf(handler: () => ApiHandler) {
  return async (method: string, path: string, who: string, body?: unknown, query?: Record<string, string>) => {
    const res = await handler()(
      apiEvent({
        method,
        path,
        headers: body !== undefined ? { "content-type": "application/json" } : {},
        ...(body !== undefined ? { rawBody: JSON.stringify(body) } : {}),
        ...(query ? { query } : {}),
        authorizer: jwtAuthorizer({ sub: who, admin: who === "admin" }),
      }),
    );
    return { status: res.statusCode ?? 0, body: JSON.parse(res.body ?? "null") };
  };
}

/**
 * The real API handler over a test's emulators, built before its tests run: `services` and
 * `handler` are read once built, and `call` sends a request as `callerOf` does.
 */
export function useApiHandler(env: TestEnv): { readonly services: Services; readonly handler: ApiHandler; call: ReturnType<typeof callerOf> } {
  const api = {} as { services: Services; handler: ApiHandler; call: ReturnType<typeof callerOf> };
  beforeAll(() => {
    api.services = buildServices(loadRuntime(env.emu.env));
    api.handler = makeHandler(api.services, { log: silentLog });
  });
  api.call = callerOf(() => api.handler);
  return api;
}
