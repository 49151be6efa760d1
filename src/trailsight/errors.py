"""The exceptions trailsight raises.

Every error a user can meet derives from :class:`TrailsightError` and carries a
one-line message that names the file, record or setting at fault::

    TrailsightError
    ├── ConfigError      a setting, flag or rules file is wrong
    ├── IngestError      a source cannot be read at all (a bad *record* is quarantined, not raised)
    ├── StoreError       the lake or the state database is missing or inconsistent
    ├── DetectorError    a detector is unknown, misconfigured or failed
    └── ReferenceDataError  geo / ASN reference data cannot be fetched or verified

The CLI turns these into one line on stderr and an exit code; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations


class TrailsightError(Exception):
    """Root of every error trailsight raises on purpose."""


class ConfigError(TrailsightError):
    """A setting, command-line flag or rules file is invalid."""


class IngestError(TrailsightError):
    """A source cannot be opened or listed at all."""


class StoreError(TrailsightError):
    """The lake or the state database is missing, locked or inconsistent."""


class DetectorError(TrailsightError):
    """A detector is unknown, misconfigured, or failed while scoring."""


class ReferenceDataError(TrailsightError):
    """Reference data (geo / ASN tables) cannot be downloaded, verified or stored."""
