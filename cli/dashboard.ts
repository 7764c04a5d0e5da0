/**
 * `warden dashboard --url <ApiUrl>`: the dashboard for a deployed stage, served on this machine.
 * An HTTP server on 127.0.0.1 serves the same files `npm start` serves (dashboard/) and forwards
 * the page's API calls to the stage, signing each with the user's AWS credentials (SigV4, the
 * client's own signer and credential chain) or adding the stage's JWT (`--token`). The stage
 * gets the full UI without a web page of its own on the internet, and without the browser ever
 * holding an AWS credential.
 *
 * It must not become an open door to the stage for whatever else runs on this machine or in the
 * browser, so every forwarded call must:
 * - carry this run's session key (random, printed only in the URL's fragment, which the browser
 *   never sends; the page keeps it and sends it as its bearer token, as it does npm start's
 *   admin token), so another local process or user cannot use the proxy;
 * - name this server in Host (and Origin, when the browser sends one), so a page that rebinds
 *   its own DNS name to 127.0.0.1 cannot reach it as same-origin;
 * - be one of the API's own routes (core/api/routes.ts), so nothing else on the stage's host is
 *   reachable through it; `/local/*` (npm start's extras) answers 404, as the page expects.
 * Only the answer's body, status, content type and Retry-After go back to the browser.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { abortable, WardenError, type Auth } from "../client/index.js";
import { executeApiRegion, sigV4Signer, type AwsCredentialIdentity, type AwsCredentialIdentityProvider, type RequestSigner } from "../client/sigv4.js";
import { ROUTE_KEYS, routePattern } from "../core/api/routes.js";
import { DASHBOARD_DIR, errorBody, isDashboardPath, readBody, send, serveDashboardFile } from "../local/gateway.js";

export interface DashboardOptions {
  /** The API's base URL: a stage's ApiUrl output (or any Warden API, npm start's included). */
  url: string;
  /**
   * How the calls are authenticated; by default a bearer token when `token` (or WARDEN_TOKEN) is
   * given, else SigV4 for `region` (or the execute-api URL's, or AWS_REGION / AWS_DEFAULT_REGION).
   * WARDEN_AUTH=sigv4 signs even with WARDEN_TOKEN set, as the CLI's other commands do.
   */
  auth?: Auth;
  /** `--token`: a JWT for a stage with a JWT authorizer (or npm start's admin token). */
  token?: string | undefined;
  /** `--region`, for SigV4. */
  region?: string | undefined;
  /** For SigV4; default the AWS SDK's default chain (AWS_PROFILE, SSO, env, a role…), as the client uses. */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Where to listen on 127.0.0.1; default 0, a free port. */
  port?: number | undefined;
  /** Open the URL in the default browser (default true; `--no-open` turns it off). */
  open?: boolean | undefined;
  /** Closes the server when it fires (the CLI passes one that SIGINT / SIGTERM abort). */
  signal?: AbortSignal;
  /** Where the URL and errors are printed; default stderr. */
  log?: (line: string) => void;
  /** Default process.env: WARDEN_TOKEN, WARDEN_AUTH, AWS_REGION, AWS_DEFAULT_REGION. */
  env?: Record<string, string | undefined>;
  /** Per-call time limit towards the API, signing included; default 30 s (API Gateway's own limit). */
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
}

export interface DashboardServer {
  /** What to open: `http://127.0.0.1:PORT/#token=<session key>`. */
  url: string;
  /** `http://127.0.0.1:PORT`. */
  origin: string;
  /** This run's session key (in `url`'s fragment). */
  session: string;
  /** The authentication used towards the API, for people: "SigV4 (eu-west-1)" or "bearer token". */
  authLabel: string;
  close(): Promise<void>;
  /** Settles once the server has closed, by `close()` or the signal. */
  closed: Promise<void>;
}

/** API Gateway's payload limit: nothing larger could reach the API anyway. */
const MAX_BODY_BYTES = 10 * 1024 * 1024;
const ROUTES = ROUTE_KEYS.map(routePattern);
/** The page asks for this to learn it is in front of a stage; npm start's gateway answers it 404. */
const SESSION_PATH = "/dashboard/session.json";
const json = { "content-type": "application/json", "cache-control": "no-store" };

