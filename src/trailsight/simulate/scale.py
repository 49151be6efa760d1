"""Scale mode: write N valid CloudTrail events fast, for the scale benchmarks.

A simpler organisation (many principals, each with a handful of calls) is
rendered once into record templates with three holes — ``eventTime``,
``requestID`` and ``eventID`` — and the events are then produced by string
formatting, five-minute file by five-minute file, in the same S3 layout as
:func:`trailsight.simulate.simulate`. Deterministic per seed.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import orjson

from trailsight.errors import ConfigError
from trailsight.simulate.apis import TEAM_VOCAB, Resources, request_for
from trailsight.simulate.networks import AWS_BY_REGION, NETWORKS
from trailsight.simulate.records import assumed_role, build_record, iam_user, kebab, key_id
from trailsight.simulate.writer import WINDOW_S

_HOLE_T = "\x00T"
_HOLE_R = "\x00R"
_HOLE_E = "\x00E"
_LAMBDA_UA = "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#5.10 lang/python#3.12.6 exec-env/AWS_Lambda_python3.12"
_CLI_UA = "aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/macos#23.4.0 md/arch#arm64 lang/python#3.11.8 md/command#{c}"
_HOMES = [k for k, n in NETWORKS.items() if n.kind == "residential" and n.country in ("US", "GB", "DE")]


@dataclass(frozen=True, kw_only=True)
class ScaleResult:
    """What a scale run wrote and how fast."""

    out: Path
    events: int
    files: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        """Throughput of the run."""
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def _templates(rng: random.Random, principals: int) -> dict[tuple[str, str], list[str]]:
    """Record templates by (account, region): each a JSON text with %s holes for time, request id, event id."""
    accounts = [str(rng.randrange(100_000_000_000, 999_999_999_999)) for _ in range(2)]
    regions = ("us-east-1", "eu-west-1", "us-west-2")
    out: dict[tuple[str, str], list[str]] = {(a, r): [] for a in accounts for r in regions}
    teams = list(TEAM_VOCAB)
    for p in range(principals):
        acct = accounts[0] if p % 3 else accounts[1]
        region = regions[0] if p % 4 else regions[1 + p % 2]
        res = Resources(account=acct, env="prod" if acct == accounts[0] else "staging")
        if p % 2 == 0:
            name = f"user{p:04d}"
            ident = iam_user(acct, name, key_id(rng, "AIDA"), key_id(rng, "AKIA"))
            ip = NETWORKS[_HOMES[p % len(_HOMES)]].host(p)
        else:
            ident = assumed_role(
                acct,
                f"workload-{p:04d}-role",
                "/service-role/",
                key_id(rng, "AROA"),
                f"workload-{p:04d}",
                key_id(rng, "ASIA"),
                1.7e9,
            )
            ip = NETWORKS[AWS_BY_REGION[region][0]].host(p)
        vocab = TEAM_VOCAB[teams[p % len(teams)]]
        for service, api, _ in rng.sample(vocab, 6):
            ua = _CLI_UA.format(c=f"{service}.{kebab(api)}") if p % 2 == 0 else _LAMBDA_UA
            rec = build_record(
                rng=rng,
                identity=ident,
                ts=0,
                service=service,
                event_name=api,
                region=region,
                source_ip=ip,
                user_agent=ua,
                request=request_for(service, api, res, region, rng),
            )
            rec["eventTime"] = _HOLE_T
            rec["requestID"] = _HOLE_R
            rec["eventID"] = _HOLE_E
            text = orjson.dumps(rec).decode().replace("%", "%%")
            for hole in (_HOLE_T, _HOLE_R, _HOLE_E):
                text = text.replace(orjson.dumps(hole).decode(), '"%s"')
            out[(acct, rec["awsRegion"])].append(text)
    return {k: v for k, v in out.items() if v}


_State = tuple[str, dict[tuple[str, str], list[str]], list[tuple[str, str]], list[float], int, int]
_STATE: list[_State] = []


def _init_worker(state: _State) -> None:
    _STATE[:] = [state]


def _write_windows(task: tuple[int, list[tuple[int, int]]]) -> int:
    """Write the files of one day's windows ``[(window start, events)]``; returns the number of files."""
    base, templates, groups, share, seed, compresslevel = _STATE[0]
    day, windows = task
    rng = random.Random(f"{seed}:{day}")  # noqa: S311 - reproducible simulation, not security
    getrandbits = rng.getrandbits
    made: set[str] = set()
    files = 0
    for start_s, count in windows:
        stamp = datetime.fromtimestamp(start_s + WINDOW_S, UTC)
        day_dir = stamp.strftime("%Y/%m/%d")
        stamp_s = stamp.strftime("%Y%m%dT%H%MZ")
        first = datetime.fromtimestamp(start_s, UTC).strftime("%Y-%m-%dT%H:%M:")
        hour_prefix, minute0 = first[:14], int(first[14:16])
        minute = [f"{hour_prefix}{minute0 + m:02d}:" for m in range(5)]
        per_group = rng.choices(range(len(groups)), weights=share, k=count)
        buckets: dict[int, int] = {}
        for g in per_group:
            buckets[g] = buckets.get(g, 0) + 1
        for g in sorted(buckets):
            tpl = templates[groups[g]]
            n_tpl = len(tpl)
            offsets = sorted(getrandbits(9) % WINDOW_S for _ in range(buckets[g]))
            parts = []
            for off in offsets:
                h = f"{getrandbits(256):064x}"
                parts.append(
                    tpl[int(h[:8], 16) % n_tpl]
                    % (
                        f"{minute[off // 60]}{off % 60:02d}Z",
                        f"{h[32:40]}-{h[40:44]}-4{h[45:48]}-a{h[49:52]}-{h[52:]}",
                        f"{h[:8]}-{h[8:12]}-4{h[13:16]}-b{h[17:20]}-{h[20:32]}",
                    )
                )
            payload = ('{"Records":[' + ",".join(parts) + "]}").encode()
            account, region = groups[g]
            folder = f"{base}/AWSLogs/{account}/CloudTrail/{region}/{day_dir}"
            if folder not in made:
                os.makedirs(folder, exist_ok=True)  # noqa: PTH103 - hot loop
                made.add(folder)
            rand = f"{getrandbits(64):016x}"
            name = f"{folder}/{account}_CloudTrail_{region}_{stamp_s}_{rand}.json.gz"
            with open(name, "wb") as fh:  # noqa: PTH123 - the hot loop avoids pathlib's overhead
                fh.write(zlib.compress(payload, compresslevel, 31))
            files += 1
    return files


