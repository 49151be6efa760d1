"""API vocabularies and request parameters of the synthetic organisation.

Each team has its own vocabulary (the APIs its people call, with weights); each
automation has its own fixed call list. :func:`request_for` fills plausible
``requestParameters`` for a call against the account's resources.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Api = tuple[str, str]  # (service key, eventName)


@dataclass(frozen=True, kw_only=True)
class Resources:
    """Named resources of one account, used in request parameters."""

    account: str
    env: str  # prod / staging

    @property
    def buckets(self) -> tuple[str, ...]:
        """The account's S3 buckets."""
        e = self.env
        return (f"northwind-{e}-assets", f"northwind-{e}-exports", f"northwind-{e}-logs", f"northwind-{e}-datalake")

    @property
    def functions(self) -> tuple[str, ...]:
        """The account's Lambda functions."""
        return ("orders-digest", "billing-handler", "users-handler", "search-indexer", "thumbnailer")

    @property
    def tables(self) -> tuple[str, ...]:
        """The account's DynamoDB tables."""
        return tuple(f"{self.env}-{n}" for n in ("orders", "users", "sessions", "search"))

    @property
    def clusters(self) -> tuple[str, ...]:
        """The account's ECS clusters."""
        return (f"{self.env}-cluster",)

    @property
    def services(self) -> tuple[str, ...]:
        """The account's ECS services."""
        return ("checkout-svc", "api-svc", "worker-svc")

    @property
    def secrets(self) -> tuple[str, ...]:
        """The account's Secrets Manager secrets."""
        e = self.env
        return (f"{e}/db/orders", f"{e}/db/users", f"{e}/stripe/api-key", f"{e}/sendgrid/token", f"{e}/github/app-key")

    @property
    def parameters(self) -> tuple[str, ...]:
        """The account's SSM parameters."""
        e = self.env
        return (f"/{e}/api/db-url", f"/{e}/api/feature-flags", f"/{e}/worker/queue-url", f"/{e}/shared/datadog-key")

    @property
    def log_groups(self) -> tuple[str, ...]:
        """The account's CloudWatch log groups."""
        return (*(f"/aws/lambda/{f}" for f in self.functions), f"/ecs/{self.env}-api")

    @property
    def queues(self) -> tuple[str, ...]:
        """The account's SQS queue URLs (region filled in by the caller)."""
        return tuple(f"{self.env}-{n}-queue" for n in ("orders", "billing", "users"))

    @property
    def databases(self) -> tuple[str, ...]:
        """The account's RDS instances."""
        return (f"{self.env}-orders-db", f"{self.env}-users-db")


