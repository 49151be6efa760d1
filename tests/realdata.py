"""Where the real CloudTrail captures are (../shared/data/real) and names in them the tests use."""

from __future__ import annotations

from pathlib import Path

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
INVICTUS = REAL / "invictus-ir_aws_dataset" / "CloudTrail"
BERT = "arn:aws:iam::123837392027:user/bert-jan"
