"""The built wheel on its own: installed into a fresh virtualenv, used from an empty folder.

The wheel is built offline from a copy of the package's files (``pip wheel --no-build-isolation``
with the dev extra's setuptools); the fresh virtualenv gets it with ``--no-deps`` and borrows the
third-party packages of the running one through a ``.pth`` line, which does not activate the
running one's editable trailsight. ``trailsight demo`` then runs with the geo data of the checkout
(``$TRAILSIGHT_DATA`` pointing at links to it) and ``trailsight serve`` serves its store to
headless Chromium, which must get every script and stylesheet the pages name.
"""

from __future__ import annotations

import shutil
import site
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from trailsight.config import data_dir
from trailsight.refdata import DATASETS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
PIP = (sys.executable, "-m", "pip")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
ASSETS = (
    "[...document.querySelectorAll('script[src]')].map(e => e.src)"
    ".concat([...document.querySelectorAll('link[rel=stylesheet]')].map(e => e.href))"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built as a wheel from a copy of its sources (the checkout is left as it is)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = work / "dist"
    subprocess.run(
        [*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("trailsight-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv holding the wheel, and through a .pth line the running one's other packages."""
    env = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    subprocess.run(
        [*PIP, "--python", str(env / "bin" / "python"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    purelib = subprocess.run(
        [env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "borrowed-dev-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env


@pytest.fixture(scope="module")
def geo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder of links to the checkout's geo / ASN files (and the ASN cache, when there)."""
    checkout = data_dir()
    needed = [name for ds in DATASETS for name in ds.required]
    if not all((checkout / name).is_file() for name in needed):
        pytest.fail(f"geo data not in {checkout}: run `make data` (trailsight data fetch --dir data)")
    folder = tmp_path_factory.mktemp("geo")
    for path in checkout.iterdir():
        if path.name in needed or path.suffix == ".npz":
            (folder / path.name).symlink_to(path.resolve())
    return folder


@pytest.fixture(scope="module")
def demo(venv: Path, geo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """``trailsight demo`` of the installed wheel, run from an empty folder: (that folder, environment)."""
    cwd = tmp_path_factory.mktemp("empty")
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(cwd),
        "TRAILSIGHT_DATA": str(geo_data),
        "TRAILSIGHT_REGISTRY": f"http://127.0.0.1:{_free_port()}",  # no network: a fetch would fail
    }
    proc = subprocess.run(
        [venv / "bin" / "trailsight", "demo", "--out", "demo", "--days", "5", "--principals", "8", "--top", "5"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
    assert "not found" not in proc.stderr, proc.stderr
    assert "no geo data" not in proc.stdout
    assert "Top 5 findings" in proc.stdout
    return cwd, env


def test_wheel_carries_the_web_assets_and_no_checkout_paths(wheel: Path, venv: Path) -> None:
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in ("htmx.min.js", "plotly-basic.min.js", "LICENSE-htmx.org", "LICENSE-plotly.js"):
        assert f"trailsight/web/static/vendor/{asset}" in names
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import trailsight; print(trailsight.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout
    assert where.startswith(str(venv)), where  # the wheel's copy, not the checkout's


def test_demo_from_an_empty_folder_is_geo_enriched(demo: tuple[Path, dict[str, str]]) -> None:
    cwd, _ = demo
    files = [str(p) for p in (cwd / "demo" / "store").rglob("*.parquet")]
    assert files
    con = duckdb.connect()
    total, located = con.execute(
        "SELECT count(*), count(country) FILTER (WHERE asn IS NOT NULL) FROM read_parquet(?, union_by_name = true)",
        [files],
    ).fetchone() or (0, 0)
    assert total > 1000
    assert located > total * 0.2  # public addresses got country and ASN
    assert sorted(p.name for p in cwd.iterdir()) == ["demo"]  # nothing else written to the folder


@pytest.fixture(scope="module")
def served(venv: Path, demo: tuple[Path, dict[str, str]]) -> Iterator[str]:
    """``trailsight serve`` of the installed wheel on the demo's store."""
    cwd, env = demo
    port = _free_port()
    proc = subprocess.Popen(
        [venv / "bin" / "trailsight", "serve", "--store", "demo/store", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stderr.read().decode() if proc.stderr else "serve died") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_serve_pages_get_every_script_and_stylesheet(served: str) -> None:
    from playwright.sync_api import Response, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs it")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            first = browser.new_page()
            first.goto(served + "/")
            pages = [served + "/", served + str(first.locator("a[href^='/findings/']").first.get_attribute("href"))]
            visited: list[str] = []
            for url in pages:
                context = browser.new_context()  # an empty cache: every asset is fetched, none is a 304
                page = context.new_page()
                statuses: dict[str, int] = {}

                def record(response: Response, into: dict[str, int] = statuses) -> None:
                    into[response.url] = response.status

                page.on("response", record)
                page.goto(url)
                page.wait_for_load_state("load")
                assets = page.evaluate(ASSETS)
                assert any(a.endswith("/htmx.min.js") for a in assets)
                assert any(a.endswith("/plotly-basic.min.js") for a in assets)
                for asset in assets:
                    assert statuses.get(asset) == 200, f"{url}: {asset} answered {statuses.get(asset)}"
                assert page.evaluate("typeof window.htmx") == "object"
                assert page.evaluate("typeof window.Plotly") == "object"
                visited.append(url)
                context.close()
        finally:
            browser.close()
    assert len(visited) == 2
