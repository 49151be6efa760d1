"""Cost of the behaviour model's population context: 1,000 principals, 10 M events of history.

    .venv/bin/python bench/model.py [--principals 1000] [--events 10000000] [--days 90] [--score-rows 1000000]

The issue's budget: training fits these 2 cores for an account of 1,000 principals and 10 M
events "in minutes". This bench makes that history in DuckDB (principals in teams of 20 with
their own API vocabularies of 40 APIs over a 400-API catalogue, every day, events spread over
the day; no Python loop per event), then times the three stages the detector run pays:

1. ``aggregate`` — :func:`trailsight.features.behaviour.context_aggregates` (Ibis on DuckDB):
   the daily (principal, day) and (principal, api, day) aggregates of the whole history;
2. ``build`` — :class:`~trailsight.features.behaviour.BehaviourContext` for one scored day:
   principal × API matrix, cosine peers, automation likelihood, account usage;
3. ``augment`` — the context columns for ``--score-rows`` scored events of that day, of which
   5 % have thin history (the rows that need peer and account counts; on the dev benchmark it is
   about 4 %).

It prints each stage's seconds, rows/s for ``augment`` and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import UTC, datetime

import duckdb
import ibis
import numpy as np
import pyarrow as pa

from trailsight.features.asof import SECONDS_PER_DAY
from trailsight.features.behaviour import BehaviourContext, context_aggregates

ACCOUNT = "111111111111"


def history(con: duckdb.DuckDBPyConnection, principals: int, events: int, days: int, end_day: int) -> None:
    """Create table ``prepared``: the columns context_aggregates reads, for ``events`` rows."""
    con.execute(
        f"""
        CREATE TABLE prepared AS
        SELECT
            '{ACCOUNT}' AS _k_account_id,
            'arn:aws:iam::{ACCOUNT}:user/p' || lpad(CAST(p AS VARCHAR), 5, '0') AS _k_principal,
            'svc' || CAST(((p // 20) * 7 + a) % 400 AS VARCHAR) || ':Api' || CAST(a AS VARCHAR) AS _k_api,
            CASE WHEN p % 4 = 0 THEN 'sdk-python' WHEN p % 4 = 1 THEN 'cli' ELSE 'console' END AS _k_ua_family,
            CASE WHEN p % 4 = 0 THEN 'aws' ELSE 'public' END AS ip_kind,
            CASE WHEN p % 4 = 0 THEN 'AssumedRole' ELSE 'IAMUser' END AS identity_type,
            CAST(NULL AS VARCHAR) AS session_name,
            day,
            day * 24 + sec // 3600 AS hour_idx,
            to_timestamp(day * {SECONDS_PER_DAY} + sec) AS event_time
        FROM (
            SELECT i,
                   CAST(hash(i) % {principals} AS BIGINT) AS p,
                   CAST(hash(i * 7919 + 13) % 40 AS BIGINT) AS a,
                   CAST(hash(i * 1299709 + 3) % {SECONDS_PER_DAY} AS BIGINT) AS sec,
                   {end_day} - {days} + CAST(i % {days} AS BIGINT) AS day
            FROM range({events}) t(i)
        )
        """
    )


def main(argv: list[str] | None = None) -> int:
    """Print the stages' seconds and peak memory."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--principals", type=int, default=1000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--score-rows", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    end_day = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() // SECONDS_PER_DAY)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    t0 = time.perf_counter()
    history(con, args.principals, args.events, args.days, end_day)
    made = time.perf_counter() - t0

    t0 = time.perf_counter()
    backend = ibis.duckdb.from_connection(con)
    aggs = context_aggregates(backend.table("prepared"))
    ctx = BehaviourContext(aggs["pday"].to_pyarrow(), aggs["papi"].to_pyarrow(), forget_days=args.days)
    aggregate = time.perf_counter() - t0

    t0 = time.perf_counter()
    ctx.peers_of(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/p00000", end_day)
    build = time.perf_counter() - t0

    rng = np.random.default_rng(7)
    n = args.score_rows
    who = rng.integers(0, args.principals, n)
    api_no = rng.integers(0, 60, n)  # a third of these APIs fall outside the principal's vocabulary
    features = pa.table(
        {
            "event_time": pa.array(
                (end_day * SECONDS_PER_DAY + np.sort(rng.integers(0, SECONDS_PER_DAY, n))) * 1_000_000,
                pa.timestamp("us", tz="UTC"),
            ),
            "account_id": pa.array([ACCOUNT] * n),
            "principal": pa.array([f"arn:aws:iam::{ACCOUNT}:user/p{p:05d}" for p in who]),
            "api": pa.array([f"svc{((p // 20) * 7 + a) % 400}:Api{a}" for p, a in zip(who, api_no, strict=True)]),
        }
    )
    thin = rng.random(n) < 0.05
    t0 = time.perf_counter()
    out = ctx.augment(features, thin)
    augment = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"history: {args.events:,} events, {args.principals:,} principals, {args.days} days (made in {made:.1f} s)")
    print(f"aggregate  {aggregate:8.1f} s   ({aggs['papi'].count().execute():,} principal-api-day rows)")
    print(f"build      {build:8.1f} s   (one scored day: peers, automation, account usage)")
    print(f"augment    {augment:8.1f} s   ({n:,} rows, {int(thin.sum()):,} thin; {n / augment:,.0f} rows/s)")
    print(f"peak RSS   {peak:8.0f} MiB  (columns added: {len(out.column_names) - len(features.column_names)})")
    print(
        f"reproduce: .venv/bin/python bench/model.py --principals {args.principals} --events {args.events} "
        f"--days {args.days} --score-rows {args.score_rows}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
