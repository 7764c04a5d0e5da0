/**
 * `warden dashboard` (cli/dashboard.ts): the dashboard's files served on loopback, its API calls
 * forwarded to the stage signed with SigV4 (checked by a gateway that recomputes each signature
 * from what arrived) or with the stage's JWT, and everything else refused: a call without this
 * run's session key, one naming another host (DNS rebinding) or origin, a path that is not one
 * of the API's routes. Then the page itself, in headless Chromium, against the signing proxy.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runDashboard, type DashboardServer } from "../cli/dashboard.js";
import { ROUTE_KEYS } from "../core/api/routes.js";
import { DASHBOARD_DIR } from "../local/gateway.js";
import { TEST_CREDENTIALS, startSigV4Gateway, type Recorded, type SigV4Gateway } from "./support/sigv4-gateway.js";

const REGION = "eu-west-1";
const CHROMIUM = "/usr/bin/chromium";

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** node:http rather than fetch, so a test can send any Host and Origin it likes. */
function call(d: DashboardServer, o: { method?: string; path: string; key?: string | null; headers?: Record<string, string>; body?: string }): Promise<Answer> {
  const { port } = new URL(d.origin);
  const key = o.key === undefined ? d.session : o.key;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: Number(port),
        method: o.method ?? "GET",
        path: o.path,
        headers: {
          host: `127.0.0.1:${port}`,
          ...(key !== null ? { authorization: `Bearer ${key}` } : {}),
          ...(o.body !== undefined ? { "content-type": "application/json" } : {}),
          ...o.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
      },
    );
    req.on("error", reject);
    req.end(o.body);
  });
}

/** What the stand-in stage answers: enough for the page to render, and an echo of what it was sent. */
function stage(r: Recorded): { status: number; body: unknown } {
  const path = new URL(r.rawUrl, "http://x").pathname;
  const job = {
    id: "01JDASHBOARDTESTJOB0000001",
    type: "report.build",
    queue: "default",
    status: "failed",
    input: { note: "<img src=x onerror=alert(1)>" },
    result: null,
    error: { code: "permanent", message: "the report is missing" },
    attempts: 1,
    maxAttempts: 3,
    progress: null,
    createdAt: new Date(Date.now() - 60_000).toISOString(),
    firstStartedAt: null,
    startedAt: null,
    heartbeatAt: null,
    finishedAt: new Date().toISOString(),
    runAt: null,
    cancelRequested: false,
    stale: false,
    worker: null,
    history: [],
  };
  const echo = { method: r.method, rawUrl: r.rawUrl, body: r.body };
  if (path === "/jobs") return { status: 200, body: { jobs: [job], nextCursor: null, echo } };
  if (path === "/admin/workers") return { status: 200, body: { workers: [{ id: "lambda:abc", kind: "lambda", startedAt: job.createdAt, lastSeenAt: job.createdAt, jobs: [], state: "unresponsive", diedAt: null, deathReason: null }] } };
  if (path === "/admin/queues") return { status: 200, body: { queues: [{ queue: "default", visible: 3, inFlight: 1, delayed: 0, dlq: { visible: 0, inFlight: 0, delayed: 0 }, oldestWaitSeconds: 12 }] } };
  return { status: 200, body: { echo } };
}

let gateway: SigV4Gateway;
const servers: DashboardServer[] = [];
const open = async (o: Omit<Parameters<typeof runDashboard>[0], "open" | "log">): Promise<DashboardServer> => {
  const d = await runDashboard({ ...o, open: false, log: () => undefined });
  servers.push(d);
  return d;
};

beforeAll(async () => {
  gateway = await startSigV4Gateway({ region: REGION, secrets: { [TEST_CREDENTIALS.accessKeyId]: TEST_CREDENTIALS.secretAccessKey }, respond: stage });
});

afterEach(() => {
  vi.unstubAllEnvs();
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await gateway?.close();
});

