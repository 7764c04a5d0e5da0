/** The table's CreateTable input, derived from the one definition in config.ts. */
import type { CreateTableCommandInput } from "@aws-sdk/client-dynamodb";
import { TABLE } from "./config.js";

export function tableDefinition(tableName: string): CreateTableCommandInput {
  const { dueIndex, ownerIndex, statusIndex, workerIndex, waitIndex, holdIndex } = TABLE;
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
      { AttributeName: waitIndex.partitionKey, AttributeType: "S" },
      { AttributeName: waitIndex.sortKey, AttributeType: "N" },
      { AttributeName: holdIndex.partitionKey, AttributeType: "S" },
      { AttributeName: holdIndex.sortKey, AttributeType: "N" },
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
      {
        IndexName: waitIndex.name,
        KeySchema: [
          { AttributeName: waitIndex.partitionKey, KeyType: "HASH" },
          { AttributeName: waitIndex.sortKey, KeyType: "RANGE" },
        ],
        // Keys only: the sweeper needs the oldest readyAt per partition, then reads those few
        // records itself (consistently, since the index lags); an entry is written when a job
        // enters queued and deleted when it leaves, never by a resend or a heartbeat.
        Projection: { ProjectionType: "KEYS_ONLY" },
      },
      {
        IndexName: holdIndex.name,
        KeySchema: [
          { AttributeName: holdIndex.partitionKey, KeyType: "HASH" },
          { AttributeName: holdIndex.sortKey, KeyType: "RANGE" },
        ],
        // Keys only: a waker reads the record of each job it wakes (consistently, since the index lags).
        Projection: { ProjectionType: "KEYS_ONLY" },
      },
    ],
  };
}
