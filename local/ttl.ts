/**
 * The DynamoDB TTL stand-in: dynalite rejects UpdateTimeToLive and never expires items, so this
 * deletes items whose TTL attribute (epoch seconds) has passed. A Scan is right here: it stands
 * in for DynamoDB's own background process, not for anything on a request path. Each delete is
 * conditional on the item still being expired, so a job retried in the meantime is kept.
 */
import { DeleteCommand, ScanCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { EFFECTS_TABLE, TABLE } from "../core/config.js";
import { isConditionFailure } from "../core/expr.js";

/** A table's key and TTL attribute: the jobs table's, or the demo effects table's. */
export interface TtlNames {
  partitionKey: string;
  ttlAttribute: string;
}
export const JOBS_TTL: TtlNames = TABLE;
export const EFFECTS_TTL: TtlNames = EFFECTS_TABLE;

export async function expireItems(db: DynamoDBDocumentClient, table: string, nowMs: number = Date.now(), names: TtlNames = JOBS_TTL): Promise<number> {
  const now = Math.floor(nowMs / 1000);
  let deleted = 0;
  let start: Record<string, unknown> | undefined;
  do {
    const page = await db.send(
      new ScanCommand({
        TableName: table,
        FilterExpression: "#ttl < :now",
        ProjectionExpression: "#id, #ttl",
        ExpressionAttributeNames: { "#ttl": names.ttlAttribute, "#id": names.partitionKey },
        ExpressionAttributeValues: { ":now": now },
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    for (const item of page.Items ?? []) {
      try {
        await db.send(
          new DeleteCommand({
            TableName: table,
            Key: { [names.partitionKey]: item[names.partitionKey] },
            ConditionExpression: "#ttl < :now",
            ExpressionAttributeNames: { "#ttl": names.ttlAttribute },
            ExpressionAttributeValues: { ":now": now },
          }),
        );
        deleted++;
      } catch (e) {
        if (!isConditionFailure(e)) throw e;
      }
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return deleted;
}
