"""The ``spark-submit`` entry's command line (the Spark run itself is covered by the parity test)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from trailsight.spark_job import parser


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
