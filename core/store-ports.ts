/**
 * The store as each of its users sees it: the runner, the sweeper and the API each depend on the
 * narrow slice they use, not on the DynamoDB class, so a second backend (or a test double that
 * wraps the real store) implements only what its user calls.
 */
import type { JobStore } from "./store.js";

/** What a worker does with a job: claim it, keep its lease, settle it. */
export type WorkerStore = Pick<JobStore, "claim" | "heartbeat" | "succeed" | "fail" | "release" | "acknowledgeCancel" | "get" | "wait" | "spawnRound" | "childOutcomes" | "childCounts">;

/** What the sweeper reads and repairs. */
export type SweeperStore = Pick<JobStore, "listOverdue" | "countOverdue" | "reclaim" | "expire" | "expireQueued" | "cancelSilent" | "pushStartDeadline" | "checkFlow" | "cancelOrphan" | "parentsOf" | "lookAtHold" | "sweepLimits" | "schedules">;

/** What callers (the API) ask for. */
export type CallerStore = Pick<JobStore, "create" | "get" | "getRecord" | "mustGet" | "list" | "requestCancel" | "retry">;
