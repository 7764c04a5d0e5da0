/**
 * The contract's routes, as API Gateway route keys: one list that the HTTP API stack declares,
 * the local gateway matches, and the API handler must implement (its table is keyed by these,
 * so a route missing from the handler is a type error).
 */
export const ROUTE_KEYS = [
  "GET /health",
  "POST /jobs",
  "GET /jobs",
  "GET /jobs/{id}",
  "POST /jobs/{id}/cancel",
  "POST /jobs/{id}/retry",
  "GET /jobs/{id}/attempts",
  "GET /jobs/{id}/logs",
  "GET /jobs/{id}/why",
  "GET /jobs/{id}/children",
  "GET /admin/stuck",
  "POST /admin/sweep",
  "GET /admin/dead-letters",
  "POST /admin/dead-letters/redrive",
  "GET /admin/workers",
  "GET /admin/queues",
  "POST /admin/jobs/retry",
  "POST /admin/jobs/cancel",
  "GET /admin/controls",
  "POST /admin/pauses/{target}",
  "DELETE /admin/pauses/{target}",
  "PUT /admin/limits/{key}",
  "DELETE /admin/limits/{key}",
  "POST /schedules",
  "GET /schedules",
  "GET /schedules/{id}",
  "PUT /schedules/{id}",
  "DELETE /schedules/{id}",
  "POST /schedules/{id}/pause",
  "POST /schedules/{id}/resume",
] as const;

export type RouteKey = (typeof ROUTE_KEYS)[number];

/** Routes that need no caller identity: API Gateway skips the authorizer for them. */
export const PUBLIC_ROUTE_KEYS: readonly RouteKey[] = ["GET /health"];

export interface RoutePattern {
  key: RouteKey;
  method: string;
  /** Matches the request path; its groups are the `{param}` values in order. */
  re: RegExp;
  params: string[];
}

/** Turns `POST /jobs/{id}/cancel` into a method and a path matcher, as API Gateway matches keys. */
export function routePattern(key: RouteKey): RoutePattern {
  const [method, path] = key.split(" ") as [string, string];
  const params: string[] = [];
  const re = new RegExp(`^${path.replace(/\{(\w+)\}/g, (_, n: string) => (params.push(n), "([^/]+)"))}$`);
  return { key, method, re, params };
}
