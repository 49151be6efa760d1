"""Settings: ``trailsight.toml`` (or ``--config FILE``), then environment, then CLI flags.

Nothing is read at import time. Each part of trailsight owns its section of the
file (``[ingest]``, ``[geo]``, ``[detect]``, ``[detectors.<name>]``, ``[watch]``,
``[serve]``) and parses it into its own frozen options; this module only finds,
reads and hands out those sections, turning a bad file into a :class:`ConfigError`
that names it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trailsight.errors import ConfigError

DEFAULT_CONFIG_NAMES = ("trailsight.toml",)
ENV_CONFIG = "TRAILSIGHT_CONFIG"
ENV_DATA_DIR = "TRAILSIGHT_DATA"


@dataclass(frozen=True)
class Settings:
    """The parsed settings file, by section."""

    path: Path | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Mapping[str, Any]:
        """Return section ``name`` (dotted for nested, e.g. ``detectors.off_hours``), or {}."""
        node: Any = self.data
        for part in name.split("."):
            if not isinstance(node, Mapping):
                return {}
            node = node.get(part, {})
        if not isinstance(node, Mapping):
            raise ConfigError(f"{self.path}: [{name}] must be a table")
        return node


def load_settings(path: Path | None = None) -> Settings:
    """Load settings from ``path``, ``$TRAILSIGHT_CONFIG`` or ./trailsight.toml (if any)."""
    candidate: Path | None = path
    if candidate is None and os.environ.get(ENV_CONFIG):
        candidate = Path(os.environ[ENV_CONFIG])
    if candidate is None:
        for name in DEFAULT_CONFIG_NAMES:
            if Path(name).is_file():
                candidate = Path(name)
                break
    if candidate is None:
        return Settings()
    try:
        with candidate.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{candidate}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{candidate}: not valid TOML: {exc}") from None
    return Settings(path=candidate, data=data)


def data_dir() -> Path:
    """Folder of the downloaded reference data (geo / ASN tables); see :func:`data_dir_origin`."""
    return data_dir_origin()[0]


def data_dir_origin() -> tuple[Path, str]:
    """The reference-data folder and why it was chosen, first that applies.

    ``$TRAILSIGHT_DATA``; the ``data/`` folder of the checkout this package runs from (an editable
    install, once ``make data`` created it); else the per-user data folder (``platformdirs``:
    ``~/.local/share/trailsight`` on Linux). ``[geo] data_dir`` in the settings file comes before
    all three (:class:`trailsight.enrich.enricher.GeoOptions` applies it).
    """
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser(), f"${ENV_DATA_DIR}"
    src = Path(__file__).resolve().parents[1]
    checkout = src.parent
    if src.name == "src" and (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout / "data", "the checkout's data/ folder"
    import platformdirs

    return Path(platformdirs.user_data_dir("trailsight", appauthor=False)), "the per-user data folder"
