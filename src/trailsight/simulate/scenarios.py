"""Injected attacks and benign surprises, each labelled with the event ids it produced.

Attacks follow documented tradecraft: the techniques Stratus Red Team detonates
(``aws.defense-evasion.cloudtrail-stop``, ``aws.persistence.iam-create-admin-user``,
``aws.exfiltration.ec2-share-ebs-snapshot``, ``aws.credential-access.secretsmanager-retrieve-secrets`` ...),
``enumerate-iam``-style permission brute force, and the incident patterns GuardDuty
names (``InstanceCredentialExfiltration.OutsideAWS``, crypto-mining in regions the
victim never uses). Each is carried out with one principal's credentials from an
attacker network: VPS hosting, a commercial VPN, a foreign consumer ISP, or now
and then a residential line in the victim's own country.

Benign surprises are what makes a detector cry wolf: travel, a new hire, a new
pipeline, troubleshooting, a team adopting a service, on-call nights and a
misconfigured script's AccessDenied loop.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trailsight.simulate.apis import BEDROCK, TEAM_VOCAB, TROUBLESHOOTING, request_for
from trailsight.simulate.baseline import (
    DAY,
    LAMBDA_UA,
    TERRAFORM_UA,
    home_ip,
    human_session,
    local_midnight,
    run_lambda,
    workload_session,
)
from trailsight.simulate.networks import NETWORKS, Network
from trailsight.simulate.organisation import (
    SSO_SETS,
    UNUSED_REGIONS,
    Account,
    Human,
    Organisation,
    Workload,
    human_cli_ua,
    make_human,
)
from trailsight.simulate.records import Identity, assumed_role, iam_user, iso, kebab, key_id
from trailsight.simulate.trail import Trail

KALI_BOTO = (
    "Boto3/1.34.51 md/Botocore#1.34.51 ua/2.0 os/linux#6.6.9-amd64 md/arch#x86_64 lang/python#3.11.8 "
    "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.51"
)
KALI_CLI = (
    "aws-cli/2.15.17 md/awscrt#0.19.19 ua/2.0 os/linux#6.6.9-amd64 md/arch#x86_64 lang/python#3.11.8 "
    "md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/distrib#kali.2024 md/prompt#off "
    "md/command#{cmd}"
)
GO_SDK = "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/{svc}#1.50.0"
ATTACKER_ACCOUNT = "193672423079"

ATTACK_NAMES = (
    "credential_compromise_discovery",
    "iam_privilege_escalation",
    "persistence_new_user_and_keys",
    "log_and_detector_tampering",
    "secret_harvesting",
    "snapshot_exfiltration",
    "bucket_exfiltration",
    "cryptomining_unused_regions",
    "instance_credentials_outside_aws",
    "permission_bruteforce",
)

#: Attacks that ``--attacks all`` leaves out; name them to add them.
EXTRA_ATTACKS = ("stratus_replay",)

BENIGN_NAMES = (
    "travel",
    "new_hire",
    "new_pipeline",
    "troubleshooting",
    "service_adoption",
    "on_call_night",
    "error_burst",
)


@dataclass(kw_only=True)
class Label:
    """One injected attack or benign surprise and the events it consists of."""

    id: str
    kind: str  # attack / benign
    name: str
    description: str
    principal: str
    actor: str
    account: str
    tactics: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    network: dict[str, Any] = field(default_factory=dict)
    event_ids: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, rec: dict[str, Any] | None, ts: float) -> None:
        """Attach a record (if it fell inside the period)."""
        if rec is not None:
            self.event_ids.append(rec["eventID"])
            self.times.append(ts)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to labels.json."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "principal": self.principal,
            "actor": self.actor,
            "account": self.account,
            "tactics": self.tactics,
            "techniques": self.techniques,
            "network": self.network,
            "start": iso(min(self.times)) if self.times else None,
            "end": iso(max(self.times)) if self.times else None,
            "events": len(self.event_ids),
            "event_ids": self.event_ids,
        }
        out.update(self.extra)
        return out


def _net_dict(net: Network, ip: str) -> dict[str, Any]:
    return {"ip": ip, "kind": net.kind, "asn": net.asn, "org": net.org, "city": net.city, "country": net.country}


Step = tuple[float, str, str, dict[str, Any] | None, str | None]  # (gap s, service, api, request, error kind)


@dataclass(kw_only=True)
class Actor:
    """The attacker holding one principal's credentials."""

    trail: Trail
    ident: Identity
    ip: str
    ua: str | Callable[[str, str], str]
    region: str
    label: Label

    def play(self, t: float, steps: list[Step], region: str | None = None) -> float:
        """Emit the steps from ``t``; returns the time after the last."""
        for gap, service, name, request, error in steps:
            t += gap
            ua = self.ua if isinstance(self.ua, str) else self.ua(service, name)
            rec = self.trail.emit(
                self.ident,
                t,
                service,
                name,
                region or self.region,
                self.ip,
                ua,
                request=request,
                error=error,
                response=None if error else _response(self.trail.rng, name, request, t),
            )
            self.label.add(rec, t)
        return t


def _response(rng: random.Random, name: str, request: dict[str, Any] | None, t: float) -> dict[str, Any] | None:
    req = request or {}
    if name == "CreateAccessKey":
        return {
            "accessKey": {
                "accessKeyId": key_id(rng, "AKIA"),
                "status": "Active",
                "userName": req.get("userName", ""),
                "createDate": iso(t),
            }
        }
    if name == "CreateUser":
        return {"user": {"userName": req.get("userName"), "path": "/", "createDate": iso(t)}}
    return None