# Team vocabularies: (service, eventName, weight). Weights are relative.
TEAM_VOCAB: dict[str, list[tuple[str, str, float]]] = {
    "platform": [
        ("ec2", "DescribeInstances", 20),
        ("ec2", "DescribeSecurityGroups", 8),
        ("ec2", "DescribeVpcs", 5),
        ("ec2", "DescribeSubnets", 5),
        ("ec2", "DescribeVolumes", 4),
        ("ecs", "DescribeServices", 10),
        ("ecs", "ListClusters", 5),
        ("ecs", "DescribeClusters", 4),
        ("ecs", "UpdateService", 2),
        ("ecs", "ListTasks", 5),
        ("elasticloadbalancing", "DescribeTargetHealth", 4),
        ("elasticloadbalancing", "DescribeLoadBalancers", 3),
        ("cloudformation", "DescribeStacks", 6),
        ("cloudformation", "DescribeStackEvents", 3),
        ("iam", "GetRole", 3),
        ("iam", "ListRoles", 2),
        ("iam", "ListAttachedRolePolicies", 2),
        ("logs", "DescribeLogGroups", 4),
        ("logs", "FilterLogEvents", 5),
        ("monitoring", "GetMetricData", 6),
        ("monitoring", "DescribeAlarms", 3),
        ("autoscaling", "DescribeAutoScalingGroups", 3),
        ("ssm", "GetParameter", 3),
        ("route53", "ListHostedZones", 1),
        ("route53", "ListResourceRecordSets", 1),
        ("sts", "GetCallerIdentity", 3),
    ],
    "backend": [
        ("lambda", "ListFunctions20150331", 8),
        ("lambda", "GetFunction20150331v2", 6),
        ("lambda", "UpdateFunctionConfiguration20150331v2", 1),
        ("dynamodb", "DescribeTable", 8),
        ("dynamodb", "ListTables", 4),
        ("sqs", "GetQueueAttributes", 5),
        ("sqs", "ListQueues", 3),
        ("logs", "FilterLogEvents", 10),
        ("logs", "GetLogEvents", 8),
        ("logs", "DescribeLogStreams", 5),
        ("monitoring", "GetMetricData", 5),
        ("s3", "ListBuckets", 3),
        ("s3", "GetBucketLocation", 2),
        ("ssm", "GetParameter", 4),
        ("ssm", "GetParametersByPath", 2),
        ("secretsmanager", "DescribeSecret", 1),
        ("xray", "GetTraceSummaries", 2),
        ("apigateway", "GetRestApis", 2),
        ("sts", "GetCallerIdentity", 2),
    ],
    "data": [
        ("athena", "StartQueryExecution", 10),
        ("athena", "GetQueryExecution", 12),
        ("athena", "GetQueryResults", 8),
        ("athena", "ListWorkGroups", 2),
        ("glue", "GetTables", 6),
        ("glue", "GetDatabases", 4),
        ("glue", "GetTable", 5),
        ("glue", "StartJobRun", 2),
        ("glue", "GetJobRuns", 3),
        ("s3", "ListBuckets", 5),
        ("s3", "GetBucketLocation", 4),
        ("redshift-data", "ExecuteStatement", 3),
        ("redshift-data", "DescribeStatement", 3),
        ("sagemaker", "ListNotebookInstances", 1),
        ("sts", "GetCallerIdentity", 2),
    ],
    "security": [
        ("guardduty", "ListFindings", 8),
        ("guardduty", "GetFindings", 8),
        ("guardduty", "ListDetectors", 2),
        ("securityhub", "GetFindings", 8),
        ("securityhub", "BatchUpdateFindings", 2),
        ("iam", "ListUsers", 4),
        ("iam", "ListAccessKeys", 3),
        ("iam", "GetAccountPasswordPolicy", 1),
        ("iam", "GenerateCredentialReport", 1),
        ("iam", "GetCredentialReport", 1),
        ("cloudtrail", "DescribeTrails", 3),
        ("cloudtrail", "GetTrailStatus", 2),
        ("cloudtrail", "LookupEvents", 6),
        ("config", "DescribeComplianceByConfigRule", 3),
        ("config", "GetComplianceDetailsByConfigRule", 2),
        ("kms", "ListKeys", 2),
        ("kms", "DescribeKey", 2),
        ("access-analyzer", "ListFindings", 2),
        ("s3", "GetBucketPolicy", 2),
        ("s3", "GetBucketPublicAccessBlock", 2),
        ("sts", "GetCallerIdentity", 2),
    ],
}

#: Console-only noise: reads the console makes on page load.
CONSOLE_EXTRA: list[tuple[str, str, float]] = [
    ("health", "DescribeEventAggregates", 2),
    ("ce", "GetCostAndUsage", 1),
    ("notifications", "ListNotificationHubs", 1),
    ("servicecatalog-appregistry", "ListApplications", 1),
]

#: Rare read APIs an admin uses when troubleshooting.
TROUBLESHOOTING: list[Api] = [
    ("ec2", "DescribeFlowLogs"),
    ("ec2", "DescribeVpcEndpoints"),
    ("ec2", "DescribeNetworkAcls"),
    ("ec2", "DescribeRouteTables"),
    ("iam", "SimulatePrincipalPolicy"),
    ("iam", "GetPolicyVersion"),
    ("cloudtrail", "LookupEvents"),
    ("kms", "GetKeyPolicy"),
    ("elasticloadbalancing", "DescribeListeners"),
    ("ec2", "DescribeNetworkInterfaces"),
]

