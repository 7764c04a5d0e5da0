/** The table's CreateTable input, derived from the one definition in config.ts. */
import type { CreateTableCommandInput } from "@aws-sdk/client-dynamodb";
import { TABLE } from "./config.js";

export function tableDefinition(tableName: string): CreateTableCommandInput {
  const { dueIndex, ownerIndex, statusIndex, workerIndex } = TABLE;
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST",
    KeySchema: [{ AttributeName: TABLE.partitionKey, KeyType: "HASH" }],
    AttributeDefinitions: [
      { AttributeName: TABLE.partitionKey, AttributeType: "S" },
      { AttributeName: dueIndex.partitionKey, AttributeType: "S" },
      { AttributeName: dueIndex.sortKey, AttributeType: "N" },
      { AttributeName: ownerIndex.partitionKey, AttributeType: "S" },
      { AttributeName: ownerIndex.sortKey, AttributeType: "S" },
      { AttributeName: statusIndex.partitionKey, AttributeType: "S" },
      { AttributeName: workerIndex.partitionKey, AttributeType: "S" },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: dueIndex.name,
        KeySchema: [
          { AttributeName: dueIndex.partitionKey, KeyType: "HASH" },
          { AttributeName: dueIndex.sortKey, KeyType: "RANGE" },
        ],
        // Keys only: every heartbeat moves dueAt, so each one rewrites its entry here (a delete and
        // a put); a few bytes each, instead of the whole job. The sweeper reads the records of
        // what it finds (invariant 11).
        Projection: { ProjectionType: "KEYS_ONLY" },
      },
      {
        IndexName: ownerIndex.name,
        KeySchema: [
          { AttributeName: ownerIndex.partitionKey, KeyType: "HASH" },
          { AttributeName: ownerIndex.sortKey, KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "INCLUDE", NonKeyAttributes: [...ownerIndex.include] },
      },
      {
        IndexName: statusIndex.name,
        KeySchema: [
          { AttributeName: statusIndex.partitionKey, KeyType: "HASH" },
          { AttributeName: statusIndex.sortKey, KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "INCLUDE", NonKeyAttributes: [...statusIndex.include] },
      },
      {
        IndexName: workerIndex.name,
        KeySchema: [{ AttributeName: workerIndex.partitionKey, KeyType: "HASH" }],
        Projection: { ProjectionType: "KEYS_ONLY" },
      },
    ],
  };
}
