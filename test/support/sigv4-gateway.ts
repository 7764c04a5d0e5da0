/**
 * Test-only: a loopback stand-in for API Gateway's IAM authorizer. It recomputes each request's
 * SigV4 signature from what actually arrived (method, raw path, query, the signed headers, the
 * body) with the caller's secret, and answers 403 `{"message"}` like API Gateway when it differs.
 * A signer that signs one thing and sends another (another host or port, path, query encoding or
 * body) fails here.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";

/** AWS's documentation example credentials: never valid anywhere. */
export const TEST_CREDENTIALS = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" } as const;

export interface ReceivedRequest {
  method: string;
  /** As sent: path and query, still percent-encoded. */
  rawUrl: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export type Verdict = { ok: true; accessKeyId: string; signedHeaders: string[] } | { ok: false; reason: string };

export interface VerifyOptions {
  region: string;
  service?: string;
  /** accessKeyId → secret. */
  secrets: Record<string, string>;
  now?: Date;
}

const AUTH = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/;

export async function verifySigV4(req: ReceivedRequest, o: VerifyOptions): Promise<Verdict> {
  const fail = (reason: string): Verdict => ({ ok: false, reason });
  const m = AUTH.exec(header(req.headers, "authorization") ?? "");
  if (!m) return fail("no SigV4 Authorization header");
  const [, keyId, day, region, service, signedList, signature] = m as unknown as [string, string, string, string, string, string, string];
  const secret = o.secrets[keyId];
  if (secret === undefined) return fail(`unknown access key ${keyId}`);
  if (region !== o.region || service !== (o.service ?? "execute-api")) return fail(`scope ${region}/${service} is not ${o.region}/${o.service ?? "execute-api"}`);
  const amzDate = header(req.headers, "x-amz-date");
  const signingDate = amzDate ? parseAmzDate(amzDate) : undefined;
  if (!signingDate || amzDate!.slice(0, 8) !== day) return fail("x-amz-date missing, malformed or not the scope's day");
  if (Math.abs((o.now ?? new Date()).getTime() - signingDate.getTime()) > 5 * 60_000) return fail("signature is more than 5 minutes off");
  const signedHeaders = signedList.split(";");
  for (const required of ["host", "x-amz-date", ...(req.body ? ["content-type"] : [])]) {
    if (!signedHeaders.includes(required)) return fail(`${required} is not signed`);
  }
  // The signer trusts this header as the body's hash; the gateway checks it against the body.
  const claimed = header(req.headers, "x-amz-content-sha256");
  if (claimed !== undefined && claimed !== createHash("sha256").update(req.body).digest("hex")) return fail("x-amz-content-sha256 does not match the body");

  const url = new URL(req.rawUrl, "http://placeholder");
  const headers: Record<string, string> = {};
  for (const name of signedHeaders) {
    const v = header(req.headers, name);
    if (v === undefined) return fail(`signed header ${name} was not sent`);
    headers[name] = v;
  }
  const [hostname, port] = headers.host!.split(":");
  const signer = new SignatureV4({
    service,
    region,
    credentials: { accessKeyId: keyId, secretAccessKey: secret },
    sha256: Sha256,
    applyChecksum: false,
  });
  const expected = await signer.sign(
    {
      method: req.method,
      protocol: "http:",
      hostname: hostname!,
      ...(port ? { port: Number(port) } : {}),
      path: url.pathname,
      query: queryOf(url.search),
      headers,
      ...(req.body ? { body: req.body } : {}),
    },
    { signingDate },
  );
  const want = AUTH.exec(expected.headers.authorization ?? "");
  if (!want) return fail("could not recompute the signature");
  if (want[5] !== signedList) return fail(`signed headers differ: sent ${signedList}, recomputed ${want[5]}`);
  if (!timingSafeEqual(Buffer.from(want[6]!), Buffer.from(signature))) return fail("The request signature we calculated does not match the signature you provided");
  return { ok: true, accessKeyId: keyId, signedHeaders };
}

export interface Recorded extends ReceivedRequest {
  verdict: Verdict;
}

export interface SigV4Gateway {
  url: string;
  requests: Recorded[];
  close(): Promise<void>;
}

/** What a verified request is answered with (a refused one gets API Gateway's 403). */
export type Responder = (req: Recorded) => { status: number; body: unknown };

export async function startSigV4Gateway(o: Omit<VerifyOptions, "now"> & { respond?: Responder }): Promise<SigV4Gateway> {
  const requests: Recorded[] = [];
  const respond = o.respond ?? (() => ({ status: 200, body: { jobs: [], nextCursor: null } }));
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const received = { method: req.method ?? "", rawUrl: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") };
      void verifySigV4(received, o).then((verdict) => {
        const recorded = { ...received, verdict };
        requests.push(recorded);
        const answer = verdict.ok ? respond(recorded) : { status: 403, body: { message: verdict.reason } };
        res.writeHead(answer.status, { "content-type": "application/json" });
        res.end(JSON.stringify(answer.body));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v.join(",") : v;
}

/**
 * SigV4 reads `+` in a query as a plus, not the space form encoding makes it, so this parses
 * strictly rather than with URLSearchParams: a client that sends `+` for a space fails here.
 */
function queryOf(search: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const pair of search.replace(/^\?/, "").split("&").filter(Boolean)) {
    const at = pair.indexOf("=");
    const key = decodeURIComponent(at < 0 ? pair : pair.slice(0, at));
    const value = at < 0 ? "" : decodeURIComponent(pair.slice(at + 1));
    const had = query[key];
    query[key] = had === undefined ? value : [...(Array.isArray(had) ? had : [had]), value];
  }
  return query;
}

/** 20240501T120000Z → the Date. */
function parseAmzDate(s: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  return m ? new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`) : undefined;
}
