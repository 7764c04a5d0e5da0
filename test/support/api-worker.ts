/**
 * Test-only: a worker loop for the API's tests. It receives doorbells from the queues and runs
 * each job through core/runner.ts, the same claim path every real worker uses.
 */
import { type QueueName, laneOf } from "../../core/config.js";
import { QUEUE_NAMES } from "../../core/config.js";
import { Runner } from "../../core/runner.js";
import type { Services } from "../../core/services.js";

export interface WorkerLoop {
  runner: Runner;
  stop(): Promise<void>;
}

const quiet = { info() {}, warn() {}, error() {} };

export function startWorkerLoop(services: Services, opts: { leaseMs?: number; queues?: QueueName[]; workerId?: string } = {}): WorkerLoop {
  const runner = new Runner(services, { workerId: opts.workerId ?? "test-worker", kind: "local", leaseMs: opts.leaseMs ?? 3_000, log: quiet });
  let stopped = false;
  const running = new Set<Promise<unknown>>();
  const loop = async (queue: QueueName): Promise<void> => {
    while (!stopped) {
      const messages = await services.queue.receive(laneOf({ queue: queue }), { max: 10, waitSeconds: 1, visibilitySeconds: 30 }).catch(() => []);
      for (const m of messages) {
        const p = runner
          .run(m.jobId, queue)
          .then(() => services.queue.delete(m.lane, m.receiptHandle))
          .catch(() => undefined)
          .finally(() => running.delete(p));
        running.add(p);
      }
    }
  };
  const loops = (opts.queues ?? QUEUE_NAMES).map(loop);
  return {
    runner,
    async stop() {
      stopped = true;
      runner.shutdown();
      await Promise.all(loops);
      await Promise.all(running);
    },
  };
}
