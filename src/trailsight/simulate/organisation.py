"""The synthetic organisation: accounts, regions, people and workloads.

"Northwind" runs two AWS accounts (prod and staging) mostly in us-east-1, with
some of prod in eu-west-1 and some of staging in us-west-2. Its people sit in
four teams (platform, backend, data, security) across US, UK and German
cities, each with a home broadband line, often a phone, a time zone and
working hours; half of them sign in as IAM users (console, and a long-term
``AKIA`` key for the CLI), half through IAM Identity Center permission-set
roles (``AWSReservedSSO_<set>_<hex>``, session name = e-mail). Workloads:
GitHub Actions deploys through web identity, Terraform, scheduled Lambda
functions, EC2 instance roles, a monitoring vendor's cross-account role and
AWS Backup.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from trailsight.simulate.apis import TEAM_VOCAB, Resources
from trailsight.simulate.records import key_id

ORG_DOMAIN = "northwind.io"
VENDOR_ACCOUNT = "464622532012"
REGIONS = ("us-east-1", "eu-west-1", "us-west-2")
#: Regions the organisation never uses (where miners go).
UNUSED_REGIONS = ("ap-southeast-1", "sa-east-1", "ap-northeast-1", "eu-north-1")

SSO_SETS = {
    "platform": "AdministratorAccess",
    "backend": "DeveloperAccess",
    "data": "DataAnalyst",
    "security": "SecurityAudit",
}

_FIRST = (
    "ava",
    "ben",
    "chen",
    "dana",
    "elena",
    "farid",
    "grace",
    "hiro",
    "ines",
    "jonas",
    "kara",
    "liam",
    "mei",
    "nadia",
    "omar",
    "priya",
    "quinn",
    "ravi",
    "sofia",
    "tomas",
    "uma",
    "victor",
    "wei",
    "xavier",
    "yara",
    "zane",
    "amir",
    "bea",
    "carlos",
    "deepa",
    "emeka",
    "fatima",
    "gus",
    "hana",
    "ivan",
    "julia",
    "ken",
    "lena",
    "marco",
    "nora",
)
_LAST = (
    "adams",
    "becker",
    "costa",
    "diaz",
    "evans",
    "fischer",
    "garcia",
    "hughes",
    "ito",
    "jensen",
    "kowalski",
    "lee",
    "moreau",
    "nelson",
    "okafor",
    "patel",
    "quist",
    "rossi",
    "scott",
    "taylor",
    "usman",
    "vogel",
    "walsh",
    "young",
)

#: Home cities: (home network, mobile network or "", UTC offset in hours).
CITIES: dict[str, tuple[str, str, int]] = {
    "Boston": ("verizon_boston", "tmobile_philadelphia", -5),
    "New York": ("comcast_newyork", "vzw_newark", -5),
    "Atlanta": ("att_atlanta", "tmobile_chicago", -5),
    "Dallas": ("att_dallas", "tmobile_chicago", -6),
    "Chicago": ("comcast_northlake", "tmobile_chicago", -6),
    "St. Louis": ("charter_olivette", "vzw_newark", -6),
    "Spokane": ("comcast_spokane", "tmobile_philadelphia", -8),
    "London": ("bt_london", "", 0),
    "Manchester": ("virgin_manchester", "", 0),
    "Hamburg": ("dtag_hamburg", "vodafone_frankfurt", 1),
}
_CITY_ORDER = tuple(CITIES)


@dataclass(kw_only=True)
class Account:
    """One AWS account of the organisation."""

    id: str
    env: str
    regions: tuple[str, ...]  # first is primary
    resources: Resources
    sso_role_ids: dict[str, tuple[str, str]] = field(default_factory=dict)  # set -> (role name, AROA id)


@dataclass(kw_only=True)
class Human:
    """A person: identity, team, home, habits."""

    name: str  # IAM user name / e-mail local part
    email: str
    team: str
    kind: str  # "iam" (IAM user) or "sso" (Identity Center)
    city: str
    home_net: str
    mobile_net: str
    utc_offset: int
    start_hour: float
    end_hour: float
    os: str
    cli_version: str
    console_share: float
    staging_share: float
    favourites: list[tuple[str, str, float]]
    user_id: str = ""  # AIDA... (IAM users)
    access_key: str = ""  # AKIA... (IAM users)
    join_day: int = 0  # first active day (new hires > 0)
    home_index: int = 0
    vpn_net: str = ""  # a personal commercial VPN used for some sessions
    cron_net: str = ""  # a personal VPS running a nightly script with the person's access key


@dataclass(kw_only=True)
class Workload:
    """An automation principal (a role) with its cadence."""

    role: str
    path: str
    kind: str  # ci, terraform, lambda, instance, vendor, backup
    account: str
    region: str
    role_id: str
    every_min: int = 60
    offset_min: int = 0
    calls: list[tuple[str, str]] = field(default_factory=list)
    net: str = ""
    start_day: int = 0
    instances: list[tuple[str, int]] = field(default_factory=list)  # (instance id, ip index)


@dataclass(kw_only=True)
class Organisation:
    """Everything the simulator knows about the organisation."""

    accounts: dict[str, Account]  # by env
    humans: list[Human]
    workloads: list[Workload]

    def account(self, env: str) -> Account:
        """Return the account of ``env`` (prod / staging)."""
        return self.accounts[env]


def _acct_id(rng: random.Random) -> str:
    return str(rng.randrange(100_000_000_000, 999_999_999_999))


def _cli_ua(h: Human, service: str, command: str) -> str:
    os_part = {
        "macos": "os/macos#23.4.0 md/arch#arm64",
        "linux": "os/linux#6.5.0-35-generic md/arch#x86_64",
        "windows": "os/windows#10 md/arch#amd64",
    }[h.os]
    return (
        f"aws-cli/{h.cli_version} md/awscrt#0.19.19 ua/2.0 {os_part} lang/python#3.11.8 md/pyimpl#CPython "
        f"cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#{service}.{command}"
    )


def human_cli_ua(h: Human, service: str, command: str) -> str:
    """The user agent of a person's CLI or SDK call."""
    if h.team == "data":
        os_part = "os/macos#23.4.0" if h.os == "macos" else "os/linux#6.5.0-35-generic"
        v = h.cli_version.split(".")[1]
        return (
            f"Boto3/1.34.{v} md/Botocore#1.34.{v} ua/2.0 {os_part} md/arch#x86_64 lang/python#3.11.8 "
            f"md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.{v}"
        )
    return _cli_ua(h, service, command)


