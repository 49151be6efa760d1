"""Enrichment speed: ``.venv/bin/python tests/enrich/bench_enrich.py [ROWS] [UNIQUE_IPS]``.

Builds a RECORD_FIELDS table of ROWS events (default 100,000) whose source IPs are drawn from
UNIQUE_IPS distinct addresses (default 5,000: public IPv4 and IPv6, private, service hosts),
with real user agents and APIs from the dev benchmark's first files, then times
``Enricher.from_settings()``, a first ``enrich`` (cold caches) and a second (warm caches).
Not a test: pytest does not collect it.
"""

from __future__ import annotations

import gzip
import random
import sys
import time
from pathlib import Path

import orjson
import pyarrow as pa

from trailsight.enrich import Enricher
from trailsight.schema import RECORD_FIELDS

DEV = Path(__file__).resolve().parents[3] / "shared" / "bench" / "dev" / "logs"


def main(rows: int = 100_000, unique_ips: int = 5_000) -> None:
    """Print start-up, cold and warm timings."""
    rng = random.Random(7)
    records: list[dict[str, object]] = []
    for path in sorted(DEV.rglob("*.json.gz"))[:1500]:
        with gzip.open(path) as fh:
            records.extend(orjson.loads(fh.read())["Records"])
    ips: list[str] = []
    for i in range(unique_ips):
        r = i % 10
        if r < 7:
            ips.append(".".join(str(rng.randint(1, 223)) for _ in range(4)))
        elif r < 8:
            ips.append(f"2a0{rng.randint(0, 9)}:{rng.randint(0, 65535):x}::{rng.randint(0, 65535):x}")
        elif r < 9:
            ips.append(f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}")
        else:
            ips.append(rng.choice(["lambda.amazonaws.com", "AWS Internal", "config.amazonaws.com"]))
    picks = [rng.choice(records) for _ in range(rows)]
    columns = {f.name: pa.nulls(rows, f.type) for f in RECORD_FIELDS}
    columns["source_ip"] = pa.array([rng.choice(ips) for _ in range(rows)], pa.string())
    columns["user_agent"] = pa.array([p.get("userAgent") for p in picks], pa.string())
    columns["event_source"] = pa.array([p.get("eventSource") for p in picks], pa.string())
    columns["event_name"] = pa.array([p.get("eventName") for p in picks], pa.string())
    table = pa.table(columns, schema=pa.schema(RECORD_FIELDS))
    distinct_uas = len(set(columns["user_agent"].to_pylist()))
    print(f"{rows:,} rows, {unique_ips:,} distinct IPs, {distinct_uas:,} distinct user agents")

    t0 = time.perf_counter()
    enricher = Enricher.from_settings()
    t1 = time.perf_counter()
    enricher.enrich(table)
    t2 = time.perf_counter()
    enricher.enrich(table)
    t3 = time.perf_counter()
    print(f"start-up {t1 - t0:.3f} s")
    print(f"first batch (cold caches) {t2 - t1:.3f} s = {rows / (t2 - t1):,.0f} rows/s")
    print(f"next batch (warm caches)  {t3 - t2:.3f} s = {rows / (t3 - t2):,.0f} rows/s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
