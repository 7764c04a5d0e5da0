/**
 * The HTTP API of docs/contract.md: one function serves every route (it routes inside, the
 * same code `npm start` serves), API Gateway authenticates. IAM (SigV4) by default; a JWT
 * authorizer when the stage names an issuer and audience. `GET /health` needs no caller.
 */
import { CfnRoute } from "aws-cdk-lib/aws-apigatewayv2";
import { NagSuppressions } from "cdk-nag";
import { Api as SstApi, use, type StackContext } from "sst/constructs";
import { physicalName, TIMINGS } from "../core/config.js";
import { ACCESS, grantAccess } from "./access.js";
import { wardenFunction } from "./lambda.js";
import { Queues } from "./Queues.js";
import { jobLogEnvironment, logGroup, runtimeEnvironment } from "./runtime-env.js";
import { PUBLIC_ROUTE_KEYS, ROUTE_KEYS } from "../core/api/routes.js";
import { useStageConfig } from "./stage-config.js";
import { Storage } from "./Storage.js";
import { Workers } from "./Workers.js";

/** The contract's routes (core/api/routes.ts): all but the public ones go through the authorizer. */
export const API_ROUTES = ROUTE_KEYS.filter((k) => !PUBLIC_ROUTE_KEYS.includes(k));
export const PUBLIC_ROUTES = PUBLIC_ROUTE_KEYS;

/**
 * One JSON object per request. Every value is quoted, so the format is itself valid JSON (SST's
 * default leaves numbers bare, which is JSON only after substitution); `principal` is the SigV4
 * caller (empty under JWT auth, where `sub` is the token's subject).
 */
export const ACCESS_LOG_FORMAT = JSON.stringify({
  requestTime: "$context.requestTime",
  requestId: "$context.requestId",
  httpMethod: "$context.httpMethod",
  path: "$context.path",
  routeKey: "$context.routeKey",
  status: "$context.status",
  responseLatency: "$context.responseLatency",
  integrationRequestId: "$context.integration.requestId",
  integrationStatus: "$context.integration.status",
  integrationLatency: "$context.integration.latency",
  integrationServiceStatus: "$context.integration.integrationStatus",
  ip: "$context.identity.sourceIp",
  userAgent: "$context.identity.userAgent",
  principal: "$context.identity.userArn",
  sub: "$context.authorizer.claims.sub",
});

export function Api({ app, stack }: StackContext) {
  const config = useStageConfig(app);
  const { table } = use(Storage);
  const { queues } = use(Queues);
  // GET /jobs/{id}/logs reads the job's lines where the workers write them.
  const { jobLogGroups } = use(Workers);

  const handler = wardenFunction(stack, "ApiHandler", config, {
    name: "api",
    description: "Warden: the HTTP API",
    timeoutSeconds: TIMINGS.apiTimeoutSeconds,
    memoryMb: config.api.memoryMb,
    environment: {
      ...runtimeEnvironment(stack, app.stage, table, queues),
      WARDEN_ADMIN_PRINCIPALS: config.adminPrincipals.join(","),
      ...jobLogEnvironment(jobLogGroups),
    },
  });
  grantAccess(handler, ACCESS.api, { table, queues, jobLogGroups });
  NagSuppressions.addResourceSuppressions(handler, [
    {
      id: "Serverless-LambdaDLQ",
      reason: "API Gateway invokes the function synchronously and returns its error to the caller; a dead-letter queue applies only to asynchronous invocations.",
    },
  ]);
  NagSuppressions.addResourceSuppressions(
    handler.role!,
    [
      {
        id: "AwsSolutions-IAM5",
        reason: "logs:GetQueryResults and logs:StopQuery take no resource ARN (they name a query id, which only StartQuery's caller learns); StartQuery, which decides what is read, is granted on the workers' log groups only (stacks/access.ts).",
        appliesTo: ["Resource::*"],
      },
    ],
    true,
  );

  const accessLogs = logGroup(stack, "ApiAccessLogs", `/warden/${app.stage}/api-access`, config);
  const jwt = config.jwt;
  const api = new SstApi(stack, "Api", {
    cors: false,
    accessLog: { destinationArn: accessLogs.logGroupArn, format: ACCESS_LOG_FORMAT },
    ...(jwt ? { authorizers: { jwt: { type: "jwt" as const, jwt: { issuer: jwt.issuer, audience: jwt.audience } } } } : {}),
    defaults: {
      authorizer: jwt ? "jwt" : "iam",
      throttle: { rate: config.api.throttleRate, burst: config.api.throttleBurst },
    },
    routes: {
      ...Object.fromEntries(API_ROUTES.map((r) => [r, { function: handler }])),
      ...Object.fromEntries(PUBLIC_ROUTES.map((r) => [r, { function: handler, authorizer: "none" as const }])),
    },
    cdk: { httpApi: { apiName: physicalName(app.stage, "api") } },
  });

  for (const route of api.node.findAll()) {
    if (route instanceof CfnRoute && (PUBLIC_ROUTES as readonly string[]).includes(route.routeKey)) {
      NagSuppressions.addResourceSuppressions(route, [
        {
          id: "AwsSolutions-APIG4",
          reason: `${route.routeKey} is public by design (docs/api.md): uptime checks call it without credentials, and it reports only whether the stage's table and queues answer, never a job or a caller.`,
        },
      ]);
    }
  }

  stack.addOutputs({ ApiUrl: api.url });
  return { api, handler };
}
