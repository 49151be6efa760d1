"""Shared fixtures for the output tests: a moto server for the AWS sinks (alerts: tests/alert_samples.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from moto_s3 import moto_s3


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """moto's server (every AWS service) on 127.0.0.1, fake credentials; yields the endpoint URL."""
    with pytest.MonkeyPatch.context() as mp, moto_s3(mp) as url:
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        yield url
