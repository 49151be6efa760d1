"""``spark-submit`` entry point: detect over a range with the features computed on Spark.

Run it with the file path of this module (``spark-submit`` wants a file)::

    spark-submit --master yarn --driver-memory 8g \\
        "$(python -c 'import trailsight.spark_job as m; print(m.__file__)')" \\
        --store /mnt/trailsight --since 2026-03-01 --until 2026-03-02 --output findings.jsonl

or, on one machine, ``python -m trailsight.spark_job ...`` (a local session). Under
``spark-submit`` the session that spark-submit configured is used as is. ``--lake``
reads the events from Parquet files anywhere Spark can reach (``s3a://bucket/lake/``)
instead of the store's registered lake files; ``--cloudtrail`` reads raw CloudTrail JSON
instead (``s3://bucket/AWSLogs/``, local files or folders), normalised and enriched on the
executors by trailsight's own ingest code (:mod:`trailsight.engines.spark_cloudtrail`), once
for the whole range. The store folder is still where the findings are saved (unless
``--no-save``), and where the records set aside go (``quarantine/spark-<run>.jsonl``). One
day is scored per Spark query (``--chunk-days``), so the driver holds one day's feature
table at a time.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from trailsight.config import Settings, load_settings
from trailsight.errors import ConfigError, TrailsightError

if TYPE_CHECKING:
    from trailsight.engines.spark_cloudtrail import CloudTrailRead


def _time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parser() -> argparse.ArgumentParser:
    """The job's command line."""
    p = argparse.ArgumentParser(prog="trailsight.spark_job", description="trailsight detect on Apache Spark")
    p.add_argument("--store", type=Path, required=True, help="store folder (findings are saved in its state.duckdb)")
    p.add_argument("--since", type=_time, required=True, help="start of the range (ISO, UTC)")
    p.add_argument("--until", type=_time, required=True, help="end of the range, exclusive (ISO, UTC)")
    p.add_argument("--lake", action="append", default=None, help="Parquet path(s) to read instead of the store's lake")
    p.add_argument(
        "--cloudtrail",
        action="append",
        default=None,
        metavar="PATH",
        help="raw CloudTrail instead of the store's lake: file, folder, glob or s3://bucket/prefix (repeatable)",
    )
    p.add_argument("--endpoint-url", default=None, help="S3 endpoint of --cloudtrail s3:// (default $AWS_ENDPOINT_URL)")
    p.add_argument("--account", action="append", default=None, help="with --cloudtrail: only this account (repeatable)")
    p.add_argument("--region", action="append", default=None, help="with --cloudtrail: only this region (repeatable)")
    p.add_argument("--master", default=None, help="Spark master when not under spark-submit (default local[2])")
    p.add_argument("--chunk-days", type=int, default=1, help="days scored per Spark query (default 1)")
    p.add_argument("--config", type=Path, default=None, help="trailsight.toml")
    p.add_argument("--detectors", default=None, help="comma-separated detector names (default all)")
    p.add_argument("--output", type=Path, default=None, help="also write the findings as JSON lines here")
    p.add_argument("--no-save", action="store_true", help="do not save findings in the store")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the job; return the exit code (0 ok, 1 error)."""
    from trailsight.engines import spark

    args = parser().parse_args(argv)
    try:
        if args.cloudtrail and args.lake:
            raise ConfigError("--cloudtrail and --lake: give one source of events, not both")
        if (args.account or args.region) and not args.cloudtrail:
            raise ConfigError("--account / --region filter raw CloudTrail: use them with --cloudtrail")
        settings = load_settings(args.config)
        names = [n.strip() for n in args.detectors.split(",") if n.strip()] if args.detectors else None
        con = spark.connect(args.master)
        raw = _read_cloudtrail(args, settings, con) if args.cloudtrail else None
        findings = []
        start = args.since
        while start < args.until:
            end = min(args.until, start + timedelta(days=max(args.chunk_days, 1)))
            findings += spark.detect(
                args.store,
                start,
                end,
                settings,
                names,
                save=not args.no_save,
                con=con,
                paths=args.lake,
                events=raw.events if raw is not None else None,
            )
            start = end
        if args.output is not None:
            with args.output.open("wb") as fh:
                for finding in findings:
                    fh.write(orjson.dumps(finding.to_dict()) + b"\n")
        sys.stderr.write(f"trailsight spark job: {len(findings)} finding(s) from {args.since} to {args.until}\n")
    except TrailsightError as exc:
        sys.stderr.write(f"trailsight: error: {exc}\n")
        return 1
    return 0


def _read_cloudtrail(args: argparse.Namespace, settings: Settings, con: Any) -> CloudTrailRead:
    """Read the job's raw CloudTrail once for the whole range; report it and set aside what failed."""
    from trailsight.engines import spark
    from trailsight.engines.spark_cloudtrail import read_for_store

    raw, path = read_for_store(
        spark.spark_session(con),
        args.store,
        args.cloudtrail,
        args.since,
        args.until,
        settings,
        args.endpoint_url,
        accounts=args.account or (),
        regions=args.region or (),
        save=not args.no_save,
    )
    sys.stderr.write(f"trailsight spark job: {raw.line()}\n")
    if raw.quarantined and not args.no_save:
        sys.stderr.write(f"trailsight spark job: {raw.quarantined:,} set aside, see {path}\n")
    return raw


if __name__ == "__main__":
    sys.exit(main())
