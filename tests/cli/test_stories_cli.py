"""Stories in the CLI: detect over the real invictus-ir detonation, then list and show its story."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from realdata import BERT, INVICTUS
from trailsight.cli.main import app
from trailsight.features.source import lake_day_range
from trailsight.store import lineage
from trailsight.store.findings import connect_state
from trailsight.store.layout import StoreLayout

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not INVICTUS.is_dir():
        pytest.skip("real data not present")
    from trailsight.ingest import ingest

    root = tmp_path_factory.mktemp("stories-store")
    ingest([INVICTUS], root, workers=0)
    days = lake_day_range(StoreLayout(root))
    assert days is not None
    since = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    until = datetime(days[1].year, days[1].month, days[1].day, tzinfo=UTC) + timedelta(days=1)
    result = runner.invoke(
        app, ["detect", "--store", str(root), "--since", since.isoformat(), "--until", until.isoformat()]
    )
    assert result.exit_code == 0, result.output
    return root


def _rows(store: Path) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["findings", "list", "--store", str(store), "-f", "jsonl", "-n", "500"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_detect_stores_the_lineage_and_the_story(store: Path) -> None:
    with connect_state(StoreLayout(store), read_only=True) as con:
        links = lineage.stored_links(con)
    assert {x.link for x in links} >= {"access_key", "user", "login_profile", "assume_role", "trust"}
    rows = _rows(store)
    stories = [r for r in rows if str(r["finding_type"]).startswith("AttackSequence:")]
    assert stories
    assert rows[0]["id"] == stories[0]["id"]  # stories rank first
    story = stories[0]
    assert BERT in story["principals"]
    members = [r for r in rows if r.get("story_id") == story["id"]]
    assert sorted(str(m["id"]) for m in members) == sorted(story["members"])
    assert set(story["event_ids"]) >= {e for m in members for e in m["event_ids"]}


def test_list_folds_members_under_their_story_and_show_tells_it_in_steps(store: Path) -> None:
    story = next(r for r in _rows(store) if str(r["finding_type"]).startswith("AttackSequence:"))
    result = runner.invoke(app, ["findings", "list", "--store", str(store)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if str(story["id"])[:14] in line)
    assert "└ ts-" in "\n".join(lines[at + 1 : at + 12])
    result = runner.invoke(app, ["findings", "show", str(story["id"]), "--store", str(store)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "The story, step by step" in out
    assert "  1. " in out
    assert "  2. " in out
    assert "later, " in out
    assert "Principals:" in out
    assert "Member findings:" in out
