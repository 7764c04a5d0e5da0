/**
 * A Lambda `Context` for one local invocation, with a real deadline: `getRemainingTimeInMillis`
 * counts down from the function's timeout, as the runner's deadline handling expects.
 */
import { randomUUID } from "node:crypto";
import type { Context } from "aws-lambda";

export function lambdaContext(fn: string, timeoutMs: number, memoryMb: number, now: () => number = Date.now): Context {
  const deadline = now() + timeoutMs;
  const name = `warden-local-${fn}`;
  const unsupported = (what: string) => () => {
    throw new Error(`context.${what}() is the callback-era API; return a promise instead`);
  };
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: name,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${name}`,
    memoryLimitInMB: String(memoryMb),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: `local/${process.pid}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - now()),
    done: unsupported("done"),
    fail: unsupported("fail"),
    succeed: unsupported("succeed"),
  };
}
