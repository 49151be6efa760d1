"""The ``spark-submit`` entry's command line (the Spark run itself is covered by the parity test)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from trailsight.spark_job import main, parser


def test_arguments() -> None:
    argv = ["--store", "/s", "--since", "2026-03-01", "--until", "2026-03-02T00:00:00Z"]
    argv += ["--lake", "s3a://b/lake/a/", "--lake", "s3a://b/lake/b/", "--no-save"]
    args = parser().parse_args(argv)
    assert args.store == Path("/s")
    assert args.since == datetime(2026, 3, 1, tzinfo=UTC)
    assert args.until == datetime(2026, 3, 2, tzinfo=UTC)
    assert args.lake == ["s3a://b/lake/a/", "s3a://b/lake/b/"]
    assert args.no_save
    assert args.chunk_days == 1


def test_missing_range_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["--store", "/s"])
    assert exc.value.code == 2


def test_cloudtrail_arguments() -> None:
    argv = ["--store", "/s", "--since", "2026-03-01", "--until", "2026-03-02", "--cloudtrail", "s3://b/AWSLogs/"]
    argv += ["--cloudtrail", "/logs", "--endpoint-url", "http://127.0.0.1:9000", "--account", "111122223333"]
    args = parser().parse_args(argv)
    assert args.cloudtrail == ["s3://b/AWSLogs/", "/logs"]
    assert args.endpoint_url == "http://127.0.0.1:9000"
    assert args.account == ["111122223333"]
    assert args.region is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cloudtrail", "/logs", "--lake", "/lake"], "--cloudtrail and --lake: give one source of events, not both"),
        (["--account", "111122223333"], "--account / --region filter raw CloudTrail: use them with --cloudtrail"),
    ],
)
def test_conflicting_sources_are_one_line_errors(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--store", "/s", "--since", "2026-03-01", "--until", "2026-03-02", *extra]
    assert main(argv) == 1
    assert capsys.readouterr().err == f"trailsight: error: {message}\n"
