/**
 * Hostile inputs, table-driven: each must get a 4xx in the contract's error shape, never a 5xx,
 * and none may write anything (the table is compared item by item before and after).
 */
import { ScanCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { API_ERROR_CODES } from "../core/api/errors.js";
import { silentLog } from "../core/api/jobs.js";
import { parseJson } from "../core/api/json.js";
import { LIMITS } from "../core/config.js";
import { encodeCursor } from "../core/store.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { makeHandler, type ApiHandler } from "../functions/api.js";
import { useEmulators } from "./support/emulators.js";
import { apiEvent, jwtAuthorizer } from "./support/http-api.js";

const env = useEmulators("hostile");
let handler: ApiHandler;
let seededId: string;

beforeAll(async () => {
  handler = makeHandler(buildServices(loadRuntime(env.emu.env)), { log: silentLog });
  // One real job, so reads of an existing id are part of what must stay unchanged.
  const res = await handler(post("/jobs", JSON.stringify({ type: "demo.sleep", input: { items: 1 } })).event);
  seededId = JSON.parse(res.body ?? "{}").job.id;
});

interface Case {
  name: string;
  event: ReturnType<typeof apiEvent>;
  status: number;
}

const mallory = jwtAuthorizer({ sub: "mallory" });
const json = { "content-type": "application/json" };
function post(path: string, rawBody: string, headers: Record<string, string> = json, extra: { base64?: boolean; authorizer?: unknown } = {}) {
  return {
    event: apiEvent({ method: "POST", path, headers, rawBody, base64: extra.base64 === true, authorizer: "authorizer" in extra ? extra.authorizer : mallory }),
  };
}
const get = (path: string, query: Record<string, string> = {}) => ({ event: apiEvent({ method: "GET", path, query, authorizer: mallory }) });
const job = (fields: Record<string, unknown>) => post("/jobs", JSON.stringify({ type: "demo.sleep", ...fields }));
const input = (value: unknown) => job({ input: value });
const nest = (depth: number, open: string, close: string, inner = "1") => open.repeat(depth) + inner + close.repeat(depth);
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64url");

const CASES: Case[] = [
  // ── malformed bodies ──
  { name: "not JSON at all", ...post("/jobs", "type=demo.sleep"), status: 400 },
  { name: "truncated JSON", ...post("/jobs", '{"type": "demo.sleep", "input": {'), status: 400 },
  { name: "top-level array", ...post("/jobs", "[]"), status: 400 },
  { name: "top-level string", ...post("/jobs", '"demo.sleep"'), status: 400 },
  { name: "top-level null", ...post("/jobs", "null"), status: 400 },
  { name: "top-level number", ...post("/jobs", "42"), status: 400 },
  { name: "empty object (no type)", ...post("/jobs", "{}"), status: 400 },
  { name: "empty body", ...post("/jobs", ""), status: 400 },
  { name: "bytes that are not UTF-8", ...post("/jobs", Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString("base64"), json, { base64: true }), status: 400 },
  { name: "duplicate keys, the last an unknown type", ...post("/jobs", '{"type":"demo.sleep","type":"demo.nope"}'), status: 400 },
  // ── the type ──
  { name: "type empty", ...job({ type: "" }), status: 400 },
  { name: "type too long", ...job({ type: "a".repeat(101) }), status: 400 },
  { name: "type with spaces", ...job({ type: "demo sleep" }), status: 400 },
  { name: "type with non-ASCII letters", ...job({ type: "démo.sleep" }), status: 400 },
  { name: "type __proto__", ...job({ type: "__proto__" }), status: 400 },
  { name: "type null", ...job({ type: null }), status: 400 },
  { name: "type an array", ...job({ type: ["demo.sleep"] }), status: 400 },
  { name: "unknown type", ...job({ type: "demo.nope" }), status: 400 },
  // ── prototype pollution ──
  { name: "__proto__ at the top", ...post("/jobs", '{"type":"demo.sleep","__proto__":{"admin":true}}'), status: 400 },
  { name: "constructor.prototype at the top", ...post("/jobs", '{"type":"demo.sleep","constructor":{"prototype":{"admin":true}}}'), status: 400 },
  { name: "__proto__ inside input", ...post("/jobs", '{"type":"demo.sleep","input":{"__proto__":{"items":1}}}'), status: 400 },
  { name: "prototype deep inside input", ...input({ a: { b: [{ prototype: 1 }] } }), status: 400 },
  { name: "__proto__ on a cancel body", ...post(`/jobs/01JD0000000000000000000000/cancel`, '{"__proto__":{}}'), status: 400 },
  // ── depth and size ──
  { name: "arrays nested 33 deep", ...input(JSON.parse(nest(LIMITS.maxJsonDepth, "[", "]"))), status: 400 },
  { name: "objects nested 100 deep", ...post("/jobs", `{"type":"demo.sleep","input":${nest(100, '{"a":', "}")}}`), status: 400 },
  { name: "100 000 open brackets", ...post("/jobs", "[".repeat(100_000)), status: 400 },
  { name: "body over 256 KiB", ...input({ pad: "x".repeat(LIMITS.maxBodyBytes + 1) }), status: 413 },
  { name: "a 1 MB type string", ...job({ type: "a".repeat(1024 * 1024) }), status: 413 },
  { name: "an over-long key", ...input({ ["k".repeat(300)]: 1 }), status: 400 },
  { name: "an empty key", ...input({ "": 1 }), status: 400 },
  // ── numbers ──
  { name: "1e400 (Infinity) in input", ...post("/jobs", '{"type":"demo.sleep","input":{"items":1e400}}'), status: 400 },
  { name: "an integer past 2^53", ...post("/jobs", '{"type":"demo.sleep","input":{"items":12345678901234567890}}'), status: 400 },
  { name: "1e-200 in input", ...post("/jobs", '{"type":"demo.sleep","input":{"x":1e-200}}'), status: 400 },
  { name: "items as a numeric string", ...input({ items: "1e3" }), status: 400 },
  { name: "maxAttempts negative", ...job({ maxAttempts: -1 }), status: 400 },
  { name: "maxAttempts zero", ...job({ maxAttempts: 0 }), status: 400 },
  { name: "maxAttempts huge", ...job({ maxAttempts: 1e9 }), status: 400 },
  { name: "maxAttempts fractional", ...job({ maxAttempts: 2.5 }), status: 400 },
  { name: "timeoutSeconds negative", ...job({ timeoutSeconds: -60 }), status: 400 },
  { name: "timeoutSeconds past the limit", ...job({ timeoutSeconds: 1e12 }), status: 400 },
  // ── other fields ──
  { name: "runAt not a date", ...job({ runAt: "tomorrow" }), status: 400 },
  { name: "runAt in the year 9999", ...job({ runAt: "9999-12-31T00:00:00Z" }), status: 400 },
  { name: "queue with SQL", ...job({ queue: "default; DROP TABLE jobs" }), status: 400 },
  { name: "idempotencyKey too long", ...job({ idempotencyKey: "k".repeat(LIMITS.maxIdempotencyKeyChars + 1) }), status: 400 },
  { name: "idempotencyKey empty", ...job({ idempotencyKey: "" }), status: 400 },
  { name: "idempotencyKey with NUL", ...job({ idempotencyKey: "a\u0000b" }), status: 400 },
  // ── unicode ──
  { name: "lone high surrogate in a value", ...post("/jobs", '{"type":"demo.permanent","input":{"message":"\\ud800"}}'), status: 400 },
  { name: "lone low surrogate in a key", ...post("/jobs", '{"type":"demo.sleep","input":{"\\udc00":1}}'), status: 400 },
  // ── content types ──
  { name: "text/plain", ...post("/jobs", '{"type":"demo.sleep"}', { "content-type": "text/plain" }), status: 415 },
  { name: "no content type", ...post("/jobs", '{"type":"demo.sleep"}', {}), status: 415 },
  { name: "JSON in latin1", ...post("/jobs", '{"type":"demo.sleep"}', { "content-type": "application/json; charset=latin1" }), status: 415 },
  { name: "multipart", ...post("/jobs", '{"type":"demo.sleep"}', { "content-type": "multipart/form-data; boundary=x" }), status: 415 },
  // ── listing ──
  { name: "limit negative", ...get("/jobs", { limit: "-5" }), status: 400 },
  { name: "limit huge", ...get("/jobs", { limit: "1000000000000" }), status: 400 },
  { name: "limit zero", ...get("/jobs", { limit: "0" }), status: 400 },
  { name: "limit fractional", ...get("/jobs", { limit: "1.5" }), status: 400 },
  { name: "limit empty", ...get("/jobs", { limit: "" }), status: 400 },
  { name: "cursor garbage", ...get("/jobs", { cursor: "%%%not-base64" }), status: 400 },
  { name: "cursor of the wrong shape", ...get("/jobs", { cursor: b64('{"k":"x"}') }), status: 400 },
  { name: "cursor of a forged key", ...get("/jobs", { cursor: encodeCursor("2024-01-01T00:00:00.000Z#../../etc") }), status: 400 },
  { name: "cursor 10 KB long", ...get("/jobs", { cursor: "A".repeat(10_000) }), status: 400 },
  { name: "status in capitals", ...get("/jobs", { status: "RUNNING" }), status: 400 },
  { name: "unknown query parameter", ...get("/jobs", { sort: "asc" }), status: 400 },
  { name: "createdAfter not a time", ...get("/jobs", { createdAfter: "yesterday" }), status: 400 },
  { name: "createdBefore without an offset", ...get("/jobs", { createdBefore: "2026-12-01T10:00:00" }), status: 400 },
  { name: "owner 3000 chars", ...get("/jobs", { owner: "o".repeat(3000) }), status: 400 },
  { name: "id 100 chars", ...get("/jobs", { id: "I".repeat(100) }), status: 400 },
  { name: "queue unknown", ...get("/jobs", { queue: "huge" }), status: 400 },
  { name: "logs limit 0", ...get("/jobs/01JD0000000000000000000000/logs", { limit: "0" }), status: 400 },
  { name: "type filter 1000 chars", ...get("/jobs", { type: "t".repeat(1000) }), status: 400 },
  // ── paths and identity ──
  { name: "job id with a NUL", ...get("/jobs/%00"), status: 404 },
  { name: "job id 10 000 chars", ...get(`/jobs/${"A".repeat(10_000)}`), status: 404 },
  { name: "path traversal in the id", ...get("/jobs/..%2F..%2Fadmin%2Fworkers"), status: 404 },
  { name: "malformed %-escape in the id", ...get("/jobs/%E0%A4%A"), status: 400 },
  { name: "no authorizer", ...post("/jobs", '{"type":"demo.sleep"}', json, { authorizer: undefined }), status: 401 },
  { name: "a numeric sub", ...post("/jobs", '{"type":"demo.sleep"}', json, { authorizer: { jwt: { claims: { sub: 7 } } } }), status: 401 },
  { name: "a forged admin claim as a plain field", ...get("/admin/workers"), status: 403 },
  { name: "redrive with an extra field", ...post("/admin/dead-letters/redrive", '{"queue":"default","all":true}'), status: 403 },
];

const errorShape = z.strictObject({
  error: z.strictObject({ code: z.enum(API_ERROR_CODES), message: z.string().min(1).max(1000), details: z.unknown().optional() }),
});

async function snapshot(): Promise<string[]> {
  const items: string[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await env.doc.send(new ScanCommand({ TableName: env.emu.tableName, ...(start ? { ExclusiveStartKey: start } : {}) }));
    items.push(...(out.Items ?? []).map((i) => JSON.stringify(i, Object.keys(i).sort())));
    start = out.LastEvaluatedKey;
  } while (start);
  return items.sort();
}

it(`answers ${CASES.length} hostile inputs with a 4xx in the contract's shape and writes nothing`, async () => {
  expect(CASES.length).toBeGreaterThanOrEqual(40);
  const before = await snapshot();
  expect(before.some((i) => i.includes(seededId))).toBe(true);
  const wrong: string[] = [];
  for (const c of CASES) {
    const res = await handler(c.event);
    const body: unknown = JSON.parse(res.body ?? "null");
    const shape = errorShape.safeParse(body);
    if (res.statusCode !== c.status || !shape.success) wrong.push(`${c.name}: ${res.statusCode} ${(res.body ?? "").slice(0, 200)}`);
    expect(res.statusCode, c.name).toBeLessThan(500);
    expect(res.body ?? "", c.name).not.toMatch(/\bat .+:\d+:\d+|node_modules/);
  }
  expect(wrong).toEqual([]);
  expect(await snapshot()).toEqual(before);
});

// The job types' own schemas refuse most of the above too; this guard must hold for any type,
// including one whose schema takes arbitrary JSON, so it is checked on its own.
it("refuses hostile JSON in the edge parser itself, whatever the job type's schema", () => {
  const refused = [
    '{"a":{"__proto__":{"x":1}}}',
    '{"a":[{"constructor":{}}]}',
    '{"prototype":1}',
    '{"n":1e400}',
    '{"n":-1e400}',
    '{"n":12345678901234567890}',
    '{"n":1e-200}',
    '{"":1}',
    `{"${"k".repeat(300)}":1}`,
    '{"s":"\\udfff"}',
    '{"\\ud800x":1}',
    nest(LIMITS.maxJsonDepth + 1, "[", "]"),
    "[".repeat(50_000),
  ];
  for (const text of refused) {
    expect(() => parseJson(text), text.slice(0, 60)).toThrowError(expect.objectContaining({ code: "invalid_request" }));
  }
  // And what is fine stays fine.
  expect(parseJson('{"a":[1,2.5,-3,0,"😀 emoji","\\u00e9"],"b":{"c":null,"proto":true}}')).toEqual({
    a: [1, 2.5, -3, 0, "😀 emoji", "é"],
    b: { c: null, proto: true },
  });
  expect(() => parseJson(nest(LIMITS.maxJsonDepth, "[", "]"))).not.toThrow();
});