const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

export async function runDashboard(opts: DashboardOptions): Promise<DashboardServer> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  if (!/^https?:\/\//.test(opts.url)) throw new WardenError(`--url must start with http:// or https:// (got ${JSON.stringify(opts.url)})`);
  const base = opts.url.replace(/\/+$/, "");
  const auth = opts.auth ?? authFor(opts, env, base);
  const authLabel = auth.kind === "sigv4" ? `SigV4 (${auth.region})` : "bearer token";
  const session = randomBytes(24).toString("base64url");
  const sessionDigest = digest(session);
  const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const timeoutMs = opts.requestTimeoutMs ?? 30_000;

  // Built on the first call; a chain that found no credentials is tried again on the next.
  let signer: Promise<RequestSigner> | undefined;
  const sign = (req: Parameters<RequestSigner>[0]): Promise<Record<string, string>> => {
    if (auth.kind !== "sigv4") return Promise.resolve({ ...req.headers, authorization: `Bearer ${auth.token}` });
    signer ??= sigV4Signer({ ...auth, ...(opts.credentials && !auth.credentials ? { credentials: opts.credentials } : {}) }).catch((e: unknown) => {
      signer = undefined;
      throw e;
    });
    return signer.then((s) => s(req));
  };

  let hosts = new Set<string>();
  let origins = new Set<string>();
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      log(`warden dashboard: ${String((e as Error)?.stack ?? e)}`);
      if (!res.headersSent) send(res, 500, json, errorBody("internal", "the dashboard's proxy failed; see its terminal"));
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Before anything else, files included: a rebound name's page must get nothing from here.
    if (!hosts.has(req.headers.host ?? "")) {
      return send(res, 403, json, errorBody("forbidden", `this is the Warden dashboard on ${[...hosts][0]}; a request for another host name is refused`));
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !origins.has(origin)) return send(res, 403, json, errorBody("forbidden", "cross-origin requests are refused"));
    const url = new URL(req.url ?? "/", "http://local");
    const method = (req.method ?? "GET").toUpperCase();
    const authorized = sameKey(req.headers.authorization);

    if (method === "GET" && url.pathname === SESSION_PATH) {
      // No credential here either: which API, and how it is signed, for the page's header.
      return authorized
        ? send(res, 200, json, JSON.stringify({ mode: "stage", api: base, auth: authLabel }))
        : send(res, 401, json, JSON.stringify({ mode: "stage", error: { code: "unauthorized", message: "open the URL `warden dashboard` printed: it carries this run's session key" } }));
    }
    if (method === "GET" && isDashboardPath(url.pathname)) return serveDashboardFile(DASHBOARD_DIR, url.pathname, res);
    if (!authorized) {
      return send(res, 401, { ...json, "www-authenticate": "Bearer" }, errorBody("unauthorized", "open the URL `warden dashboard` printed: it carries this run's session key"));
    }
    if (url.pathname === "/local" || url.pathname.startsWith("/local/")) {
      return send(res, 404, json, errorBody("not_found", "the /local/ routes exist only under npm start; a stage has its CloudWatch dashboard and alarms"));
    }
    if (!ROUTES.some((r) => r.method === method && r.re.test(url.pathname))) {
      return send(res, 404, json, errorBody("not_found", `${method} ${url.pathname} is not a route of the Warden API; only those are forwarded`));
    }
    const body = await readBody(req, MAX_BODY_BYTES);
    if (body === undefined) return send(res, 413, json, errorBody("payload_too_large", "the request body is over API Gateway's 10 MB limit"));
    await forward(method, url, body, req.headers["content-type"], res);
  }

  function sameKey(header: string | undefined): boolean {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    return !!m && timingSafeEqual(digest(m[1]!), sessionDigest);
  }

  async function forward(method: string, incoming: URL, body: Buffer, contentType: string | undefined, res: ServerResponse): Promise<void> {
    // The query as SigV4 reads it: %20 for a space, never form encoding's +, so what is signed is what is sent.
    const qs = incoming.searchParams.toString().replace(/\+/g, "%20");
    const target = new URL(`${base}${incoming.pathname}${qs ? `?${qs}` : ""}`);
    const text = body.length ? body.toString("utf8") : undefined;
    // Only these reach the API: never the browser's cookies, its Authorization (the session key) or anything else.
    const headers: Record<string, string> = { accept: "application/json", ...(text !== undefined ? { "content-type": contentType ?? "application/json" } : {}) };
    const signal = AbortSignal.timeout(timeoutMs);
    let sent: Record<string, string>;
    try {
      sent = await abortable(sign({ method, url: target, headers, ...(text !== undefined ? { body: text } : {}) }), signal);
    } catch (e) {
      const why = signal.aborted ? "timed out getting AWS credentials" : `cannot sign the request with SigV4: ${(e as Error)?.message ?? String(e)}`;
      log(`warden dashboard: ${why}`);
      return send(res, 502, json, errorBody("bad_gateway", `${why} (see the terminal running warden dashboard)`));
    }
    let answer: Response;
    try {
      answer = await fetchFn(target.href, { method, headers: sent, ...(text !== undefined ? { body: text } : {}), signal, redirect: "manual" });
    } catch (e) {
      return send(res, 502, json, errorBody("bad_gateway", `cannot reach the Warden API at ${base}: ${(e as Error)?.message ?? String(e)}`));
    }
    const out = Buffer.from(await answer.arrayBuffer());
    const relay: Record<string, string> = { "cache-control": "no-store", "content-type": answer.headers.get("content-type") ?? "application/json" };
    const retryAfter = answer.headers.get("retry-after");
    if (retryAfter) relay["retry-after"] = retryAfter;
    send(res, answer.status, relay, out);
  }

  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  origins = new Set([...hosts].map((h) => `http://${h}`));
  const originUrl = `http://127.0.0.1:${port}`;
  const pageUrl = `${originUrl}/#token=${session}`;

  let closing: Promise<void> | undefined;
  let settle!: () => void;
  const closed = new Promise<void>((resolve) => (settle = resolve));
  const close = (): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }).then(settle));
  if (opts.signal?.aborted) await close();
  opts.signal?.addEventListener("abort", () => void close(), { once: true });

  log(`warden dashboard: ${base} through ${authLabel}`);
  log(`warden dashboard: open ${pageUrl}`);
  log("warden dashboard: on 127.0.0.1 only; the URL carries this run's session key, so keep it to yourself. Ctrl-C stops it.");
  if (opts.open !== false && !closing) openBrowser(pageUrl, log);
  return { url: pageUrl, origin: originUrl, session, authLabel, close, closed };
}

