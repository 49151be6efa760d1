"""``trailsight detect --engine spark`` raises the findings ``--engine duckdb`` raises; clear errors without Spark.

The store is the real invictus-ir detonation alone (2,900 events, two gated findings), scored
through the CLI by both engines; Spark runs in local mode.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from spark_env import build_store, require_spark

from trailsight.cli.main import main
from trailsight.store.layout import StoreLayout

RANGE = ["--since", "2023-07-10", "--until", "2023-07-11"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> StoreLayout:
    return build_store(tmp_path_factory.mktemp("cli"))


def _detect(store: StoreLayout, out: Path, *extra: str) -> list[dict[str, Any]]:
    main(["detect", "--store", str(store.root), *RANGE, "--no-save", "-o", str(out), *extra])
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


@pytest.mark.spark
@pytest.mark.slow
def test_spark_engine_raises_the_duckdb_findings(store: StoreLayout, tmp_path: Path) -> None:
    require_spark()
    duck = _detect(store, tmp_path / "duckdb.jsonl")
    default = _detect(store, tmp_path / "default.jsonl", "--engine", "duckdb")
    on_spark = _detect(store, tmp_path / "spark.jsonl", "--engine", "spark")
    # The two findings and the story that joins them (bert-jan assumed the role).
    assert len([f for f in duck if not f["finding_type"].startswith("AttackSequence:")]) == 2
    assert len(duck) == 3
    assert any(f["principal"] == "arn:aws:iam::123837392027:user/bert-jan" for f in duck)
    assert [f["id"] for f in default] == [f["id"] for f in duck]
    assert [f["id"] for f in on_spark] == [f["id"] for f in duck]
    assert [sorted(f["event_ids"]) for f in on_spark] == [sorted(f["event_ids"]) for f in duck]
    assert [f["score"] for f in on_spark] == [f["score"] for f in duck]


def _error(store: StoreLayout, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["detect", "--store", str(store.root), *RANGE, "--no-save", "--engine", "spark"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err


def test_without_pyspark_one_line_error(
    store: StoreLayout, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if it were not installed
    err = _error(store, capsys)
    assert err == (
        "trailsight: error: --engine spark: PySpark is not installed; "
        "run `pip install trailsight[spark]` (needs Java 17)\n"
    )


def test_without_java_one_line_error(
    store: StoreLayout, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pyspark")
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    err = _error(store, capsys)
    assert err.startswith("trailsight: error: --engine spark: Java is not installed")


def test_unknown_engine_is_a_usage_error(store: StoreLayout, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["detect", "--store", str(store.root), *RANGE, "--engine", "polars"])
    assert exc.value.code == 2
    assert "polars" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cloudtrail", "/logs"], "--cloudtrail needs --engine spark"),
        (["--engine", "spark", "--endpoint-url", "http://127.0.0.1:9"], "--endpoint-url is for --cloudtrail s3://"),
    ],
)
def test_cloudtrail_option_errors(
    store: StoreLayout, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["detect", "--store", str(store.root), *RANGE, "--no-save", *extra])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"trailsight: error: {message}")
    assert err.count("\n") == 1
