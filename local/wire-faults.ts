/**
 * Faults on the wire, for the chaos run: an HTTP proxy on loopback, put between an SDK client and
 * dynalite or fauxqs, that at a seeded rate loses the reply to a write it forwarded (the store
 * applied it), holds a request without answering, or answers a 5xx or a throttle without
 * forwarding.
 *
 * Why on the wire and not as SDK middleware (as the first chaos run had it): middleware sits above the
 * SDK's retries, so a fault there is always final and the SDK never resends. In production the
 * dangerous faults happen below the retries: DynamoDB applies a conditional write, the reply is
 * lost, the SDK resends the same request, and the resend fails its own condition
 * (ConditionalCheckFailedException for a write that succeeded). An SQS SendMessage resent this
 * way arrives twice. Only a fault the SDK's retry logic sees shows what Warden's code gets.
 *
 * Clients behind it need a request timeout that throws (see timeoutHandler), or a `hang` lasts
 * until the proxy gives up on it. `onApplied` reports every request that reached the store and got a complete answer (also when
 * the reply never reached the client), so the chaos checks can keep a ledger of what was applied.
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { randomUUID } from "node:crypto";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { seeded } from "./chaos-faults.js";

export type WireFaultKind = "lostReply" | "hang" | "server" | "throttle";
export const WIRE_FAULT_KINDS: readonly WireFaultKind[] = ["lostReply", "hang", "server", "throttle"];

export interface WireFaultOptions {
  /** Probability that one HTTP request gets a fault. */
  rate: number;
  seed: number;
  kinds?: WireFaultKind[];
  service: "dynamodb" | "sqs";
  /** How long a `hang` holds the request before dropping the connection; 30 s by default. */
  hangMs?: number;
  /** A forwarded request that finds no answer upstream within this gets a 502; 30 s by default. */
  upstreamTimeoutMs?: number;
  /** Called once the store's whole answer is in (it runs in the proxy's event handlers: it must not throw). */
  onApplied?: (e: AppliedRequest) => void;
  /** Called as a fault is decided, before it is injected (a test can lower the rate from here). */
  onFault?: (kind: WireFaultKind, target: string) => void;
}

export interface AppliedRequest {
  /** X-Amz-Target, e.g. DynamoDB_20120810.UpdateItem or AmazonSQS.SendMessage. */
  target: string;
  /** The parsed JSON body (undefined when it is not JSON). */
  request: unknown;
  response: unknown;
  status: number;
  userAgent?: string;
  /** amz-sdk-invocation-id: the same for every attempt of one SDK call. */
  invocationId?: string;
  /** The attempt number from amz-sdk-request (`attempt=2; max=5`). */
  attempt?: number;
  /** The store answered but the client never got the answer (injected, or it had hung up). */
  replyLost: boolean;
  at: number;
}

export interface WireProxy {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  counts: Record<WireFaultKind, number>;
  setRate(rate: number): void;
  /**
   * A one-shot fault for the next request that `match` accepts (its X-Amz-Target and parsed JSON
   * body), whatever the rate: a test's way to lose exactly the reply it means to. Resolves once
   * injected.
   */
  injectNext(kind: WireFaultKind, match: (target: string, body: unknown) => boolean): Promise<void>;
  /**
   * The next request that `match` accepts passes untouched, whatever the rate: for a request the
   * test itself sends and must see answered, such as a held write delivered late.
   */
  passNext(match: (target: string, body: unknown) => boolean): void;
  close(): Promise<void>;
}

interface Planned {
  /** `pass`: no fault for this one, not even a seeded one. */
  kind: WireFaultKind | "pass";
  match: (target: string, body: unknown) => boolean;
  done: () => void;
}

const WRITES = new Set([
  "DynamoDB_20120810.PutItem",
  "DynamoDB_20120810.UpdateItem",
  "DynamoDB_20120810.DeleteItem",
  "DynamoDB_20120810.BatchWriteItem",
  "DynamoDB_20120810.TransactWriteItems",
  "AmazonSQS.SendMessage",
  "AmazonSQS.SendMessageBatch",
  "AmazonSQS.DeleteMessage",
  "AmazonSQS.DeleteMessageBatch",
  "AmazonSQS.ChangeMessageVisibility",
]);

export function isWriteTarget(target: string): boolean {
  return WRITES.has(target);
}

interface Reply {
  status: number;
  type: string;
  message: string;
  /** SQS's JSON protocol is query-compatible: the SDK takes the error code from this header first. */
  queryError?: string;
}