/** The same choice the CLI's other commands make (cli/main.ts authOf), for a dashboard that must authenticate somehow. */
function authFor(o: DashboardOptions, env: Record<string, string | undefined>, base: string): Auth {
  const mode = env.WARDEN_AUTH?.trim().toLowerCase() || undefined;
  const token = o.token ?? (mode === "sigv4" ? undefined : env.WARDEN_TOKEN || undefined);
  if (token) return { kind: "bearer", token };
  const region = o.region ?? executeApiRegion(base) ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (!region) {
    throw new WardenError(`${base} is not an execute-api URL, so its region is unknown: give --region (or AWS_REGION) to sign with SigV4, or --token for a JWT-authorized stage`);
  }
  return { kind: "sigv4", region, ...(o.credentials ? { credentials: o.credentials } : {}) };
}

/** Best effort: the URL is printed either way. */
function openBrowser(url: string, log: (line: string) => void): void {
  const [cmd, args] = process.platform === "darwin" ? ["open", [url]] : process.platform === "win32" ? ["cmd", ["/c", "start", '""', url]] : ["xdg-open", [url]];
  try {
    const child = spawn(cmd, args, { stdio: "ignore", detached: true });
    child.once("error", () => log("warden dashboard: could not start a browser; open the URL above yourself"));
    child.unref();
  } catch {
    log("warden dashboard: could not start a browser; open the URL above yourself");
  }
}