describe("warden dashboard: the proxy", () => {
  it("serves the dashboard's own files on 127.0.0.1, with a policy that keeps the page to its own origin", async () => {
    const d = await open({ url: gateway.url, region: REGION, credentials: TEST_CREDENTIALS });
    expect(d.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=[\w-]{32}$/);
    const before = gateway.requests.length;
    // The files hold no secret: they load before the page has read its key from the fragment.
    const page = await call(d, { path: "/", key: null });
    expect(page.status).toBe(200);
    expect(page.text).toBe(readFileSync(join(DASHBOARD_DIR, "index.html"), "utf8"));
    expect(page.headers["content-security-policy"]).toContain("connect-src 'self'");
    expect(page.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    const js = await call(d, { path: "/dashboard/app.js", key: null });
    expect(js.status).toBe(200);
    expect(js.headers["content-type"]).toMatch(/^text\/javascript/);
    expect(js.text).toBe(readFileSync(join(DASHBOARD_DIR, "app.js"), "utf8"));
    expect((await call(d, { path: "/dashboard/nope.js", key: null })).status).toBe(404);
    // Nothing outside the directory, however the path is spelled.
    for (const path of ["/dashboard/..%2f..%2fpackage.json", "/dashboard/%2e%2e/%2e%2e/package.json", "/dashboard/../cli/dashboard.ts"]) {
      const a = await call(d, { path });
      expect(a.status, path).not.toBe(200);
      expect(a.text, path).not.toContain('"name": "warden"');
    }
    expect(gateway.requests.length).toBe(before);
  });

  it("forwards every API route signed with SigV4, and the gateway verifies what arrived", async () => {
    const d = await open({ url: gateway.url, region: REGION, credentials: TEST_CREDENTIALS });
    for (const key of ROUTE_KEYS) {
      const [method, template] = key.split(" ") as [string, string];
      const path = template.replace("{id}", "01JDASHBOARDTESTJOB0000001").replace("{target}", "queue:default").replace("{key}", "key:tenant-a");
      const body = method === "POST" ? JSON.stringify({ type: "demo.sleep", dryRun: true }) : undefined;
      const before = gateway.requests.length;
      const a = await call(d, { method, path, ...(body !== undefined ? { body } : {}), headers: { cookie: "session=browser-cookie" } });
      expect(a.status, `${key}: ${a.text}`).toBe(200);
      expect(gateway.requests.length, key).toBe(before + 1);
      const got = gateway.requests.at(-1)!;
      expect(got.verdict, key).toMatchObject({ ok: true, accessKeyId: TEST_CREDENTIALS.accessKeyId });
      expect(got.method).toBe(method);
      expect(new URL(got.rawUrl, "http://x").pathname).toBe(path);
      expect(got.body).toBe(body ?? "");
      // The browser's session key and cookies stay with the proxy.
      expect(got.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 /);
      expect(JSON.stringify(got.headers)).not.toContain(d.session);
      expect(got.headers.cookie).toBeUndefined();
      // And no credential comes back to the browser.
      expect(JSON.stringify(a.headers) + a.text).not.toContain(TEST_CREDENTIALS.secretAccessKey);
      expect(JSON.stringify(a.headers)).not.toMatch(/aws4|x-amz/i);
    }
  });

  it("signs a search's query as it sends it, spaces and all", async () => {
    const d = await open({ url: gateway.url, region: REGION, credentials: TEST_CREDENTIALS });
    // A form-encoded space (+), a percent-encoded one, and characters SigV4 encodes differently from URLSearchParams.
    for (const q of ["type=report+build&status=failed&limit=50", "type=report%20build&owner=arn%3Aaws%3Aiam%3A%3A1%3Auser%2Fa&limit=5", "createdAfter=2026-01-01T00%3A00%3A00.000Z&id=01J*(x)~!"]) {
      const a = await call(d, { path: `/jobs?${q}` });
      expect(a.status, `${q}: ${a.text}`).toBe(200);
      expect(gateway.requests.at(-1)!.verdict, q).toMatchObject({ ok: true });
      const sent = new URL(gateway.requests.at(-1)!.rawUrl, "http://x").search;
      expect(sent).not.toContain("+");
      expect(Object.fromEntries(new URL(`http://x/?${sent.slice(1).replace(/\+/g, "%2B")}`).searchParams)).toEqual(Object.fromEntries(new URLSearchParams(q)));
    }
  });

  it("refuses a call without this run's session key, for another host or origin, or off the API's routes, and forwards none of them", async () => {
    const d = await open({ url: gateway.url, region: REGION, credentials: TEST_CREDENTIALS });
    const other = await open({ url: gateway.url, region: REGION, credentials: TEST_CREDENTIALS });
    const { port } = new URL(d.origin);
    const before = gateway.requests.length;
    const refused: [string, Parameters<typeof call>[1], number][] = [
      ["no key", { path: "/jobs", key: null }, 401],
      ["a wrong key", { path: "/jobs", key: "not-the-key" }, 401],
      ["another run's key", { path: "/jobs", key: other.session }, 401],
      ["the key as a cookie", { path: "/jobs", key: null, headers: { cookie: `token=${d.session}` } }, 401],
      ["a POST without the key", { method: "POST", path: "/admin/jobs/retry", key: null, body: "{}" }, 401],
      // A page whose name was rebound to 127.0.0.1 is same-origin with itself only: its Host says so.
      ["a rebound host name", { path: "/jobs", headers: { host: `evil.example:${port}` } }, 403],
      ["another port", { path: "/jobs", headers: { host: `127.0.0.1:${Number(port) + 1}` } }, 403],
      ["the page for a rebound host name", { path: "/", key: null, headers: { host: `evil.example:${port}` } }, 403],
      ["another origin", { method: "POST", path: "/jobs", body: "{}", headers: { origin: "http://evil.example" } }, 403],
      ["a null origin", { method: "POST", path: "/jobs", body: "{}", headers: { origin: "null" } }, 403],
      // Only the API's own routes: not npm start's /local/ ones, nor anything else on the stage's host.
      ["/local/alarms", { path: "/local/alarms" }, 404],
      ["/local/history", { path: "/local/history" }, 404],
      ["an unknown path", { path: "/admin/../../etc/passwd" }, 404],
      ["a route with another method", { method: "DELETE", path: "/jobs/01J" }, 404],
      ["a route with a longer path", { path: "/jobs/01J/attempts/extra" }, 404],
      ["OPTIONS", { method: "OPTIONS", path: "/jobs" }, 404],
    ];
    for (const [what, req, status] of refused) {
      const a = await call(d, req);
      expect(a.status, `${what}: ${a.text}`).toBe(status);
      expect(a.headers["access-control-allow-origin"], what).toBeUndefined();
    }
    expect(gateway.requests.length, "nothing refused reached the stage").toBe(before);
    // The page's own origin, by either loopback name, is let through.
    expect((await call(d, { method: "POST", path: "/jobs", body: "{}", headers: { origin: d.origin } })).status).toBe(200);
    expect((await call(d, { path: "/jobs", headers: { host: `localhost:${port}` } })).status).toBe(200);
    expect(gateway.requests.slice(before).map((r) => r.verdict.ok)).toEqual([true, true]);
  });

  it("tells the page which stage it shows, without any credential, and only with the session key", async () => {
    const d = await open({ url: `${gateway.url}/`, region: REGION, credentials: TEST_CREDENTIALS });
    const info = await call(d, { path: "/dashboard/session.json" });
    expect(info.status).toBe(200);
    expect(JSON.parse(info.text)).toEqual({ mode: "stage", api: gateway.url, auth: `SigV4 (${REGION})` });
    expect(info.text).not.toContain(TEST_CREDENTIALS.accessKeyId);
    const anonymous = await call(d, { path: "/dashboard/session.json", key: null });
    expect(anonymous.status).toBe(401);
    expect(JSON.parse(anonymous.text)).toMatchObject({ mode: "stage" });
  });

  it("signs with the AWS SDK's default credential chain, as the client does, when no credentials are given", async () => {
    vi.stubEnv("AWS_PROFILE", undefined);
    vi.stubEnv("AWS_ACCESS_KEY_ID", TEST_CREDENTIALS.accessKeyId);
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS.secretAccessKey);
    vi.stubEnv("AWS_SESSION_TOKEN", undefined);
    const d = await open({ url: gateway.url, env: { AWS_REGION: REGION } });
    expect(d.authLabel).toBe(`SigV4 (${REGION})`);
    const a = await call(d, { path: "/admin/workers" });
    expect(a.status, a.text).toBe(200);
    expect(gateway.requests.at(-1)!.verdict).toMatchObject({ ok: true, accessKeyId: TEST_CREDENTIALS.accessKeyId });
    // Keys the gateway does not know are refused there, and the page sees API Gateway's answer.
    const wrong = await open({ url: gateway.url, region: REGION, credentials: { accessKeyId: "AKIDOTHER", secretAccessKey: "x" } });
    const refused = await call(wrong, { path: "/jobs" });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.text)).toEqual({ message: "unknown access key AKIDOTHER" });
  });

  it("refuses to start when it cannot tell how to authenticate", async () => {
    await expect(runDashboard({ url: "https://api.example.com", env: {}, open: false, log: () => undefined })).rejects.toThrow(/--region .* or --token/);
    await expect(runDashboard({ url: "ftp://x", env: {}, open: false, log: () => undefined })).rejects.toThrow(/http:\/\/ or https:\/\//);
  });
});

