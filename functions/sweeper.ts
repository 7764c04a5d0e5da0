/**
 * The sweeper's scheduled Lambda (every minute). Inside one invocation it sweeps every
 * sweepIntervalMs until shortly before its own timeout, so a dead worker's job is found within
 * its lease plus one interval, not a minute later. Metrics go out as EMF after every sweep.
 */
import type { Context, ScheduledEvent } from "aws-lambda";
import { TIMINGS } from "../core/config.js";
import { emfMetrics } from "../core/metrics-emf.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { Sweeper, totals, type SweeperOptions } from "../core/sweeper.js";

export interface SweeperHandlerOptions extends SweeperOptions {
  /** Defaults to the runtime config's sweepIntervalMs. */
  intervalMs?: number;
  /** Stop this long before the function's deadline. */
  stopMarginMs?: number;
}

export type SweeperResult = ReturnType<typeof totals>;

export function makeHandler(
  services: Pick<Services, "store" | "queue" | "metrics" | "now" | "doc"> & { cfg: Pick<Services["cfg"], "sweepIntervalMs" | "tableName"> },
  opts: SweeperHandlerOptions = {},
): (event: ScheduledEvent | undefined, context: Pick<Context, "getRemainingTimeInMillis">) => Promise<SweeperResult> {
  const sweeper = new Sweeper(services, opts);
  const intervalMs = opts.intervalMs ?? services.cfg.sweepIntervalMs;
  const margin = opts.stopMarginMs ?? TIMINGS.sweeperStopMarginMs;
  return async (_event, context) => {
    const stopAt = Date.now() + context.getRemainingTimeInMillis() - margin;
    try {
      // Even with no time left runUntil sweeps once: a late start must still show a heartbeat.
      const reports = await sweeper.runUntil(stopAt, intervalMs, () => void services.metrics.flush());
      return totals(reports);
    } finally {
      await services.metrics.flush();
    }
  };
}

let built: ReturnType<typeof makeHandler> | undefined;

export const handler = (event: ScheduledEvent, context: Context): Promise<SweeperResult> => {
  if (!built) {
    const cfg = loadRuntime();
    built = makeHandler(buildServices(cfg, { metrics: emfMetrics(cfg.stage) }));
  }
  return built(event, context);
};
