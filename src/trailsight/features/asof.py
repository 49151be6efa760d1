"""As-of behavioural features, written once as portable Ibis expressions.

For every event in ``[since, until)`` this module computes, from the history strictly before
it (ordered by ``event_time, event_id``), how often each *pair* — (principal, api),
(principal, asn), (account, error_code), (api, city) ... — occurred before.

Shape (exact, leak-free and scalable):

1. **Daily profiles.** The history is aggregated per pair and UTC day: ``n`` (events),
   ``first`` / ``last`` (timestamps) and ``hours`` (distinct clock hours). These aggregates are
   associative, so a profile for a longer period is the merge of daily ones, and a forget
   window simply drops old days.
2. **Before the event's day.** A ``RANGE`` window over the day number, ``forget_days`` preceding
   to 1 preceding, sums the profile over the earlier days of the window.
3. **Within the event's day.** ``row_number()`` over (pair, day) ordered by time and event id
   counts the pair's earlier events of the same day; the first/last timestamps and distinct
   hours of that day so far come from window functions over the same partition.

Nothing else is used, so an event never sees itself or anything after it, and scoring a range
in pieces gives the same features as scoring it at once (the history read for a range always
reaches ``forget_days`` back from its first day).

Frequency classes (GuardDuty-like, from active days per week over the pair owner's history in
the window, at least two weeks): ``frequent`` — on average at least one active day a week
(seen most weeks); ``infrequent`` — at least one day in four weeks (a few times a month);
``rare`` — less than that; ``unseen`` — never before in the window.

No raw SQL: DuckDB runs these expressions today, and the same expressions compile for Spark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from trailsight.enrich.netclass import TRAVEL_CLASSES
from trailsight.enrich.useragent import CALL_PATTERN
from trailsight.features.options import FeatureOptions

SECONDS_PER_DAY = 86_400
#: Epoch hour 0 (1970-01-01) was a Thursday; adding 72 h makes Monday 00:00 UTC hour-of-week 0.
HOW_OFFSET = 72

#: Event columns carried into the feature table.
CARRIED_COLUMNS: tuple[str, ...] = (
    "event_id",
    "event_time",
    "event_date",
    "account_id",
    "region",
    "event_source",
    "service",
    "event_name",
    "read_only",
    "event_type",
    "error_code",
    "error_message",
    "source_ip",
    "user_agent",
    "ua_family",
    "identity_type",
    "principal",
    "principal_name",
    "actor",
    "session_name",
    "access_key_id",
    "mfa",
    "invoked_by",
    "ip_kind",
    "country",
    "city",
    "asn",
    "as_org",
    "tactic",
    "technique",
    "api_risk",
    "utc_offset",
    "net_class",
    "net_prefix",
    "latitude",
    "longitude",
)

#: Columns derived from the event by :func:`prepare` and kept in the feature table: the api
#: (``service:EventName``), the UTC day, UTC clock hour and hour of week, ``lhour`` — the clock
#: hour where the call came from (the source's time zone; null where it has none) — and
#: ``person``, who acted across the organisation (:func:`person_key`).
DERIVED_COLUMNS: tuple[str, ...] = ("api", "day", "hour", "how", "lhour", "person")

#: Key columns kept as numbers (the rest are text, null as ``""``); a null ``lhour`` keys as -1.
NUMERIC_KEYS: tuple[str, ...] = ("_k_hour", "_k_how", "_k_lhour")

FREQUENCY_CLASSES = ("frequent", "infrequent", "rare", "unseen")

#: The actor's previous located call on the same UTC day (geo-velocity): time, coordinates, class.
TRAVEL_COLUMNS: tuple[str, ...] = ("x_prev_time", "x_prev_lat", "x_prev_lon", "x_prev_class")


@dataclass(frozen=True)
class Pair:
    """One as-of pair: feature columns ``<name>_n``, ``_days``, ``_first``, ``_last``, ``_freq``.

    ``owner`` is the single-key pair whose age sets the span of the frequency class;
    ``hours`` adds ``<name>_hours`` (distinct earlier clock hours with the pair). A ``sparse``
    pair counts only the events where every key is present (sign-ins, long-term keys): the
    others take no part, and their figures are 0 (counts) and null (times).
    """

    name: str
    keys: tuple[str, ...]
    owner: str
    hours: bool = False
    sparse: bool = False

    def present(self, table: ir.Table) -> ir.BooleanValue:
        """True on the rows of ``table`` (prepared) a sparse pair counts."""
        out: ir.BooleanValue = ibis.literal(True)
        for key in self.keys:
            out = out & table[key].notnull()
        return out


#: The pairs computed for every event. Key names are event columns or derived ones (``api``, ``hour``).
PAIRS: tuple[Pair, ...] = (
    Pair("p", ("principal",), "p", hours=True),
    Pair("a", ("account_id",), "a", hours=True),
    Pair("x", ("person",), "x"),
    Pair("p_api", ("principal", "api"), "p", hours=True),
    Pair("p_service", ("principal", "service"), "p"),
    Pair("p_country", ("principal", "country"), "p", hours=True),
    Pair("p_city", ("principal", "city"), "p"),
    Pair("p_asn", ("principal", "asn"), "p"),
    Pair("p_ncls", ("principal", "net_class"), "p"),
    Pair("p_uaf", ("principal", "ua_family"), "p"),
    Pair("p_ua", ("principal", "agent"), "p"),
    Pair("p_region", ("principal", "region"), "p"),
    Pair("p_err", ("principal", "error_code"), "p"),
    Pair("p_hour", ("principal", "hour"), "p"),
    Pair("p_how", ("principal", "how"), "p"),
    Pair("p_lhour", ("principal", "lhour"), "p"),
    Pair("x_api", ("person", "api"), "x"),
    Pair("a_api", ("account_id", "api"), "a"),
    Pair("a_asn", ("account_id", "asn"), "a"),
    Pair("a_err", ("account_id", "error_code"), "a", hours=True),
    Pair("a_ua", ("account_id", "agent"), "a"),
    Pair("a_uaf", ("account_id", "ua_family"), "a"),
    Pair("city", ("city",), "a", hours=True),
    Pair("country", ("country",), "a", hours=True),
    Pair("api_city", ("api", "city"), "a", hours=True),
    Pair("api_country", ("api", "country"), "a", hours=True),
    # Sign-ins and long-term keys (derived keys from :data:`DERIVED_KEYS`; see signin_keys).
    Pair("p_signin", ("principal", "signin"), "p", sparse=True),
    Pair("p_signin_mfa", ("principal", "signin_mfa"), "p", sparse=True),
    Pair("k", ("lt_key",), "p", sparse=True),
    Pair("k_asn", ("lt_key", "asn"), "p", sparse=True),
)

#: Key columns :func:`prepare` derives from the event columns (besides ``api``, ``hour``, ``how``):
#: the sign-in keys (:func:`signin_keys`) and ``agent``, the user agent without the token that
#: names the call (:func:`trailsight.enrich.useragent.client_agent`) — exact-agent novelty is
#: judged on the client, not on the CLI command it ran.
DERIVED_KEYS: tuple[str, ...] = ("signin", "signin_mfa", "lt_key", "agent")

#: Derived keys the local engine works out in Arrow, once per distinct value of the column they
#: come from, rather than per row in SQL (:func:`trailsight.features.chunk.with_arrow_keys`): the
#: same values as :func:`prepare` gives.
ARROW_KEYS: tuple[str, ...] = ("agent",)

PAIR_BY_NAME: dict[str, Pair] = {p.name: p for p in PAIRS}


def feature_columns() -> list[str]:
    """Names of every feature column (besides the carried event columns)."""
    cols = list(DERIVED_COLUMNS)
    for p in PAIRS:
        cols += [f"{p.name}_n", f"{p.name}_days", f"{p.name}_first", f"{p.name}_last", f"{p.name}_freq"]
        if p.hours:
            cols.append(f"{p.name}_hours")
    cols += [
        "p_age_days",
        "a_age_days",
        "x_age_days",
        "p_hour_share",
        "p_how_share",
        "a_api_principals",
        "p_hour_count",
        "p_how_mean",
        "p_how_var",
        "err_distinct_15m",
        "err_bucket_mean",
        "err_bucket_var",
        "gated_account",
        "gated_principal",
        "a_net_principals",
        *TRAVEL_COLUMNS,
        "signin_fails",
        "signin_fails_first",
    ]
    return cols


def key_column(col: str) -> str:
    """The name of the (text) key column made from event column ``col``."""
    return f"_k_{col}"


def person_key(actor: ir.StringValue) -> ir.StringValue:
    """Who acted, one key across the organisation's accounts.

    An IAM Identity Center user is one person in every account it is assigned to: behind a
    permission set (``…/AWSReservedSSO_<set>_<hash>/<session>``) the key drops the account and the
    role's hash suffix, so the person's history in one account counts in the others. Every other
    actor (an IAM user, a role's stable session name) is its own ARN: names are not unique
    across accounts.
    """
    org_wide = actor.re_replace(r"^arn:[^:]*:iam::[0-9]*:", "").re_replace(r"_[0-9a-f]{16}/", "/")
    return ibis.ifelse(actor.contains("/AWSReservedSSO_"), org_wide, actor)


def signin_keys(events: ir.Table) -> dict[str, ir.Value]:
    """The derived keys of sign-ins and long-term keys, null on every other event.

    ``signin``: ``ok`` or ``fail`` for a console sign-in (``ConsoleLogin``; failed when it carries
    an error code or message, as CloudTrail writes "Failed authentication"); a failed MFA step
    (``CheckMfa`` with an error) is a ``fail`` too. ``signin_mfa``:
    ``mfa``, ``nomfa`` or ``unknown`` for a successful one. ``lt_key``: the access key id when it
    is a long-term key (``AKIA…``).
    """
    login = events.event_name == "ConsoleLogin"
    failed = events.error_code.notnull() | events.error_message.notnull()
    ok = login & ~failed
    step = login | (events.event_name == "CheckMfa")
    return {
        "signin": ibis.cases((step & failed, "fail"), (login, "ok"), else_=ibis.null("string")),
        "signin_mfa": ibis.cases(
            (ok & events.mfa.fill_null(False), "mfa"),
            (ok & ~events.mfa.fill_null(True), "nomfa"),
            (ok, "unknown"),
            else_=ibis.null("string"),
        ),
        "lt_key": ibis.ifelse(
            events.access_key_id.fill_null("").startswith("AKIA"), events.access_key_id, ibis.null("string")
        ),
    }


def prepare(events: ir.Table) -> ir.Table:
    """Derive the day/hour columns and null-free key copies used for partitions and joins."""
    secs = events.event_time.epoch_seconds()
    t = events.select(*CARRIED_COLUMNS).mutate(
        api=events.service.fill_null("") + ":" + events.event_name,
        day=(secs // SECONDS_PER_DAY).cast("int64"),
        hour_idx=(secs // 3600).cast("int64"),
        b15=(secs // 900).cast("int64"),
        **signin_keys(events),
        agent=events.user_agent.re_replace(CALL_PATTERN, ""),
    )
    local_hour_idx = (secs + t.utc_offset.cast("int64") * 60) // 3600
    t = t.mutate(
        hour=t.hour_idx % 24,
        how=(t.hour_idx + HOW_OFFSET) % 168,
        lhour=(local_hour_idx % 24).cast("int64"),
        person=person_key(t.actor),
    )
    key_cols: set[str] = {k for p in PAIRS for k in p.keys} | {"net_prefix"}
    mutations: dict[str, Any] = {}
    for col in sorted(key_cols):
        value = t[col]
        if key_column(col) in NUMERIC_KEYS:
            mutations[key_column(col)] = value.fill_null(-1)
        else:
            mutations[key_column(col)] = value.cast("string").fill_null("")
    mutations["_k_msg"] = t.error_message.fill_null(t.error_code.fill_null(""))
    return t.mutate(**mutations)


def pair_daily(hist: ir.Table, pair: Pair) -> ir.Table:
    """The pair's daily profile: per (keys, day) ``_n`` events, ``_first``/``_last`` times, ``_hours``."""
    keys = [key_column(k) for k in pair.keys]
    if pair.sparse:
        hist = hist.filter(pair.present(hist))
    aggs: dict[str, Any] = {
        "_n": hist.count(),
        "_first": hist.event_time.min(),
        "_last": hist.event_time.max(),
    }
    if pair.hours:
        aggs["_hours"] = hist.hour_idx.nunique()
    return hist.group_by([*keys, "day"]).aggregate(**aggs)


def pair_window(daily: ir.Table, pair: Pair, forget_days: int) -> ir.Table:
    """Sum a pair's daily profile over the ``forget_days`` days before each of its days."""
    keys = [key_column(k) for k in pair.keys]
    w = ibis.window(group_by=keys, order_by=daily.day, range=(-forget_days, -1))
    out: dict[str, Any] = {
        f"{pair.name}__pn": daily._n.sum().over(w),
        f"{pair.name}__pd": daily._n.count().over(w),
        f"{pair.name}__pf": daily._first.min().over(w),
        f"{pair.name}__pl": daily._last.max().over(w),
    }
    if pair.hours:
        out[f"{pair.name}__ph"] = daily._hours.sum().over(w)
    return daily.select(*keys, "day", **out)


def _pair_part(cur: ir.Table, pair: Pair, profile: ir.Table) -> ir.Table:
    """One pair's features per event, from a narrow projection (keeps window sorts cheap).

    Same-day running figures come from windows over (pair, day); earlier days from the
    windowed daily profile joined on (pair, day).
    """
    nm = pair.name
    keys = [key_column(k) for k in pair.keys]
    if pair.sparse:
        cur = cur.filter(pair.present(cur))
    narrow = cur.select("event_id", "event_time", "day", "hour_idx", *keys)
    order = [narrow.event_time, narrow.event_id]
    kcols = [narrow[k] for k in keys]
    w_day = ibis.window(group_by=[*kcols, narrow.day], order_by=order)
    win: dict[str, Any] = {
        "_rn": ibis.row_number().over(w_day),
        # The day's first time, over the same (sorted) window: one sort serves all three.
        "_tf": narrow.event_time.first().over(w_day),
        "_tl": narrow.event_time.lag().over(w_day),
    }
    if pair.hours:
        win["_dr"] = ibis.dense_rank().over(ibis.window(group_by=[*kcols, narrow.day], order_by=narrow.hour_idx))
        win["_rh"] = ibis.row_number().over(ibis.window(group_by=[*kcols, narrow.hour_idx], order_by=order))
    narrow = narrow.mutate(**win)
    prof = profile.rename(**{f"_j{i}": c for i, c in enumerate([*keys, "day"])})
    preds = [narrow[c] == prof[f"_j{i}"] for i, c in enumerate([*keys, "day"])]
    j = narrow.left_join(prof, preds)
    seen_today = j._rn > 0
    out: dict[str, Any] = {
        f"{nm}__id": j.event_id,
        f"{nm}_n": j[f"{nm}__pn"].fill_null(0) + j._rn,
        f"{nm}_days": j[f"{nm}__pd"].fill_null(0) + ibis.ifelse(seen_today, 1, 0),
        f"{nm}_first": j[f"{nm}__pf"].fill_null(ibis.ifelse(seen_today, j._tf, ibis.null())),
        f"{nm}_last": ibis.ifelse(seen_today, j._tl, j[f"{nm}__pl"]),
    }
    if pair.hours:
        out[f"{nm}_hours"] = j[f"{nm}__ph"].fill_null(0) + j._dr + ibis.ifelse(j._rh > 0, 1, 0)
    return j.select(**out)


def _volume_part(cur: ir.Table, profile: ir.Table) -> ir.Table:
    """The principal's calls earlier in the event's clock hour, and its usual hour-of-week counts."""
    narrow = cur.select("event_id", "event_time", "hour_idx", "_k_principal")
    w = ibis.window(group_by=[narrow._k_principal, narrow.hour_idx], order_by=[narrow.event_time, narrow.event_id])
    narrow = narrow.mutate(p_hour_count=ibis.row_number().over(w))
    prof = profile.rename(_j0="_k_principal", _j1="hour_idx")
    j = narrow.left_join(prof, [narrow._k_principal == prof._j0, narrow.hour_idx == prof._j1])
    return j.select(vol__id=j.event_id, p_hour_count=j.p_hour_count, vol__vs=j.vol__vs, vol__vq=j.vol__vq)


def _error_part(cur: ir.Table, profile: ir.Table) -> ir.Table:
    """Distinct error messages of the account so far in the event's 15-minute bucket, and the usual."""
    narrow = cur.select("event_id", "event_time", "b15", "_k_account_id", "_k_msg", is_err=cur.error_code.notnull())
    order = [narrow.event_time, narrow.event_id]
    w_msg = ibis.window(group_by=[narrow._k_account_id, narrow.b15, narrow.is_err, narrow._k_msg], order_by=order)
    narrow = narrow.mutate(_new=ibis.ifelse(narrow.is_err & (ibis.row_number().over(w_msg) == 0), 1, 0))
    w_b15 = ibis.window(
        group_by=[narrow._k_account_id, narrow.b15], order_by=[narrow.event_time, narrow.event_id], following=0
    )
    narrow = narrow.mutate(err_distinct_15m=ibis.ifelse(narrow.is_err, narrow._new.sum().over(w_b15), 0))
    prof = profile.rename(_j0="_k_account_id", _j1="b15")
    j = narrow.left_join(prof, [narrow._k_account_id == prof._j0, narrow.b15 == prof._j1])
    return j.select(err__id=j.event_id, err_distinct_15m=j.err_distinct_15m, err__es=j.err__es, err__eq=j.err__eq)


def _users_part(
    cur: ir.Table,
    used: ir.Table,
    forget: int,
    key: str = "_k_api",
    prefix: str = "users",
    out: str = "a_api_principals",
) -> ir.Table:
    """How many principals of the account used the event's ``key`` (api, network) on earlier days of the window."""
    wanted = cur.select(_wa=cur._k_account_id, _wp=cur[key], _wd=cur.day).distinct()
    joined = wanted.join(
        used,
        [
            wanted._wa == used._k_account_id,
            wanted._wp == used[key],
            used.day >= wanted._wd - forget,
            used.day < wanted._wd,
        ],
    )
    users = joined.group_by(["_wa", "_wp", "_wd"]).aggregate(**{f"{prefix}__n": joined._k_principal.nunique()})
    narrow = cur.select("event_id", "_k_account_id", key, "day")
    j = narrow.left_join(users, [narrow._k_account_id == users._wa, narrow[key] == users._wp, narrow.day == users._wd])
    return j.select(**{f"{prefix}__id": j.event_id, out: j[f"{prefix}__n"].fill_null(0)})


def _travel_part(cur: ir.Table) -> ir.Table:
    """Per located event, the actor's previous located event of the same UTC day (null for others).

    Located: coordinates known and a class whose addresses say where the caller is or that a
    detector compares anyway (:data:`trailsight.enrich.netclass.TRAVEL_CLASSES`).
    """
    located = cur.latitude.notnull() & cur.longitude.notnull() & cur.net_class.isin(sorted(TRAVEL_CLASSES))
    narrow = cur.select(
        "event_id", "event_time", "day", "_k_person", "latitude", "longitude", "net_class", _loc=located
    )
    w = ibis.window(group_by=[narrow._k_person, narrow.day, narrow._loc], order_by=[narrow.event_time, narrow.event_id])
    loc = narrow._loc.fill_null(False)

    def prev(col: ir.Column) -> Any:
        return ibis.ifelse(loc, col.lag().over(w), ibis.null(col.type().copy(nullable=True)))

    return narrow.select(
        trv__id=narrow.event_id,
        x_prev_time=prev(narrow.event_time),
        x_prev_lat=prev(narrow.latitude),
        x_prev_lon=prev(narrow.longitude),
        x_prev_class=prev(narrow.net_class),
    )


def _signin_part(cur: ir.Table) -> ir.Table:
    """Failed sign-ins of the principal since its last successful one, earlier the same UTC day.

    For a successful sign-in: how many failures came since the principal's previous success of
    the day (or the day's start), and when the first of them was; 0 and null on other events.
    Successes split a principal's day into runs, and a success closes its run, so its failures
    are the failures of its run.
    """
    att = cur.filter(cur.signin.notnull()).select("event_id", "event_time", "day", "_k_principal", "signin")
    is_ok = ibis.ifelse(att.signin == "ok", 1, 0)
    upto = ibis.cumulative_window(group_by=[att._k_principal, att.day], order_by=[att.event_time, att.event_id])
    att = att.mutate(_ok=is_ok, _run=is_ok.sum().over(upto) - is_ok)
    runs = att.group_by(["_k_principal", "day", "_run"]).aggregate(
        _fails=(att.signin == "fail").sum(),
        _first=att.event_time.min(where=att.signin == "fail"),
    )
    runs = runs.rename(_rp="_k_principal", _rd="day", _rr="_run")
    oks = att.filter(att._ok == 1)
    j = oks.join(runs, [oks._k_principal == runs._rp, oks.day == runs._rd, oks._run == runs._rr])
    return j.select(signin__id=j.event_id, signin_fails=j._fails.cast("int64"), signin_fails_first=j._first)


def _freq(days: ir.IntegerValue, span_days: ir.FloatingValue) -> ir.StringValue:
    weeks = ibis.greatest(span_days / 7.0, ibis.literal(2.0))
    rate = days.cast("float64") / weeks
    return ibis.cases(
        (days == 0, "unseen"),
        (rate >= 1.0, "frequent"),
        (rate >= 0.25, "infrequent"),
        else_="rare",
    )


def history_window(prepared: ir.Table, since: datetime, until: datetime, forget_days: int) -> ir.Table:
    """The rows of ``prepared`` that ``[since, until)`` learns from: ``forget_days`` before it, up to ``until``."""
    since_day = int(since.timestamp() // SECONDS_PER_DAY)
    return prepared.filter((prepared.day >= since_day - forget_days) & (prepared.event_time < until))


def build_profiles(prepared: ir.Table, forget_days: int) -> dict[str, ir.Table]:
    """The windowed daily profiles of every pair, plus the volume, error and api-user profiles.

    ``prepared`` is :func:`prepare` of the history and the range to score. Each profile row
    ``(keys, day)`` holds sums over the ``forget_days`` days *before* ``day``; the results are
    small and may be materialised once and reused for every chunk of a long range.
    """
    hist = prepared
    forget = forget_days
    out: dict[str, ir.Table] = {}
    for pair in PAIRS:
        out[pair.name] = pair_window(pair_daily(hist, pair), pair, forget)

    out["vol"] = volume_window(volume_daily(hist), forget)
    out["err"] = error_window(error_daily(hist), forget)
    # Who used which api on which day (for "n principals in this account used it before").
    out["used"] = used_daily(hist)
    out["net_used"] = net_used_daily(hist)
    return out


def volume_daily(hist: ir.Table) -> ir.Table:
    """Calls per (principal, clock hour)."""
    return hist.group_by([hist._k_principal, hist.hour_idx]).aggregate(_c=hist.count())


def volume_window(hourly: ir.Table, forget_days: int) -> ir.Table:
    """Sums of the hourly counts per hour-of-week slot over the forget window before each hour."""
    hourly = hourly.mutate(_how=(hourly.hour_idx + HOW_OFFSET) % 168)
    w_slot = ibis.window(
        group_by=[hourly._k_principal, hourly._how], order_by=hourly.hour_idx, range=(-forget_days * 24, -1)
    )
    return hourly.select(
        "_k_principal",
        "hour_idx",
        vol__vs=hourly._c.sum().over(w_slot),
        vol__vq=(hourly._c * hourly._c).sum().over(w_slot),
    )


def error_daily(hist: ir.Table) -> ir.Table:
    """Distinct error messages per (account, 15 minutes)."""
    errs = hist.filter(hist.error_code.notnull())
    return errs.group_by([errs._k_account_id, errs.b15]).aggregate(_dm=errs._k_msg.nunique())


def error_window(buckets: ir.Table, forget_days: int) -> ir.Table:
    """Sums of distinct messages (and squares) over the 15-minute buckets of the forget window before each."""
    w_b = ibis.window(group_by=buckets._k_account_id, order_by=buckets.b15, range=(-forget_days * 96, -1))
    return buckets.select(
        "_k_account_id",
        "b15",
        err__es=buckets._dm.sum().over(w_b),
        err__eq=(buckets._dm * buckets._dm).sum().over(w_b),
    )


def used_daily(hist: ir.Table) -> ir.Table:
    """Who used which api on which day."""
    return hist.select(hist._k_account_id, hist._k_api, hist._k_principal, hist.day).distinct()


def net_used_daily(hist: ir.Table) -> ir.Table:
    """Who called from which network (``net_prefix``: /24, /48) on which day."""
    nets = hist.filter(hist._k_net_prefix != "")
    return nets.select(nets._k_account_id, nets._k_net_prefix, nets._k_principal, nets.day).distinct()


def build_feature_table(
    events: ir.Table,
    since: datetime,
    until: datetime,
    options: FeatureOptions | None = None,
) -> ir.Table:
    """Return the as-of feature table for the events of ``events`` in ``[since, until)``.

    ``events`` must hold the normalised events from ``forget_days`` before ``since`` up to
    ``until`` (more is harmless); the profiles are computed in the same expression. The result
    has one row per event in the range: the carried event columns plus :func:`feature_columns`.
    (On DuckDB the local engine computes the same table with :mod:`trailsight.features.daily` and
    :mod:`trailsight.features.chunk`.)
    """
    opts = options or FeatureOptions()
    forget = opts.forget_days
    t = prepare(events)
    since_day = int(since.timestamp() // SECONDS_PER_DAY)
    until_day = int((until.timestamp() - 1e-6) // SECONDS_PER_DAY)
    hist = t.filter((t.day >= since_day - forget) & (t.event_time < until))
    # Events of the days being scored (whole days: same-day history before `since` counts).
    cur = hist.filter((hist.day >= since_day) & (hist.day <= until_day))
    profiles = build_profiles(hist, forget)

    # Only the profile rows of the scored days can match an event: cutting the rest before the
    # joins keeps the cost to the scored days, however long the history behind them.
    def scored(profile: ir.Table, col: str, per_day: int) -> ir.Table:
        return profile.filter((profile[col] >= since_day * per_day) & (profile[col] < (until_day + 1) * per_day))

    parts: list[tuple[str, ir.Table]] = [
        (p.name, _pair_part(cur, p, scored(profiles[p.name], "day", 1))) for p in PAIRS
    ]
    parts.append(("vol", _volume_part(cur, scored(profiles["vol"], "hour_idx", 24))))
    parts.append(("err", _error_part(cur, scored(profiles["err"], "b15", 96))))
    parts.append(("users", _users_part(cur, profiles["used"], forget)))
    parts.append(
        ("netusers", _users_part(cur, profiles["net_used"], forget, "_k_net_prefix", "netusers", "a_net_principals"))
    )
    parts.append(("trv", _travel_part(cur)))
    parts.append(("signin", _signin_part(cur)))

    base = cur.filter((cur.event_time >= since) & (cur.event_time < until))
    base = base.select(*CARRIED_COLUMNS, *DERIVED_COLUMNS)
    # One flat join chain on event id (keeps the compiled query shallow).
    chain: Any = base
    kept: list[str] = []
    for prefix, part in parts:
        chain = chain.left_join(part, base.event_id == part[f"{prefix}__id"])
        kept += [c for c in part.columns if c != f"{prefix}__id"]
    return finish(chain.select(*base.columns, *kept), opts).order_by(["event_time", "event_id"])


def finish(cur: ir.Table, options: FeatureOptions) -> ir.Table:
    """Ages, frequency classes, shares and gates from the joined per-pair figures; the final columns.

    ``cur`` has the carried columns, :data:`DERIVED_COLUMNS` and every pair's running
    figures (as :func:`build_feature_table` joins them, or :mod:`trailsight.features.chunk`
    computes them).
    """
    opts = options
    forget = opts.forget_days

    def age(first_col: str) -> ir.FloatingValue:
        first = cur[first_col]
        delta = (cur.event_time.epoch_seconds() - first.epoch_seconds()).cast("float64") / SECONDS_PER_DAY
        return ibis.ifelse(first.isnull(), 0.0, delta)

    # A sparse pair's rows that take no part have no figures: their counts are 0.
    counts = [f"{p.name}_{c}" for p in PAIRS if p.sparse for c in ("n", "days", *(("hours",) if p.hours else ()))]
    cur = cur.mutate(**{c: cur[c].fill_null(0) for c in counts})
    cur = cur.mutate(p_age_days=age("p_first"), a_age_days=age("a_first"), x_age_days=age("x_first"))
    spans = {"p": cur.p_age_days, "a": cur.a_age_days, "x": cur.x_age_days}
    cur = cur.mutate(**{f"{p.name}_freq": _freq(cur[f"{p.name}_days"], spans[p.owner]) for p in PAIRS})

    p_n = cur.p_n.cast("float64")
    weeks = ibis.greatest(ibis.least(cur.p_age_days, float(forget)) / 7.0, 1.0)
    how_mean = cur.vol__vs.fill_null(0).cast("float64") / weeks
    how_var = cur.vol__vq.fill_null(0).cast("float64") / weeks - how_mean * how_mean
    buckets_n = ibis.greatest(ibis.least(cur.a_age_days, float(forget)) * 96.0, 1.0)
    err_mean = cur.err__es.fill_null(0).cast("float64") / buckets_n
    err_var = cur.err__eq.fill_null(0).cast("float64") / buckets_n - err_mean * err_mean
    cur = cur.mutate(
        p_hour_share=ibis.ifelse(p_n > 0, cur.p_hour_n.cast("float64") / p_n, 0.0),
        p_how_share=ibis.ifelse(p_n > 0, cur.p_how_n.cast("float64") / p_n, 0.0),
        p_how_mean=how_mean,
        p_how_var=ibis.greatest(how_var, 0.0),
        err_bucket_mean=err_mean,
        err_bucket_var=ibis.greatest(err_var, 0.0),
        gated_account=cur.a_days < opts.min_account_days,
        gated_principal=(cur.p_days < opts.min_principal_days) | (cur.p_n < opts.min_principal_events),
        signin_fails=cur.signin_fails.fill_null(0),
    )
    return cur.select(*CARRIED_COLUMNS, *feature_columns())
