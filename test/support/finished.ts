/**
 * Many finished jobs, fast, exactly as the store leaves them: one job is taken through create,
 * claim and succeed by the real store, its stored item is read back, and copies of that item
 * (only the id and the listing key changed) are batch-written. If the store stopped cleaning a
 * finished job out of the due index, every copy would carry the same due-index keys, and the
 * tests that say finished jobs cost the sweeper nothing would fail.
 */
import { BatchWriteCommand, GetCommand } from "@aws-sdk/lib-dynamodb";
import { ulid } from "ulid";
import type { TestEnv } from "./emulators.js";

export async function writeFinishedLike(e: TestEnv, count: number, owners = 1): Promise<void> {
  const store = e.store();
  const { job } = await store.create({ owner: "bulk", type: "demo.sleep", queue: "default", input: {}, maxAttempts: 3, timeoutMs: 3_600_000 });
  // A 1 ms lease: were the due-index keys left behind, the copies would be overdue at once.
  const c = await store.claim(job.id, "bulk-worker", 1);
  if (!c.ok) throw new Error(`could not claim the template job: ${c.reason}`);
  await store.succeed(c.lease, { ok: true });
  const template = (await e.doc.send(new GetCommand({ TableName: e.emu.tableName, Key: { id: job.id }, ConsistentRead: true }))).Item!;
  const t0 = Date.now() - 86_400_000;
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const from = next;
      next = Math.min(count, next + 25);
      let items: Record<string, unknown>[] = [];
      for (let i = from; i < next; i++) {
        const id = ulid(t0 + i);
        items.push({ ...template, id, owner: `o${i % owners}`, createdKey: `${new Date(t0 + i).toISOString()}#${id}` });
      }
      for (let round = 0; items.length && round < 10; round++) {
        const out = await e.doc.send(new BatchWriteCommand({ RequestItems: { [e.emu.tableName]: items.map((Item) => ({ PutRequest: { Item } })) } }));
        items = (out.UnprocessedItems?.[e.emu.tableName] ?? []).map((r) => r.PutRequest!.Item as Record<string, unknown>);
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, lane));
}
