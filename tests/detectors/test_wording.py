"""The detectors' reason messages say which history they count: "active days", never bare "days"."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from trailsight.detectors.base import Columns
from trailsight.detectors.behaviour_model import BehaviourModelDetector
from trailsight.detectors.off_hours import OffHoursDetector

NOW = datetime(2025, 2, 14, 8, 42, tzinfo=UTC)
YESTERDAY = datetime(2025, 2, 13, 17, 0, tzinfo=UTC)
EARLIER_TODAY = datetime(2025, 2, 14, 0, 30, tzinfo=UTC)


def _messages(detector: BehaviourModelDetector | OffHoursDetector, **columns: list[object]) -> list[str]:
    cols = Columns(pa.table(columns))
    score, explain = detector._score(cols)
    return [r.message for i, s in enumerate(score) for r in explain(i, float(s))]


def test_behaviour_model_says_active_days() -> None:
    new, used = _messages(
        BehaviourModelDetector(),
        api=["cloudtrail:StopLogging", "ec2:DescribeInstances"],
        principal=["u/jonas", "u/jonas"],
        actor=["u/jonas", "u/jonas"],
        p_api_days=[0.0, 2.0],
        p_days=[10.0, 10.0],
        x_api_days=[0.0, 2.0],
        x_days=[10.0, 10.0],
        peers_n=[5.0, 5.0],
        peers_sim=[2.0, 2.0],
        peers_using=[0.0, 1.0],
        peers_using_sim=[0.0, 0.5],
        peer_names=["", "u/gus"],
        peer_group=["u/gus, u/ana", "u/gus, u/ana"],
        a_api_users=[0.0, 3.0],
        a_principals=[31.0, 31.0],
        auto_score=[0.0, 0.0],
    )
    assert new.startswith("cloudtrail:StopLogging is new for this principal: not used on any of its 10 active days;")
    assert used.startswith("ec2:DescribeInstances was used on only 2 of this principal's 10 active days;")


def test_behaviour_model_counts_the_persons_days_behind_a_shared_role() -> None:
    (msg,) = _messages(
        BehaviourModelDetector(),
        api=["secretsmanager:GetSecretValue"],
        principal=["role/AWSReservedSSO_Dev"],
        actor=["role/AWSReservedSSO_Dev/ana@example.com"],
        p_api_days=[12.0],
        p_days=[30.0],
        x_api_days=[0.0],
        x_days=[8.0],
        peers_n=[5.0],
        peers_sim=[2.0],
        peers_using=[0.0],
        peers_using_sim=[0.0],
        peer_names=[""],
        peer_group=["u/gus"],
        a_api_users=[0.0],
        a_principals=[31.0],
        auto_score=[0.0],
    )
    assert msg.startswith("secretsmanager:GetSecretValue is new for this person: not used on any of its 8 active days;")


def test_off_hours_says_active_days_before_the_event_day() -> None:
    (msg,) = _messages(
        OffHoursDetector(),
        event_time=pa.array([NOW], pa.timestamp("us", tz="UTC")),
        hour=[8.0],
        p_hour_days=[0.0],
        p_hour_last=pa.array([None], pa.timestamp("us", tz="UTC")),
        p_days=[10.0],
        p_last=pa.array([EARLIER_TODAY], pa.timestamp("us", tz="UTC")),
        **_no_zone(),
    )
    # Ten active days counting today's earlier calls; the hours are learned from the nine before today.
    assert msg == "active at 08:00 UTC, an hour it worked in on 0 of its 9 active days before this day"


def _no_zone() -> dict[str, list[object]]:
    never = pa.array([None], pa.timestamp("us", tz="UTC"))
    return {
        "lhour": pa.array([None], pa.int64()),
        "utc_offset": pa.array([None], pa.int64()),
        "country": pa.array([None], pa.string()),
        "city": pa.array([None], pa.string()),
        "p_lhour_days": [0.0],
        "p_lhour_last": never,
        "p_country_days": [0.0],
        "p_country_last": never,
        "p_country_hours": [0.0],
    }


def test_off_hours_on_the_local_clock_says_where_and_for_how_long() -> None:
    ts = pa.timestamp("us", tz="UTC")
    (msg,) = _messages(
        OffHoursDetector(),
        event_time=pa.array([NOW], ts),
        hour=[8.0],
        p_hour_days=[0.0],
        p_hour_last=pa.array([None], ts),
        p_days=[20.0],
        p_last=pa.array([YESTERDAY], ts),
        lhour=pa.array([14], pa.int64()),
        utc_offset=pa.array([330], pa.int64()),
        country=["IN"],
        city=["Bengaluru"],
        p_lhour_days=[0.0],
        p_lhour_last=pa.array([None], ts),
        p_country_days=[4.0],
        p_country_last=pa.array([YESTERDAY], ts),
        p_country_hours=[30.0],
    )
    assert msg.startswith(
        "active at 14:00 local time in Bengaluru (UTC+5:30), where it has called from on 4 earlier days, "
        "an hour it worked in on 0 of its 20 active days before this day"
    )
