"""A new AWS CLI command is a new API, not a new user agent; a new CLI version or machine still is.

The AWS CLI v2 names the command it ran in its user agent (``command/iam.list-users``, or
``md/command#iam.list-users`` in the newer format, both seen in real captures), so on the exact
string every first command is a "new agent" that restates the API novelty the behaviour model
already judges. ``unusual_user_agent`` judges the client agent, the string without that token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ibis
import pyarrow as pa
import pytest

from sample_events import make_events
from trailsight.detectors import registry
from trailsight.enrich.useragent import client_agent
from trailsight.features import build_feature_table

START = datetime(2025, 1, 6, tzinfo=UTC)
TEST_DAY = START + timedelta(days=14)
USER = "arn:aws:iam::111111111111:user/dana"
CLI = "aws-cli/2.15.30 Python/3.11.8 Windows/10 exe/AMD64 prompt/off"
NEW_CLI = "aws-cli/2.17.12 Python/3.11.5 Linux/5.15.153.1-microsoft-standard-WSL2 exe/x86_64 prompt/off"
MD_CLI = "aws-cli/2.15.59 md/awscrt#0.19.19 ua/2.0 os/macos#22.6.0 md/arch#arm64 lang/python#3.11.11 md/prompt#off"


@pytest.mark.parametrize(
    ("agent", "client"),
    [
        (f"{CLI} command/bedrock.converse", CLI),
        (f"{MD_CLI} md/command#sts.get-caller-identity", MD_CLI),
        (
            "aws-cli/2.13.5 Python/3.11.4 Linux/4.14.255-314-253.539.amzn2.x86_64 exec-env/CloudShell "
            "exe/x86_64.amzn.2 prompt/off command/ec2.stop-instances",
            "aws-cli/2.13.5 Python/3.11.4 Linux/4.14.255-314-253.539.amzn2.x86_64 exec-env/CloudShell "
            "exe/x86_64.amzn.2 prompt/off",
        ),
        ("Boto3/1.34.1 md/Botocore#1.34.1 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.12.1", None),
        ("console.amazonaws.com", None),
    ],
)
def test_the_client_agent_drops_only_the_command(agent: str, client: str | None) -> None:
    assert client_agent(agent) == (client or agent)


def _features() -> pa.Table:
    """Dana runs two CLI commands every working day for two weeks, then three calls on the test day."""
    rows = []
    for day in range(14):
        when = START + timedelta(days=day, hours=14)
        usual = (("ListBuckets", "s3.ls"), ("GetCallerIdentity", "sts.get-caller-identity"))
        for n, (name, command) in enumerate(usual):
            source = "s3.amazonaws.com" if name == "ListBuckets" else "sts.amazonaws.com"
            rows.append(
                {
                    "event_time": when + timedelta(minutes=n),
                    "principal": USER,
                    "event_source": source,
                    "event_name": name,
                    "user_agent": f"{CLI} command/{command}",
                }
            )
    test = [
        # her first bedrock command, from her usual CLI
        ("bedrock.amazonaws.com", "ListFoundationModels", f"{CLI} command/bedrock.list-foundation-models"),
        # the same usual command, from a CLI nobody in the account ran before
        ("s3.amazonaws.com", "ListBuckets", f"{NEW_CLI} command/s3.ls"),
    ]
    for n, (source, name, agent) in enumerate(test):
        rows.append(
            {
                "event_time": TEST_DAY + timedelta(hours=14, minutes=n),
                "principal": USER,
                "event_source": source,
                "event_name": name,
                "user_agent": agent,
            }
        )
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    expr = build_feature_table(ibis.memtable(make_events(rows)), START, TEST_DAY + timedelta(days=1))
    return con.to_pyarrow(expr)


def test_a_new_command_from_the_usual_cli_is_not_a_new_agent() -> None:
    table = _features()
    out = registry.get("unusual_user_agent")().score(table)
    fired = {table["event_name"][i].as_py(): out.reasons[i] for i in range(table.num_rows) if out.fired[i]}
    # The usual CLI running its first bedrock command: the API is new, the program is not.
    assert "ListFoundationModels" not in fired
    # A new CLI build is a new agent for dana and the account, whatever the command.
    (reason,) = fired["ListBuckets"]
    assert reason.code == "new_user_agent_for_account"
    assert reason.details["new_for_principal"] is True
    assert "command/" not in reason.message
    # Two weeks of the same two commands: never new after the first day.
    first_days = [i for i in range(table.num_rows) if table["event_time"][i].as_py() < TEST_DAY]
    assert not any(out.fired[i] for i in first_days if table["event_time"][i].as_py() >= START + timedelta(days=1))