#: What a team adopting Bedrock starts calling.
BEDROCK: list[tuple[str, str, float]] = [
    ("bedrock", "ListFoundationModels", 3),
    ("bedrock", "GetFoundationModelAvailability", 1),
    ("bedrock", "InvokeModel", 8),
    ("bedrock", "ListModelInvocationJobs", 1),
]


def _ec2(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name in ("DescribeInstances",):
        return {"instancesSet": {}, "filterSet": {}}
    if name.startswith("Describe"):
        return {"filterSet": {}}
    return None


def _s3(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    bucket = rng.choice(res.buckets)  # drawn for every call, ListBuckets too: the seed's sequence depends on it
    if name == "ListBuckets":
        return {"Host": f"s3.{region}.amazonaws.com"}
    sub = {"GetBucketLocation": "location", "GetBucketPolicy": "policy", "GetBucketAcl": "acl"}.get(name, "")
    req: dict[str, Any] = {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com"}
    if sub:
        req[sub] = ""
    if name == "GetBucketPublicAccessBlock":
        req["publicAccessBlock"] = ""
    return req


def _lambda(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if "Function20150331" in name:
        return {"functionName": rng.choice(res.functions)}
    return None


def _dynamodb(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name == "DescribeTable":
        return {"tableName": rng.choice(res.tables)}
    return None


def _ecs(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    cluster = res.clusters[0]
    if name == "DescribeServices":
        return {"cluster": cluster, "services": [rng.choice(res.services)]}
    if name == "UpdateService":
        return {"cluster": cluster, "service": rng.choice(res.services), "forceNewDeployment": True}
    if name == "ListTasks":
        return {"cluster": cluster}
    if name == "DescribeClusters":
        return {"clusters": [cluster]}
    return {"maxResults": 100}


def _sqs(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name == "ListQueues":
        return None
    return {
        "queueUrl": f"https://sqs.{region}.amazonaws.com/{res.account}/{rng.choice(res.queues)}",
        "attributeNames": ["All"],
    }


def _logs(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    group = rng.choice(res.log_groups)  # drawn for every call, as for S3
    if name == "DescribeLogGroups":
        return {"limit": 50}
    if name in ("FilterLogEvents", "GetLogEvents", "DescribeLogStreams"):
        return {"logGroupName": group}
    if name in ("CreateLogStream", "PutLogEvents"):
        return {"logGroupName": group, "logStreamName": f"{rng.getrandbits(64):016x}"}
    return None


def _ssm(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name == "GetParameter":
        return {"name": rng.choice(res.parameters), "withDecryption": True}
    if name == "GetParameters":
        return {"names": list(rng.sample(res.parameters, 2)), "withDecryption": True}
    if name == "GetParametersByPath":
        return {"path": f"/{res.env}/api", "recursive": True, "withDecryption": True}
    if name == "DescribeParameters":
        return {"maxResults": 50}
    return None


def _secretsmanager(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name in ("GetSecretValue", "DescribeSecret"):
        return {"secretId": rng.choice(res.secrets)}
    if name == "ListSecrets":
        return {"maxResults": 100}
    return None


def _kms(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name in ("Decrypt",):
        return {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    if name in ("GenerateDataKey",):
        return {"keyId": f"arn:aws:kms:{region}:{res.account}:alias/{res.env}-data", "keySpec": "AES_256"}
    if name in ("DescribeKey", "GetKeyPolicy"):
        return {"keyId": f"alias/{res.env}-data"}
    return None


def _iam(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name in ("GetRole", "ListAttachedRolePolicies"):
        return {"roleName": rng.choice(("prod-app-instance-role", "github-actions-deploy", "terraform-apply"))}
    if name == "ListAccessKeys":
        return None
    if name == "SimulatePrincipalPolicy":
        return {
            "policySourceArn": f"arn:aws:iam::{res.account}:role/prod-app-instance-role",
            "actionNames": ["s3:GetObject"],
        }
    if name == "GetPolicyVersion":
        return {"policyArn": f"arn:aws:iam::{res.account}:policy/app-data-access", "versionId": "v3"}
    return None


def _athena(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name == "StartQueryExecution":
        table = rng.choice(("orders_daily", "events_raw", "sessions", "revenue_by_region"))
        return {
            "queryString": f"SELECT * FROM analytics.{table} WHERE dt = current_date LIMIT 100",
            "workGroup": "primary",
            "queryExecutionContext": {"database": "analytics"},
        }
    if name in ("GetQueryExecution", "GetQueryResults"):
        return {"queryExecutionId": str(_uuid(rng))}
    return None


def _glue(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name in ("GetTables", "GetTable"):
        req = {"databaseName": "analytics"}
        if name == "GetTable":
            req["name"] = rng.choice(("orders_daily", "events_raw", "sessions"))
        return req
    if name in ("StartJobRun", "GetJobRuns"):
        return {"jobName": rng.choice(("orders-etl", "sessions-compaction"))}
    return None


def _cloudformation(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name.startswith("DescribeStack"):
        return {"stackName": rng.choice((f"{res.env}-network", f"{res.env}-api", f"{res.env}-data"))}
    return None


def _guardduty(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name in ("ListFindings", "GetFindings"):
        return {"detectorId": "0cb4d1a2f9e8b7c6d5e4f3a2b1c0d9e8"}
    return None


def _cloudtrail(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name == "LookupEvents":
        return {
            "maxResults": 50,
            "lookupAttributes": [{"attributeKey": "EventName", "attributeValue": "ConsoleLogin"}],
        }
    if name == "GetTrailStatus":
        return {"name": f"arn:aws:cloudtrail:us-east-1:{res.account}:trail/org-trail"}
    return {"includeShadowTrails": True} if name == "DescribeTrails" else None


def _monitoring(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name != "GetMetricData":
        return None
    metric = rng.choice(("CPUUtilization", "Invocations", "Errors", "ApproximateNumberOfMessagesVisible"))
    return {
        "metricDataQueries": [
            {"id": "m1", "metricStat": {"metric": {"metricName": metric}, "period": 300, "stat": "Average"}}
        ],
        "scanBy": "TimestampDescending",
    }


def _bedrock(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name == "InvokeModel":
        return {"modelId": rng.choice(("anthropic.claude-3-haiku-20240307-v1:0", "amazon.titan-embed-text-v2:0"))}
    return None


def _redshift_data(name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    if name == "ExecuteStatement":
        return {
            "clusterIdentifier": f"{res.env}-warehouse",
            "database": "analytics",
            "sql": "HIDDEN_DUE_TO_SECURITY_REASONS",
        }
    return None


RequestBuilder = Callable[[str, Resources, str, random.Random], dict[str, Any] | None]

#: ``requestParameters`` per service: ``(eventName, resources, region, rng) -> parameters``.
#: A service not listed here (and an API its builder does not know) gets ``None``.
REQUEST_BUILDERS: dict[str, RequestBuilder] = {
    "ec2": _ec2,
    "s3": _s3,
    "lambda": _lambda,
    "dynamodb": _dynamodb,
    "ecs": _ecs,
    "sqs": _sqs,
    "logs": _logs,
    "ssm": _ssm,
    "secretsmanager": _secretsmanager,
    "kms": _kms,
    "iam": _iam,
    "athena": _athena,
    "glue": _glue,
    "cloudformation": _cloudformation,
    "guardduty": _guardduty,
    "cloudtrail": _cloudtrail,
    "monitoring": _monitoring,
    "bedrock": _bedrock,
    "redshift-data": _redshift_data,
}


def request_for(service: str, name: str, res: Resources, region: str, rng: random.Random) -> dict[str, Any] | None:
    """Return plausible ``requestParameters`` for a call (``None`` where CloudTrail writes null)."""
    builder = REQUEST_BUILDERS.get(service)
    return builder(name, res, region, rng) if builder is not None else None


def _uuid(rng: random.Random) -> str:
    import uuid

    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
