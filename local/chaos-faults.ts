/**
 * What is left of the chaos run's SDK-level fault code now that faults are injected on the wire,
 * below the SDK's retries (local/wire-faults.ts): the seeded generator every chaos decision
 * draws from, and the recognizer of a heartbeat write (test/runner.test.ts fails exactly the
 * heartbeats of a client with it).
 */

/** A small seeded generator (mulberry32): the same seed gives the same sequence of decisions. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The job a heartbeat write is for (a document-client update that renews the lease without changing the state). */
export function beatOf(command: string, input: Record<string, any>): string | undefined {
  if (command !== "UpdateItemCommand") return undefined;
  const names = Object.values((input.ExpressionAttributeNames ?? {}) as Record<string, string>);
  const expr = String(input.UpdateExpression ?? "");
  return names.includes("heartbeatAt") && !/#status = /.test(expr) && typeof input.Key?.id === "string" ? input.Key.id : undefined;
}
