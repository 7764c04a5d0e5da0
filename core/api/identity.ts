/**
 * Who is calling. The entry point reads the caller from the authorizer (a JWT's subject and
 * groups, or an IAM principal) and hands core this plain value; core never sees the event.
 */
import { ApiError } from "./errors.js";

export interface Caller {
  /** The owner recorded on the caller's jobs: a JWT `sub` or an IAM principal ARN. */
  id: string;
  admin: boolean;
}

/** The group (Cognito group or a JWT `groups` claim) whose members have the admin role. */
export const ADMIN_GROUP = "warden-admin";

export function requireAdmin(caller: Caller): void {
  if (!caller.admin) {
    throw new ApiError("forbidden", `this route needs the admin role (the ${ADMIN_GROUP} group, or a principal listed in WARDEN_ADMIN_PRINCIPALS)`);
  }
}
