"""Property tests: the enricher never raises and always answers in the schema's vocabulary."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from trailsight.enrich import Enricher
from trailsight.enrich.catalog import lookup
from trailsight.enrich.network import non_ip_kind, parse_ip
from trailsight.enrich.useragent import FAMILIES, classify_user_agent
from trailsight.schema import IP_KINDS, RECORD_FIELDS

ENRICHER = Enricher()  # no geo/ASN data: the properties hold with or without it
texts = st.one_of(st.none(), st.text(max_size=80), st.ip_addresses().map(str))


@settings(deadline=None)
@given(texts)
def test_user_agent_family_is_known(agent: str | None) -> None:
    assert classify_user_agent(agent) in FAMILIES


@settings(deadline=None)
@given(texts)
def test_ip_kind_is_known(value: str | None) -> None:
    kind = ENRICHER.ip_info(value or "")[0] if value else non_ip_kind(value)
    assert kind in IP_KINDS


@settings(deadline=None)
@given(st.ip_addresses())
def test_every_address_parses(addr: object) -> None:
    assert parse_ip(str(addr)) is not None


@settings(deadline=None)
@given(texts, texts)
def test_catalog_answers_anything(source: str | None, name: str | None) -> None:
    info = lookup(source, name)
    assert 0.0 <= info.risk <= 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(texts, texts, texts, texts), max_size=20))
def test_enrich_never_raises(rows: list[tuple[str | None, ...]]) -> None:
    n = len(rows)
    columns = {f.name: pa.nulls(n, f.type) for f in RECORD_FIELDS}
    for i, name in enumerate(("source_ip", "user_agent", "event_source", "event_name")):
        columns[name] = pa.array([r[i] for r in rows], pa.string())
    out = ENRICHER.enrich(pa.table(columns, schema=pa.schema(RECORD_FIELDS)))
    assert out.num_rows == n
    assert set(out.column("ip_kind").to_pylist()) <= set(IP_KINDS)
    assert set(out.column("ua_family").to_pylist()) <= set(FAMILIES)
