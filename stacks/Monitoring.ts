/**
 * Who gets told, and what they see: an SNS topic (with an email subscription when the stage
 * names an address), one CloudWatch alarm per definition in core/alarms.ts, and a dashboard.
 * With the stage's `kms` option the topic is encrypted with its own key, which CloudWatch may use
 * only for this stage's alarms.
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cwActions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { NagSuppressions } from "cdk-nag";
import { use, type StackContext } from "sst/constructs";
import { ALARMS, type AlarmDefinition, type AlarmSource } from "../core/alarms.js";
import { laneName, physicalName, PRIORITIES, QUEUE_NAMES, type QueueName } from "../core/config.js";
import { METRIC_NAMESPACE, METRICS, type MetricName } from "../core/metrics.js";
import { Api } from "./Api.js";
import { stageKey } from "./kms.js";
import { acrossLanes, laneQueue, pascal, Queues, type QueuePair } from "./Queues.js";
import { useStageConfig } from "./stage-config.js";
import { Sweeper } from "./Sweeper.js";
import { Workers } from "./Workers.js";

const MISSING_DATA: Record<AlarmDefinition["missingData"], cloudwatch.TreatMissingData> = {
  breaching: cloudwatch.TreatMissingData.BREACHING,
  notBreaching: cloudwatch.TreatMissingData.NOT_BREACHING,
  ignore: cloudwatch.TreatMissingData.IGNORE,
};

type FunctionKey = Extract<AlarmSource, { kind: "lambda" }>["fn"];

/**
 * A Warden metric for one stage, summed or maxed over every dimension value it carries (queue,
 * job type, state...), as the local runtime evaluates it. A metric with no dimension but Stage is
 * a plain metric; one with more is a Metrics Insights query over the namespace, because
 * CloudWatch otherwise matches exact dimension sets and a Stage-only alarm would see no data.
 */
export function wardenMetric(
  stage: string,
  name: MetricName,
  statistic: "Sum" | "Maximum",
  periodSeconds: number,
  dims: Record<string, string> = {},
): cloudwatch.IMetric {
  const period = Duration.seconds(periodSeconds);
  const only = Object.values(dims).join(" ");
  const label = `${name}${only ? ` (${only})` : ""}: ${METRICS[name].description}`;
  if (METRICS[name].dimensions.length === 0) {
    return new cloudwatch.Metric({ namespace: METRIC_NAMESPACE, metricName: name, dimensionsMap: { Stage: stage, ...dims }, statistic, period, label });
  }
  const where = Object.entries({ Stage: stage, ...dims })
    .map(([k, v]) => `${k} = '${v.replace(/'/g, "")}'`)
    .join(" AND ");
  const fn = statistic === "Sum" ? "SUM" : "MAX";
  return new cloudwatch.MathExpression({ expression: `SELECT ${fn}(${name}) FROM "${METRIC_NAMESPACE}" WHERE ${where}`, usingMetrics: {}, period, label });
}

function sourceMetric(stage: string, def: AlarmDefinition, queues: Record<QueueName, QueuePair>, fns: Record<FunctionKey, lambda.IFunction>): cloudwatch.IMetric {
  const period = Duration.seconds(def.periodSeconds);
  const s = def.source;
  switch (s.kind) {
    case "metric":
      return wardenMetric(stage, s.metric, s.statistic, def.periodSeconds, s.dims);
    case "queue": {
      if (s.dlq) return queues[s.queue].dlq.metric(s.metric, { statistic: "Maximum", period });
      // A queue's worst lane: the maximum over its lanes (its oldest message on any of them).
      return acrossLanes(queues[s.queue], "max", (q) => q.metric(s.metric, { statistic: "Maximum", period }), { period, label: `${s.metric}, the most of the ${s.queue} queue's lanes` });
    }
    case "lambda":
      return s.metric === "Errors" ? fns[s.fn].metricErrors({ statistic: "Sum", period }) : fns[s.fn].metricThrottles({ statistic: "Sum", period });
  }
}