BROWSERS = {
    "macos": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
    "linux": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
}


def make_human(rng: random.Random, i: int, team: str, kind: str, used: set[str], join_day: int = 0) -> Human:
    """Create person number ``i`` of ``team``."""
    while True:
        name = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}"
        if name not in used:
            used.add(name)
            break
    city = _CITY_ORDER[(i * 7 + rng.randrange(3)) % len(_CITY_ORDER)]
    home, mobile, offset = CITIES[city]
    vocab = TEAM_VOCAB[team]
    k = max(6, int(len(vocab) * rng.uniform(0.5, 0.8)))
    favourites = [(s, n, w * rng.uniform(0.3, 2.0)) for s, n, w in rng.sample(vocab, k)]
    return Human(
        name=name,
        email=f"{name}@{ORG_DOMAIN}",
        team=team,
        kind=kind,
        city=city,
        home_net=home,
        mobile_net=mobile,
        utc_offset=offset,
        start_hour=rng.choice((7.5, 8.0, 8.5, 9.0, 9.5, 10.0)),
        end_hour=rng.choice((16.5, 17.0, 17.5, 18.0, 18.5, 19.0)),
        os=rng.choice(("macos", "macos", "macos", "linux", "windows")),
        cli_version=f"2.15.{rng.randrange(10, 40)}",
        console_share=rng.uniform(0.2, 0.6) if team != "data" else rng.uniform(0.1, 0.3),
        staging_share=rng.uniform(0.1, 0.4),
        favourites=favourites,
        user_id=key_id(rng, "AIDA"),
        access_key=key_id(rng, "AKIA"),
        join_day=join_day,
        home_index=rng.randrange(254),
    )


