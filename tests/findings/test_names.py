"""The one home of principal names: prose, bare name and table tag of the same ARNs."""

from __future__ import annotations

import pytest

from trailsight.findings.names import person_name, principal_name, role_name, short_arn, short_name

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


SSO_HASHED = (
    "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_DeveloperAccess_0be60a5d800f328a"
)


def test_an_sso_actor_is_named_by_its_person_via_the_role() -> None:
    who = "ava.costa@northwind.io via AWSReservedSSO_DeveloperAccess"
    assert person_name(SSO_HASHED, f"{SSO_HASHED}/ava.costa@northwind.io") == who
    assert short_arn(SSO_HASHED, f"{SSO_HASHED}/ava.costa@northwind.io") == who
    # a suffix that is not IAM Identity Center's 16 hex digits is part of the name
    assert person_name(SSO, f"{SSO}/alice@example.com") == "alice@example.com via AWSReservedSSO_Admin_0c5c"
    assert short_arn(None) == ""


def test_a_role_with_a_stable_session_name_leads_with_the_session() -> None:
    role = "arn:aws:iam::111122223333:role/deploy"
    assert person_name(role, f"{role}/build-bot") == "build-bot via deploy"
    assert role_name(SSO_HASHED) == "AWSReservedSSO_DeveloperAccess"


def test_without_a_person_the_principal_is_named_as_in_prose() -> None:
    user = "arn:aws:iam::111122223333:user/alice"
    assert person_name(user, user) == "alice"
    assert person_name(SSO, SSO) == "role AWSReservedSSO_Admin_0c5c"
    # an SSO role without a session name is named without IAM Identity Center's hash suffix
    assert person_name(SSO_HASHED, SSO_HASHED) == "role AWSReservedSSO_DeveloperAccess"
    assert short_name(SSO_HASHED) == "role AWSReservedSSO_DeveloperAccess"
