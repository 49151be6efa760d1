"""Peer groups, automation likelihood and account-wide usage, as of each event's day.

The pair features of :mod:`trailsight.features.asof` say how often *this* principal did a
thing. Two more questions need the whole population, and are answered here:

* **Who behaves like this principal?** Peers are learned from behaviour: each principal's
  APIs over the forget window before the event's day, weighted by ``log(1 + active days)``
  and by how specific the API is (inverse principal frequency, so ``sts:GetCallerIdentity``
  says little), compared by cosine similarity; the ``peers`` (5) most similar above
  ``min_similarity`` (0.1) are its peer group. For an event we then count which peers used
  its API before it (earlier days of the window, or earlier the same day).
* **Is this principal a person or a machine?** Automation likelihood, from behaviour only:
  the share of its calls made with an interactive agent (console, CLI), the share made from
  AWS networks, how many of the day's hours it is active in, and how regularly it runs. A
  CI role, a scheduled Lambda or a backup job scores near 1; a person near 0.
* **How many principals of the account used this API before the event** (earlier days or
  earlier the same day) — the denominator of the account level of the behaviour model.

Everything is computed from daily aggregates of the history strictly before the event (the
event's own day contributes only what happened before the event), so scoring stays leak-free
and scoring a range in pieces gives the same values as scoring it at once. The aggregates are
portable Ibis expressions (DuckDB or Spark); the small per-day computations run in numpy on
the driver.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from trailsight.config import Settings
from trailsight.errors import ConfigError
from trailsight.features.chunk import dictionary_codes

SECONDS_PER_DAY = 86_400
#: Days of built context kept (each holds its principals × APIs matrix and the day's first uses).
_DAYS_KEPT = 8
#: Automation likelihood from which a principal is treated as a machine identity.
AUTOMATION_AT = 0.6

#: Identity types that are a person's own (an IAM user's keys or password, the root user).
PERSON_IDENTITIES = ("IAMUser", "Root")
AWS_NETWORK_KINDS = ("aws", "aws-service", "internal")

#: Columns :meth:`BehaviourContext.augment` adds to a feature table.
CONTEXT_COLUMNS: tuple[str, ...] = (
    "auto_score",
    "p_interactive_share",
    "p_aws_share",
    "p_hour_cover",
    "peers_n",
    "peers_sim",
    "peers_using",
    "peers_using_sim",
    "peer_names",
    "peer_group",
    "a_api_users",
    "a_principals",
)


def context_aggregates(prepared: ir.Table) -> dict[str, ir.Table]:
    """Daily aggregates the context is built from (``prepared``: :func:`~trailsight.features.asof.prepare`).

    ``pday``: per (account, principal, day) the calls, distinct clock hours, console and CLI
    calls, calls made as a person (an IAM user, root, an SSO permission set, an e-mail session name)
    and calls from AWS networks. ``papi``: per (account, principal, api, day) the first call.
    """
    t = prepared
    aws = t.ip_kind.fill_null("").isin(AWS_NETWORK_KINDS)
    person = (
        t.identity_type.fill_null("").isin(PERSON_IDENTITIES)
        | t.session_name.fill_null("").contains("@")
        | t._k_principal.contains("/AWSReservedSSO_")
    )
    pday = t.group_by([t._k_account_id, t._k_principal, t.day]).aggregate(
        n=t.count(),
        hours=t.hour_idx.nunique(),
        n_console=(t._k_ua_family == "console").ifelse(1, 0).sum(),
        n_cli=(t._k_ua_family == "cli").ifelse(1, 0).sum(),
        n_person=person.ifelse(1, 0).sum(),
        n_aws=aws.ifelse(1, 0).sum(),
    )
    papi = t.group_by([t._k_account_id, t._k_principal, t._k_api, t.day]).aggregate(first=t.event_time.min())
    return {"pday": pday, "papi": papi}


@dataclass(frozen=True)
class ContextOptions:
    """Peer-group settings (``[detect.peers]`` in trailsight.toml): group size and least similarity."""

    peers: int = 5
    min_similarity: float = 0.1

    @classmethod
    def from_settings(cls, settings: Settings | None) -> ContextOptions:
        """Read ``[detect.peers]`` (``peers``, ``min_similarity``)."""
        if settings is None:
            return cls()
        section = settings.section("detect.peers")
        peers = section.get("peers", cls.peers)
        sim = section.get("min_similarity", cls.min_similarity)
        if isinstance(peers, bool) or not isinstance(peers, int) or peers < 1:
            raise ConfigError(f"{settings.path}: [detect.peers] peers must be a positive integer")
        if isinstance(sim, bool) or not isinstance(sim, int | float) or not 0 <= sim <= 1:
            raise ConfigError(f"{settings.path}: [detect.peers] min_similarity must be a number in [0, 1]")
        return cls(peers=peers, min_similarity=float(sim))


@dataclass
class _Day:
    """Everything known before one day: principals, their peers, who used which API."""

    index: dict[tuple[str, str], int]
    names: list[str]
    account: list[str]
    apis: dict[str, int]
    used: npt.NDArray[np.bool_]  # principals × apis, used on an earlier day of the window
    peers: list[list[tuple[int, float]]]
    auto: dict[tuple[str, str], tuple[float, float, float, float]]
    principals_by_account: dict[str, int]
    users_by_account: dict[str, npt.NDArray[np.int64]]  # account → principals that used each api
    # Same-day first uses, before the event: (principal, api) → first epoch second.
    today: dict[tuple[str, str, str], float]
    # (account, api) → sorted first epoch seconds today of principals new to it in the window.
    today_new_users: dict[tuple[str, str], list[float]]


def _epoch(col: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.float64]:
    ints = pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64())
    out: npt.NDArray[np.float64] = ints.to_numpy(zero_copy_only=False).astype(np.float64) / 1e6
    return out


def _distinct_pairs(
    group: npt.NDArray[np.int64], flags: npt.NDArray[np.bool_]
) -> tuple[list[tuple[int, list[bool]]], npt.NDArray[np.int64]]:
    """(the distinct (group, row of ``flags``) pairs, which of them each row is)."""
    width = flags.shape[1]
    if width <= 30 and int(group.max(initial=0)) < 1 << 32:  # as one number each: a 1-D unique
        key = group << width | flags.astype(np.int64) @ (np.int64(1) << np.arange(width, dtype=np.int64))
        values, which = np.unique(key, return_inverse=True)
        pairs = [(v >> width, [bool(v >> j & 1) for j in range(width)]) for v in values.tolist()]
        return pairs, which.reshape(-1)
    rows, which = np.unique(np.column_stack([group, flags.astype(np.int64)]), axis=0, return_inverse=True)
    return [(int(r[0]), [bool(x) for x in r[1:]]) for r in rows.tolist()], which.reshape(-1)


def _earlier_counts(
    group: npt.NDArray[np.int64],
    t: npt.NDArray[np.float64],
    value_group: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    n_groups: int,
) -> npt.NDArray[np.int64]:
    """For each (group, t), how many ``values`` of the same group (``value_group``) are below ``t``."""
    if not len(values):
        return np.zeros(len(t), dtype=np.int64)
    kind = np.concatenate([np.zeros(len(t), dtype=np.int8), np.ones(len(values), dtype=np.int8)])
    # By group, then value, a query before the values equal to it (those are not below it).
    order = np.lexsort((kind, np.concatenate([t, values]), np.concatenate([group, value_group])))
    seen = np.cumsum(kind[order], dtype=np.int64)
    before_group = np.concatenate([[0], np.cumsum(np.bincount(value_group, minlength=n_groups))])
    queries = order < len(t)
    out = np.empty(len(t), dtype=np.int64)
    out[order[queries]] = seen[queries] - before_group[group[order[queries]]]
    return out


class _Keys:
    """Text columns of a feature table as integer codes, for grouping rows by day and some of them."""

    def __init__(self, features: pa.Table, names: tuple[str, ...]) -> None:
        self._codes: dict[str, tuple[npt.NDArray[np.int64], pa.Array]] = {}
        for name in names:
            self._codes[name] = dictionary_codes(pc.dictionary_encode(features.column(name).fill_null("")), "")

    def groups(
        self, days: npt.NDArray[np.int64], names: tuple[str, ...], rows: npt.NDArray[np.int64] | None = None
    ) -> tuple[npt.NDArray[np.int64], list[tuple[Any, ...]]]:
        """(each row's group, each group's (day, *texts)) for the rows (default all) grouped by day and ``names``."""
        picked = days if rows is None else days[rows]
        if not len(picked):
            return np.zeros(0, dtype=np.int64), []
        lo = int(picked.min())
        key = picked - lo
        for name in names:
            codes, values = self._codes[name]
            if rows is not None:
                codes = codes[rows]
            key = key * max(len(values), 1) + codes
            if int(key.max()) >= 1 << 40:  # keep the mixed-radix code small: renumber it densely
                key = np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)
        _, first, which = np.unique(key, return_index=True, return_inverse=True)
        columns: list[list[Any]] = [(picked[first]).tolist()]
        for name in names:
            codes, values = self._codes[name]
            at = codes[first] if rows is None else codes[rows[first]]
            columns.append(values.take(pa.array(at)).to_pylist())
        return which.reshape(-1).astype(np.int64), list(zip(*columns, strict=True))


def _runs(table: pa.Table, names: tuple[str, ...]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(each row's run number, each run's first row) for runs of equal values of the columns ``names``."""
    n = table.num_rows
    change = np.zeros(n, dtype=bool)
    for name in names:
        codes, _ = _first_seen_codes(table.column(name))
        change[1:] |= codes[1:] != codes[:-1]
    if n:
        change[0] = True
    return np.cumsum(change, dtype=np.int64) - 1, np.flatnonzero(change).astype(np.int64)


