"""Sources: globs, stdin, s3:// through moto's server on 127.0.0.1, and the command line."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from conftest import INVICTUS, event, s3_layout, write_trail

from moto_s3 import moto_s3
from trailsight.errors import IngestError
from trailsight.ingest import ingest

Query = Callable[..., list[tuple[Any, ...]]]
CLI = [sys.executable, "-m", "trailsight"]


def run_cli(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: bytes = b""
) -> tuple[int, str, str]:
    """Run ``trailsight.cli.main.main(argv)`` in this process: (exit code, stdout, stderr)."""
    from trailsight.cli.main import main

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_glob_picks_the_matching_files(real: Path, tmp_path: Path) -> None:
    summary = ingest([str(INVICTUS / "*_20230710T1230Z_*.json")], tmp_path / "s", workers=0)
    expected = sum(len(orjson.loads(p.read_bytes())["Records"]) for p in INVICTUS.glob("*_20230710T1230Z_*.json"))
    assert summary.files == len(list(INVICTUS.glob("*_20230710T1230Z_*.json")))
    assert summary.new == expected
    with pytest.raises(IngestError, match="no files match"):
        ingest([str(tmp_path / "nothing-*.json")], tmp_path / "s", workers=0)
    with pytest.raises(IngestError, match="no such file or folder"):
        ingest([tmp_path / "missing"], tmp_path / "s", workers=0)


def test_stdin_json_lines_and_concatenated_documents(
    tmp_path: Path, query: Query, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"\n".join(orjson.dumps(event(i)) for i in range(5)) + b"\n"
    data += orjson.dumps({"Records": [event(i) for i in range(5, 8)]})
    data += orjson.dumps({"Records": [event(i) for i in range(8, 10)]})  # zcat of two files: no newline between
    code, out, err = run_cli(["ingest", "-", "--store", str(tmp_path / "s"), "--json"], capsys, monkeypatch, data)
    assert code == 0, err
    summary = orjson.loads(out)
    assert (summary["new"], summary["quarantined"]) == (10, 0)
    assert query(tmp_path / "s", "SELECT DISTINCT source_file FROM events") == [("-",)]


def test_stdin_gzip_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    data = gzip.compress(orjson.dumps({"Records": [event(i) for i in range(3)]}))
    data += gzip.compress(orjson.dumps({"Records": [event(i) for i in range(3, 6)]}))  # cat a.gz b.gz
    code, out, err = run_cli(["ingest", "-", "-s", str(tmp_path / "s"), "--json"], capsys, monkeypatch, data)
    assert code == 0, err
    assert orjson.loads(out)["new"] == 6


def test_cli_summary_line_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    write_trail(logs, [event(1), event(2)], name="good")
    code, out, err = run_cli(["ingest", str(logs), "-s", str(tmp_path / "s")], capsys, monkeypatch)
    assert code == 0, err
    assert out.startswith("ingested 1 files (0 already done): 2 records, 2 new, 0 duplicates, 0 quarantined in ")
    assert "records/s" in out
    assert err == ""  # no progress bar when not on a terminal
    code, out, err = run_cli(["ingest", str(logs), "-s", str(tmp_path / "t"), "--since", "nope"], capsys, monkeypatch)
    assert code == 1
    assert err.startswith("trailsight: error: --since 'nope': expected a date")
    code, out, err = run_cli(
        ["ingest", str(logs), "-s", str(tmp_path / "t"), "--since", "2025-03-04", "--json"], capsys, monkeypatch
    )
    assert code == 0
    assert orjson.loads(out)["filtered"] == 2


@pytest.mark.slow
def test_cli_process_exit_codes_and_debug(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_trail(logs, [event(3), {"eventName": "NoTime"}], name="mixed")
    bad = subprocess.run([*CLI, "ingest", str(logs), "-s", str(tmp_path / "s")], capture_output=True, text=True)
    assert bad.returncode == 3
    assert "1 new, 0 duplicates, 1 quarantined" in bad.stdout
    assert "quarantine: " in bad.stdout
    missing = subprocess.run(
        [*CLI, "--debug", "ingest", str(tmp_path / "nope"), "-s", str(tmp_path / "s")], capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert "Traceback" in missing.stderr
    assert missing.stderr.strip().endswith(f"IngestError: {tmp_path / 'nope'}: no such file or folder")


def test_missing_path_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(["ingest", str(tmp_path / "nope"), "-s", str(tmp_path / "s")], capsys, monkeypatch)
    assert code == 1
    assert err == f"trailsight: error: {tmp_path / 'nope'}: no such file or folder\n"


# -- s3:// through moto's server -------------------------------------------------------------


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_s3(monkeypatch) as endpoint:
        yield endpoint


def test_s3_prefix_with_org_trail_layout_and_filters(tmp_path: Path, s3_endpoint: str, query: Query) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="trail")
    org = "AWSLogs/o-abc123def4"
    for account, day, first in (("111122223333", "2025/03/03", 0), ("444455556666", "2025/03/04", 100)):
        body = gzip.compress(
            orjson.dumps({"Records": [event(i, recipientAccountId=account) for i in range(first, first + 4)]})
        )
        key = f"{org}/{account}/CloudTrail/eu-west-1/{day}/{account}_CloudTrail_eu-west-1_x.json.gz"
        client.put_object(Bucket="trail", Key=key, Body=body)
    client.put_object(
        Bucket="trail", Key=f"{org}/111122223333/CloudTrail-Digest/eu-west-1/2025/03/03/d.json.gz", Body=b"x"
    )
    store = tmp_path / "s"
    summary = ingest([f"s3://trail/{org}/"], store, workers=0, endpoint_url=s3_endpoint)
    assert (summary.files, summary.new, summary.quarantined) == (2, 8, 0)
    files = {r[0] for r in query(store, "SELECT DISTINCT source_file FROM events")}
    assert all(f.startswith(f"s3://trail/{org}/") for f in files)
    again = ingest([f"s3://trail/{org}/"], store, workers=0, endpoint_url=s3_endpoint)
    assert (again.files, again.skipped_files) == (0, 2)
    only = ingest(
        [f"s3://trail/{org}/"], tmp_path / "t", workers=0, endpoint_url=s3_endpoint, accounts=["444455556666"]
    )
    assert (only.files, only.new) == (1, 4)


def test_s3_endpoint_from_environment_through_the_cli(
    tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="logs")
    day = s3_layout(Path(), "111122223333", "us-east-1", "2025-03-03")
    client.put_object(
        Bucket="logs", Key=f"{day.as_posix()}/a.json.gz", Body=gzip.compress(orjson.dumps({"Records": [event(1)]}))
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    code, out, err = run_cli(["ingest", "s3://logs/AWSLogs/", "-s", str(tmp_path / "s"), "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert orjson.loads(out)["new"] == 1
    code, out, err = run_cli(["ingest", "s3://no-such-bucket/x", "-s", str(tmp_path / "s")], capsys, monkeypatch)
    assert code == 1
    assert err.startswith("trailsight: error: s3://no-such-bucket/x: cannot list S3 objects")
