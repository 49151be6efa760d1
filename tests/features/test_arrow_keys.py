"""The client agent key worked out in Arrow, once per distinct agent, as the SQL expression states it."""

from __future__ import annotations

import pyarrow as pa

from trailsight.enrich.useragent import client_agent, client_agents
from trailsight.features.chunk import KeyCodes, with_arrow_keys

AGENTS = [
    "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.ubuntu.22 prompt/off command/s3.ls",
    "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.ubuntu.22 prompt/off command/s3.cp",
    None,
    "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.ubuntu.22 prompt/off",
    "aws-cli/2.22.1 md/command#iam.list-users ua/2.0",
    " command/sts.get-caller-identity",  # nothing but the command: the client agent is ""
]


def test_client_agents_are_client_agent_of_each_value() -> None:
    got = client_agents(pa.chunked_array([AGENTS[:3], AGENTS[3:]]))
    assert got.cast(pa.string()).to_pylist() == [client_agent(a) for a in AGENTS]
    assert len(got.dictionary) == 3  # the two s3 commands are one client


def test_key_codes_of_the_encoded_agent_equal_those_of_the_text() -> None:
    table = with_arrow_keys(pa.table({"user_agent": pa.array(AGENTS, pa.string())}))
    codes, values = KeyCodes(table).column("_k_agent")
    # The same key as SQL's: null filled as "", so the call without an agent and the bare command share one.
    as_text = [client_agent(a) or "" for a in AGENTS]
    assert [values[int(c)].as_py() for c in codes] == as_text
    assert len(set(values.to_pylist())) == len(values)
    assert codes[2] == codes[5]
    assert codes[0] == codes[1] == codes[3]
    assert KeyCodes(table).key("_k_agent").to_pylist() == as_text