def _cli(service: str, name: str) -> str:
    return KALI_CLI.format(cmd=f"{service}.{kebab(name)}")


def _go(service: str, _name: str) -> str:
    return GO_SDK.format(svc=service)


# ---------------------------------------------------------------------------
# Attacks: (tactics, techniques, description, default network keys, builder)


def _discovery(a: Actor, t: float, org: Organisation) -> None:
    acct = org.accounts["prod"]
    steps: list[Step] = [
        (0, "sts", "GetCallerIdentity", None, None),
        (4, "iam", "GetUser", None, None),
        (3, "iam", "ListAttachedUserPolicies", {"userName": a.ident.user_identity.get("userName")}, None),
        (2, "iam", "ListUserPolicies", {"userName": a.ident.user_identity.get("userName")}, None),
        (3, "iam", "ListUsers", None, None),
        (2, "iam", "ListRoles", None, None),
        (2, "iam", "ListGroups", None, None),
        (5, "iam", "GetAccountAuthorizationDetails", None, "denied"),
        (6, "s3", "ListBuckets", {"Host": "s3.us-east-1.amazonaws.com"}, None),
        (3, "ec2", "DescribeRegions", {"regionSet": {}, "allRegions": True}, None),
        (2, "organizations", "DescribeOrganization", None, "denied"),
        (2, "secretsmanager", "ListSecrets", {"maxResults": 100}, "denied"),
        (2, "rds", "DescribeDBInstances", None, None),
        (2, "lambda", "ListFunctions20150331", None, None),
    ]
    t = a.play(t, steps)
    for region in ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1"):
        t = a.play(
            t,
            [
                (3, "ec2", "DescribeInstances", {"instancesSet": {}, "filterSet": {}}, None),
                (1, "ec2", "DescribeSecurityGroups", {"filterSet": {}}, None),
            ],
            region=region,
        )
    del acct