describe("warden dashboard --token: a JWT-authorized stage", () => {
  let upstream: Server;
  let upstreamUrl: string;
  const seen: IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json", "set-cookie": "upstream=1", "retry-after": "3" });
        res.end(JSON.stringify({ jobs: [], nextCursor: null }));
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  it("sends the token as Authorization: Bearer in place of the session key, from --token or WARDEN_TOKEN", async () => {
    for (const [opts, token] of [
      [{ token: "jwt-from-flag" }, "jwt-from-flag"],
      [{ env: { WARDEN_TOKEN: "jwt-from-env" } }, "jwt-from-env"],
    ] as const) {
      const d = await open({ url: upstreamUrl, ...opts });
      expect(d.authLabel).toBe("bearer token");
      const a = await call(d, { path: "/jobs?status=failed" });
      expect(a.status).toBe(200);
      expect(seen.at(-1)!.authorization).toBe(`Bearer ${token}`);
      // The stage's token never reaches the browser, nor does anything the stage sets but the body, its type and Retry-After.
      expect(JSON.stringify(a.headers) + a.text).not.toContain(token);
      expect(a.headers["set-cookie"]).toBeUndefined();
      expect(a.headers["retry-after"]).toBe("3");
      const before = seen.length;
      expect((await call(d, { path: "/jobs", key: null })).status).toBe(401);
      expect(seen.length).toBe(before);
    }
  });
});

