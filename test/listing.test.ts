/**
 * The job listing against dynalite: pages followed to the end return every matching job exactly
 * once, newest first, however sparse the filter and however the matches are spread over the
 * index partitions. The jobs are real ones, written by the store (create, claim, succeed, fail,
 * cancel), with a manual clock deciding their createdAt; the expected answer is a Scan of the
 * whole table, filtered and sorted here.
 */
import { ScanCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, test } from "vitest";
import { LIMITS } from "../core/config.js";
import { ValidationError } from "../core/errors.js";
import type { Status } from "../core/job.js";
import { decodeCursor, encodeCursor, listJobKeys, MAX_PAGES_PER_PARTITION, type KeyPage, type ListFilter } from "../core/listing.js";
import type { JobStore } from "../core/store.js";
import { manualClock, useEmulators, type TestEnv } from "./support/emulators.js";

/** The emulators of the describe block running now: each lister gets a table of its own. */
let env: TestEnv;

type Lister = (filter: ListFilter, cursor: string | null | undefined, limit: number) => Promise<KeyPage>;

/** The extracted function the store calls. */
const viaListing: Lister = (filter, cursor, limit) => listJobKeys(env.doc, env.emu.tableName, filter, cursor, limit);
/** JobStore.list, as the API calls it. */
const viaStore: Lister = async (filter, cursor, limit) => {
  const page = await env.store().list(filter, cursor, limit);
  return { ids: page.jobs.map((j) => j.id), nextCursor: page.nextCursor };
};
const LISTERS: [string, Lister][] = [
  ["listJobKeys", viaListing],
  ["JobStore.list", viaStore],
];

// Each test's jobs get their own stretch of time, so tests never interleave by accident; the
// Scan-based expectation would hold even if they did.
let era = Date.parse("2024-03-01T00:00:00.000Z");
function storeWithClock(): { store: JobStore; tick(): void } {
  era += 10 * 24 * 3600_000;
  const clock = manualClock(era);
  return { store: env.store({ now: clock.now }), tick: () => clock.advance(1_000) };
}

type End = Status;
/** One job through the store's own transitions to `end`, created one clock second after the last. */
async function job(s: { store: JobStore; tick(): void }, owner: string, type: string, end: End): Promise<string> {
  s.tick();
  const { job } = await s.store.create({ owner, type, queue: "default", input: null, maxAttempts: 1, timeoutMs: 3600_000 });
  if (end === "queued") return job.id;
  if (end === "cancelled") {
    await s.store.requestCancel(job.id);
    return job.id;
  }
  const c = await s.store.claim(job.id, "lister", 600_000);
  if (!c.ok) throw new Error(`could not claim ${job.id}: ${c.reason}`);
  if (end === "succeeded") await s.store.succeed(c.lease, "ok");
  if (end === "failed") await s.store.fail(c.lease, { code: "handler_error", message: "boom" }, { retryable: false });
  return job.id;
}

async function many(s: { store: JobStore; tick(): void }, n: number, owner: string, type: string, end: End): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await job(s, owner, type, end));
  return ids;
}

/** What the listing must answer, from a Scan of every item in the table: newest first. */
async function expected(filter: ListFilter): Promise<string[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await env.doc.send(new ScanCommand({ TableName: env.emu.tableName, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }));
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  return items
    .filter((it) => typeof it.createdKey === "string")
    .filter((it) => (!filter.owner || it.owner === filter.owner) && (!filter.status || it.status === filter.status) && (!filter.type || it.type === filter.type))
    .sort((a, b) => ((a.createdKey as string) < (b.createdKey as string) ? 1 : -1))
    .map((it) => it.id as string);
}

const partitionsOf = (f: ListFilter): number => (f.owner || f.status ? 1 : 5);