/** The answers the real services give (the SDK parses `__type` after the last `#`). */
const REPLIES: Record<WireFaultOptions["service"], Record<"server" | "throttle", Reply>> = {
  dynamodb: {
    server: { status: 500, type: "com.amazonaws.dynamodb.v20120810#InternalServerError", message: "Internal server error" },
    throttle: {
      status: 400,
      type: "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
      message: "The level of configured provisioned throughput for the table was exceeded.",
    },
  },
  sqs: {
    server: { status: 500, type: "com.amazon.coral.service#InternalFailure", message: "Internal failure", queryError: "InternalFailure;Receiver" },
    throttle: { status: 400, type: "com.amazonaws.sqs#RequestThrottled", message: "Request is throttled.", queryError: "RequestThrottled;Sender" },
  },
};

/**
 * A request handler for clients behind the proxy: without `throwOnRequestTimeout`, the
 * handler's `requestTimeout` only logs a warning and a `hang` blocks the call until `hangMs`.
 */
export function timeoutHandler(requestTimeout = 500, connectionTimeout = 500): NodeHttpHandler {
  return new NodeHttpHandler({ requestTimeout, connectionTimeout, throwOnRequestTimeout: true });
}

interface Ctx {
  o: WireFaultOptions;
  upstream: URL;
  agent: http.Agent;
  counts: Record<WireFaultKind, number>;
  decide(target: string): WireFaultKind | undefined;
  planned: Planned[];
}

export async function startWireProxy(target: string, options: WireFaultOptions): Promise<WireProxy> {
  const o = { ...options };
  const counts: Record<WireFaultKind, number> = { lostReply: 0, hang: 0, server: 0, throttle: 0 };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const ctx: Ctx = { o, upstream: new URL(target), agent, counts, decide: decider(o), planned: [] };
  const server = http.createServer((req, res) => handle(req, res, ctx));
  const sockets = new Set<Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("clientError", (_e, s) => s.destroy());
  let closing: Promise<void> | undefined;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    setRate: (rate) => void (o.rate = rate),
    injectNext: (kind, match) => new Promise<void>((done) => ctx.planned.push({ kind, match, done })),
    passNext: (match) => void ctx.planned.push({ kind: "pass", match, done: () => {} }),
    close: () => (closing ??= closeAll(server, sockets, agent)),
  };
}

function closeAll(server: http.Server, sockets: Set<Socket>, agent: http.Agent): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
    agent.destroy();
  });
}

/** The seeded choice for one request: no fault, or a kind that fits it (lostReply only for writes). */
function decider(o: WireFaultOptions): (target: string) => WireFaultKind | undefined {
  const random = seeded(o.seed);
  return (target) => {
    if (!(random() < o.rate)) return undefined;
    const kinds = (o.kinds ?? WIRE_FAULT_KINDS).filter((k) => k !== "lostReply" || isWriteTarget(target));
    return kinds.length ? kinds[Math.floor(random() * kinds.length)] : undefined;
  };
}

/**
 * Reads the whole request first: dynalite, in-process, throws an uncaught exception on a request
 * cut off mid-body, so a client that leaves early sends nothing upstream; and a planned fault
 * matches on the body.
 */
function handle(req: http.IncomingMessage, res: http.ServerResponse, ctx: Ctx): void {
  req.on("error", () => {});
  res.on("error", () => {});
  const target = header(req, "x-amz-target") ?? "";
  const body = collect(req);
  afterBody(req, () => {
    const sent = body();
    const plan = planned(ctx, target, sent);
    const kind = plan === "pass" ? undefined : (plan ?? ctx.decide(target));
    if (kind) {
      ctx.counts[kind]++;
      ctx.o.onFault?.(kind, target);
    }
    if (kind === "hang") return hang(req, res, ctx.o.hangMs ?? 30_000);
    if (kind === "server" || kind === "throttle") return fault(req, res, REPLIES[ctx.o.service][kind]);
    send(req, res, ctx, sent, kind === "lostReply");
  });
}

function planned(ctx: Ctx, target: string, sent: Buffer): Planned["kind"] | undefined {
  if (!ctx.planned.length) return undefined;
  const parsed = json(sent);
  const i = ctx.planned.findIndex((p) => (p.kind !== "lostReply" || isWriteTarget(target)) && p.match(target, parsed));
  if (i < 0) return undefined;
  const [p] = ctx.planned.splice(i, 1);
  p!.done();
  return p!.kind;
}