export function Monitoring({ app, stack }: StackContext) {
  const config = useStageConfig(app);
  const { queues } = use(Queues);
  const { worker } = use(Workers);
  const { handler } = use(Api);
  const { sweeper } = use(Sweeper);
  const fns: Record<FunctionKey, lambda.IFunction> = { worker, api: handler, sweeper };

  const key = stageKey(stack, "AlarmTopicKey", config, "alarms", "the alarm topic");
  if (key) {
    // CloudWatch publishes the alarms' notifications, so it needs the key to encrypt them (SNS's
    // "compatibility with AWS services" key policy), and only on behalf of this stage's alarms.
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "CloudWatchAlarmsPublishToTheAlarmTopic",
        principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey*"],
        resources: ["*"],
        conditions: {
          StringEquals: { "aws:SourceAccount": stack.account },
          ArnLike: { "aws:SourceArn": `arn:${stack.partition}:cloudwatch:${stack.region}:${stack.account}:alarm:${physicalName(app.stage, "*")}` },
        },
      }),
    );
  }
  const topic = new sns.Topic(stack, "AlarmTopic", {
    topicName: physicalName(app.stage, "alarms"),
    displayName: `Warden ${app.stage} alarms`,
    enforceSSL: true,
    ...(key ? { masterKey: key } : {}),
  });
  if (config.alarmEmail) {
    const email = topic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
    NagSuppressions.addResourceSuppressions(email, [
      {
        id: "Serverless-SNSRedrivePolicy",
        reason: "SNS retries email delivery itself; a notification it still cannot deliver would sit in a DLQ nobody reads. The alarm's state and history stay in CloudWatch and on the dashboard's alarm widget, so only the email is lost.",
      },
    ]);
  }
  const notify = new cwActions.SnsAction(topic);

  const alarms = ALARMS.map((def) => {
    const alarm = new cloudwatch.Alarm(stack, `Alarm${pascal(def.id)}`, {
      alarmName: physicalName(app.stage, def.id),
      alarmDescription: def.description,
      metric: sourceMetric(app.stage, def, queues, fns),
      threshold: def.threshold,
      comparisonOperator:
        def.comparison === "GreaterThanThreshold" ? cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD : cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: def.evaluationPeriods,
      treatMissingData: MISSING_DATA[def.missingData],
    });
    alarm.addAlarmAction(notify);
    alarm.addOkAction(notify);
    return alarm;
  });

  const dashboard = dashboardFor(app.stage, queues, alarms);
  stack.addOutputs({ AlarmTopicArn: topic.topicArn });

  function dashboardFor(stage: string, q: Record<QueueName, QueuePair>, all: cloudwatch.Alarm[]): cloudwatch.Dashboard {
    const m = (name: MetricName, stat: "Sum" | "Maximum" = "Sum") => wardenMetric(stage, name, stat, 60);
    const graph = (title: string, left: cloudwatch.IMetric[], right: cloudwatch.IMetric[] = []) =>
      new cloudwatch.GraphWidget({ title, left, right, width: 12, height: 6 });
    const perQueue = (f: (p: QueuePair, name: QueueName) => cloudwatch.IMetric[]) => QUEUE_NAMES.flatMap((name) => f(q[name], name));
    return new cloudwatch.Dashboard(stack, "Dashboard", {
      dashboardName: physicalName(stage, "jobs"),
      widgets: [
        [new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms: all, width: 24, height: 4 })],
        [
          graph("Job flow", [m("JobsSubmitted"), m("JobsStarted"), m("JobsSucceeded"), m("JobsFailed")]),
          graph("Stuck jobs and repairs", [m("StuckJobs", "Maximum")], [m("Reclaimed"), m("Requeued")]),
        ],
        [
          // What JobsNotStarting-<queue> watches, one line per queue, beside the re-rings that did not help.
          graph(
            "Oldest unclaimed wait (s), per queue",
            QUEUE_NAMES.map((name) => wardenMetric(stage, "OldestUnclaimedSeconds", "Maximum", 60, { Queue: name })),
            [m("UnhelpedRepairs")],
          ),
        ],
        [
          // One line per lane (named as its queue is: default-high, default, default-low), so a
          // starved low lane or a high burst shows as itself.
          graph(
            "Queue depths (visible messages), per lane",
            perQueue((p, name) => [
              ...PRIORITIES.map((priority) =>
                laneQueue(p, priority).metricApproximateNumberOfMessagesVisible({ statistic: "Maximum", period: Duration.minutes(1), label: laneName(name, priority) }),
              ),
              p.dlq.metricApproximateNumberOfMessagesVisible({ statistic: "Maximum", period: Duration.minutes(1), label: `${name} DLQ` }),
            ]),
          ),
          graph(
            "Age of oldest message (s), per lane",
            perQueue((p, name) =>
              PRIORITIES.map((priority) =>
                laneQueue(p, priority).metricApproximateAgeOfOldestMessage({ statistic: "Maximum", period: Duration.minutes(1), label: laneName(name, priority) }),
              ),
            ),
          ),
        ],
        [
          graph("Worker memory (% of limit)", [m("WorkerMemoryPercent", "Maximum")], [m("MemoryAborts")]),
          graph("Claim conflicts and lost leases", [m("ClaimConflicts"), m("LeaseLost")], [m("StoreThrottled")]),
        ],
        [graph("Sweeper", [m("SweeperHeartbeat")], [m("SweepDuration", "Maximum")]), graph("Job duration (max ms)", [m("JobDuration", "Maximum")])],
      ],
    });
  }

  return { topic, alarms, dashboard, key };
}