def _first_seen_codes(column: pa.ChunkedArray) -> tuple[npt.NDArray[np.int64], list[Any]]:
    """(each row's code, the distinct values) of a text key: codes numbered in the order the values
    first appear (Arrow's dictionary encoding numbers them so)."""
    codes, values = dictionary_codes(pc.dictionary_encode(column), "")
    return codes, values.to_pylist()


def _texts_at(texts: dict[str, int], at: npt.NDArray[np.int64]) -> pa.Array:
    """Text ``texts`` (text → index) at each index of ``at``; null where -1."""
    values = pa.array(list(texts), pa.string())
    return values.take(pa.array(at, pa.int64(), mask=at < 0))


class BehaviourContext:
    """Peers, automation likelihood and account usage per day, from :func:`context_aggregates`."""

    def __init__(self, pday: pa.Table, papi: pa.Table, forget_days: int, options: ContextOptions | None = None) -> None:
        self.forget = forget_days
        self.options = options or ContextOptions()
        # Sorted, so that peers and ties come out the same whatever engine produced the tables.
        self._pday = pday.sort_by([(c, "ascending") for c in ("_k_account_id", "_k_principal", "day")])
        self._papi = papi.sort_by([(c, "ascending") for c in ("_k_account_id", "_k_principal", "_k_api", "day")])
        self._pday_day = self._pday.column("day").to_numpy(zero_copy_only=False)
        self._papi_day = self._papi.column("day").to_numpy(zero_copy_only=False)
        # The days built last (a run's threads each work on one day; a day is not needed again).
        self._days: OrderedDict[int, _Day] = OrderedDict()
        self._days_lock = threading.Lock()

    @classmethod
    def from_expressions(
        cls, aggs: dict[str, ir.Table], forget_days: int, options: ContextOptions | None = None
    ) -> BehaviourContext:
        """Execute :func:`context_aggregates` expressions and build the context."""
        from trailsight.features.source import quiet_ibis

        with quiet_ibis():
            return cls(aggs["pday"].to_pyarrow(), aggs["papi"].to_pyarrow(), forget_days, options)

    # -- one day ---------------------------------------------------------------------------
    def _window(self, table: pa.Table, days: npt.NDArray[Any], lo: int, hi: int) -> pa.Table:
        mask = (days >= lo) & (days <= hi)
        return table.filter(pa.array(mask))

    def _day(self, day: int) -> _Day:
        with self._days_lock:
            if day in self._days:
                self._days.move_to_end(day)
                return self._days[day]
        lo, hi = day - self.forget, day - 1
        papi = self._window(self._papi, self._papi_day, lo, hi)
        # Principals and APIs numbered in the order they first appear (the table is sorted by
        # account and principal, so a principal's rows are together).
        rows, firsts = _runs(papi, ("_k_account_id", "_k_principal"))
        at = pa.array(firsts)
        accounts, principals = (papi.column(c).take(at).to_pylist() for c in ("_k_account_id", "_k_principal"))
        owners = zip(accounts, principals, strict=True)
        index: dict[tuple[str, str], int] = {(a, p): i for i, (a, p) in enumerate(owners)}
        account = [a for a, _ in index]
        cols, api_names = _first_seen_codes(papi.column("_k_api"))
        apis: dict[str, int] = {api: i for i, api in enumerate(api_names)}
        counts = np.zeros((len(index), max(1, len(apis))), dtype=np.float64)
        if len(rows):
            np.add.at(counts, (rows, cols), 1.0)
        used = counts > 0
        peers = self._peers(counts, used)
        principals_by_account: dict[str, int] = defaultdict(int)
        for a in account:
            principals_by_account[a] += 1
        acct_of = np.array(account, dtype=object)
        users_by_account = {a: used[acct_of == a].sum(axis=0).astype(np.int64) for a in principals_by_account}
        # The event's own day: first uses so far (only those before the event count).
        today_tab = self._window(self._papi, self._papi_day, day, day)
        today: dict[tuple[str, str, str], float] = {}
        new_users: dict[tuple[str, str], list[float]] = defaultdict(list)
        t_first = _epoch(today_tab.column("first"))
        for p, acct, api, t in zip(
            today_tab.column("_k_principal").to_pylist(),
            today_tab.column("_k_account_id").to_pylist(),
            today_tab.column("_k_api").to_pylist(),
            t_first,
            strict=True,
        ):
            today[(acct, p, api)] = float(t)
            pi, ai = index.get((acct, p)), apis.get(api)
            if pi is None or ai is None or not used[pi, ai]:
                new_users[(acct, api)].append(float(t))
        for values in new_users.values():
            values.sort()
        built = _Day(
            index=index,
            names=[p for _, p in index],
            account=account,
            apis=apis,
            used=used,
            peers=peers,
            auto=self._automation(lo, hi),
            principals_by_account=dict(principals_by_account),
            users_by_account=users_by_account,
            today=today,
            today_new_users=dict(new_users),
        )
        with self._days_lock:
            self._days[day] = built
            while len(self._days) > _DAYS_KEPT:
                self._days.popitem(last=False)
        return built

    def _peers(self, counts: npt.NDArray[np.float64], used: npt.NDArray[np.bool_]) -> list[list[tuple[int, float]]]:
        n = counts.shape[0]
        if n < 2:
            return [[] for _ in range(n)]
        df = used.sum(axis=0)
        idf = np.log((1.0 + n) / (1.0 + df))
        w = np.log1p(counts) * idf
        norms = np.linalg.norm(w, axis=1)
        w = w / np.where(norms > 0, norms, 1.0)[:, None]
        sim = w @ w.T
        np.fill_diagonal(sim, -1.0)
        k = min(self.options.peers, n - 1)
        top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        top_sim = np.take_along_axis(sim, top, axis=1)
        close = (top_sim >= self.options.min_similarity).tolist()
        return [
            [(j, x) for j, x, ok in zip(js, xs, oks, strict=True) if ok]
            for js, xs, oks in zip(top.tolist(), top_sim.tolist(), close, strict=True)
        ]

    def _automation(self, lo: int, hi: int) -> dict[tuple[str, str], tuple[float, float, float, float]]:
        """(account, principal) → (automation likelihood, interactive share, AWS-network share, hour cover).

        A principal is a machine to the extent that its calls are neither made as a person
        (an IAM user, root, a named person behind a shared role) nor from the console; the
        CLI counts a little towards a person (CI pipelines run it too).
        """
        tab = self._window(self._pday, self._pday_day, lo, hi)
        # Sums per principal (its rows are together: the table is sorted by account and principal);
        # whole numbers, so their float sums are exact in any order.
        rows, firsts = _runs(tab, ("_k_account_id", "_k_principal"))
        at = pa.array(firsts)
        keys = zip(*(tab.column(c).take(at).to_pylist() for c in ("_k_account_id", "_k_principal")), strict=True)
        sums = [np.bincount(rows, minlength=len(firsts)).astype(np.float64).tolist()]
        for name in ("n", "hours", "n_console", "n_cli", "n_person", "n_aws"):
            values = tab.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            sums.append(np.bincount(rows, weights=values, minlength=len(firsts)).tolist())
        out: dict[tuple[str, str], tuple[float, float, float, float]] = {}
        for key, days, n, hours, console, cli, person, aws in zip(keys, *sums, strict=True):
            total = max(n, 1.0)
            likelihood = (1.0 - person / total) * (1.0 - console / total) * (1.0 - 0.2 * cli / total)
            inter = (console + cli) / total
            cover = hours / max(days * 24.0, 1.0)
            out[key] = (round(likelihood, 6), round(inter, 6), round(aws / total, 6), round(min(cover, 1.0), 6))
        return out

    # -- feature rows ------------------------------------------------------------------------
    def augment(self, features: pa.Table, candidates: npt.NDArray[np.bool_] | None = None) -> pa.Table:
        """``features`` with :data:`CONTEXT_COLUMNS` added (peer counts only on ``candidates`` rows).

        Rows outside ``candidates`` (default: all) get null peer and account-usage columns;
        the behaviour model only needs them where the principal's own history is thin.
        """
        n = features.num_rows
        auto = np.zeros(n)
        inter = np.ones(n)
        aws = np.zeros(n)
        cover = np.zeros(n)
        peers_n = np.zeros(n, dtype=np.int64)
        peers_sim = np.zeros(n)
        using = np.full(n, -1, dtype=np.int64)
        using_sim = np.full(n, np.nan)
        # Peer names as indexes into the distinct texts (-1: none), made into text once at the end.
        names = np.full(n, -1, dtype=np.int64)
        group = np.full(n, -1, dtype=np.int64)
        texts: dict[str, int] = {}

        def label(text: str | None) -> int:
            return -1 if text is None else texts.setdefault(text, len(texts))

        a_users = np.full(n, -1, dtype=np.int64)
        a_principals = np.zeros(n, dtype=np.int64)
        if n:
            now = _epoch(features.column("event_time"))
            days = np.floor(now / SECONDS_PER_DAY).astype(np.int64)
            keys = _Keys(features, ("account_id", "principal", "api"))
            # Per (day, account, principal) once, not per row: most rows share their principal's day.
            codes, owners = keys.groups(days, ("account_id", "principal"))
            per_owner = np.zeros((len(owners), 8))
            for k, (day, acct, p) in enumerate(owners):
                ctx = self._day(day)
                figures = ctx.auto.get((acct, p), (0.0, 1.0, 0.0, 0.0))
                pi = ctx.index.get((acct, p))
                plist = ctx.peers[pi] if pi is not None else []
                n_acct = ctx.principals_by_account.get(acct, 0)
                per_owner[k] = (*figures, n_acct, len(plist), sum(x for _, x in plist), 0)
            auto, inter, aws, cover = (per_owner[codes, j] for j in range(4))
            a_principals = per_owner[codes, 4].astype(np.int64)
            peers_n = per_owner[codes, 5].astype(np.int64)
            peers_sim = per_owner[codes, 6]
            want = np.ones(n, dtype=bool) if candidates is None else candidates
            rows = np.flatnonzero(want)
            if len(rows):
                self._peer_usage(keys, rows, now, days, (using, using_sim, names, group, a_users), label)
        cols: dict[str, pa.Array] = {
            "auto_score": pa.array(auto, pa.float64()),
            "p_interactive_share": pa.array(inter, pa.float64()),
            "p_aws_share": pa.array(aws, pa.float64()),
            "p_hour_cover": pa.array(cover, pa.float64()),
            "peers_n": pa.array(peers_n, pa.int64()),
            "peers_sim": pa.array(peers_sim, pa.float64()),
            "peers_using": pa.array(using, pa.int64(), mask=using < 0),
            "peers_using_sim": pa.array(using_sim, pa.float64(), mask=np.isnan(using_sim)),
            "peer_names": _texts_at(texts, names),
            "peer_group": _texts_at(texts, group),
            "a_api_users": pa.array(a_users, pa.int64(), mask=a_users < 0),
            "a_principals": pa.array(a_principals, pa.int64()),
        }
        out = features
        for name, arr in cols.items():
            if name in out.column_names:
                out = out.drop_columns([name])
            out = out.append_column(name, arr)
        return out

    def _peer_usage(
        self,
        keys: _Keys,
        rows: npt.NDArray[np.int64],
        now: npt.NDArray[np.float64],
        days: npt.NDArray[np.int64],
        out: tuple[Any, Any, Any, Any, Any],
        labels: Callable[[str | None], int],
    ) -> None:
        """Fill, for ``rows``, the peers that used the API before each event and the account's users of it.

        Within one (day, account, principal, api) group only the event time changes the answer
        (a peer's or an account user's first call earlier the same day): what the day knows is
        gathered once per group (its peers' earlier use, first calls today and similarities, as
        rows of a group × peer matrix), then every row is a few array operations at once.
        """
        using, using_sim, names, group, a_users = out
        g, groups = keys.groups(days, ("account_id", "principal", "api"), rows)  # each row's group
        t = now[rows]
        n_groups = len(groups)
        # Per group, in Python once: what the day knows of its principal, API and peers.
        base = np.zeros(n_groups, dtype=np.int64)
        own_earlier = np.zeros(n_groups, dtype=bool)
        own_first = np.full(n_groups, np.inf)
        peer_names: list[list[str]] = []
        peer_rows: list[tuple[list[bool], list[float], list[float]]] = []
        new_at: list[float] = []
        new_of: list[int] = []
        for i, (day, acct, p, key) in enumerate(groups):
            ctx = self._day(day)
            pi = ctx.index.get((acct, p))
            ai = ctx.apis.get(key)
            plist = ctx.peers[pi] if pi is not None else []
            peer_names.append([ctx.names[q] for q, _ in plist])
            peer_rows.append(
                (
                    [ai is not None and bool(ctx.used[q, ai]) for q, _ in plist],
                    [ctx.today.get((ctx.account[q], ctx.names[q], key), np.inf) for q, _ in plist],
                    [sim for _, sim in plist],
                )
            )
            if ai is not None and acct in ctx.users_by_account:
                base[i] = int(ctx.users_by_account[acct][ai])
            own_earlier[i] = pi is not None and ai is not None and bool(ctx.used[pi, ai])
            own_first[i] = ctx.today.get((acct, p, key), np.inf)
            new_today = ctx.today_new_users.get((acct, key), [])
            new_at.extend(new_today)
            new_of.extend([i] * len(new_today))
        # Peers that used the API before each event: earlier in the window, or earlier today.
        width = max((len(names_) for names_ in peer_names), default=0)
        earlier = np.zeros((n_groups, width), dtype=bool)
        first = np.full((n_groups, width), np.inf)
        sims = np.zeros((n_groups, width))
        for i, (e, f, sm) in enumerate(peer_rows):
            earlier[i, : len(e)], first[i, : len(f)], sims[i, : len(sm)] = e, f, sm
        used = earlier[g] | (first[g] < t[:, None])  # padding is never used and adds 0.0
        using[rows] = used.sum(axis=1)
        # Summed peer by peer, in the peer order, as one event at a time would be (accumulate adds
        # left to right; a sum along the row would add pairwise).
        using_sim[rows] = np.add.accumulate(np.where(used, sims[g], 0.0), axis=1)[:, -1] if width else 0.0
        # One name list per distinct (group, peers that had used it), not per row.
        has_peers = np.array([bool(names_) for names_ in peer_names], dtype=bool)
        with_peers = np.flatnonzero(has_peers[g])
        if len(with_peers):
            pairs, which = _distinct_pairs(g[with_peers], used[with_peers])
            at = []
            for gi, row in pairs:
                chosen = [n for n, u in zip(peer_names[gi], row, strict=False) if u]
                at.append(labels(", ".join(chosen[:3]) or None))
            names[rows[with_peers]] = np.asarray(at, dtype=np.int64)[which]
            group_label = np.full(n_groups, -1, dtype=np.int64)
            for peered in np.flatnonzero(has_peers).tolist():
                group_label[peered] = labels(", ".join(peer_names[peered][:3]))
            group[rows[with_peers]] = group_label[g[with_peers]]
        # Other principals of the account that used the API before this event: those of the
        # window, those new today before it (a merge of the events' times with theirs), less itself.
        users = base[g] + _earlier_counts(g, t, np.asarray(new_of, dtype=np.int64), np.asarray(new_at), n_groups)
        users -= own_earlier[g] | (own_first[g] < t)
        a_users[rows] = np.maximum(users, 0)

    def peers_of(self, account: str, principal: str, day: int) -> list[tuple[str, float]]:
        """The peer group of ``principal`` as of ``day`` (epoch day number), most similar first."""
        ctx = self._day(day)
        pi = ctx.index.get((account, principal))
        return [] if pi is None else [(ctx.names[q], s) for q, s in ctx.peers[pi]]

    def automation_figures(self, account: str, principal: str, day: int) -> tuple[float, float, float, float] | None:
        """(likelihood, interactive share, AWS-network share, hour cover) of ``principal`` as of ``day``."""
        return self._day(day).auto.get((account, principal))

    def automation(self, account: str, principal: str, day: int) -> float:
        """Automation likelihood of ``principal`` as of ``day`` (0 = person, 1 = machine)."""
        a = self._day(day).auto.get((account, principal))
        return 0.0 if a is None else a[0]


#: Feature columns :func:`add_context` reads to pick the rows that need population figures.
CANDIDATE_COLUMNS: tuple[str, ...] = ("p_api_days", "p_days", "x_api_days")


def _numbers(features: pa.Table, name: str) -> npt.NDArray[np.float64]:
    values: npt.NDArray[np.float64] = features.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
    values[np.isnan(values)] = 0.0
    return values


def add_context(features: pa.Table, context: BehaviourContext | None) -> pa.Table:
    """Add the peer / automation / account-usage columns (population figures on thin-history rows only).

    A row's own history is thin when the principal used its API on at most ``2 + 0.1 ×`` its
    active days, or the account on at most two days (:data:`CANDIDATE_COLUMNS`).
    """
    if context is None:
        return features
    p_api_days, p_days, x_api_days = (_numbers(features, name) for name in CANDIDATE_COLUMNS)
    thin = (p_api_days <= 2.0 + 0.1 * p_days) | (x_api_days <= 2.0)
    return context.augment(features, thin)


__all__ = [
    "AUTOMATION_AT",
    "CANDIDATE_COLUMNS",
    "CONTEXT_COLUMNS",
    "BehaviourContext",
    "ContextOptions",
    "add_context",
    "context_aggregates",
    "ibis",
]
