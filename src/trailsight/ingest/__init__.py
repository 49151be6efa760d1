"""Ingest CloudTrail into the store: sources, parsing, normalisation, quarantine, the pipeline.

The Python API is :func:`ingest`; see docs/ingest.md.
"""

from __future__ import annotations

from trailsight.ingest.normalise import Rejection, normalise_record
from trailsight.ingest.pipeline import IngestOptions, IngestSummary, Progress, ingest

__all__ = ["IngestOptions", "IngestSummary", "Progress", "Rejection", "ingest", "normalise_record"]
