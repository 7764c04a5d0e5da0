/**
 * The HTTP API of /work/shared/API.md: one function serves every route (it routes inside, the
 * same code `npm start` serves), API Gateway authenticates. IAM (SigV4) by default; a JWT
 * authorizer when the stage names an issuer and audience. `GET /health` needs no caller.
 */
import { Api as SstApi, use, type StackContext } from "sst/constructs";
import { physicalName, TIMINGS } from "../core/config.js";
import { ACCESS, grantAccess } from "./access.js";
import { wardenFunction } from "./lambda.js";
import { Queues } from "./Queues.js";
import { logGroup, runtimeEnvironment } from "./runtime-env.js";
import { PUBLIC_ROUTE_KEYS, ROUTE_KEYS } from "../core/api/routes.js";
import { useStageConfig } from "./stage-config.js";
import { Storage } from "./Storage.js";

/** The contract's routes (core/api/routes.ts): all but the public ones go through the authorizer. */
export const API_ROUTES = ROUTE_KEYS.filter((k) => !PUBLIC_ROUTE_KEYS.includes(k));
export const PUBLIC_ROUTES = PUBLIC_ROUTE_KEYS;

export function Api({ app, stack }: StackContext) {
  const config = useStageConfig(app);
  const { table } = use(Storage);
  const { queues } = use(Queues);

  const handler = wardenFunction(stack, "ApiHandler", config, {
    name: "api",
    description: "Warden: the HTTP API",
    timeoutSeconds: TIMINGS.apiTimeoutSeconds,
    memoryMb: config.api.memoryMb,
    environment: {
      ...runtimeEnvironment(stack, app.stage, table, queues),
      WARDEN_ADMIN_PRINCIPALS: config.adminPrincipals.join(","),
    },
  });
  grantAccess(handler, ACCESS.api, table, queues);

  const accessLogs = logGroup(stack, "ApiAccessLogs", `/warden/${app.stage}/api-access`, config);
  const jwt = config.jwt;
  const api = new SstApi(stack, "Api", {
    cors: false,
    accessLog: { destinationArn: accessLogs.logGroupArn },
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

  stack.addOutputs({ ApiUrl: api.url });
  return { api, handler };
}