/** Follows nextCursor to the end; checks each page's size and each request's bounded reads. */
async function everyPage(list: Lister, filter: ListFilter, limit: number): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let pages = 1; pages <= 500; pages++) {
    const queriesBefore = env.calls.get("QueryCommand") ?? 0;
    const page: KeyPage = await list(filter, cursor, limit);
    const queries = (env.calls.get("QueryCommand") ?? 0) - queriesBefore;
    expect(queries, "queries one request made").toBeLessThanOrEqual(MAX_PAGES_PER_PARTITION * partitionsOf(filter));
    expect(page.ids.length).toBeLessThanOrEqual(limit);
    ids.push(...page.ids);
    if (page.nextCursor === null) return { ids, pages };
    expect(page.nextCursor, "a cursor must move").not.toBe(cursor);
    cursor = page.nextCursor;
  }
  throw new Error(`more than 500 pages for ${JSON.stringify(filter)}`);
}

async function expectComplete(list: Lister, filter: ListFilter, limit: number): Promise<string[]> {
  const want = await expected(filter);
  const { ids } = await everyPage(list, filter, limit);
  expect(new Set(ids).size, `duplicates in ${JSON.stringify(filter)} limit ${limit}`).toBe(ids.length);
  expect(ids, `${JSON.stringify(filter)} limit ${limit}`).toEqual(want);
  return ids;
}

