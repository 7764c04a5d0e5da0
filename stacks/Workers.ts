/**
 * The two kinds of worker: a Lambda function with an event source mapping on every lane of each
 * queue that runs on Lambda (`default`), the stage's concurrency cap split between the mappings,
 * and a Fargate service on each queue that runs on Fargate (`large`), scaled on the visible
 * messages of its lanes together. Both claim, heartbeat and finish through the same core code.
 * The Fargate task runs as the image's unprivileged `node` user on a read-only root filesystem
 * with a writable /tmp; its cluster has Container Insights and its VPC a flow log. The deaths
 * function (stacks/deaths.ts) lives here too, beside the cluster and the worker's log group it
 * listens to.
 */
import * as path from "node:path";
import { Duration } from "aws-cdk-lib";
import * as appscaling from "aws-cdk-lib/aws-applicationautoscaling";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cwActions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import { Platform } from "aws-cdk-lib/aws-ecr-assets";
import * as ecs from "aws-cdk-lib/aws-ecs";
import { CfnEventSourceMapping } from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import type * as logs from "aws-cdk-lib/aws-logs";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { NagSuppressions } from "cdk-nag";
import { use, type StackContext } from "sst/constructs";
import { useProject } from "sst/project.js";
import type { Construct } from "constructs";
import { FARGATE_WORKER, LAMBDA_WORKER, physicalName, PRIORITIES, QUEUE_NAMES, QUEUES, type Priority, type QueueName } from "../core/config.js";
import { ACCESS, grantAccess } from "./access.js";
import { deathWiring } from "./deaths.js";
import { logGroupOf, wardenFunction } from "./lambda.js";
import { acrossLanes, laneQueue, pascal, Queues, type QueuePair } from "./Queues.js";
import { effectsEnvironment, logGroup, runtimeEnvironment } from "./runtime-env.js";
import type { ImageSource, StageConfig } from "./stage-config.js";
import { LEAST_WORKER_CAP, MAPPING_CONCURRENCY, useStageConfig } from "./stage-config.js";
import { Storage } from "./Storage.js";

/** AWS's guidance for SQS event sources: visibility timeout at least six times the function's timeout. */
export const VISIBILITY_FACTOR = 6;

/**
 * The Fargate container's user: uid and gid 1000, the `node` user of the node:22-slim image the
 * Dockerfile builds on (its `USER node`). Stated in the task definition too, so an image given by
 * WARDEN_FARGATE_IMAGE that ends as root still does not run as root.
 */
export const WORKER_USER = "1000:1000";
/** Where the read-only container may still write: a volume of the task's own, new at each task start. */
export const WORKER_SCRATCH = "/tmp";


/**
 * How a Lambda queue's share of the worker's concurrency cap is split between its lanes: normal,
 * where nearly every job rings, gets half; high and low a quarter each, at least Lambda's minimum.
 * The shares sum to the cap, so the function never runs more than the stage allows (a burst on
 * every lane at once included), and a normal backlog cannot take the high lane's slots. The price:
 * a backlog on one lane cannot borrow the other lanes' idle slots.
 */
export const LANE_WEIGHTS: Record<Priority, number> = { high: 1, normal: 2, low: 1 };

export function laneConcurrency(cap: number, what = "The Lambda worker"): Record<Priority, number> {
  const least = LEAST_WORKER_CAP;
  if (!Number.isInteger(cap) || cap < least) {
    throw new Error(`${what}: a concurrency cap of ${cap} cannot be split over ${PRIORITIES.length} lanes, each an event source mapping of at least ${MAPPING_CONCURRENCY.min}: give worker.maxConcurrency ${least} or more`);
  }
  const total = PRIORITIES.reduce((n, p) => n + LANE_WEIGHTS[p], 0);
  const share = (p: Priority) => Math.max(MAPPING_CONCURRENCY.min, Math.floor((cap * LANE_WEIGHTS[p]) / total));
  const high = share("high");
  const low = share("low");
  // The normal lane takes the rest, so the three sum to the cap exactly.
  return { high, normal: cap - high - low, low };
}

/** The `i`th of `n` Lambda queues' part of the function's cap (the first takes the remainder). */
const queueShare = (cap: number, n: number, i: number): number => Math.floor(cap / n) + (i === 0 ? cap % n : 0);

const queuesRunningOn = (runsOn: "lambda" | "fargate"): QueueName[] => QUEUE_NAMES.filter((q) => QUEUES[q].runsOn === runsOn);