def build_organisation(rng: random.Random, principals: int) -> Organisation:
    """Create the organisation with about ``principals`` humans and workloads (services not counted)."""
    accounts: dict[str, Account] = {}
    for env, regions in (("prod", ("us-east-1", "eu-west-1")), ("staging", ("us-east-1", "us-west-2"))):
        acct = _acct_id(rng)
        a = Account(id=acct, env=env, regions=regions, resources=Resources(account=acct, env=env))
        for perm in SSO_SETS.values():
            a.sso_role_ids[perm] = (f"AWSReservedSSO_{perm}_{rng.getrandbits(64):016x}", key_id(rng, "AROA"))
        accounts[env] = a
    prod, staging = accounts["prod"], accounts["staging"]

    roster = _workload_roster(rng, prod, staging)
    n_auto = min(len(roster), max(6, round(principals * 0.35)))
    workloads = roster[:n_auto]
    n_humans = max(4, principals - n_auto)
    teams = ("platform", "backend", "data", "security", "backend", "platform", "data")
    used: set[str] = set()
    humans = [make_human(rng, i, teams[i % len(teams)], "iam" if i % 2 == 0 else "sso", used) for i in range(n_humans)]
    # Some people route part of their sessions through a commercial VPN (the exits attackers rent
    # too), and one engineer runs a nightly script on a personal VPS with their access key.
    for i, h in enumerate(humans):
        if i % 8 == 3:
            h.vpn_net = "m247_frankfurt" if h.utc_offset >= 0 else rng.choice(("m247_newyork", "datacamp_dallas"))
    cron = next((h for h in humans if h.kind == "iam" and h.team == "backend"), None)
    if cron is not None:
        cron.cron_net = "do_northbergen"
    return Organisation(accounts=accounts, humans=humans, workloads=workloads)


@dataclass(frozen=True, kw_only=True)
class _WorkloadSpec:
    """One workload of the roster; its role id (and instance ids) are drawn when the organisation is built."""

    role: str
    path: str
    kind: str
    env: str  # prod / staging
    region: str
    every_min: int = 60
    offset_min: int = 0
    calls: tuple[tuple[str, str], ...] = ()
    net: str = ""
    instances: int = 0  # how many EC2 instances carry the role


_LAMBDA_PATH = "/service-role/"

