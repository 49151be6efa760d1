"""User-agent families on real CloudTrail agents."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from trailsight.enrich.useragent import FAMILIES, classify_user_agent


@pytest.mark.parametrize(
    ("agent", "family"),
    [
        ("AWS Internal", "console"),
        ("console.amazonaws.com", "console"),
        ("signin.amazonaws.com", "console"),
        ("console.ec2.amazonaws.com", "console"),
        (
            "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.750 Linux/5.10.219 OpenJDK_64-Bit_Server_VM/25.412]",
            "console",
        ),
        ("RDS Console, aws-internal/3 aws-sdk-java/1.11.975 Linux/5.10.184", "console"),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "console"),
        ("aws-cli/2.15.30 Python/3.12.6 Darwin/24.1.0 exe/arm64 prompt/off command/ecr.describe-images", "cli"),
        ("[aws-cli/1.18.136 Python/3.8.5 Darwin/19.5.0 botocore/1.17.59]", "cli"),
        ("Boto3/1.34.145 md/Botocore#1.34.145 ua/2.0 os/linux#5.10.224 lang/python#3.12.5", "sdk-python"),
        ("Boto3/1.28.57 Python/3.9.2 Linux/5.10.0-26-cloud-amd64 Botocore/1.31.57", "sdk-python"),
        ("aws-sdk-go/1.55.5 (go1.22.7; linux; amd64)", "sdk-go"),
        ("aws-sdk-go-v2/1.30.4 os/linux lang/go#1.22.6 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.25.4", "sdk-go"),
        ("aws-sdk-java/2.25.60 Linux/5.10.225 OpenJDK_64-Bit_Server_VM/17.0.12+7-LTS Java/17.0.12", "sdk-java"),
        ("aws-sdk-js/3.637.0 ua/2.1 os/linux#5.15.0-119-generic lang/js md/nodejs#20.17.0 api/ce#3.637.0", "sdk-js"),
        ("aws-sdk-dotnet-coreclr/3.7.300.2 aws-sdk-dotnet-core/3.7.300.2 .NET_Core/6.0.25", "sdk-dotnet"),
        ("aws-sdk-ruby3/3.190.0 ruby/3.2.2 x86_64-linux aws-sdk-s3/1.136.0", "sdk-ruby"),
        (
            "APN/1.0 HashiCorp/1.0 Terraform/1.1.2 (+https://www.terraform.io) terraform-provider-aws/3.76.1 "
            "aws-sdk-go/1.44.157 (go1.19.3; linux; amd64) HashiCorp-terraform-exec/0.17.3",
            "terraform",
        ),
        ("cloudformation.amazonaws.com", "cloudformation"),
        ("lambda.amazonaws.com", "aws-service"),
        ("dynamodb.application-autoscaling.amazonaws.com", "aws-service"),
        ("awslambda-worker/1.0 rusoto/0.48.0 rust/1.80.1 linux", "aws-service"),
        ("[AWSCloudTrail, aws-internal/3 aws-sdk-java/1.12.433 Linux/5.4.247]", "aws-service"),
        ("python-requests/2.28.0", "other"),
        ("trufflehog/3.63.0", "other"),
        ('=HYPERLINK("http://evil")', "other"),
        ("", "other"),
        (None, "other"),
        ("[]", "other"),
    ],
)
def test_known_agents(agent: str | None, family: str) -> None:
    assert classify_user_agent(agent) == family


def _real_agents(real: Path) -> list[str]:
    agents: list[str] = []
    for path in sorted((real / "invictus-ir_aws_dataset" / "CloudTrail").glob("*.json")):
        agents += [r.get("userAgent") for r in json.loads(path.read_text())["Records"]]
    for path in sorted((real / "flaws2_cloud").rglob("*.json.gz")):
        with gzip.open(path) as fh:
            agents += [r.get("userAgent") for r in json.load(fh)["Records"]]
    return [a for a in agents if a]


def test_real_captures_get_a_known_family(real_data: Path) -> None:
    agents = _real_agents(real_data)
    assert len(agents) > 2900
    families = {classify_user_agent(a) for a in agents}
    assert families <= set(FAMILIES)
    # the Stratus detonation set up with Terraform and ran from the console and service hosts
    assert {"terraform", "console", "aws-service"} <= families
    terraform = [a for a in agents if "Terraform/" in a]
    assert terraform
    assert {classify_user_agent(a) for a in terraform} == {"terraform"}


def test_huge_agent_is_classified_quickly() -> None:
    assert classify_user_agent("aws-cli/2.0 " + "A" * 1_000_000) == "cli"
    assert classify_user_agent("x" * 1_000_000) == "other"