export function Workers({ app, stack }: StackContext) {
  const config = useStageConfig(app);
  const { table, effects } = use(Storage);
  const { queues } = use(Queues);
  const environment = runtimeEnvironment(stack, app.stage, table, queues);
  // What runs jobs also gets the demo effects table; the deaths function runs none.
  const workerEnvironment = { ...environment, ...effectsEnvironment(effects) };

  const worker = wardenFunction(stack, "Worker", config, {
    name: "worker",
    description: "Warden: runs jobs from the Lambda queues",
    timeoutSeconds: LAMBDA_WORKER.timeoutSeconds,
    memoryMb: config.worker.memoryMb,
    environment: workerEnvironment,
  });
  // One mapping per lane, each polling its own queue (priority on Lambda is best effort: a high
  // job never queues behind a normal backlog, docs/jobs.md "Priorities"). A mapping's
  // maxConcurrency caps that mapping alone, so the stage's cap is split between the mappings
  // (laneConcurrency) and the function's total stays at worker.maxConcurrency. Not reserved
  // concurrency shared by all: a mapping the function throttles hands its messages back to wait
  // out the visibility timeout (12 minutes on `default`), each throttle a receive towards
  // maxReceiveCount, so a normal backlog would delay, and could dead-letter, the high jobs the
  // lane exists for. The split's price is in LANE_WEIGHTS.
  const lambdaQueues = queuesRunningOn("lambda");
  lambdaQueues.forEach((name, i) => {
    const caps = laneConcurrency(queueShare(config.worker.maxConcurrency, lambdaQueues.length, i), `Queue "${name}"`);
    for (const priority of PRIORITIES) {
      const lane = laneQueue(queues[name], priority);
      // Each lane's own visibility timeout, as synthesized, against the worker's timeout.
      const visibility = (lane.node.defaultChild as sqs.CfnQueue).visibilityTimeout;
      if (visibility === undefined || visibility < VISIBILITY_FACTOR * LAMBDA_WORKER.timeoutSeconds) {
        throw new Error(`Queue "${lane.node.id}": visibility ${visibility ?? "(SQS's default 30)"}s is under ${VISIBILITY_FACTOR} × the worker's ${LAMBDA_WORKER.timeoutSeconds}s timeout`);
      }
      worker.addEventSource(
        new SqsEventSource(lane, {
          batchSize: LAMBDA_WORKER.batchSize,
          maxBatchingWindow: Duration.seconds(LAMBDA_WORKER.maxBatchingWindowSeconds),
          reportBatchItemFailures: true,
          maxConcurrency: caps[priority],
        }),
      );
    }
  });
  grantAccess(worker, ACCESS.worker, { table, queues, effects });
  NagSuppressions.addResourceSuppressions(worker, [
    {
      id: "Serverless-LambdaDLQ",
      reason: "The SQS event source mapping invokes the worker synchronously; a failed message returns to its queue and, after maxReceiveCount deliveries, moves to the queue's own DLQ (redrive policy). A function DLQ applies only to asynchronous invocations.",
    },
  ]);
  NagSuppressions.addResourceSuppressions(
    worker.node.findAll().filter((c) => c instanceof CfnEventSourceMapping),
    [
      {
        id: "Serverless-LambdaEventSourceMappingDestination",
        reason: "SQS event sources take no on-failure destination (Lambda supports them for streams and Kafka only); failures go to the queue's DLQ through its redrive policy, watched by the DeadLetters alarm.",
      },
    ],
  );

  const fargateQueues = queuesRunningOn("fargate");
  const cluster = fargateQueues.length ? fargateCluster(stack, config) : undefined;
  const services: Partial<Record<QueueName, ecs.FargateService>> = {};
  // Every worker's log group: where its job lines are (core/job-log.ts), which the API queries.
  const jobLogGroups: logs.ILogGroup[] = [logGroupOf(worker)];
  for (const name of fargateQueues) {
    const { service, logs: taskLogs } = fargateWorker(stack, cluster!, config, workerEnvironment, name);
    jobLogGroups.push(taskLogs);
    grantAccess(service.taskDefinition.taskRole, ACCESS.fargate, { table, queues, cluster, effects });
    NagSuppressions.addResourceSuppressions(
      service.taskDefinition.taskRole,
      [
        {
          id: "AwsSolutions-IAM5",
          reason: "ecs:UpdateTaskProtection acts on the worker's own task, whose ARN exists only at run time; the grant covers the tasks of this stage's cluster and nothing else (stacks/access.ts).",
          appliesTo: [{ regex: "/^Resource::arn:<AWS::Partition>:ecs:[^:]+:[^:]+:task\\/<Cluster[0-9A-F]{8}>\\/\\*$/" }],
        },
      ],
      true,
    );
    scaleOnQueue(stack, service, queues[name], config);
    services[name] = service;
  }

  // A dead worker's jobs run again within seconds: the deaths function hears of every stopped
  // task of the cluster and every crashed or timed-out runtime of the Lambda worker.
  const { deaths } = deathWiring(stack, config, environment, table, queues, worker, cluster);

  stack.addOutputs({
    WorkerFunction: worker.functionName,
    DeathsFunction: deaths.functionName,
    ...Object.fromEntries(Object.entries(services).map(([q, svc]) => [`${pascal(q)}WorkerService`, svc.serviceName])),
  });
  return { worker, services, deaths, jobLogGroups };
}

