"""Everyday activity: people at work, automation on its cadence, AWS services, root now and then."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from trailsight.simulate.apis import CONSOLE_EXTRA, TEAM_VOCAB, request_for
from trailsight.simulate.networks import AWS_BY_REGION, NETWORKS
from trailsight.simulate.organisation import (
    BROWSERS,
    SSO_SETS,
    VENDOR_ACCOUNT,
    Account,
    Human,
    Organisation,
    Workload,
    human_cli_ua,
)
from trailsight.simulate.records import (
    Identity,
    assumed_role,
    aws_account,
    aws_service,
    iam_user,
    iam_user_console,
    iso,
    kebab,
    key_id,
    role_arn,
    root,
    web_identity_user,
)
from trailsight.simulate.trail import Trail

DAY = 86_400.0
LAMBDA_UA = (
    "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#5.10.226-214.880.amzn2.x86_64 md/arch#x86_64 "
    "lang/python#3.12.6 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.35.36"
)
AGENT_UA = "aws-sdk-go/1.55.5 (go1.22.8; linux; amd64) amazon-ssm-agent/3.3.1142.0"
VENDOR_UA = "aws-sdk-go/1.55.6 (go1.23.4; linux; amd64)"
GHA_UA = (
    "aws-cli/2.22.4 md/awscrt#0.22.0 ua/2.0 os/linux#6.5.0-1025-azure md/arch#x86_64 lang/python#3.12.6 "
    "md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.22 md/prompt#off md/command#{cmd}"
)
TERRAFORM_UA = (
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.40.0 "
    "(+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.25.2 os/linux lang/go#1.21.8 "
    "md/GOOS#linux md/GOARCH#amd64 api/{svc}#1.150.0"
)
GITHUB_OIDC = "token.actions.githubusercontent.com"
SSO_PATH = "/aws-reserved/sso.amazonaws.com/"


def weighted(rng: random.Random, items: list[tuple[str, str, float]]) -> tuple[str, str]:
    """Pick one (service, api) by weight."""
    total = sum(w for _, _, w in items)
    x = rng.random() * total
    for s, n, w in items:
        x -= w
        if x <= 0:
            return s, n
    return items[-1][0], items[-1][1]


def local_weekday(ts: float, offset_h: int) -> int:
    """Weekday (0 = Monday) at ``ts`` in a fixed UTC offset."""
    return datetime.fromtimestamp(ts + offset_h * 3600, UTC).weekday()


def local_midnight(day_start: float, offset_h: int) -> float:
    """UTC epoch of local midnight for the UTC day starting at ``day_start``."""
    return day_start - offset_h * 3600


# ---------------------------------------------------------------------------
# People


def human_identity(
    rng: random.Random, org: Organisation, h: Human, acct: Account, ts: float, console: bool
) -> Identity:
    """The identity a person's session carries in ``acct``."""
    if h.kind == "iam":
        if console:
            return iam_user_console(acct.id, h.name, h.user_id, key_id(rng, "ASIA"), ts, mfa=True)
        return iam_user(acct.id, h.name, h.user_id, h.access_key)
    role_name, role_id = acct.sso_role_ids[SSO_SETS[h.team]]
    return assumed_role(acct.id, role_name, SSO_PATH, role_id, h.email, key_id(rng, "ASIA"), ts, stable_session=True)


