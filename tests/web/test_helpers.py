"""Small helpers of the web UI: ARN and text shortening, grouping of unusual values, heat levels."""

from __future__ import annotations

from datetime import UTC, datetime

from trailsight.findings.names import short_arn
from trailsight.web.helpers import clip, clip_mid, fmt_time, group_unusual, heat_level


def test_short_arn() -> None:
    assert short_arn("arn:aws:iam::111122223333:user/alice") == "user/alice"
    assert short_arn("arn:aws:iam::111122223333:root") == "root"
    sso = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0c5c"
    assert short_arn(sso) == "role/…/AWSReservedSSO_Admin_0c5c"
    assert short_arn("lambda.amazonaws.com") == "lambda.amazonaws.com"
    assert short_arn(None) == ""


def test_clip_and_clip_mid() -> None:
    assert clip("abc", 5) == "abc"
    assert clip("abcdefgh", 5) == "abcd…"
    ua = "aws-cli/2.15.17 md/awscrt#0.19.19 ua/2.0 os/linux md/command#cloudtrail.describe-trails"
    cut = clip_mid(ua, 40)
    assert len(cut) == 40
    assert cut.startswith("aws-cli/2.15.17")
    assert cut.endswith("describe-trails")
    assert clip_mid("short", 40) == "short"


def test_fmt_time() -> None:
    assert fmt_time("2025-02-14T07:48:19Z") == "2025-02-14 07:48:19 UTC"
    assert fmt_time(datetime(2025, 2, 14, 7, 48, tzinfo=UTC), False) == "2025-02-14 07:48 UTC"
    assert fmt_time(None) == ""
    assert fmt_time("not a time") == "not a time"


def test_group_unusual_merges_one_row_per_attribute() -> None:
    usual = [{"value": "GetObject", "count": 40, "days": 7, "frequency": "frequent"}]
    unusual = [
        {
            "attribute": "api",
            "value": "StopLogging",
            "unusual_for_principal": True,
            "unusual_for_account": True,
            "principal_usual": usual,
            "account_usual": [],
            "principals_in_account_using": 0,
        },
        {
            "attribute": "api",
            "value": "DeleteTrail",
            "unusual_for_principal": True,
            "unusual_for_account": False,
            "principal_usual": [*usual, {"value": "ListBuckets", "count": 50, "days": 7, "frequency": "frequent"}],
            "account_usual": [],
            "principals_in_account_using": 3,
        },
        {
            "attribute": "country",
            "value": "DE",
            "unusual_for_principal": True,
            "unusual_for_account": True,
            "principal_usual": [],
            "account_usual": [],
            "principals_in_account_using": 0,
        },
    ]
    groups = group_unusual(unusual)
    assert [g["attribute"] for g in groups] == ["api", "country"]
    api = groups[0]
    assert [v["value"] for v in api["values"]] == ["StopLogging", "DeleteTrail"]
    assert [v["for_account"] for v in api["values"]] == [True, False]
    assert [e["value"] for e in api["principal_usual"]] == ["ListBuckets", "GetObject"]  # merged, by count
    assert api["principal_usual_more"] == 0


def testheat_level() -> None:
    assert heat_level(0, 10) == 0
    assert heat_level(1, 100) == 1
    assert heat_level(10, 10) == 5
    assert heat_level(3, 0) == 0


def test_soft_breaks_puts_wrap_points_between_words_and_escapes() -> None:
    from trailsight.web.helpers import soft_breaks

    assert soft_breaks("DefenseEvasion:IAMUser/AnomalousBehavior") == (
        "DefenseEvasion:<wbr>IAMUser/<wbr>AnomalousBehavior"  # never inside AnomalousBehavior
    )
    assert soft_breaks("StopConfigurationRecorder", camel=True) == "Stop<wbr>Configuration<wbr>Recorder"
    assert soft_breaks("securityhub") == "securityhub"
    assert soft_breaks("<script>x") == "&lt;script&gt;x"
    hostile = soft_breaks("A" * 100_000)
    assert max(len(run) for run in hostile.split("<wbr>")) <= 24  # a 100 kB name cannot widen a column