function containerImage(image: ImageSource): ecs.ContainerImage {
  if (image.kind === "registry") return ecs.ContainerImage.fromRegistry(image.image);
  // Relative to the project root (where sst.config.ts is), not to wherever the CLI was started.
  const directory = path.resolve(useProject().paths.root, image.directory);
  return ecs.ContainerImage.fromAsset(directory, { file: image.file, platform: Platform.LINUX_ARM64 });
}

function fargateCluster(stack: Construct, config: StageConfig): ecs.Cluster {
  // Public subnets and a public IP instead of NAT gateways: an idle stage then costs nothing for
  // networking, and the tasks reach SQS, DynamoDB, ECR and CloudWatch over the internet gateway.
  const vpc = new ec2.Vpc(stack, "Vpc", {
    availabilityZones: config.fargate.availabilityZones,
    natGateways: 0,
    subnetConfiguration: [{ name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
    restrictDefaultSecurityGroup: false,
  });
  // Every accepted and rejected flow, for an audit of what the tasks talked to.
  vpc.addFlowLog("FlowLog", {
    destination: ec2.FlowLogDestination.toCloudWatchLogs(logGroup(stack, "VpcFlowLogs", `/warden/${config.stage}/vpc-flow-log`, config)),
    trafficType: ec2.FlowLogTrafficType.ALL,
  });
  return new ecs.Cluster(stack, "Cluster", {
    vpc,
    clusterName: physicalName(config.stage, "cluster"),
    containerInsightsV2: ecs.ContainerInsights.ENABLED,
  });
}

function fargateWorker(
  stack: Construct,
  cluster: ecs.Cluster,
  config: StageConfig,
  environment: Record<string, string>,
  queue: QueueName,
): { service: ecs.FargateService; logs: logs.LogGroup } {
  const id = pascal(queue);
  const taskLogs = logGroup(stack, `${id}WorkerLogs`, `/warden/${config.stage}/${queue}-worker`, config);
  const taskDefinition = new ecs.FargateTaskDefinition(stack, `${id}WorkerTask`, {
    family: physicalName(config.stage, `${queue}-worker`),
    cpu: config.fargate.cpu,
    memoryLimitMiB: config.fargate.memoryMb,
    runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    // A bind mount on the task's ephemeral storage (Fargate has no tmpfs). It starts as a copy of
    // the image's /tmp, which the Dockerfile declares as a VOLUME, so it keeps /tmp's 1777 mode.
    volumes: [{ name: "scratch" }],
  });
  const container = taskDefinition.addContainer("worker", {
    image: containerImage(config.fargate.image),
    essential: true,
    user: WORKER_USER,
    readonlyRootFilesystem: true,
    // ECS waits this long after SIGTERM before SIGKILL: the runner's hand-back grace fits inside.
    stopTimeout: Duration.seconds(FARGATE_WORKER.stopTimeoutSeconds),
    environment: {
      ...environment,
      WARDEN_WORKER_QUEUE: queue,
      WARDEN_WORKER_CONCURRENCY: String(FARGATE_WORKER.concurrency),
      WARDEN_SHUTDOWN_GRACE_MS: String(FARGATE_WORKER.shutdownGraceMs),
      // The task's limit, stated so the memory guard does not depend on reading the cgroup.
      WARDEN_MEMORY_LIMIT_MB: String(config.fargate.memoryMb),
    },
    // EMF lines on stdout become metrics: CloudWatch Logs extracts them from what awslogs sends.
    logging: ecs.LogDrivers.awsLogs({ streamPrefix: "worker", logGroup: taskLogs }),
  });
  container.addMountPoints({ sourceVolume: "scratch", containerPath: WORKER_SCRATCH, readOnly: false });
  if (taskDefinition.executionRole) {
    NagSuppressions.addResourceSuppressions(
      taskDefinition.executionRole,
      [
        {
          id: "AwsSolutions-IAM5",
          reason: "Pulling the worker's image from the CDK asset repository needs ecr:GetAuthorizationToken, which has no resource-level permissions; the layer and image reads are scoped to that repository.",
          appliesTo: ["Resource::*"],
        },
      ],
      true,
    );
  }
  NagSuppressions.addResourceSuppressions(taskDefinition, [
    {
      id: "AwsSolutions-ECS2",
      reason: "The environment holds no secret: the stage's table name, queue URLs and numeric limits, the same values the Lambda functions get. A secret would come from Secrets Manager through `secrets`.",
    },
  ]);
  const service = new ecs.FargateService(stack, `${id}Worker`, {
    serviceName: physicalName(config.stage, `${queue}-worker`),
    cluster,
    taskDefinition,
    desiredCount: config.fargate.minTasks,
    assignPublicIp: true,
    vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
    minHealthyPercent: 100,
    maxHealthyPercent: 200,
    circuitBreaker: { rollback: true },
  });
  return { service, logs: taskLogs };
}

/**
 * Scales the service on the visible messages of all its queue's lanes together: out by steps
 * while messages wait on any lane, in to the stage's minimum (zero by default) once every lane
 * has stayed empty for a while. Running jobs are not visible messages (the worker deletes a
 * message once it claims the job), so a task that holds jobs turns on its scale-in protection and
 * a scale-in stops only idle tasks. Were one stopped anyway, it hands its jobs back on SIGTERM:
 * nothing is lost, only restarted from the last checkpoint.
 */
function scaleOnQueue(stack: Construct, service: ecs.FargateService, pair: QueuePair, config: StageConfig): void {
  const id = pascal(pair.queue.node.id);
  const target = new appscaling.ScalableTarget(stack, `${id}Scaling`, {
    serviceNamespace: appscaling.ServiceNamespace.ECS,
    scalableDimension: "ecs:service:DesiredCount",
    resourceId: `service/${service.cluster.clusterName}/${service.serviceName}`,
    minCapacity: config.fargate.minTasks,
    maxCapacity: config.fargate.maxTasks,
  });
  // Every lane's waiting messages count: a high backlog scales out as a normal one does.
  const period = Duration.minutes(1);
  const visible = acrossLanes(pair, "sum", (q) => q.metricApproximateNumberOfMessagesVisible({ period, statistic: "Maximum" }), {
    period,
    label: `Visible messages on the ${PRIORITIES.join(", ")} lanes`,
  });
  const perTask = FARGATE_WORKER.messagesPerTask;

  const out = new appscaling.StepScalingAction(stack, `${id}ScaleOut`, {
    scalingTarget: target,
    adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
    cooldown: Duration.seconds(60),
    metricAggregationType: appscaling.MetricAggregationType.MAXIMUM,
  });
  // Bounds are relative to the alarm threshold of one visible message.
  out.addAdjustment({ lowerBound: 0, upperBound: perTask, adjustment: 1 });
  out.addAdjustment({ lowerBound: perTask, upperBound: 4 * perTask, adjustment: 2 });
  out.addAdjustment({ lowerBound: 4 * perTask, adjustment: 4 });
  new cloudwatch.Alarm(stack, `${id}BacklogAlarm`, {
    alarmDescription: "Scaling: messages are waiting on the Fargate queue; adds tasks.",
    metric: visible,
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  }).addAlarmAction(new cwActions.ApplicationScalingAction(out));

  const inn = new appscaling.StepScalingAction(stack, `${id}ScaleIn`, {
    scalingTarget: target,
    adjustmentType: appscaling.AdjustmentType.EXACT_CAPACITY,
    cooldown: Duration.seconds(60),
    metricAggregationType: appscaling.MetricAggregationType.MAXIMUM,
  });
  inn.addAdjustment({ upperBound: 0, adjustment: config.fargate.minTasks });
  new cloudwatch.Alarm(stack, `${id}IdleAlarm`, {
    alarmDescription: `Scaling: the Fargate queue has been empty for ${FARGATE_WORKER.scaleInAfterIdleMinutes} minutes; scales in to the stage's minimum.`,
    metric: visible,
    threshold: 0,
    comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: FARGATE_WORKER.scaleInAfterIdleMinutes,
    treatMissingData: cloudwatch.TreatMissingData.BREACHING,
  }).addAlarmAction(new cwActions.ApplicationScalingAction(inn));
}