def human_session(
    trail: Trail,
    org: Organisation,
    h: Human,
    ts: float,
    *,
    ip: str,
    n_events: int,
    env: str | None = None,
    console: bool | None = None,
    vocab: list[tuple[str, str, float]] | None = None,
    region: str | None = None,
    error_rate: float = 0.02,
) -> list[dict[str, Any]]:
    """One working session of a person; returns its records."""
    rng = trail.rng
    if env is None:
        env = "staging" if h.kind == "sso" and rng.random() < h.staging_share else "prod"
    acct = org.account(env)
    if console is None:
        console = rng.random() < h.console_share
    if region is None:
        region = acct.regions[0] if rng.random() < 0.85 else acct.regions[1]
    ident = human_identity(rng, org, h, acct, ts, console)
    out: list[dict[str, Any]] = []
    browser = BROWSERS[h.os]
    if console:
        login_ident = iam_user(acct.id, h.name, h.user_id, None) if h.kind == "iam" else ident
        rec = trail.emit(
            login_ident,
            ts,
            "signin",
            "ConsoleLogin",
            "us-east-1",
            ip,
            browser,
            response={"ConsoleLogin": "Success"},
            additional={
                "LoginTo": "https://console.aws.amazon.com/console/home",
                "MobileVersion": "No",
                "MFAUsed": "Yes" if h.kind == "iam" else "No",
            },
            event_type="AwsConsoleSignIn",
            read_only=False,
        )
        if rec:
            out.append(rec)
    items = vocab if vocab is not None else h.favourites
    t = ts + rng.uniform(2, 20)
    for _ in range(n_events):
        if console and rng.random() < 0.08:
            service, name = weighted(rng, CONSOLE_EXTRA)
        elif vocab is None and rng.random() < 0.02:
            service, name = weighted(rng, TEAM_VOCAB[h.team])  # now and then something new from the team's work
        else:
            service, name = weighted(rng, items)
        if console:
            ua = rng.choice(("AWS Internal", f"console.{service}.amazonaws.com", browser))
        else:
            ua = human_cli_ua(h, service, kebab(name))
        err = None
        x = rng.random()
        if x < error_rate:
            err = "denied"
        elif x < error_rate * 1.5:
            err = "notfound"
        elif x < error_rate * 1.7:
            err = "throttle"
        rec = trail.emit(
            ident,
            t,
            service,
            name,
            region,
            ip,
            ua,
            request=request_for(service, name, acct.resources, region, rng),
            error=err,
            console=console,
        )
        if rec:
            out.append(rec)
        # Console page loads fire calls together; people pause between actions.
        t += rng.uniform(0, 2) if console and rng.random() < 0.4 else rng.expovariate(1 / 50) + 1
    return out