/** Answers nothing; drops the connection after `ms`. */
function hang(req: http.IncomingMessage, res: http.ServerResponse, ms: number): void {
  const timer = setTimeout(() => req.socket.destroy(), ms);
  timer.unref();
  res.on("close", () => clearTimeout(timer));
}

function afterBody(req: http.IncomingMessage, then: () => void): void {
  req.on("end", then);
  req.resume();
}

function fault(req: http.IncomingMessage, res: http.ServerResponse, r: Reply): void {
  const body = JSON.stringify({ __type: r.type, message: r.message });
  const headers: http.OutgoingHttpHeaders = {
    "content-type": header(req, "content-type") ?? "application/x-amz-json-1.0",
    "content-length": Buffer.byteLength(body),
    "x-amzn-requestid": randomUUID(),
    ...(r.queryError ? { "x-amzn-query-error": r.queryError } : {}),
  };
  if (!res.destroyed) res.writeHead(r.status, headers).end(body);
}

/** Passes the whole request upstream. The answer is streamed back; with `loseReply` it is read whole and the client is hung up on. */
function send(req: http.IncomingMessage, res: http.ServerResponse, ctx: Ctx, body: Buffer, loseReply: boolean): void {
  const headers = { ...endToEnd(req.headers), "content-length": body.length };
  const up = http.request(ctx.upstream, { method: req.method, path: req.url, headers, agent: ctx.agent });
  up.setTimeout(ctx.o.upstreamTimeoutMs ?? 30_000, () => up.destroy(new Error("upstream timed out")));
  up.on("error", () => badGateway(res));
  up.on("response", (upRes) => {
    upRes.on("error", () => res.destroy());
    const got = collect(upRes);
    if (!loseReply && !res.destroyed) pipeBack(upRes, res);
    upRes.on("end", () => {
      const report = (replyLost: boolean) => applied(ctx.o, req, body, upRes.statusCode ?? 0, got(), replyLost);
      if (loseReply) {
        report(true);
        req.socket.destroy();
      } else if (res.closed) report(!res.writableFinished);
      else res.once("close", () => report(!res.writableFinished));
    });
  });
  up.end(body);
}

function pipeBack(upRes: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(upRes.statusCode ?? 502, endToEnd(upRes.headers));
  upRes.pipe(res);
  res.on("close", () => upRes.resume()); // the client left: drain upstream, so the answer still gets reported
}

function badGateway(res: http.ServerResponse): void {
  if (res.headersSent || res.destroyed) return void res.destroy();
  const body = JSON.stringify({ __type: "BadGateway", message: "the wire-fault proxy could not reach the service" });
  res.writeHead(502, { "content-type": "application/x-amz-json-1.0", "content-length": Buffer.byteLength(body) }).end(body);
}

function applied(o: WireFaultOptions, req: http.IncomingMessage, sent: Buffer, status: number, got: Buffer, replyLost: boolean): void {
  if (!o.onApplied) return;
  const attempt = /attempt=(\d+)/.exec(header(req, "amz-sdk-request") ?? "")?.[1];
  o.onApplied({
    target: header(req, "x-amz-target") ?? "",
    request: json(sent),
    response: json(got),
    status,
    // Both: the SDK puts `app/<AWS_SDK_UA_APP_ID>` in user-agent only.
    userAgent: [header(req, "x-amz-user-agent"), header(req, "user-agent")].filter(Boolean).join(" ") || undefined,
    invocationId: header(req, "amz-sdk-invocation-id"),
    attempt: attempt ? Number(attempt) : undefined,
    replyLost,
    at: Date.now(),
  });
}

/** Keeps a copy of what flows through a stream; the getter answers it once the stream ended. */
function collect(stream: http.IncomingMessage): () => Buffer {
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  return () => Buffer.concat(chunks);
}

function json(b: Buffer): unknown {
  try {
    return b.length ? JSON.parse(b.toString("utf8")) : undefined;
  } catch {
    return undefined;
  }
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"]);

/** The headers without the hop-by-hop ones (each side keeps its own connection). */
function endToEnd(h: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const named = new Set(String(h.connection ?? "").toLowerCase().split(",").map((s) => s.trim()));
  return Object.fromEntries(Object.entries(h).filter(([k]) => !HOP_BY_HOP.has(k) && !named.has(k)));
}