describe.skipIf(!existsSync(CHROMIUM))("warden dashboard in headless Chromium", () => {
  it("opens from the printed URL with no token to paste, and every call the page makes arrives signed", async () => {
    const d = await open({ url: gateway.url, region: REGION, credentials: TEST_CREDENTIALS });
    const profile = mkdtempSync(join(tmpdir(), "warden-chromium-"));
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    try {
      const page = ctx.pages()[0] ?? (await ctx.newPage());
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      page.on("console", (m) => void (m.type() === "error" && errors.push(m.text())));
      const before = gateway.requests.length;
      await page.goto(d.url);
      await page.waitForSelector("#app:not([hidden])");
      const row = page.locator('tr[data-job-id="01JDASHBOARDTESTJOB0000001"]');
      await row.waitFor();
      expect(await row.getAttribute("data-status")).toBe("failed");
      await expect.poll(() => page.locator("#mode").textContent()).toContain(`SigV4 (${REGION})`);
      // A stage has no /local/ routes: the chart and alarms say where to look instead.
      expect(await page.locator("#alarms-panel .cloud-note").isVisible()).toBe(true);
      expect(await page.locator("#alarms-panel .local-only").isHidden()).toBe(true);
      await page.locator('#workers tr[data-state="unresponsive"]').waitFor();
      await page.locator('#queues tr[data-queue="default"]').waitFor();
      // The session key left the address bar; the page keeps only it, no AWS credential.
      expect(page.url()).toBe(`${d.origin}/`);
      const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }));
      expect(stored).toContain(d.session);
      expect(stored).not.toContain(TEST_CREDENTIALS.accessKeyId);
      const made = gateway.requests.slice(before);
      expect(made.length).toBeGreaterThanOrEqual(3);
      expect(made.filter((r) => !r.verdict.ok)).toEqual([]);
      expect(made.map((r) => new URL(r.rawUrl, "http://x").pathname)).not.toContain("/local/alarms");
      expect(errors.filter((e) => !/status of 40[14]/.test(e))).toEqual([]);
    } finally {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
