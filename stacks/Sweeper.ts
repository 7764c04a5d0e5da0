/**
 * The sweeper: once a minute it repairs whatever fell through the cracks (expired leases, lost
 * doorbells, silent cancellations). Its timeout is a little under the schedule's minute, and one
 * sweep runs at a time; a second concurrent sweep would be safe (every repair is conditional), but
 * wasteful.
 */
import { Duration } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import { NagSuppressions } from "cdk-nag";
import { use, type StackContext } from "sst/constructs";
import { physicalName, TIMINGS } from "../core/config.js";
import { ACCESS, grantAccess } from "./access.js";
import { wardenFunction } from "./lambda.js";
import { Queues } from "./Queues.js";
import { runtimeEnvironment } from "./runtime-env.js";
import { useStageConfig } from "./stage-config.js";
import { Storage } from "./Storage.js";

export const SWEEP_SCHEDULE = "rate(1 minute)";

export function Sweeper({ app, stack }: StackContext) {
  const config = useStageConfig(app);
  const { table } = use(Storage);
  const { queues } = use(Queues);

  const sweeper = wardenFunction(stack, "Sweeper", config, {
    name: "sweeper",
    description: "Warden: repairs overdue jobs once a minute",
    timeoutSeconds: TIMINGS.sweeperTimeoutSeconds,
    memoryMb: config.sweeper.memoryMb,
    environment: runtimeEnvironment(stack, app.stage, table, queues),
    reservedConcurrency: 1,
  });
  grantAccess(sweeper, ACCESS.sweeper, { table, queues });
  NagSuppressions.addResourceSuppressions(sweeper, [
    {
      id: "Serverless-LambdaDLQ",
      reason: "A failed sweep needs no replay: the next one, a minute later, repeats the whole scan, and the SweeperMissing alarm fires if sweeps stop. A queue of stale 'sweep now' events would only be noise.",
    },
  ]);

  const schedule = new events.Rule(stack, "SweepSchedule", {
    ruleName: physicalName(app.stage, "sweep"),
    description: "Warden: run the sweeper every minute",
    schedule: events.Schedule.expression(SWEEP_SCHEDULE),
    // A missed minute is made up by the next one; retrying a sweep would only overlap it.
    targets: [new targets.LambdaFunction(sweeper, { retryAttempts: 0, maxEventAge: Duration.minutes(1) })],
  });
  NagSuppressions.addResourceSuppressions(schedule, [
    {
      id: "Serverless-EventBusDLQ",
      reason: "The schedule's events carry nothing and expire after a minute on purpose: a missed sweep is made up by the next one (SweeperMissing alarms if none runs), so there is nothing for a DLQ to keep.",
    },
  ]);

  stack.addOutputs({ SweeperFunction: sweeper.functionName });
  return { sweeper };
}
