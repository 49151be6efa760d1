"""The one home of principal names: prose, bare name and table tag of the same ARNs."""

from __future__ import annotations

import pytest

from trailsight.findings.names import actor_name, principal_name, short_arn, short_name

SSO = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0c5c"


@pytest.mark.parametrize(
    ("arn", "prose", "bare", "tag"),
    [
        ("arn:aws:iam::111122223333:user/ops/alice", "alice", "alice", "user/…/alice"),
        ("arn:aws:iam::111122223333:user/alice", "alice", "alice", "user/alice"),
        ("arn:aws:iam::111122223333:role/deploy", "role deploy", "deploy", "role/deploy"),
        (SSO, "role AWSReservedSSO_Admin_0c5c", "AWSReservedSSO_Admin_0c5c", "role/…/AWSReservedSSO_Admin_0c5c"),
        ("arn:aws:iam::111122223333:root", "root", "root", "root"),
        ("lambda.amazonaws.com", "lambda.amazonaws.com", "lambda.amazonaws.com", "lambda.amazonaws.com"),
    ],
)
def test_each_way_of_naming_a_principal(arn: str, prose: str, bare: str, tag: str) -> None:
    assert (short_name(arn), principal_name(arn), short_arn(arn)) == (prose, bare, tag)


def test_an_sso_actor_is_named_by_its_person() -> None:
    assert short_arn(SSO, f"{SSO}/alice@example.com") == "alice@example.com"
    assert actor_name(SSO, f"{SSO}/alice@example.com") == "alice@example.com"
    assert short_arn(None) == ""
