"""Time to alert: a simulated organisation's trail files through S3 → SQS → ``watch`` → a webhook.

    .venv/bin/python bench/time_to_alert.py [--accounts 50] [--regions 4] [--events-per-file 10]
                                            [--speedup 20] [--cycles 4] [--every 15m] [--store /tmp/tta]

Everything runs on 127.0.0.1: moto's server in its own process (S3 with notifications to an
SQS queue), a local
HTTP receiver standing for Slack, and ``watch``'s cycle (:func:`trailsight.watch.run_cycle`,
the real intake, detect and delivery code).

1. **History.** Two days of ordinary activity per account and region (one file per 5 minutes)
   are ingested first, so the detectors have baselines (not timed).
2. **Live.** A feeder thread writes one file per account and region every 5 simulated minutes
   (CloudTrail's delivery cadence), each holding ``--events-per-file`` records of the 5 minutes
   before it; S3 notifies the queue. One file in 40 (``--anomaly-rate``) also holds an anomalous burst (a
   principal calling APIs it never called, from a new network). The arrival time of every
   object is recorded.
3. **Watch.** A cycle runs every ``--every`` of simulated time with source ``sqs://...``;
   alerts go to the webhook with ``format=slack``; the receiver records when each arrived.

Simulated time runs ``--speedup`` times faster than the wall clock: waiting compresses, computing
does not. For each anomalous burst the report gives, in wall-clock seconds of this run,
arrival → delivery (median and worst), split into the wait for the next cycle and the cycle's
processing; and the same figures *projected to real time* (wait × speedup + processing), which
is what an organisation at CloudTrail's real cadence would see on this machine (CloudTrail's own
delivery delay, about 5 minutes from the API call to the object, comes on top). It also prints
events, files, messages, seconds and peak memory per cycle, and the command that reproduces it.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import resource
import shutil
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from trailsight.config import Settings
from trailsight.ingest import ingest
from trailsight.outputs.registry import OutputDefaults, parse_outputs
from trailsight.watch import WatchOptions, parse_duration, run_cycle

BUCKET = "org-trail"
ORG = "o-bench12345"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday morning
NORMAL = [
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("s3.amazonaws.com", "ListBuckets"),
    ("s3.amazonaws.com", "GetObject"),
    ("sts.amazonaws.com", "GetCallerIdentity"),
    ("cloudwatch.amazonaws.com", "GetMetricData"),
]
ANOMALY = [
    ("cloudtrail.amazonaws.com", "StopLogging"),
    ("iam.amazonaws.com", "CreateAccessKey"),
    ("iam.amazonaws.com", "AttachUserPolicy"),
    ("s3.amazonaws.com", "PutBucketPolicy"),
]


def account_ids(n: int) -> list[str]:
    return [f"{100000000000 + 7919 * i:012d}" for i in range(n)]


def region_names(n: int) -> list[str]:
    return ["us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2", "us-west-2", "sa-east-1"][:n]


def record(account: str, region: str, at: datetime, api: tuple[str, str], *, ip: str, who: str) -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": f"AIDA{account}",
            "arn": f"arn:aws:iam::{account}:user/{who}",
            "accountId": account,
            "accessKeyId": f"AKIA{account}",
            "userName": who,
        },
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": api[0],
        "eventName": api[1],
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": "aws-cli/2.15.0 Python/3.11.6",
        "requestID": uuid.uuid4().hex,
        "eventID": str(uuid.uuid4()),
        "readOnly": api[1].startswith(("Describe", "List", "Get")),
        "eventType": "AwsApiCall",
        "recipientAccountId": account,
    }


def trail_file(
    account: str, region: str, end: datetime, n: int, rng: random.Random, *, anomaly: bool
) -> tuple[bytes, list[str]]:
    """One delivery: ``n`` records from the 5 minutes before ``end`` (plus a burst when ``anomaly``)."""
    recs = [
        record(
            account,
            region,
            end - timedelta(seconds=rng.randint(1, 299)),
            rng.choice(NORMAL),
            ip="198.51.100.7",
            who="ops",
        )
        for _ in range(n)
    ]
    burst: list[str] = []
    if anomaly:
        for api in ANOMALY:
            rec = record(
                account, region, end - timedelta(seconds=rng.randint(1, 120)), api, ip="185.220.101.34", who="ops"
            )
            burst.append(rec["eventID"])
            recs.append(rec)
    recs.sort(key=lambda r: r["eventTime"])
    return gzip.compress(orjson.dumps({"Records": recs})), burst


def key_for(account: str, region: str, end: datetime) -> str:
    stamp = end.strftime("%Y%m%dT%H%MZ")
    return (
        f"AWSLogs/{ORG}/{account}/CloudTrail/{region}/{end:%Y/%m/%d}/"
        f"{account}_CloudTrail_{region}_{stamp}_{uuid.uuid4().hex[:16]}.json.gz"
    )


class Receiver:
    """The stand-in for Slack: records when each alert arrived."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.arrivals.append((time.monotonic(), orjson.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/bench"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Recording:
    """Wraps the Slack sink; records when each alert was delivered and which events it held."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.delivered: list[tuple[float, set[str]]] = []

    def send(self, alerts: Any) -> Any:
        result = self.inner.send(alerts)
        at = time.monotonic()
        self.delivered.extend((at, set(a.finding.get("event_ids") or ())) for a in result.delivered)
        return result

    def close(self) -> None:
        self.inner.close()


@dataclass
class Feed:
    """What the feeder wrote: object arrival times and the anomalous bursts."""

    arrivals: dict[str, float] = field(default_factory=dict)  # key -> monotonic time of the put
    bursts: dict[str, list[str]] = field(default_factory=dict)  # key -> event ids of its burst
    files: int = 0
    events: int = 0
    done: threading.Event = field(default_factory=threading.Event)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=50)
    ap.add_argument("--regions", type=int, default=4)
    ap.add_argument("--events-per-file", type=int, default=10)
    ap.add_argument("--history-days", type=float, default=2.0)
    ap.add_argument("--speedup", type=float, default=20.0)
    ap.add_argument("--cycles", type=int, default=4)
    ap.add_argument("--every", default="15m")
    ap.add_argument("--store", type=Path, default=Path("/tmp/tta"))
    ap.add_argument("--anomaly-rate", type=float, default=1 / 40, help="share of files with an anomalous burst")
    ap.add_argument("--workers", type=int, default=None, help="[ingest] workers (default: ingest's own)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    every = parse_duration(args.every, setting="--every")
    settings = Settings(data={"ingest": {"workers": args.workers}} if args.workers is not None else {})
    rng = random.Random(args.seed)
    accounts, regions = account_ids(args.accounts), region_names(args.regions)

    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    import socket
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    # moto in its own process: in this one it would share the GIL with the feeder and the cycle
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    s3.create_bucket(Bucket=BUCKET)
    queue = sqs.create_queue(QueueName="trail")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    # 1. history, ingested straight from disk (not timed)
    shutil.rmtree(args.store, ignore_errors=True)
    hist = args.store.parent / (args.store.name + "-history")
    shutil.rmtree(hist, ignore_errors=True)
    start = T0 - timedelta(days=args.history_days)
    t = start + timedelta(minutes=5)
    while t <= T0:
        for account in accounts:
            for region in regions:
                data, _ = trail_file(account, region, t, max(2, args.events_per_file // 3), rng, anomaly=False)
                path = hist / key_for(account, region, t)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        t += timedelta(hours=1)  # one file an hour is enough for baselines
    began = time.perf_counter()
    summary = ingest([str(hist)], args.store, Settings())
    print(f"history: {summary.new:,} events in {time.perf_counter() - began:.1f}s", file=sys.stderr)

    # 2. the live feed, through S3 notifications
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    real0 = time.monotonic()

    def sim_now() -> datetime:
        return T0 + (time.monotonic() - real0) * args.speedup * timedelta(seconds=1)

    def sleep_until(when: datetime) -> None:
        left = (when - sim_now()).total_seconds() / args.speedup
        if left > 0:
            time.sleep(left)

    feed = Feed()
    end_sim = T0 + every * args.cycles

    def feeder() -> None:
        tick = T0 + timedelta(minutes=5)
        while tick <= end_sim - every / 3:
            sleep_until(tick)
            for account in accounts:
                for region in regions:
                    anomaly = rng.random() < args.anomaly_rate
                    data, burst = trail_file(account, region, tick, args.events_per_file, rng, anomaly=anomaly)
                    key = key_for(account, region, tick)
                    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
                    feed.arrivals[key] = time.monotonic()
                    feed.files += 1
                    feed.events += args.events_per_file + len(burst)
                    if burst:
                        feed.bursts[key] = burst
            tick += timedelta(minutes=5)
        feed.done.set()

    receiver = Receiver()
    sink = Recording(parse_outputs([f"slack:{receiver.url}"], defaults=OutputDefaults()))
    options = WatchOptions(source=f"sqs://{queue}?wait=1", store=args.store, every=every, max_alerts=10_000)
    threading.Thread(target=feeder, daemon=True).start()

    # 3. watch cycles at every --every of simulated time (one more after the feed ends)
    rows: list[dict[str, Any]] = []
    cycle_starts: list[float] = []
    for k in range(1, args.cycles + 2):
        sleep_until(T0 + every * k)
        cycle_starts.append(time.monotonic())
        began = time.perf_counter()
        report = run_cycle(options, settings, sink, sim_now()).to_dict()
        rows.append(
            {
                "cycle": k,
                "seconds": round(time.perf_counter() - began, 2),
                "files": report["files_ingested"],
                "events": report["events_ingested"],
                "messages": report["intake"].get("messages", 0),
                "alerts": report["delivered"],
                "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
        print(orjson.dumps(rows[-1]).decode(), file=sys.stderr)

    # time to alert, per anomalous burst: its object's arrival -> the first delivered alert holding its events
    waits, procs, totals, projected, missed = [], [], [], [], 0
    for key, burst in feed.bursts.items():
        arrived = feed.arrivals[key]
        times = [at for at, events in sink.delivered if events.issuperset(burst)]
        if not times:
            missed += 1
            continue
        got = min(times)
        start_of_cycle = max((c for c in cycle_starts if c <= got), default=arrived)
        # a file that arrived while a cycle was draining is picked up by that cycle: no wait
        wait = max(0.0, start_of_cycle - arrived)
        proc = got - max(start_of_cycle, arrived)
        waits.append(wait)
        procs.append(proc)
        totals.append(got - arrived)
        projected.append(wait * args.speedup + proc)

    def fmt(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.1f}s, worst {max(xs):.1f}s" if xs else "n/a"

    print()
    print(
        f"organisation: {args.accounts} accounts x {args.regions} regions, a file every 5 min each, "
        f"{args.events_per_file} events a file; speed-up {args.speedup:g}x; cycle every {args.every}"
    )
    print(
        f"fed: {feed.files:,} files, {feed.events:,} events, {len(feed.bursts)} anomalous bursts ({missed} not alerted)"
    )
    print()
    print("| cycle | seconds | files | events | messages | alerts | peak RSS MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['cycle']} | {r['seconds']} | {r['files']:,} | {r['events']:,} | {r['messages']:,} "
            f"| {r['alerts']} | {r['maxrss_mib']} |"
        )
    print()
    print(
        f"arrival -> delivery (this run, wall clock): {fmt(totals)}; "
        f"of which waiting for the cycle {fmt(waits)}, processing {fmt(procs)}"
    )
    print(f"projected at CloudTrail's real cadence (wait x {args.speedup:g} + processing): {fmt(projected)}")
    print()
    print("reproduce: .venv/bin/python bench/time_to_alert.py " + " ".join(sys.argv[1:]))
    moto.terminate()
    moto.wait()


if __name__ == "__main__":
    main()
