/**
 * The on-demand prices the cost estimates use: us-east-1, list prices, no free tier, no savings
 * plans. Each names where it came from and when it was checked, so a reader can redo the sum.
 */
export const PRICES_CHECKED =
  "2026-11-23: AWS list prices as quoted by cloudburn.io (SQS, Mar 2026), keystone.page (Lambda, May 2026) and airbyte.com (DynamoDB after the Nov 2024 cut, Jul 2025); Fargate from the AWS Fargate pricing page";

export const PRICES = {
  dynamoWriteRequestUnit: {
    usd: 0.625 / 1e6,
    label: "DynamoDB on-demand write request unit",
    unit: "$0.625 per million WRU",
    source: "aws.amazon.com/dynamodb/pricing/on-demand (us-east-1; price halved 2024-11-01)",
  },
  dynamoReadRequestUnit: {
    usd: 0.125 / 1e6,
    label: "DynamoDB on-demand read request unit",
    unit: "$0.125 per million RRU",
    source: "aws.amazon.com/dynamodb/pricing/on-demand (us-east-1; price halved 2024-11-01)",
  },
  sqsRequest: {
    usd: 0.4 / 1e6,
    label: "SQS standard queue request (per 64 KB chunk)",
    unit: "$0.40 per million requests",
    source: "aws.amazon.com/sqs/pricing (first 100 billion requests a month)",
  },
  lambdaGbSecond: {
    usd: 0.0000166667,
    label: "Lambda duration, x86",
    unit: "$0.0000166667 per GB-second",
    source: "aws.amazon.com/lambda/pricing (us-east-1, first 6 billion GB-s a month)",
  },
  lambdaRequest: {
    usd: 0.2 / 1e6,
    label: "Lambda request",
    unit: "$0.20 per million requests",
    source: "aws.amazon.com/lambda/pricing",
  },
  fargateVcpuHour: {
    usd: 0.04048,
    label: "Fargate vCPU-hour, Linux x86",
    unit: "$0.04048 per vCPU-hour",
    source: "aws.amazon.com/fargate/pricing (us-east-1)",
  },
  fargateGbHour: {
    usd: 0.004445,
    label: "Fargate GB-hour, Linux x86",
    unit: "$0.004445 per GB-hour",
    source: "aws.amazon.com/fargate/pricing (us-east-1)",
  },
} as const;

export type PriceName = keyof typeof PRICES;
