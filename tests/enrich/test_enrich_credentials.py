"""The credential type of a call (trailsight.enrich.credentials), alone and through the enricher on real data."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailsight.enrich.credentials import CREDENTIAL_TYPES, credential_type, credential_types
from trailsight.schema import IDENTITY_TYPES

SSO = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_DeveloperAccess_0be60a5d800f328a"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("Root", "AKIAROOTKEY", None, None, None, "console"), "root"),
        (("AWSService", None, "lambda.amazonaws.com", None, None, "aws-service"), "aws-service"),
        (("IAMUser", "AKIAIOSFODNN7EXAMPLE", None, None, "aws-cli/2", "cli"), "long-term-key"),
        (("IAMUser", "ASIAIOSFODNN7EXAMPLE", None, None, "Mozilla/5.0", "console"), "console-session"),
        (("IAMUser", "ASIAIOSFODNN7EXAMPLE", None, None, "aws-cli/2", "cli"), "session-token"),
        (("IAMUser", None, None, None, "Mozilla/5.0", "console"), "none"),
        (("AssumedRole", "ASIAX", SSO, "ava.costa@example.com", "aws-cli/2", "cli"), "sso-session"),
        (
            ("AssumedRole", "ASIAX", "arn:aws:iam::1:role/app", "i-0dbc91f429e48eeed", "aws-sdk-go", "sdk-go"),
            "instance-role",
        ),
        (
            (
                "AssumedRole",
                "ASIAX",
                "arn:aws:iam::1:role/fn",
                "fn",
                "Boto3/1.34 exec-env/AWS_Lambda_python3.12",
                "sdk-python",
            ),
            "lambda-role",
        ),
        (
            ("AssumedRole", "ASIAX", "arn:aws:iam::1:role/t", "t", "aws-sdk-java exec-env/AWS_ECS_FARGATE", "other"),
            "container-role",
        ),
        (("AssumedRole", "ASIAX", "arn:aws:iam::1:role/ci", "GitHubActions", "aws-cli/2", "cli"), "assumed-role"),
        (("FederatedUser", "ASIAX", None, None, None, None), "federation-token"),
        (("WebIdentityUser", None, None, None, None, None), "federated"),
        ((None, None, None, None, None, None), "unknown"),
    ],
)
def test_credential_type_rules(args: tuple[str | None, ...], expected: str) -> None:
    assert credential_type(*args) == expected


_TEXT = (
    st.none()
    | st.text(max_size=12)
    | st.sampled_from(["AKIAX", "ASIAX", "i-0123456789abcdef0", SSO, "exec-env/AWS_Lambda_x"])
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.none() | st.sampled_from(IDENTITY_TYPES), _TEXT, _TEXT, _TEXT, _TEXT, _TEXT), max_size=20
    )
)
def test_batch_equals_one_at_a_time(rows: list[tuple[str | None, ...]]) -> None:
    names = ("identity_type", "access_key_id", "principal", "session_name", "user_agent", "ua_family")
    table = pa.table({n: pa.array([r[i] for r in rows], pa.string()) for i, n in enumerate(names)})
    got = credential_types(table).to_pylist()
    assert got == [credential_type(*r) for r in rows]
    assert set(got) <= set(CREDENTIAL_TYPES)


def test_enriched_lake_of_the_stratus_capture(real_data: Path, tmp_path: Path) -> None:
    from trailsight.ingest import ingest

    ingest([real_data / "invictus-ir_aws_dataset" / "CloudTrail"], tmp_path / "store", workers=0)
    lake = str(tmp_path / "store" / "lake" / "**" / "*.parquet")
    rows = dict(duckdb.sql(f"SELECT credential_type, count(*) FROM read_parquet('{lake}') GROUP BY 1").fetchall())
    # bert-jan's long-term key and his console session; the SSM agent on two instances; AWS services.
    assert rows["long-term-key"] > 1000
    assert rows["console-session"] > 100
    assert rows["instance-role"] > 10
    assert rows["aws-service"] > 10
    assert set(rows) <= set(CREDENTIAL_TYPES)