def simulate_scale(
    out: Path,
    *,
    events: int,
    days: int = 30,
    principals: int = 400,
    seed: int = 7,
    start: date = date(2025, 2, 3),
    compresslevel: int = 1,
    workers: int = 1,
) -> ScaleResult:
    """Write exactly ``events`` events over ``days`` days under ``out``; returns counts and timing.

    ``workers`` > 1 writes days in parallel processes; the output is the same whatever the
    number of workers (each day has its own seeded random stream).
    """
    if events < 1:
        raise ConfigError(f"--events: must be positive (got {events})")
    if days < 1:
        raise ConfigError(f"--days: must be positive (got {days})")
    began = time.perf_counter()
    rng = random.Random(seed)  # noqa: S311 - reproducible simulation, not security
    templates = _templates(rng, principals)
    groups = sorted(templates)
    t0 = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
    windows = days * 86_400 // WINDOW_S
    # A day/night rhythm over the windows, then exact integer counts that add up to `events`.
    weights = [1.0 + 0.8 * math.sin((w % 288) / 288 * 2 * math.pi - 1.2) for w in range(windows)]
    total_w = sum(weights)
    counts = [int(events * w / total_w) for w in weights]
    for i in range(events - sum(counts)):
        counts[i * 7919 % windows] += 1
    share = [0.5 if r == "us-east-1" else 0.25 for _, r in groups]
    per_day = 86_400 // WINDOW_S
    tasks = [
        (d, [(t0 + w * WINDOW_S, counts[w]) for w in range(d * per_day, (d + 1) * per_day) if counts[w]])
        for d in range(days)
    ]
    state: _State = (str(out), templates, groups, share, seed, compresslevel)
    if workers > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(state,)) as pool:
            files = sum(pool.imap_unordered(_write_windows, tasks))
    else:
        _init_worker(state)
        files = sum(_write_windows(t) for t in tasks)
    return ScaleResult(out=out, events=events, files=files, seconds=time.perf_counter() - began)
