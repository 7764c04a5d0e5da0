/**
 * The one jobs table, built from core's single definition (`tableDefinition`), so the keys and
 * indexes the cloud gets are the ones the local emulator gets. Encrypted with DynamoDB's
 * AWS-owned key, or with the stage's own KMS key when the stage asks for one (`kms`). Beside it,
 * the demo effects table (demo.effects), encrypted the same way.
 */
import { RemovalPolicy } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as kms from "aws-cdk-lib/aws-kms";
import type { Construct } from "constructs";
import type { StackContext } from "sst/constructs";
import { EFFECTS_TABLE, physicalName, TABLE } from "../core/config.js";
import { tableDefinition } from "../core/schema.js";
import { stageKey } from "./kms.js";
import { useStageConfig, type StageConfig } from "./stage-config.js";

type KeyElement = { AttributeName?: string; KeyType?: string };

export function Storage({ app, stack }: StackContext) {
  const config = useStageConfig(app);
  const def = tableDefinition(physicalName(app.stage, TABLE.name));
  const types = new Map((def.AttributeDefinitions ?? []).map((a) => [a.AttributeName!, a.AttributeType!]));
  const attribute = (keys: KeyElement[] | undefined, type: "HASH" | "RANGE"): dynamodb.Attribute | undefined => {
    const name = keys?.find((k) => k.KeyType === type)?.AttributeName;
    if (!name) return undefined;
    const t = types.get(name);
    if (!t) throw new Error(`core/schema.ts: key "${name}" has no attribute definition`);
    return { name, type: t === "N" ? dynamodb.AttributeType.NUMBER : t === "B" ? dynamodb.AttributeType.BINARY : dynamodb.AttributeType.STRING };
  };

  const key = stageKey(stack, "TableKey", config, "table", "the jobs table and the demo effects table");
  const table = new dynamodb.Table(stack, "Jobs", {
    tableName: def.TableName,
    partitionKey: attribute(def.KeySchema, "HASH")!,
    ...(attribute(def.KeySchema, "RANGE") ? { sortKey: attribute(def.KeySchema, "RANGE")! } : {}),
    timeToLiveAttribute: TABLE.ttlAttribute,
    ...kept(config, key),
  });

  for (const gsi of def.GlobalSecondaryIndexes ?? []) {
    const projection = gsi.Projection?.ProjectionType;
    table.addGlobalSecondaryIndex({
      indexName: gsi.IndexName!,
      partitionKey: attribute(gsi.KeySchema, "HASH")!,
      ...(attribute(gsi.KeySchema, "RANGE") ? { sortKey: attribute(gsi.KeySchema, "RANGE")! } : {}),
      projectionType:
        projection === "INCLUDE" ? dynamodb.ProjectionType.INCLUDE : projection === "KEYS_ONLY" ? dynamodb.ProjectionType.KEYS_ONLY : dynamodb.ProjectionType.ALL,
      ...(projection === "INCLUDE" ? { nonKeyAttributes: gsi.Projection?.NonKeyAttributes ?? [] } : {}),
    });
  }

  const effects = effectsTable(stack, app.stage, config, key);
  stack.addOutputs({ TableName: table.tableName, EffectsTableName: effects.tableName });
  return { table, key, effects };
}

/**
 * The demo effects table (core/config.ts EFFECTS_TABLE) that demo.effects writes fenced rows to:
 * an application's own table, as a team's would be, kept like the jobs table (`kept`) so the
 * stage's checks hold for it too. Its rows expire (core/config.ts EFFECTS_TABLE.retentionSeconds).
 */
function effectsTable(scope: Construct, stage: string, config: StageConfig, key: kms.IKey | undefined): dynamodb.Table {
  return new dynamodb.Table(scope, "Effects", {
    tableName: physicalName(stage, EFFECTS_TABLE.name),
    partitionKey: { name: EFFECTS_TABLE.partitionKey, type: dynamodb.AttributeType.STRING },
    timeToLiveAttribute: EFFECTS_TABLE.ttlAttribute,
    ...kept(config, key),
  });
}

/** How a stage keeps each of its tables: on demand, PITR, its key, and retained on production. */
function kept(config: StageConfig, key: kms.IKey | undefined): Pick<dynamodb.TableProps, "billingMode" | "pointInTimeRecoverySpecification" | "deletionProtection" | "encryption" | "encryptionKey" | "removalPolicy"> {
  return {
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    // Every stage gets PITR: it costs cents on a small table and makes a bad deploy recoverable.
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    deletionProtection: config.production,
    ...(key ? { encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED, encryptionKey: key } : {}),
    removalPolicy: config.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
  };
}
