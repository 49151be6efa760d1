"""Small CloudTrail builders shared by the test folders: a plausible record, a delivery file, the S3 layout."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson


def event(i: int, **extra: Any) -> dict[str, Any]:
    """A plausible CloudTrail record number ``i`` (an IAM user's DescribeInstances)."""
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": "arn:aws:iam::111122223333:user/alice",
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLE",
            "userName": "alice",
        },
        "eventTime": f"2025-03-03T10:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0 Python/3.11.6",
        "requestParameters": {"maxResults": 5},
        "responseElements": None,
        "requestID": f"req-{i}",
        "eventID": f"00000000-0000-4000-8000-{i:012d}",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }
    rec.update(extra)
    return rec


def write_trail(folder: Path, records: list[Any], *, name: str = "trail", gz: bool = True) -> Path:
    """Write ``{"Records": records}`` to ``folder/name.json[.gz]``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps({"Records": records})
    path = folder / (f"{name}.json.gz" if gz else f"{name}.json")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def s3_layout(root: Path, account: str, region: str, day: str) -> Path:
    """The S3-layout folder of one account, region and day (``YYYY-MM-DD``)."""
    y, m, d = day.split("-")
    return root / "AWSLogs" / account / "CloudTrail" / region / y / m / d


#: The top-level record keys the normaliser reads (for property and fuzz tests that mutate records).
CLOUDTRAIL_KEYS = [
    "eventTime",
    "@timestamp",
    "eventName",
    "eventID",
    "eventSource",
    "awsRegion",
    "recipientAccountId",
    "userIdentity",
    "sourceIPAddress",
    "userAgent",
    "readOnly",
    "requestParameters",
    "resources",
    "errorCode",
]