#: The workloads, in the order an organisation takes them (a small one keeps the first few).
_ROSTER: tuple[_WorkloadSpec, ...] = (
    _WorkloadSpec(
        role="github-actions-deploy", path="/", kind="ci", env="prod", region="us-east-1", net="azure_washington"
    ),
    _WorkloadSpec(
        role="terraform-apply", path="/", kind="terraform", env="prod", region="us-east-1", net="azure_desmoines"
    ),
    _WorkloadSpec(
        role="orders-digest-role",
        path=_LAMBDA_PATH,
        kind="lambda",
        env="prod",
        region="us-east-1",
        every_min=60,
        offset_min=5,
        calls=(("logs", "CreateLogStream"), ("dynamodb", "DescribeTable"), ("ssm", "GetParameter"), ("kms", "Decrypt")),
    ),
    _WorkloadSpec(
        role="prod-app-instance-role",
        path="/",
        kind="instance",
        env="prod",
        region="us-east-1",
        every_min=10,
        instances=3,
        calls=(
            ("ssm", "UpdateInstanceInformation"),
            ("ecr", "GetAuthorizationToken"),
            ("kms", "Decrypt"),
            ("s3", "GetBucketLocation"),
            ("secretsmanager", "GetSecretValue"),
        ),
    ),
    _WorkloadSpec(
        role="DatadogIntegrationRole",
        path="/",
        kind="vendor",
        env="prod",
        region="us-east-1",
        every_min=20,
        net="aws_use1_b",
        calls=(
            ("ec2", "DescribeInstances"),
            ("monitoring", "GetMetricData"),
            ("ecs", "ListClusters"),
            ("lambda", "ListFunctions20150331"),
            ("elasticloadbalancing", "DescribeLoadBalancers"),
            ("rds", "DescribeDBInstances"),
            ("sqs", "ListQueues"),
            ("dynamodb", "ListTables"),
        ),
    ),
    _WorkloadSpec(role="AWSBackupDefaultServiceRole", path=_LAMBDA_PATH, kind="backup", env="prod", region="us-east-1"),
    _WorkloadSpec(
        role="github-actions-deploy", path="/", kind="ci", env="staging", region="us-east-1", net="azure_washington"
    ),
    _WorkloadSpec(
        role="billing-handler-role",
        path=_LAMBDA_PATH,
        kind="lambda",
        env="prod",
        region="us-east-1",
        every_min=15,
        offset_min=2,
        calls=(("sqs", "GetQueueAttributes"), ("kms", "Decrypt"), ("logs", "CreateLogStream")),
    ),
    _WorkloadSpec(
        role="terraform-apply", path="/", kind="terraform", env="staging", region="us-east-1", net="azure_desmoines"
    ),
    _WorkloadSpec(
        role="cost-report-role",
        path=_LAMBDA_PATH,
        kind="lambda",
        env="prod",
        region="us-east-1",
        every_min=1440,
        offset_min=8 * 60 + 2,
        calls=(("ce", "GetCostAndUsage"), ("ce", "GetCostForecast"), ("s3", "GetBucketLocation")),
    ),
    _WorkloadSpec(
        role="staging-app-instance-role",
        path="/",
        kind="instance",
        env="staging",
        region="us-west-2",
        every_min=15,
        instances=2,
        calls=(("ssm", "UpdateInstanceInformation"), ("ecr", "GetAuthorizationToken"), ("kms", "Decrypt")),
    ),
    _WorkloadSpec(
        role="search-indexer-role",
        path=_LAMBDA_PATH,
        kind="lambda",
        env="prod",
        region="eu-west-1",
        every_min=30,
        offset_min=11,
        calls=(("dynamodb", "DescribeTable"), ("es", "DescribeDomain"), ("logs", "CreateLogStream")),
    ),
    _WorkloadSpec(
        role="DatadogIntegrationRole",
        path="/",
        kind="vendor",
        env="staging",
        region="us-east-1",
        every_min=30,
        net="aws_use1_b",
        calls=(
            ("ec2", "DescribeInstances"),
            ("monitoring", "GetMetricData"),
            ("ecs", "ListClusters"),
            ("lambda", "ListFunctions20150331"),
        ),
    ),
    _WorkloadSpec(
        role="users-handler-role",
        path=_LAMBDA_PATH,
        kind="lambda",
        env="prod",
        region="us-east-1",
        every_min=20,
        offset_min=7,
        calls=(("sqs", "GetQueueAttributes"), ("dynamodb", "DescribeTable"), ("logs", "CreateLogStream")),
    ),
    _WorkloadSpec(
        role="orders-digest-role",
        path=_LAMBDA_PATH,
        kind="lambda",
        env="staging",
        region="us-east-1",
        every_min=120,
        offset_min=5,
        calls=(("logs", "CreateLogStream"), ("dynamodb", "DescribeTable"), ("ssm", "GetParameter")),
    ),
)


def _workload_roster(rng: random.Random, prod: Account, staging: Account) -> list[Workload]:
    accounts = {"prod": prod, "staging": staging}
    roster = []
    for spec in _ROSTER:
        # Instance ids are drawn before the role id: the seed's sequence depends on that order.
        instances = [(f"i-0{rng.getrandbits(64):016x}", rng.randrange(254)) for _ in range(spec.instances)]
        roster.append(
            Workload(
                role=spec.role,
                path=spec.path,
                kind=spec.kind,
                account=accounts[spec.env].env,
                region=spec.region,
                role_id=key_id(rng, "AROA"),
                every_min=spec.every_min,
                offset_min=spec.offset_min,
                calls=list(spec.calls),
                net=spec.net,
                instances=instances,
            )
        )
    return roster