def _privesc(a: Actor, t: float, org: Organisation) -> None:
    acct = org.accounts["prod"].id
    user = a.ident.user_identity.get("userName", "")
    pol = f"arn:aws:iam::{acct}:policy/app-data-access"
    steps: list[Step] = [
        (0, "sts", "GetCallerIdentity", None, None),
        (5, "iam", "ListAttachedUserPolicies", {"userName": user}, None),
        (3, "iam", "GetPolicy", {"policyArn": pol}, None),
        (2, "iam", "GetPolicyVersion", {"policyArn": pol, "versionId": "v3"}, None),
        (
            20,
            "iam",
            "AttachUserPolicy",
            {"userName": user, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            "denied",
        ),
        (15, "iam", "PutUserPolicy", {"userName": user, "policyName": "x", "policyDocument": "{...}"}, "denied"),
        (
            30,
            "iam",
            "CreatePolicyVersion",
            {
                "policyArn": pol,
                "setAsDefault": True,
                "policyDocument": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                '"Action":"*","Resource":"*"}]}',
            },
            None,
        ),
        (
            10,
            "iam",
            "AttachUserPolicy",
            {"userName": user, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            None,
        ),
        (8, "iam", "ListAttachedUserPolicies", {"userName": user}, None),
        (5, "iam", "ListUsers", None, None),
        (3, "iam", "ListRoles", None, None),
        (4, "iam", "GetAccountAuthorizationDetails", None, None),
    ]
    a.play(t, steps)


def _persistence(a: Actor, t: float, org: Organisation) -> None:
    others = [h.name for h in org.humans if h.kind == "iam"][:2] or ["deploy-bot"]
    new_user = "svc-backup-sync"
    steps: list[Step] = [
        (0, "sts", "GetCallerIdentity", None, None),
        (10, "iam", "ListUsers", None, None),
        (25, "iam", "CreateUser", {"userName": new_user, "path": "/"}, None),
        (
            6,
            "iam",
            "AttachUserPolicy",
            {"userName": new_user, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            None,
        ),
        (5, "iam", "CreateAccessKey", {"userName": new_user}, None),
        (8, "iam", "CreateLoginProfile", {"userName": new_user, "passwordResetRequired": False}, None),
        (40, "iam", "ListAccessKeys", {"userName": others[0]}, None),
        (5, "iam", "CreateAccessKey", {"userName": others[0]}, None),
    ]
    if len(others) > 1:
        steps.append((30, "iam", "CreateAccessKey", {"userName": others[1]}, "limit_keys"))
    a.play(t, [s if s[4] != "limit_keys" else (s[0], s[1], s[2], s[3], None) for s in steps])


def _tampering(a: Actor, t: float, org: Organisation) -> None:
    acct = org.accounts["prod"].id
    trail_arn = f"arn:aws:cloudtrail:us-east-1:{acct}:trail/org-trail"
    det = "0cb4d1a2f9e8b7c6d5e4f3a2b1c0d9e8"
    steps: list[Step] = [
        (0, "cloudtrail", "DescribeTrails", {"includeShadowTrails": True}, None),
        (4, "cloudtrail", "GetTrailStatus", {"name": trail_arn}, None),
        (9, "cloudtrail", "GetEventSelectors", {"trailName": trail_arn}, None),
        (
            12,
            "cloudtrail",
            "PutEventSelectors",
            {
                "trailName": trail_arn,
                "eventSelectors": [
                    {"readWriteType": "ReadOnly", "includeManagementEvents": False, "dataResources": []}
                ],
            },
            None,
        ),
        (20, "cloudtrail", "StopLogging", {"name": trail_arn}, None),
        (15, "guardduty", "ListDetectors", None, None),
        (4, "guardduty", "UpdateDetector", {"detectorId": det, "enable": False}, None),
        (6, "guardduty", "DeleteDetector", {"detectorId": det}, "denied"),
        (8, "securityhub", "DisableSecurityHub", None, None),
        (10, "config", "StopConfigurationRecorder", {"configurationRecorderName": "default"}, None),
        (7, "ec2", "DescribeFlowLogs", {"filterSet": {}}, None),
        (5, "ec2", "DeleteFlowLogs", {"flowLogIds": ["fl-0c1d2e3f4a5b6c7d8"]}, None),
        (9, "logs", "DeleteLogGroup", {"logGroupName": "/aws/vpc/flow-logs"}, None),
    ]
    a.play(t, steps)


def _secrets(a: Actor, t: float, org: Organisation) -> None:
    res = org.accounts["prod"].resources
    steps: list[Step] = [(0, "sts", "GetCallerIdentity", None, None)]
    for region in ("us-east-1", "eu-west-1", "us-west-2"):
        steps.append((5, "secretsmanager", "ListSecrets", {"maxResults": 100}, None))
        if region == "us-east-1":
            for s in res.secrets:
                steps.append((1.5, "secretsmanager", "GetSecretValue", {"secretId": s}, None))
        t = a.play(t, steps, region=region)
        steps = []
    steps = [
        (6, "ssm", "DescribeParameters", {"maxResults": 50}, None),
        (3, "ssm", "GetParametersByPath", {"path": "/prod", "recursive": True, "withDecryption": True}, None),
        (2, "ssm", "GetParameters", {"names": list(res.parameters), "withDecryption": True}, None),
        (4, "kms", "ListAliases", None, None),
    ]
    a.play(t, steps, region="us-east-1")


def _snapshots(a: Actor, t: float, org: Organisation) -> None:
    res = org.accounts["prod"].resources
    snap = "snap-0d4e5f6a7b8c9d0e1"
    steps: list[Step] = [
        (0, "ec2", "DescribeInstances", {"instancesSet": {}, "filterSet": {}}, None),
        (5, "ec2", "DescribeVolumes", {"filterSet": {}}, None),
        (20, "ec2", "CreateSnapshot", {"volumeId": "vol-0a9b8c7d6e5f4a3b2", "description": "backup"}, None),
        (60, "ec2", "DescribeSnapshots", {"snapshotSet": {"items": [{"snapshotId": snap}]}}, None),
        (
            10,
            "ec2",
            "ModifySnapshotAttribute",
            {
                "snapshotId": snap,
                "createVolumePermission": {"add": {"items": [{"userId": ATTACKER_ACCOUNT}]}},
                "attributeType": "CREATE_VOLUME_PERMISSION",
            },
            None,
        ),
        (15, "rds", "DescribeDBInstances", None, None),
        (
            10,
            "rds",
            "CreateDBSnapshot",
            {"dBSnapshotIdentifier": "orders-db-tmp", "dBInstanceIdentifier": res.databases[0]},
            None,
        ),
        (120, "rds", "DescribeDBSnapshots", {"dBSnapshotIdentifier": "orders-db-tmp"}, None),
        (
            8,
            "rds",
            "ModifyDBSnapshotAttribute",
            {"dBSnapshotIdentifier": "orders-db-tmp", "attributeName": "restore", "valuesToAdd": [ATTACKER_ACCOUNT]},
            None,
        ),
    ]
    a.play(t, steps)


def _buckets(a: Actor, t: float, org: Organisation) -> None:
    res = org.accounts["prod"].resources
    region = a.region
    steps: list[Step] = [(0, "s3", "ListBuckets", {"Host": f"s3.{region}.amazonaws.com"}, None)]
    for b in res.buckets:
        host = f"{b}.s3.{region}.amazonaws.com"
        steps.append((2, "s3", "GetBucketPolicy", {"bucketName": b, "Host": host, "policy": ""}, "notfound"))
        steps.append((1, "s3", "GetBucketAcl", {"bucketName": b, "Host": host, "acl": ""}, None))
    target = res.buckets[1]
    host = f"{target}.s3.{region}.amazonaws.com"
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::'
        + ATTACKER_ACCOUNT
        + ':root"},"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::'
        + target
        + '","arn:aws:s3:::'
        + target
        + '/*"]}]}'
    )
    steps += [
        (30, "s3", "GetBucketPublicAccessBlock", {"bucketName": target, "Host": host, "publicAccessBlock": ""}, None),
        (
            10,
            "s3",
            "DeleteBucketPublicAccessBlock",
            {"bucketName": target, "Host": host, "publicAccessBlock": ""},
            None,
        ),
        (12, "s3", "PutBucketPolicy", {"bucketName": target, "Host": host, "policy": policy}, None),
        (20, "s3", "PutBucketReplication", {"bucketName": target, "Host": host, "replication": ""}, "denied"),
        (
            5,
            "s3",
            "PutBucketAcl",
            {"bucketName": res.buckets[3], "Host": host, "acl": "", "x-amz-acl": "public-read"},
            None,
        ),
    ]
    a.play(t, steps)


def _mining(a: Actor, t: float, org: Organisation) -> None:
    t = a.play(
        t,
        [
            (0, "sts", "GetCallerIdentity", None, None),
            (3, "ec2", "DescribeRegions", {"regionSet": {}, "allRegions": True}, None),
            (4, "servicequotas", "GetServiceQuota", {"serviceCode": "ec2", "quotaCode": "L-417A185B"}, None),
        ],
        region="us-east-1",
    )
    for i, region in enumerate(UNUSED_REGIONS):
        run_err = "limit" if i % 2 == 0 else None
        steps: list[Step] = [
            (
                5,
                "ec2",
                "DescribeImages",
                {
                    "imagesSet": {},
                    "filterSet": {
                        "items": [
                            {
                                "name": "name",
                                "valueSet": {
                                    "items": [{"value": "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"}]
                                },
                            }
                        ]
                    },
                },
                None,
            ),
            (2, "ec2", "CreateKeyPair", {"keyName": f"k{i}"}, None),
            (2, "ec2", "CreateSecurityGroup", {"groupName": f"sg-{i}", "groupDescription": "default"}, None),
            (
                2,
                "ec2",
                "AuthorizeSecurityGroupIngress",
                {
                    "groupId": "sg-0123456789abcdef0",
                    "ipPermissions": {
                        "items": [{"ipProtocol": "-1", "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]
                    },
                },
                None,
            ),
            (
                3,
                "ec2",
                "RunInstances",
                {
                    "instancesSet": {"items": [{"imageId": "ami-0a1b2c3d4e5f60718", "minCount": 10, "maxCount": 10}]},
                    "instanceType": "p3.16xlarge",
                },
                run_err,
            ),
        ]
        if run_err:
            steps.append(
                (
                    4,
                    "ec2",
                    "RunInstances",
                    {
                        "instancesSet": {"items": [{"imageId": "ami-0a1b2c3d4e5f60718", "minCount": 4, "maxCount": 4}]},
                        "instanceType": "c5.4xlarge",
                    },
                    None,
                )
            )
        t = a.play(t, steps, region=region)


def _instance_creds(a: Actor, t: float, org: Organisation) -> None:
    steps: list[Step] = [
        (0, "sts", "GetCallerIdentity", None, None),
        (8, "s3", "ListBuckets", {"Host": "s3.us-east-1.amazonaws.com"}, None),
        (4, "s3", "GetBucketLocation", {"bucketName": org.accounts["prod"].resources.buckets[1], "location": ""}, None),
        (6, "ec2", "DescribeInstances", {"instancesSet": {}, "filterSet": {}}, "denied"),
        (5, "secretsmanager", "ListSecrets", {"maxResults": 100}, "denied"),
        (5, "secretsmanager", "GetSecretValue", {"secretId": org.accounts["prod"].resources.secrets[0]}, None),
        (7, "ssm", "GetParametersByPath", {"path": "/prod", "recursive": True, "withDecryption": True}, "denied"),
        (4, "iam", "ListRoles", None, "denied"),
        (3, "iam", "ListAttachedRolePolicies", {"roleName": "prod-app-instance-role"}, "denied"),
    ]
    a.play(t, steps)


_BRUTE = [
    ("iam", "ListUsers"),
    ("iam", "ListRoles"),
    ("iam", "ListPolicies"),
    ("iam", "ListGroups"),
    ("iam", "GetAccountSummary"),
    ("iam", "ListAccessKeys"),
    ("iam", "GetAccountPasswordPolicy"),
    ("iam", "ListSAMLProviders"),
    ("iam", "ListOpenIDConnectProviders"),
    ("iam", "ListInstanceProfiles"),
    ("ec2", "DescribeInstances"),
    ("ec2", "DescribeVolumes"),
    ("ec2", "DescribeSnapshots"),
    ("ec2", "DescribeVpcs"),
    ("ec2", "DescribeKeyPairs"),
    ("ec2", "DescribeImages"),
    ("ec2", "DescribeAddresses"),
    ("ec2", "DescribeRegions"),
    ("s3", "ListBuckets"),
    ("lambda", "ListFunctions20150331"),
    ("lambda", "ListLayers20181031"),
    ("dynamodb", "ListTables"),
    ("dynamodb", "ListBackups"),
    ("rds", "DescribeDBInstances"),
    ("rds", "DescribeDBSnapshots"),
    ("rds", "DescribeDBClusters"),
    ("secretsmanager", "ListSecrets"),
    ("ssm", "DescribeParameters"),
    ("ssm", "ListDocuments"),
    ("kms", "ListKeys"),
    ("kms", "ListAliases"),
    ("sns", "ListTopics"),
    ("sqs", "ListQueues"),
    ("cloudtrail", "DescribeTrails"),
    ("guardduty", "ListDetectors"),
    ("route53", "ListHostedZones"),
    ("cloudformation", "ListStacks"),
    ("ecs", "ListClusters"),
    ("eks", "ListClusters"),
    ("ecr", "DescribeRepositories"),
    ("elasticloadbalancing", "DescribeLoadBalancers"),
    ("glue", "GetDatabases"),
    ("athena", "ListWorkGroups"),
    ("redshift", "DescribeClusters"),
    ("sagemaker", "ListNotebookInstances"),
    ("organizations", "DescribeOrganization"),
    ("organizations", "ListAccounts"),
    ("backup", "ListBackupVaults"),
    ("codecommit", "ListRepositories"),
    ("codebuild", "ListProjects"),
    ("config", "DescribeConfigRules"),
    ("monitoring", "DescribeAlarms"),
    ("events", "ListRules"),
    ("states", "ListStateMachines"),
    ("apigateway", "GetRestApis"),
    ("cloudfront", "ListDistributions20200531"),
    ("acm", "ListCertificates"),
    ("elasticache", "DescribeCacheClusters"),
    ("es", "ListDomainNames"),
    ("kinesis", "ListStreams"),
]


def _bruteforce(a: Actor, t: float, org: Organisation) -> None:
    allowed = {("sqs", "ListQueues"), ("kms", "ListAliases"), ("sts", "GetCallerIdentity")}
    steps: list[Step] = [(0, "sts", "GetCallerIdentity", None, None)]
    rng = a.trail.rng
    calls = list(_BRUTE) * 2
    rng.shuffle(calls)
    for service, name in calls:
        steps.append((rng.uniform(0.05, 0.8), service, name, None, None if (service, name) in allowed else "denied"))
    a.play(t, steps)


AttackBuilder = Callable[[Actor, float, Organisation], None]

#: name → (tactics, techniques, description, networks, hour (UTC) or None for victim's night, builder)
ATTACKS: dict[str, tuple[list[str], list[str], str, tuple[str, ...], AttackBuilder]] = {
    "credential_compromise_discovery": (
        ["InitialAccess", "Discovery"],
        ["T1078.004", "T1087.004", "T1580"],
        "A leaked long-term access key is used from a VPS to enumerate identities, buckets and instances in every "
        "region.",
        ("do_amsterdam", "hetzner_helsinki"),
        _discovery,
    ),
    "iam_privilege_escalation": (
        ["PrivilegeEscalation", "Persistence"],
        ["T1098.003", "T1484"],
        "A developer's key, after AccessDenied on AttachUserPolicy, creates a new default version of a customer "
        "policy granting *:* and attaches AdministratorAccess to itself.",
        ("m247_frankfurt", "datacamp_dallas"),
        _privesc,
    ),
    "persistence_new_user_and_keys": (
        ["Persistence"],
        ["T1136.003", "T1098.001"],
        "An admin session creates a new IAM user with AdministratorAccess, an access key and a console password, "
        "and adds an access key to an existing user (Stratus aws.persistence.iam-create-admin-user / "
        "iam-backdoor-user).",
        ("att_dallas", "comcast_spokane"),
        _persistence,
    ),
    "log_and_detector_tampering": (
        ["DefenseEvasion"],
        ["T1562.008", "T1562.001"],
        "CloudTrail is told to stop logging management events and then stopped; GuardDuty, Security Hub, Config "
        "and VPC flow logs are disabled (Stratus aws.defense-evasion.*).",
        ("hetzner_falkenstein", "ovh_roubaix"),
        _tampering,
    ),
    "secret_harvesting": (
        ["CredentialAccess"],
        ["T1555.006", "T1552"],
        "The CI role's credentials are used outside GitHub to list and read every secret and SecureString "
        "parameter (Stratus aws.credential-access.secretsmanager-retrieve-secrets).",
        ("rostelecom_moscow", "tedata_giza"),
        _secrets,
    ),
    "snapshot_exfiltration": (
        ["Exfiltration"],
        ["T1537"],
        "An engineer's SSO session snapshots a volume and an RDS database and shares both with an outside account "
        "(Stratus aws.exfiltration.ec2-share-ebs-snapshot / rds-share-snapshot).",
        ("datacamp_prague", "m247_bucharest"),
        _snapshots,
    ),
    "bucket_exfiltration": (
        ["Exfiltration", "Collection"],
        ["T1537", "T1530"],
        "A data engineer's key lists the buckets, removes a bucket's public-access block and adds a bucket policy "
        "granting an outside account read access (Stratus aws.exfiltration.s3-backdoor-bucket-policy).",
        ("vultr_washington", "linode_richardson"),
        _buckets,
    ),
    "cryptomining_unused_regions": (
        ["Impact", "Execution"],
        ["T1496", "T1578.002"],
        "Terraform's role is used from a VPS to launch GPU instances in four regions the organisation never uses, "
        "hitting vCPU limits and falling back to smaller types.",
        ("ovh_roubaix", "do_northbergen"),
        _mining,
    ),
    "instance_credentials_outside_aws": (
        ["CredentialAccess", "Discovery"],
        ["T1552.005"],
        "An EC2 instance role's session credentials, stolen through the metadata service, are used from a mobile "
        "network outside AWS (GuardDuty InstanceCredentialExfiltration.OutsideAWS).",
        ("tmobile_chicago", "vzw_newark"),
        _instance_creds,
    ),
    "permission_bruteforce": (
        ["Discovery"],
        ["T1580", "T1526"],
        "A Lambda role's credentials are fed to an enumerate-iam style tool: over a hundred List/Describe calls "
        "across sixty services in a few minutes, nearly all AccessDenied.",
        ("chinanet_nanjing", "vnpt_hanoi"),
        _bruteforce,
    ),
}


def _pick_human(org: Organisation, rng: random.Random, kind: str, teams: tuple[str, ...], used: set[str]) -> Human:
    pool = [h for h in org.humans if h.kind == kind and h.team in teams and h.name not in used and h.join_day == 0]
    pool = pool or [h for h in org.humans if h.kind == kind and h.name not in used and h.join_day == 0]
    pool = pool or [h for h in org.humans if h.join_day == 0]
    h = rng.choice(pool)
    used.add(h.name)
    return h


def _pick_workload(org: Organisation, kinds: tuple[str, ...]) -> Workload | None:
    for kind in kinds:
        for w in org.workloads:
            if w.kind == kind and w.account == "prod":
                return w
    return None


def inject_attack(trail: Trail, org: Organisation, name: str, day: int, label_id: str, used: set[str]) -> Label:
    """Carry out attack ``name`` on ``day``; returns its label."""
    rng = trail.rng
    if name == "stratus_replay":
        return _stratus_replay(trail, org, day, label_id, used)
    tactics, techniques, description, nets, builder = ATTACKS[name]
    net = NETWORKS[nets[rng.randrange(len(nets))]]
    ip = net.host(rng.randrange(254))
    acct = org.accounts["prod"]
    day_start = trail.start + day * DAY
    ua: str | Callable[[str, str], str] = KALI_BOTO
    region = acct.regions[0]
    ident: Identity
    victim: str
    hour = rng.uniform(0, 24)
    if name in (
        "credential_compromise_discovery",
        "iam_privilege_escalation",
        "log_and_detector_tampering",
        "bucket_exfiltration",
    ):
        teams = {"bucket_exfiltration": ("data",), "log_and_detector_tampering": ("security", "platform")}.get(
            name, ("backend", "platform")
        )
        h = _pick_human(org, rng, "iam", teams, used)
        ident = iam_user(acct.id, h.name, h.user_id, h.access_key)
        victim = h.email
        hour = (rng.uniform(1, 4) - h.utc_offset) % 24  # the victim's night
        ua = _cli if name != "bucket_exfiltration" else KALI_BOTO
    elif name in ("persistence_new_user_and_keys", "snapshot_exfiltration"):
        teams = ("platform",) if name == "persistence_new_user_and_keys" else ("backend", "platform")
        h = _pick_human(org, rng, "sso", teams, used)
        role_name, role_id = acct.sso_role_ids[SSO_SETS[h.team]]
        ident = assumed_role(
            acct.id,
            role_name,
            "/aws-reserved/sso.amazonaws.com/",
            role_id,
            h.email,
            key_id(rng, "ASIA"),
            day_start,
            stable_session=True,
        )
        victim = h.email
        hour = (rng.uniform(19, 23) - h.utc_offset) % 24
        ua = _cli
    else:
        kinds = {
            "secret_harvesting": ("ci", "terraform", "lambda"),
            "cryptomining_unused_regions": ("terraform", "ci", "lambda"),
            "instance_credentials_outside_aws": ("instance", "lambda"),
            "permission_bruteforce": ("lambda", "instance"),
        }[name]
        w = _pick_workload(org, kinds)
        if w is None:
            h = _pick_human(org, rng, "iam", ("backend",), used)
            ident = iam_user(acct.id, h.name, h.user_id, h.access_key)
            victim = h.email
        else:
            session = {
                "ci": f"GitHubActions-{rng.randrange(9_000_000_000, 9_999_999_999)}",
                "terraform": f"terraform-{rng.randrange(9_000_000_000, 9_999_999_999)}",
                "lambda": w.role.removesuffix("-role"),
                "instance": w.instances[0][0] if w.instances else "i-0",
            }[w.kind]
            ident = workload_session(rng, org, w, session, day_start + hour * 3600 - 600)
            victim = session
            region = w.region
            ua = {
                "ci": KALI_BOTO,
                "terraform": TERRAFORM_UA.format(svc="ec2"),
                "lambda": KALI_BOTO,
                "instance": LAMBDA_UA.replace("exec-env/AWS_Lambda_python3.12 ", ""),
            }[w.kind]
            if name == "permission_bruteforce":
                ua = KALI_BOTO
            if name == "cryptomining_unused_regions":
                ua = _go
    label = Label(
        id=label_id,
        kind="attack",
        name=name,
        description=description,
        principal=ident.principal,
        actor=ident.actor,
        account=acct.id,
        tactics=list(tactics),
        techniques=list(techniques),
        network=_net_dict(net, ip),
        extra={"victim": victim},
    )
    actor = Actor(trail=trail, ident=ident, ip=ip, ua=ua, region=region, label=label)
    builder(actor, day_start + hour * 3600, org)
    return label


def _stratus_replay(trail: Trail, org: Organisation, day: int, label_id: str, used: set[str]) -> Label:
    from trailsight.simulate.replay import replay

    rng = trail.rng
    acct = org.accounts["prod"]
    h = _pick_human(org, rng, "iam", ("platform", "backend"), used)
    net = NETWORKS[rng.choice(("do_amsterdam", "linode_richardson"))]
    ip = net.host(rng.randrange(254))
    start = trail.start + day * DAY + min(22.5, (rng.uniform(20, 22) - h.utc_offset) % 24) * 3600
    label = Label(
        id=label_id,
        kind="attack",
        name="stratus_replay",
        description="The real Stratus Red Team detonation of invictus-ir/aws_dataset (MIT), about 30 techniques "
        "in 34 minutes, replayed with this user's access key from a VPS.",
        principal=f"arn:aws:iam::{acct.id}:user/{h.name}",
        actor=f"arn:aws:iam::{acct.id}:user/{h.name}",
        account=acct.id,
        tactics=[
            "Discovery",
            "Persistence",
            "PrivilegeEscalation",
            "DefenseEvasion",
            "CredentialAccess",
            "Exfiltration",
            "Execution",
            "Impact",
        ],
        techniques=["T1078.004", "T1098", "T1136.003", "T1562.008", "T1552", "T1537", "T1496"],
        network=_net_dict(net, ip),
        extra={"victim": h.email, "source": "real:invictus-ir/aws_dataset (MIT)"},
    )
    for ts, rec in replay(
        trail, start=start, account=acct.id, user=h.name, user_id=h.user_id, user_key=h.access_key, ip=ip
    ):
        label.add(rec, ts)
    return label


# ---------------------------------------------------------------------------
# Benign surprises


@dataclass(kw_only=True)
class _BenignScene:
    """What every benign surprise works with: the trail, the organisation, its day and its label's id."""

    trail: Trail
    org: Organisation
    name: str
    day: int
    days: int
    label_id: str
    used: set[str]  # people already picked by an injection
    skip: set[tuple[str, int]]  # (person, day) the baseline leaves out

    @property
    def rng(self) -> random.Random:
        """The trail's seeded generator."""
        return self.trail.rng

    @property
    def acct(self) -> Account:
        """The prod account, where every benign surprise happens."""
        return self.org.accounts["prod"]

    def midnight(self, day: int, utc_offset: int) -> float:
        """Local midnight of simulated ``day`` at ``utc_offset`` hours."""
        return local_midnight(self.trail.start + day * DAY, utc_offset)

    def label(self, principal: str, actor: str, description: str, **extra: Any) -> Label:
        """The label of this surprise."""
        return Label(
            id=self.label_id,
            kind="benign",
            name=self.name,
            description=description,
            principal=principal,
            actor=actor,
            account=self.acct.id,
            extra=extra,
        )

    def who(self, h: Human) -> tuple[str, str]:
        """``(principal, actor)`` ARNs of a person: their IAM user, or their SSO role and session."""
        if h.kind == "iam":
            arn = f"arn:aws:iam::{self.acct.id}:user/{h.name}"
            return arn, arn
        role_name, _ = self.acct.sso_role_ids[SSO_SETS[h.team]]
        arn = f"arn:aws:iam::{self.acct.id}:role/aws-reserved/sso.amazonaws.com/{role_name}"
        return arn, f"{arn}/{h.email}"


def _travel(s: _BenignScene) -> Label:
    rng = s.rng
    h = _pick_human(s.org, rng, "sso", ("backend", "data", "platform"), s.used)
    net = NETWORKS[rng.choice(("rogers_toronto", "orange_paris"))]
    offset = -5 if net.country == "CA" else 1
    principal, actor = s.who(h)
    lab = s.label(
        principal,
        actor,
        f"{h.email} works from {net.city}, {net.country} for a few days.",
        network=_net_dict(net, net.host(h.home_index)),
    )
    ip = net.host(h.home_index)
    for d in range(s.day, min(s.days, s.day + 4)):
        s.skip.add((h.name, d))
        midnight = s.midnight(d, offset)
        for _ in range(rng.randint(1, 3)):
            ts = midnight + rng.uniform(h.start_hour, h.end_hour - 0.5) * 3600
            for rec in human_session(s.trail, s.org, h, ts, ip=ip, n_events=rng.randint(6, 25), env="prod"):
                lab.add(rec, _ts(rec))
    return lab


def _new_hire(s: _BenignScene) -> Label:
    rng, org, acct, day = s.rng, s.org, s.acct, s.day
    used_names = {h.name for h in org.humans}
    h = make_human(rng, len(org.humans) + 3, "data", "iam", used_names, join_day=day)
    org.humans.append(h)
    principal, actor = s.who(h)
    admin = next((x for x in org.humans if x.team == "platform" and x.kind == "iam"), org.humans[0])
    lab = s.label(
        principal,
        actor,
        f"New data engineer {h.name} joins in {h.city}; an admin creates the user.",
        network=_net_dict(NETWORKS[h.home_net], home_ip(h, day)),
    )
    t = s.midnight(day, admin.utc_offset) + 9.2 * 3600
    ident = iam_user(acct.id, admin.name, admin.user_id, admin.access_key)
    for service, api, req in (
        ("iam", "CreateUser", {"userName": h.name}),
        ("iam", "AddUserToGroup", {"groupName": "data-engineers", "userName": h.name}),
        ("iam", "CreateLoginProfile", {"userName": h.name, "passwordResetRequired": True}),
    ):
        emitted = s.trail.emit(
            ident,
            t,
            service,
            api,
            "us-east-1",
            home_ip(admin, day),
            human_cli_ua(admin, service, kebab(api)),
            request=req,
        )
        lab.add(emitted, t)
        t += rng.uniform(5, 30)
    # The hire's own days are generated by the baseline (join_day); label their first two days.
    lab.extra["first_days"] = [iso(s.trail.start + day * DAY), iso(s.trail.start + (day + 2) * DAY)]
    lab.extra["person"] = h.name
    return lab


def _new_pipeline(s: _BenignScene) -> Label:
    trail, org = s.trail, s.org
    base = next((w for w in org.workloads if w.kind == "lambda"), None)
    w = dataclasses.replace(
        base or org.workloads[0],
        role="reports-export-role",
        path="/service-role/",
        kind="lambda",
        account="prod",
        region="us-east-1",
        role_id=key_id(s.rng, "AROA"),
        every_min=60,
        offset_min=13,
        start_day=s.day,
        calls=[
            ("athena", "StartQueryExecution"),
            ("athena", "GetQueryExecution"),
            ("s3", "GetBucketLocation"),
            ("logs", "CreateLogStream"),
        ],
    )
    principal = f"arn:aws:iam::{s.acct.id}:role/service-role/reports-export-role"
    lab = s.label(principal, principal, "A new scheduled Lambda (reports-export) is deployed and runs hourly.")
    before = len(trail.records)
    run_lambda(trail, org, w, s.days)
    for ts, rec in trail.records[before:]:
        if ts < trail.start + (s.day + 2) * DAY:
            lab.add(rec, ts)
    return lab


def _troubleshooting(s: _BenignScene) -> Label:
    h = _pick_human(s.org, s.rng, "sso", ("platform",), s.used)
    principal, actor = s.who(h)
    lab = s.label(principal, actor, f"{h.email} debugs a networking issue with rarely used read APIs.")
    ts = s.midnight(s.day, h.utc_offset) + s.rng.uniform(11, 15) * 3600
    vocab = [(svc, n, 1.0) for svc, n in TROUBLESHOOTING]
    for rec in human_session(
        s.trail,
        s.org,
        h,
        ts,
        ip=home_ip(h, s.day),
        n_events=18,
        env="prod",
        console=False,
        vocab=vocab,
        error_rate=0.0,
    ):
        lab.add(rec, _ts(rec))
    return lab


def _on_call_night(s: _BenignScene) -> Label:
    h = _pick_human(s.org, s.rng, "iam", ("platform", "backend"), s.used)
    principal, actor = s.who(h)
    lab = s.label(principal, actor, f"{h.name} is paged at night and fixes an incident from home.")
    ts = s.midnight(s.day, h.utc_offset) + s.rng.uniform(2, 3.5) * 3600
    vocab = TEAM_VOCAB["platform"] + [("ecs", "UpdateService", 5.0), ("logs", "FilterLogEvents", 10.0)]
    for rec in human_session(
        s.trail, s.org, h, ts, ip=home_ip(h, s.day), n_events=40, env="prod", console=False, vocab=vocab
    ):
        lab.add(rec, _ts(rec))
    return lab


def _service_adoption(s: _BenignScene) -> Label | None:
    team = [h for h in s.org.humans if h.team == "data" and h.join_day == 0][:4]
    if not team:
        return None
    lab = s.label(
        s.who(team[0])[0],
        s.who(team[0])[1],
        "The data team starts using Amazon Bedrock.",
        members=[s.who(h)[1] for h in team],
    )
    for i, h in enumerate(team):
        for d in range(s.day + (i % 2), min(s.days, s.day + 3)):
            ts = s.midnight(d, h.utc_offset) + s.rng.uniform(10, 16) * 3600
            for rec in human_session(
                s.trail,
                s.org,
                h,
                ts,
                ip=home_ip(h, d),
                n_events=s.rng.randint(5, 15),
                env="prod",
                console=False,
                vocab=BEDROCK,
                error_rate=0.05,
            ):
                lab.add(rec, _ts(rec))
    return lab


def _error_burst(s: _BenignScene) -> Label:
    rng, acct = s.rng, s.acct
    h = _pick_human(s.org, rng, "sso", ("security", "data"), s.used)
    principal, actor = s.who(h)
    lab = s.label(
        principal,
        actor,
        f"A misconfigured audit script run by {h.email} loops on GetBucketPolicy and gets AccessDenied.",
    )
    role_name, role_id = acct.sso_role_ids[SSO_SETS[h.team]]
    ts = s.midnight(s.day, h.utc_offset) + rng.uniform(13, 16) * 3600
    ident = assumed_role(
        acct.id,
        role_name,
        "/aws-reserved/sso.amazonaws.com/",
        role_id,
        h.email,
        key_id(rng, "ASIA"),
        ts,
        stable_session=True,
    )
    ip = home_ip(h, s.day)
    t = ts
    for _ in range(150):
        b = rng.choice(acct.resources.buckets)
        emitted = s.trail.emit(
            ident,
            t,
            "s3",
            "GetBucketPolicy",
            "us-east-1",
            ip,
            human_cli_ua(h, "s3api", "get-bucket-policy"),
            request={"bucketName": b, "Host": f"{b}.s3.us-east-1.amazonaws.com", "policy": ""},
            error="denied",
            resource=f"arn:aws:s3:::{b}",
        )
        lab.add(emitted, t)
        t += rng.uniform(2, 20)
    return lab


#: The builder of each benign surprise (the names of :data:`BENIGN_NAMES`).
_BENIGN: dict[str, Callable[[_BenignScene], Label | None]] = {
    "travel": _travel,
    "new_hire": _new_hire,
    "new_pipeline": _new_pipeline,
    "troubleshooting": _troubleshooting,
    "service_adoption": _service_adoption,
    "on_call_night": _on_call_night,
    "error_burst": _error_burst,
}


def inject_benign(
    trail: Trail,
    org: Organisation,
    name: str,
    day: int,
    days: int,
    label_id: str,
    used: set[str],
    skip: set[tuple[str, int]],
) -> Label | None:
    """Add benign surprise ``name`` starting on ``day``; returns its label."""
    builder = _BENIGN.get(name)
    if builder is None:
        raise ValueError(f"unknown benign scenario {name!r}")
    scene = _BenignScene(trail=trail, org=org, name=name, day=day, days=days, label_id=label_id, used=used, skip=skip)
    return builder(scene)


def _ts(rec: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.strptime(rec["eventTime"], "%Y-%m-%dT%H:%M:%S%z").timestamp()


__all__ = [
    "ATTACKS",
    "ATTACK_NAMES",
    "BENIGN_NAMES",
    "EXTRA_ATTACKS",
    "Label",
    "inject_attack",
    "inject_benign",
    "request_for",
]