describe.each(LISTERS)("%s", (name, list) => {
  const own = useEmulators(`listing-${name.replace(/\W/g, "")}`);
  beforeAll(() => {
    env = own;
  });
  test("owner path: one failed job behind 25 succeeded ones is found with status=failed&limit=1", async () => {
    const s = storeWithClock();
    const failed = await job(s, "ann", "demo.sleep", "failed");
    await many(s, 25, "ann", "demo.sleep", "succeeded");
    const first = await list({ owner: "ann", status: "failed" }, null, 1);
    // The first page may come back empty (its reads held no match), but never as the last page.
    if (first.ids.length === 0) expect(first.nextCursor).not.toBeNull();
    expect(await expectComplete(list, { owner: "ann", status: "failed" }, 1)).toEqual([failed]);
    await expectComplete(list, { owner: "ann", status: "succeeded" }, 1);
    await expectComplete(list, { owner: "ann" }, 4);
  });

  test("owner path with a type filter: the one match behind 50 non-matches", async () => {
    const s = storeWithClock();
    const rare = await job(s, "bea", "rare.kind", "failed");
    await many(s, 25, "bea", "common.kind", "failed");
    const rareSucceeded = await many(s, 25, "bea", "rare.kind", "succeeded");
    expect(await expectComplete(list, { owner: "bea", status: "failed", type: "rare.kind" }, 1)).toEqual([rare]);
    expect(await expectComplete(list, { owner: "bea", type: "rare.kind" }, 2)).toEqual([...rareSucceeded].reverse().concat(rare));
    await expectComplete(list, { owner: "bea", type: "rare.kind" }, 1);
    await expectComplete(list, { owner: "bea", type: "common.kind" }, 3);
  });

  test("admin path: status=failed with a type filter finds the one match behind 25 failed jobs of another type", async () => {
    const s = storeWithClock();
    const match = await job(s, "cat", "admin.rare", "failed");
    await many(s, 25, "dan", "admin.filler", "failed");
    expect(await expectComplete(list, { status: "failed", type: "admin.rare" }, 1)).toEqual([match]);
    // And behind succeeded ones, the brief's case, read without an owner.
    await many(s, 25, "cat", "admin.rare", "succeeded");
    const ids = await expectComplete(list, { status: "failed" }, 1);
    expect(ids).toContain(match);
    await expectComplete(list, { status: "failed" }, 7);
  });

  test("admin path without a status: a match in a partition that stopped early is not skipped", async () => {
    const s = storeWithClock();
    // Oldest first: two failed matches, then a succeeded match, then 30 succeeded non-matches on
    // top of it. The failed partition fills a page at once; the succeeded one reads its bounded
    // pages without reaching its match. A cursor taken from the failed partition's key would
    // jump past the succeeded match for ever.
    const f2 = await job(s, "eve", "merge.x", "failed");
    const f1 = await job(s, "eve", "merge.x", "failed");
    const sx = await job(s, "eve", "merge.x", "succeeded");
    await many(s, 30, "eve", "merge.y", "succeeded");
    const q = await job(s, "eve", "merge.x", "queued");
    const c = await job(s, "fay", "merge.x", "cancelled");
    const r = await job(s, "fay", "merge.x", "running");
    for (const limit of [1, 2, 5]) expect(await expectComplete(list, { type: "merge.x" }, limit)).toEqual([r, c, q, sx, f1, f2]);
    // The owner path over the same jobs agrees.
    expect(await expectComplete(list, { owner: "eve", type: "merge.x" }, 1)).toEqual([q, sx, f1, f2]);
  });

  test("a seeded mix over owners, statuses and types: every filter and limit lists every match once, newest first", async () => {
    const s = storeWithClock();
    let seed = 20240301;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const ends: End[] = ["queued", "running", "succeeded", "succeeded", "succeeded", "failed", "cancelled"];
    const owners = ["mix-a", "mix-b", "mix-c"];
    // mix.three is rare: its matches sit far apart, beyond what one request reads.
    const types = ["mix.one", "mix.two", "mix.one", "mix.two", "mix.one", "mix.two", "mix.three"];
    for (let i = 0; i < 50; i++) {
      // Runs of one kind make the sparse stretches a bounded read can end in.
      const run = 1 + Math.floor(rnd() * 8);
      const owner = owners[Math.floor(rnd() * owners.length)]!;
      const type = types[Math.floor(rnd() * types.length)]!;
      const end = ends[Math.floor(rnd() * ends.length)]!;
      await many(s, run, owner, type, end);
    }
    const filters: ListFilter[] = [
      { type: "mix.one" },
      { type: "mix.three" },
      { type: "mix.three", status: "failed" },
      { type: "mix.two", status: "queued" },
      { owner: "mix-a" },
      { owner: "mix-b", status: "succeeded" },
      { owner: "mix-c", type: "mix.two" },
      { owner: "mix-a", status: "cancelled", type: "mix.three" },
    ];
    for (const f of filters) for (const limit of [1, 3, 10]) await expectComplete(list, f, limit);
  });

  test("an owner with no jobs, and a filter nothing matches: one empty last page", async () => {
    expect(await list({ owner: "nobody-at-all" }, null, 5)).toEqual({ ids: [], nextCursor: null });
    const { ids } = await everyPage(list, { type: "no.such.type" }, 3);
    expect(ids).toEqual([]);
  });

  test("refuses a malformed cursor and a limit out of range", async () => {
    await expect(list({ owner: "ann" }, "not-a-cursor!", 3)).rejects.toBeInstanceOf(ValidationError);
    await expect(list({ owner: "ann" }, encodeCursor("2024-01-01T00:00:00.000Z#../../etc"), 3)).rejects.toBeInstanceOf(ValidationError);
    await expect(list({ owner: "ann" }, null, 0)).rejects.toBeInstanceOf(ValidationError);
    await expect(list({ owner: "ann" }, null, LIMITS.listMax + 1)).rejects.toBeInstanceOf(ValidationError);
    await expect(list({ owner: "ann" }, null, 1.5)).rejects.toBeInstanceOf(ValidationError);
  });
});

describe("cursor format", () => {
  test("unchanged: base64url of {k: createdKey}, so cursors handed out before stay valid", () => {
    const k = "2024-03-01T12:00:00.000Z#01HQ0000000000000000000000";
    expect(encodeCursor(k)).toBe(Buffer.from(JSON.stringify({ k }), "utf8").toString("base64url"));
    expect(decodeCursor(Buffer.from(JSON.stringify({ k }), "utf8").toString("base64url"))).toBe(k);
    const idempotent = "2024-03-01T12:00:00.000Z#K0123456789ABCDEF012345678";
    expect(decodeCursor(encodeCursor(idempotent))).toBe(idempotent);
    expect(() => decodeCursor(encodeCursor("2024-03-01T12:00:00.000Z#lowercase000000000000000000"))).toThrow(ValidationError);
  });
});
