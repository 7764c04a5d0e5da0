/**
 * The chaos run's Lambda side, as its own process so the run can SIGKILL it like a crashed
 * container: the local event-source stand-in (local/poller.ts) feeding the real SQS worker
 * handler (functions/worker.ts), with the chaos job types. Its DynamoDB and SQS endpoints are the
 * chaos run's wire-fault proxies (WARDEN_DYNAMODB_ENDPOINT, WARDEN_SQS_ENDPOINT), so its faults
 * come from below the SDK's retries.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { LAMBDA_WORKER } from "../core/config.js";
import { errorMessage } from "../core/errors.js";
import { laneUrls, loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { exitWhenOrphaned, guardStdio } from "../functions/parent-watch.js";
import { makeHandler } from "../functions/worker.js";
import { LambdaPoller, type SqsHandler } from "./poller.js";
import { chaosLambdaWorkerId, setup } from "./chaos-jobs.js";

const services = buildServices(loadRuntime());
const workerId = chaosLambdaWorkerId(process.pid);
setup(services, workerId);
const quiet = { info() {}, warn() {}, error: (m: string, e?: Record<string, unknown>) => console.error(JSON.stringify({ m, ...e })) };
const handler = makeHandler(services, { workerId, memory: false, log: quiet });
const poller = new LambdaPoller({
  sqs: services.sqs,
  queueUrls: laneUrls(services.cfg.queues.default),
  handler: handler as SqsHandler,
  concurrency: Number(process.env.WARDEN_LAMBDA_CONCURRENCY ?? 8),
  timeoutMs: LAMBDA_WORKER.timeoutSeconds * 1000,
  waitSeconds: 1,
  batchingWindowMs: 50,
  log: (l) => console.error(l),
});
process.on("SIGTERM", () => void poller.stop(5_000).then(() => process.exit(0)));
process.on("unhandledRejection", (e) => console.error(`unhandled rejection: ${errorMessage(e)}`));
guardStdio();
exitWhenOrphaned({ name: "warden-lambda", stop: () => poller.stop(1_500) });
await poller.start();
console.log(`warden-lambda: ready ${process.pid}`);