def home_ip(h: Human, day: int) -> str:
    """The person's home address on ``day`` (the ISP re-leases it every two weeks or so)."""
    return NETWORKS[h.home_net].host(h.home_index + (day + h.home_index) // 13)


def people(trail: Trail, org: Organisation, days: int, skip: set[tuple[str, int]]) -> None:
    """Working days of everyone (skipping (person, day) pairs a scenario takes over)."""
    rng = trail.rng
    for h in org.humans:
        for d in range(h.join_day, days):
            if (h.name, d) in skip:
                continue
            midnight = local_midnight(trail.start + d * DAY, h.utc_offset)
            weekday = local_weekday(midnight + 43_200 - h.utc_offset * 3600, h.utc_offset)
            if weekday >= 5:
                if rng.random() > 0.06:
                    continue
                sessions = 1
            else:
                if rng.random() > 0.9:
                    continue  # leave, sick day, meetings all day
                sessions = rng.choice((1, 2, 2, 3))
            for _ in range(sessions):
                hour = rng.uniform(h.start_hour, h.end_hour - 0.5)
                ts = midnight + hour * 3600
                ip = home_ip(h, d)
                if h.mobile_net and rng.random() < 0.05:
                    ip = NETWORKS[h.mobile_net].host(rng.randrange(254))
                elif h.vpn_net and rng.random() < 0.15:
                    ip = NETWORKS[h.vpn_net].host(rng.randrange(254))
                human_session(trail, org, h, ts, ip=ip, n_events=rng.randint(4, 35))
            if h.cron_net:
                _cron(trail, org, h, trail.start + d * DAY + 3 * 3600 + rng.uniform(0, 120))


_CRON_UA = (
    "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#5.15.0-105-generic md/arch#x86_64 lang/python#3.10.12 "
    "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.84"
)


def _cron(trail: Trail, org: Organisation, h: Human, ts: float) -> None:
    """A person's nightly script on their own VPS, using their long-term access key."""
    rng = trail.rng
    acct = org.account("prod")
    ident = iam_user(acct.id, h.name, h.user_id, h.access_key)
    ip = NETWORKS[h.cron_net].host(h.home_index)
    for service, name in (
        ("s3", "ListBuckets"),
        ("dynamodb", "DescribeTable"),
        ("dynamodb", "DescribeTable"),
        ("logs", "DescribeLogGroups"),
    ):
        trail.emit(
            ident,
            ts,
            service,
            name,
            acct.regions[0],
            ip,
            _CRON_UA,
            request=request_for(service, name, acct.resources, acct.regions[0], rng),
        )
        ts += rng.uniform(0.2, 2)


# ---------------------------------------------------------------------------
# Workloads


def _aws_ip(rng: random.Random, region: str, index: int | None = None) -> str:
    keys = AWS_BY_REGION[region]
    net = NETWORKS[keys[(index or 0) % len(keys)]]
    return net.host(rng.randrange(254) if index is None else index)


def _sts_assume(
    trail: Trail,
    caller: Identity,
    ts: float,
    ip: str,
    ua: str,
    role: str,
    session: str,
    acct: str,
    role_id: str,
    key: str,
    *,
    name: str = "AssumeRole",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    subject = (extra or {}).get("_subject")
    req: dict[str, Any] = {"roleArn": role, "roleSessionName": session, "durationSeconds": 3600}
    req.update({k: v for k, v in (extra or {}).items() if not k.startswith("_")})
    resp: dict[str, Any] = {
        "credentials": {"accessKeyId": key, "sessionToken": "<redacted>", "expiration": iso(ts + 3600)},
        "assumedRoleUser": {
            "assumedRoleId": f"{role_id}:{session}",
            "arn": f"arn:aws:sts::{acct}:assumed-role/{role.rsplit('/', 1)[1]}/{session}",
        },
    }
    if name == "AssumeRoleWithWebIdentity":
        resp["subjectFromWebIdentityToken"] = subject
        resp["audience"] = "sts.amazonaws.com"
        resp["provider"] = f"arn:aws:iam::{acct}:oidc-provider/{GITHUB_OIDC}"
    return trail.emit(
        caller,
        ts,
        "sts",
        name,
        "us-east-1",
        ip,
        ua,
        request=req,
        response=resp,
        resources=[{"accountId": acct, "type": "AWS::IAM::Role", "ARN": role}],
        shared_event_id=None,
        recipient=acct,
    )


def workload_session(
    rng: random.Random, org: Organisation, w: Workload, session: str, ts: float, key: str | None = None
) -> Identity:
    """A role session of workload ``w``."""
    acct = org.account(w.account)
    return assumed_role(acct.id, w.role, w.path, w.role_id, session, key or key_id(rng, "ASIA"), ts, invoked_by=None)


def run_lambda(trail: Trail, org: Organisation, w: Workload, days: int) -> None:
    """A scheduled function: same calls every tick from Lambda's addresses in its region."""
    rng = trail.rng
    acct = org.account(w.account)
    fn = w.role.removesuffix("-role")
    lambda_svc = aws_service("lambda.amazonaws.com", acct.id)
    ident: Identity | None = None
    expires = 0.0
    t = trail.start + w.start_day * DAY + w.offset_min * 60
    while t < trail.start + days * DAY:
        if t >= expires:
            key = key_id(rng, "ASIA")
            _sts_assume(
                trail,
                lambda_svc,
                t - 1,
                "lambda.amazonaws.com",
                "lambda.amazonaws.com",
                role_arn(acct.id, w.role, w.path),
                fn,
                acct.id,
                w.role_id,
                key,
            )
            ident = workload_session(rng, org, w, fn, t - 1, key)
            expires = t + rng.uniform(3, 8) * 3600
        assert ident is not None
        ip = _aws_ip(rng, w.region)
        ct = t + rng.uniform(0, 20)
        for service, name in w.calls:
            err = "throttle" if rng.random() < 0.004 else None
            trail.emit(
                ident,
                ct,
                service,
                name,
                w.region,
                ip,
                LAMBDA_UA,
                request=request_for(service, name, acct.resources, w.region, rng),
                error=err,
            )
            ct += rng.uniform(0.05, 1.5)
        t += w.every_min * 60


def run_instances(trail: Trail, org: Organisation, w: Workload, days: int) -> None:
    """EC2 instances using their instance-profile role every few minutes."""
    rng = trail.rng
    acct = org.account(w.account)
    ec2_svc = aws_service("ec2.amazonaws.com", acct.id)
    end = trail.start + days * DAY
    for inst, ip_index in w.instances:
        ip = _aws_ip(rng, w.region, ip_index)
        t = trail.start + rng.uniform(0, w.every_min * 60)
        ident: Identity | None = None
        expires = 0.0
        while t < end:
            if t >= expires:
                key = key_id(rng, "ASIA")
                _sts_assume(
                    trail,
                    ec2_svc,
                    t - 2,
                    "ec2.amazonaws.com",
                    "ec2.amazonaws.com",
                    role_arn(acct.id, w.role, w.path),
                    inst,
                    acct.id,
                    w.role_id,
                    key,
                )
                ident = workload_session(rng, org, w, inst, t - 2, key)
                expires = t + 3600
            assert ident is not None
            calls = [w.calls[0]] + ([rng.choice(w.calls[1:])] if rng.random() < 0.5 else [])
            for service, name in calls:
                ua = AGENT_UA if service == "ssm" else LAMBDA_UA.replace("exec-env/AWS_Lambda_python3.12 ", "")
                req = request_for(service, name, acct.resources, w.region, rng)
                if name == "UpdateInstanceInformation":
                    req = {
                        "instanceId": inst,
                        "agentVersion": "3.3.1142.0",
                        "agentStatus": "Active",
                        "platformType": "Linux",
                        "platformName": "Amazon Linux",
                        "platformVersion": "2023",
                    }
                trail.emit(ident, t, service, name, w.region, ip, ua, request=req)
                t += rng.uniform(0.1, 3)
            t += w.every_min * 60 * rng.uniform(0.9, 1.1)


def run_vendor(trail: Trail, org: Organisation, w: Workload, days: int) -> None:
    """The monitoring vendor: cross-account AssumeRole hourly, then read-only polling of every region."""
    rng = trail.rng
    acct = org.account(w.account)
    vendor = aws_account(VENDOR_ACCOUNT, "AROAWXYZVENDORINTEG01:dd-integration", acct.id)
    end = trail.start + days * DAY
    t = trail.start + rng.uniform(0, 600)
    ident: Identity | None = None
    expires = 0.0
    external_id = f"dd-ext-{acct.id[-4:]}"
    while t < end:
        ip = NETWORKS[w.net].host(rng.randrange(16))
        if t >= expires:
            session = f"{rng.getrandbits(48):012x}"
            key = key_id(rng, "ASIA")
            _sts_assume(
                trail,
                vendor,
                t - 5,
                ip,
                VENDOR_UA,
                role_arn(acct.id, w.role, w.path),
                session,
                acct.id,
                w.role_id,
                key,
                extra={"externalId": external_id},
            )
            ident = workload_session(rng, org, w, session, t - 5, key)
            expires = t + 3600
        assert ident is not None
        for region in acct.regions:
            ct = t + rng.uniform(0, 30)
            for service, name in w.calls:
                if rng.random() < 0.3:
                    continue
                err = "throttle" if rng.random() < 0.01 else None
                trail.emit(
                    ident,
                    ct,
                    service,
                    name,
                    region,
                    ip,
                    VENDOR_UA,
                    request=request_for(service, name, acct.resources, region, rng),
                    error=err,
                )
                ct += rng.uniform(0.05, 2)
        t += w.every_min * 60


_DEPLOY = [
    ("sts", "GetCallerIdentity"),
    ("ecr", "GetAuthorizationToken"),
    ("ecr", "BatchCheckLayerAvailability"),
    ("ecr", "InitiateLayerUpload"),
    ("ecr", "CompleteLayerUpload"),
    ("ecr", "PutImage"),
    ("ecs", "DescribeTaskDefinition"),
    ("ecs", "RegisterTaskDefinition"),
    ("ecs", "UpdateService"),
]
_TF_READS = [
    ("ec2", "DescribeVpcs"),
    ("ec2", "DescribeSubnets"),
    ("ec2", "DescribeSecurityGroups"),
    ("ec2", "DescribeRouteTables"),
    ("ec2", "DescribeVpcAttribute"),
    ("iam", "GetRole"),
    ("iam", "GetRolePolicy"),
    ("iam", "ListRolePolicies"),
    ("iam", "ListAttachedRolePolicies"),
    ("iam", "GetPolicy"),
    ("iam", "GetPolicyVersion"),
    ("s3", "GetBucketPolicy"),
    ("s3", "GetBucketVersioning"),
    ("s3", "GetBucketTagging"),
    ("s3", "GetBucketAcl"),
    ("s3", "GetBucketEncryption"),
    ("lambda", "GetFunction20150331v2"),
    ("lambda", "GetPolicy20150331v2"),
    ("dynamodb", "DescribeTable"),
    ("dynamodb", "DescribeContinuousBackups"),
    ("kms", "DescribeKey"),
    ("kms", "GetKeyPolicy"),
    ("kms", "GetKeyRotationStatus"),
    ("logs", "DescribeLogGroups"),
    ("logs", "ListTagsForResource"),
    ("sqs", "GetQueueAttributes"),
    ("ecs", "DescribeServices"),
    ("ecs", "DescribeClusters"),
    ("elasticloadbalancing", "DescribeLoadBalancers"),
    ("elasticloadbalancing", "DescribeTargetGroups"),
    ("rds", "DescribeDBInstances"),
    ("ssm", "GetParameter"),
    ("route53", "GetHostedZone"),
    ("route53", "ListResourceRecordSets"),
]
_TF_WRITES = [
    ("ec2", "CreateTags"),
    ("iam", "PutRolePolicy"),
    ("lambda", "UpdateFunctionConfiguration20150331v2"),
    ("s3", "PutBucketTagging"),
    ("ssm", "PutParameter"),
    ("ecs", "UpdateService"),
    ("logs", "PutRetentionPolicy"),
]


def _web_identity_run(
    trail: Trail, org: Organisation, w: Workload, ts: float, repo: str, ip: str
) -> tuple[Identity, float]:
    rng = trail.rng
    acct = org.account(w.account)
    subject = f"repo:northwind/{repo}:ref:refs/heads/main"
    wi = web_identity_user(acct.id, GITHUB_OIDC, subject)
    run_id = rng.randrange(9_000_000_000, 9_999_999_999)
    session = f"GitHubActions-{run_id}" if w.kind == "ci" else f"terraform-{run_id}"
    key = key_id(rng, "ASIA")
    _sts_assume(
        trail,
        wi,
        ts,
        ip,
        GHA_UA.format(cmd="sts.assume-role-with-web-identity"),
        role_arn(acct.id, w.role, w.path),
        session,
        acct.id,
        w.role_id,
        key,
        name="AssumeRoleWithWebIdentity",
        extra={"_subject": subject},
    )
    return workload_session(rng, org, w, session, ts, key), ts + rng.uniform(3, 10)


def run_ci(trail: Trail, org: Organisation, w: Workload, days: int) -> None:
    """GitHub Actions deploys on working days, through web identity from GitHub's runners on Azure."""
    rng = trail.rng
    acct = org.account(w.account)
    for d in range(w.start_day, days):
        day = trail.start + d * DAY
        if local_weekday(day + 43_200, 0) >= 5:
            continue
        runs = rng.randint(2, 7) if w.account == "prod" else rng.randint(4, 10)
        for _ in range(runs):
            ts = day + rng.uniform(13.5, 23.0) * 3600
            ip = NETWORKS[w.net].host(rng.randrange(254))
            ident, t = _web_identity_run(trail, org, w, ts, rng.choice(("orders-service", "api", "web")), ip)
            for service, name in _DEPLOY:
                cmd = f"{service}.{kebab(name)}"
                trail.emit(
                    ident,
                    t,
                    service,
                    name,
                    w.region,
                    ip,
                    GHA_UA.format(cmd=cmd),
                    request=request_for(service, name, acct.resources, w.region, rng),
                )
                t += rng.uniform(0.5, 20)
            for _ in range(rng.randint(2, 6)):
                err = "throttle" if rng.random() < 0.03 else None
                trail.emit(
                    ident,
                    t,
                    "ecs",
                    "DescribeServices",
                    w.region,
                    ip,
                    GHA_UA.format(cmd="ecs.wait"),
                    request=request_for("ecs", "DescribeServices", acct.resources, w.region, rng),
                    error=err,
                )
                t += 15


def run_terraform(trail: Trail, org: Organisation, w: Workload, days: int) -> None:
    """Nightly plan at 02:00 UTC; an apply with a few writes on some working afternoons."""
    rng = trail.rng
    acct = org.account(w.account)
    for d in range(w.start_day, days):
        day = trail.start + d * DAY
        runs = [day + 2 * 3600 + rng.uniform(0, 600)]
        if local_weekday(day + 43_200, 0) < 5 and rng.random() < 0.4:
            runs.append(day + rng.uniform(15, 21) * 3600)
        for i, ts in enumerate(runs):
            ip = NETWORKS[w.net].host(rng.randrange(254))
            ident, t = _web_identity_run(trail, org, w, ts, "infrastructure", ip)
            reads = rng.sample(_TF_READS, k=rng.randint(20, len(_TF_READS)))
            for service, name in reads:
                region = acct.regions[0] if rng.random() < 0.8 else acct.regions[1]
                err = "notfound" if name == "GetBucketPolicy" and rng.random() < 0.3 else None
                trail.emit(
                    ident,
                    t,
                    service,
                    name,
                    region,
                    ip,
                    TERRAFORM_UA.format(svc=service),
                    request=request_for(service, name, acct.resources, region, rng),
                    error=err,
                )
                t += rng.uniform(0.02, 0.6)
            if i == 1:
                for service, name in rng.sample(_TF_WRITES, k=rng.randint(1, 4)):
                    trail.emit(
                        ident,
                        t,
                        service,
                        name,
                        acct.regions[0],
                        ip,
                        TERRAFORM_UA.format(svc=service),
                        request=request_for(service, name, acct.resources, acct.regions[0], rng),
                    )
                    t += rng.uniform(0.5, 5)


def run_backup(trail: Trail, org: Organisation, w: Workload, days: int) -> None:
    """AWS Backup's service role: nightly snapshots and retention clean-up (invoked by backup.amazonaws.com)."""
    rng = trail.rng
    acct = org.account(w.account)
    host = "backup.amazonaws.com"
    for d in range(days):
        t = trail.start + d * DAY + 5 * 3600 + rng.uniform(0, 300)
        ident = assumed_role(
            acct.id,
            w.role,
            w.path,
            w.role_id,
            "AWSBackup-AWSBackupDefaultServiceRole",
            key_id(rng, "ASIA"),
            t,
            invoked_by=host,
        )
        for i in range(3):
            vol = f"vol-0{(int(acct.id) * (i + 7)) % (16**16):016x}"
            trail.emit(
                ident,
                t,
                "ec2",
                "CreateSnapshot",
                acct.regions[0],
                host,
                host,
                request={"volumeId": vol, "description": "This snapshot is created by the AWS Backup service."},
            )
            t += rng.uniform(1, 10)
        for db in acct.resources.databases:
            trail.emit(
                ident,
                t,
                "rds",
                "CreateDBSnapshot",
                acct.regions[0],
                host,
                host,
                request={
                    "dBSnapshotIdentifier": f"awsbackup-job-{rng.getrandbits(64):016x}",
                    "dBInstanceIdentifier": db,
                },
            )
            t += rng.uniform(1, 10)
        for table in acct.resources.tables[:2]:
            trail.emit(
                ident,
                t,
                "dynamodb",
                "CreateBackup",
                acct.regions[0],
                host,
                host,
                request={"tableName": table, "backupName": f"awsbackup-{d}"},
            )
            t += rng.uniform(1, 5)
        t += 1800
        for _ in range(3):
            trail.emit(
                ident,
                t,
                "ec2",
                "DeleteSnapshot",
                acct.regions[0],
                host,
                host,
                request={"snapshotId": f"snap-0{rng.getrandbits(64):016x}"},
            )
            t += rng.uniform(1, 5)


RUNNERS = {
    "lambda": run_lambda,
    "instance": run_instances,
    "vendor": run_vendor,
    "ci": run_ci,
    "terraform": run_terraform,
    "backup": run_backup,
}


def workloads(trail: Trail, org: Organisation, days: int) -> None:
    """Every workload on its cadence."""
    for w in org.workloads:
        RUNNERS[w.kind](trail, org, w, days)


# ---------------------------------------------------------------------------
# AWS services and root

_CONFIG_CALLS = [
    ("ec2", "DescribeInstances"),
    ("ec2", "DescribeSecurityGroups"),
    ("ec2", "DescribeVolumes"),
    ("iam", "GetRole"),
    ("s3", "GetBucketAcl"),
    ("lambda", "GetFunction20150331v2"),
]


def services(trail: Trail, org: Organisation, days: int) -> None:
    """AWS Config, Auto Scaling and CloudTrail acting in the accounts."""
    rng = trail.rng
    for acct in org.accounts.values():
        cfg_id = key_id(rng, "AROA")
        asg_id = key_id(rng, "AROA")
        for d in range(days):
            day = trail.start + d * DAY
            for hour in range(0, 24, 3):
                t = day + hour * 3600 + rng.uniform(0, 900)
                ident = assumed_role(
                    acct.id,
                    "AWSServiceRoleForConfig",
                    "/aws-service-role/config.amazonaws.com/",
                    cfg_id,
                    "AWSConfig-Describe",
                    key_id(rng, "ASIA"),
                    t - 60,
                    invoked_by="config.amazonaws.com",
                )
                for region in acct.regions:
                    for service, name in rng.sample(_CONFIG_CALLS, 3):
                        trail.emit(
                            ident,
                            t,
                            service,
                            name,
                            region,
                            "config.amazonaws.com",
                            "config.amazonaws.com",
                            request=request_for(service, name, acct.resources, region, rng),
                        )
                        t += rng.uniform(0.1, 5)
                ct = day + hour * 3600 + rng.uniform(0, 3600)
                trail.emit(
                    aws_service("cloudtrail.amazonaws.com", acct.id),
                    ct,
                    "kms",
                    "GenerateDataKey",
                    acct.regions[0],
                    "cloudtrail.amazonaws.com",
                    "cloudtrail.amazonaws.com",
                    request={
                        "keyId": f"arn:aws:kms:us-east-1:{acct.id}:alias/cloudtrail",
                        "keySpec": "AES_256",
                        "encryptionContext": {
                            "aws:cloudtrail:arn": f"arn:aws:cloudtrail:us-east-1:{acct.id}:trail/org-trail"
                        },
                    },
                )
            if acct.env == "prod":
                for _ in range(rng.randint(0, 3)):
                    t = day + rng.uniform(12, 22) * 3600
                    ident = assumed_role(
                        acct.id,
                        "AWSServiceRoleForAutoScaling",
                        "/aws-service-role/autoscaling.amazonaws.com/",
                        asg_id,
                        "AutoScaling",
                        key_id(rng, "ASIA"),
                        t - 10,
                        invoked_by="autoscaling.amazonaws.com",
                    )
                    name = rng.choice(("RunInstances", "TerminateInstances"))
                    req: dict[str, Any] = (
                        {"instancesSet": {"items": [{"instanceId": f"i-0{rng.getrandbits(64):016x}"}]}}
                        if name == "TerminateInstances"
                        else {
                            "instancesSet": {"items": [{"minCount": 1, "maxCount": 1}]},
                            "launchTemplate": {"launchTemplateId": "lt-0a8b7c6d5e4f3a2b1", "version": "$Latest"},
                        }
                    )
                    trail.emit(
                        ident,
                        t,
                        "ec2",
                        name,
                        acct.regions[0],
                        "autoscaling.amazonaws.com",
                        "autoscaling.amazonaws.com",
                        request=req,
                    )
                    trail.emit(
                        ident,
                        t + 1,
                        "ec2",
                        "CreateTags",
                        acct.regions[0],
                        "autoscaling.amazonaws.com",
                        "autoscaling.amazonaws.com",
                        request={"resourcesSet": {}, "tagSet": {}},
                    )


def root_logins(trail: Trail, org: Organisation, days: int) -> None:
    """The prod root user signs in for billing about twice a month, from the platform lead's home."""
    rng = trail.rng
    acct = org.account("prod")
    lead = next((h for h in org.humans if h.team == "platform"), org.humans[0])
    for d in range(3, days, 15):
        ts = local_midnight(trail.start + d * DAY, lead.utc_offset) + rng.uniform(10, 16) * 3600
        ip = home_ip(lead, d)
        browser = BROWSERS[lead.os]
        trail.emit(
            root(acct.id, None),
            ts,
            "signin",
            "ConsoleLogin",
            "us-east-1",
            ip,
            browser,
            response={"ConsoleLogin": "Success"},
            event_type="AwsConsoleSignIn",
            read_only=False,
            additional={
                "LoginTo": "https://console.aws.amazon.com/billing/home",
                "MobileVersion": "No",
                "MFAUsed": "Yes",
            },
        )
        ident = root(acct.id, key_id(rng, "ASIA"), ts, mfa=True)
        t = ts + 20
        for service, name in (
            ("ce", "GetCostAndUsage"),
            ("ce", "GetCostForecast"),
            ("account", "GetContactInformation"),
            ("iam", "GetAccountSummary"),
        ):
            trail.emit(ident, t, service, name, "us-east-1", ip, browser, console=True)
            t += rng.uniform(5, 60)
