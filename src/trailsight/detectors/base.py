"""The detector contract.

A detector reads the as-of feature table (:mod:`trailsight.features`) and returns, for every
row, a score in [0, 1] (higher = more unusual), an Elastic-style 0–100 anomaly score, whether it
*fired* (anomaly score at or above its threshold) and the reason codes with their evidence.

Rules every detector keeps (checked for all registered detectors by one contract test suite):

* ``__init__(**params)`` only validates and stores parameters; there is no learned state —
  everything a detector knows about the past is already in the feature row.
* ``score`` changes nothing, is deterministic, and scores each row on its own, so scoring a
  table in pieces equals scoring it at once.
* unseen principals (no history) are handled: scores stay in range, nothing raises.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from trailsight.errors import DetectorError
from trailsight.finding import Reason

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_NO_REASONS: tuple[Reason, ...] = ()
T = TypeVar("T")


class _Lazy(Sequence[T]):
    """A read-only sequence whose items are worked out when read; equal to any sequence of the same items."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class _Texts(_Lazy[str]):
    """A text column read as Python strings only when something reads it.

    A few single reads (the explanations of a chunk's fired rows) take one value each; past
    ``WHOLE_AFTER`` of them, or on any other use, the whole column is made into a list, once.
    """

    #: Single reads after which reading the whole column at once is cheaper.
    WHOLE_AFTER = 256

    def __init__(self, column: pa.ChunkedArray | pa.Array) -> None:
        self._column = column
        self._values: list[str] | None = None
        self._reads = 0

    def _list(self) -> list[str]:
        if self._values is None:
            self._values = self._column.to_pylist()
        return self._values

    def __len__(self) -> int:
        return len(self._column)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if self._values is None and isinstance(i, int | np.integer) and self._reads < self.WHOLE_AFTER:
            self._reads += 1
            value: str = self._column[int(i)].as_py()
            return value
        return self._list()[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._list())


class Reasons(_Lazy[tuple[Reason, ...]]):
    """The reasons of every row, worked out when a row's are first read.

    A detector can fire on a large share of a day's events while only a few of them end up
    unusual after the combination, so each fired row's ``explain`` runs on demand (once).
    Rows that did not fire have no reasons.
    """

    def __init__(self, fired: BoolArray, score: FloatArray, explain: Callable[[int, float], Any]) -> None:
        self._fired = fired
        self._score = score
        self._explain = explain
        self._done: dict[int, tuple[Reason, ...]] = {}

    def __len__(self) -> int:
        return len(self._fired)

    def _row(self, i: int) -> tuple[Reason, ...]:
        if not self._fired[i]:
            return _NO_REASONS
        if i not in self._done:
            self._done[i] = tuple(self._explain(i, float(self._score[i])))
        return self._done[i]

    @overload
    def __getitem__(self, i: int) -> tuple[Reason, ...]: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple[Reason, ...]]: ...
    def __getitem__(self, i: int | slice) -> tuple[Reason, ...] | list[tuple[Reason, ...]]:
        if isinstance(i, slice):
            return [self._row(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        return self._row(int(i) % n)

    def __iter__(self) -> Iterator[tuple[Reason, ...]]:
        return (self._row(i) for i in range(len(self)))


@dataclass(frozen=True)
class DetectorScores:
    """A detector's output, aligned with the rows of the feature table."""

    detector: str
    event_ids: Sequence[str]
    score: FloatArray
    fired: BoolArray
    reasons: Sequence[tuple[Reason, ...]]
    kind: str = "context"
    people_only: bool = False
    identity: bool = False

    @property
    def anomaly(self) -> npt.NDArray[np.int64]:
        """Elastic-style anomaly score, 0–100."""
        return np.rint(self.score * 100.0).astype(np.int64)

    def __len__(self) -> int:
        return len(self.event_ids)


def _frozen(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``arr`` made read-only: cached views are shared by every detector of a run."""
    arr.flags.writeable = False
    return arr


class Columns:
    """Read-only numpy views of the feature table's columns (nulls filled per call)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        self._cache: dict[tuple[str, str], Any] = {}

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def event_ids(self) -> Sequence[str]:
        """The ``event_id`` column as a sequence of text (made into Python values when first read)."""
        if ("event_id", "ids") not in self._cache:
            self._cache[("event_id", "ids")] = _Texts(self._table.column("event_id"))
        out: Sequence[str] = self._cache[("event_id", "ids")]
        return out

    def num(self, name: str, fill: float = 0.0) -> FloatArray:
        """Column ``name`` as float64, nulls as ``fill``."""
        key = (name, f"num{fill}")
        if key not in self._cache:
            col = self._table.column(name)
            if pa.types.is_timestamp(col.type):
                col = col.cast(pa.int64())
            arr = col.to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
            arr[np.isnan(arr)] = fill
            self._cache[key] = _frozen(arr)
        out: FloatArray = self._cache[key]
        return out

    def flag(self, name: str) -> BoolArray:
        """Boolean column ``name``, nulls as False."""
        key = (name, "flag")
        if key not in self._cache:
            col = self._table.column(name).fill_null(False)
            self._cache[key] = _frozen(col.to_numpy(zero_copy_only=False).astype(bool))
        out: BoolArray = self._cache[key]
        return out

    def present(self, name: str) -> BoolArray:
        """True where column ``name`` is not null (and not an empty string)."""
        key = (name, "present")
        if key not in self._cache:
            col = self._table.column(name)
            mask = col.is_valid().to_numpy(zero_copy_only=False)
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                nonempty = pc.not_equal(col.fill_null(""), "").to_numpy(zero_copy_only=False)
                mask = mask & nonempty
            self._cache[key] = _frozen(np.asarray(mask, dtype=bool))
        out: BoolArray = self._cache[key]
        return out

    def equals(self, name: str, value: str) -> BoolArray:
        """True where text column ``name`` is ``value`` (null: False)."""
        key = (name, f"is{value}")
        if key not in self._cache:
            same = pc.equal(self._table.column(name), pa.scalar(value, self._table.column(name).type))
            self._cache[key] = _frozen(same.fill_null(False).to_numpy(zero_copy_only=False).astype(bool))
        out: BoolArray = self._cache[key]
        return out

    def isin(self, name: str, values: frozenset[str]) -> BoolArray:
        """True where text column ``name`` is one of ``values`` (null: False)."""
        key = (name, f"in{sorted(values)}")
        if key not in self._cache:
            col = self._table.column(name)
            hit = pc.is_in(col, value_set=pa.array(sorted(values), col.type))
            self._cache[key] = _frozen(hit.fill_null(False).to_numpy(zero_copy_only=False).astype(bool))
        out: BoolArray = self._cache[key]
        return out

    def differ(self, a: str, b: str) -> BoolArray:
        """True where columns ``a`` and ``b`` differ (a null differs from a value, not from a null)."""
        key = (a, f"differ{b}")
        if key not in self._cache:
            x, y = self._table.column(a), self._table.column(b)
            both = pc.and_(x.is_valid(), y.is_valid()).to_numpy(zero_copy_only=False).astype(bool)
            either = pc.or_(x.is_valid(), y.is_valid()).to_numpy(zero_copy_only=False).astype(bool)
            unequal = pc.not_equal(x, y).fill_null(True).to_numpy(zero_copy_only=False).astype(bool)
            self._cache[key] = _frozen(np.where(both, unequal, either))
        out: BoolArray = self._cache[key]
        return out

    def has(self, name: str) -> bool:
        """Whether the feature table carries column ``name`` (for columns a detector reads when present)."""
        return name in self._table.column_names

    def starts_with(self, name: str, prefix: str) -> BoolArray:
        """True where text column ``name`` starts with ``prefix`` (null: False)."""
        key = (name, f"starts{prefix}")
        if key not in self._cache:
            hit = pc.starts_with(self._table.column(name), prefix)
            self._cache[key] = _frozen(hit.fill_null(False).to_numpy(zero_copy_only=False).astype(bool))
        out: BoolArray = self._cache[key]
        return out

    def text(self, name: str) -> Sequence[str | None]:
        """Column ``name`` as Python values (strings), each made when first read."""
        key = (name, "text")
        if key not in self._cache:
            self._cache[key] = _Texts(self._table.column(name))
        out: Sequence[str | None] = self._cache[key]
        return out

    def epoch(self, name: str) -> FloatArray:
        """Timestamp column ``name`` as epoch seconds (NaN where null)."""
        key = (name, "epoch")
        if key not in self._cache:
            col = self._table.column(name).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
            arr = col.to_numpy(zero_copy_only=False).astype(np.float64)
            self._cache[key] = _frozen(arr / 1e6)
        out: FloatArray = self._cache[key]
        return out


class Detector(ABC):
    """Base class: subclasses set ``name``, ``version``, ``requires``, ``defaults`` and ``_score``.

    ``defaults`` lists every parameter with its default; ``threshold`` (0–100) decides when the
    detector *fires*. Unknown or mistyped parameters raise :class:`DetectorError`.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[Mapping[str, float | int | bool]] = {"threshold": 50}
    source: ClassVar[str] = ""
    #: ``"what"`` — says the *action* is unusual (an API, an error); ``"context"`` — says where,
    #: how or when it was done is unusual (network, agent, hour, volume). Scoring corroborates one
    #: kind with the other.
    kind: ClassVar[str] = "context"
    #: Whether ``trailsight detect`` runs it when no detectors are named. The seed rules whose
    #: job the behaviour model does better (first-seen / rare API, by principal and by place)
    #: stay available by name or with ``enabled = true`` in ``[detectors.<name>]``.
    default_enabled: ClassVar[bool] = True
    #: True for signals that only mean something for people (working hours): the combination
    #: weighs them by ``1 − automation likelihood``.
    people_only: ClassVar[bool] = False
    #: True for *identity evidence* — signals that the credential itself is in doubt (a sign-in
    #: without the person's usual MFA, root use in an account that never uses root): where such a
    #: detector fires, the combination lets the event stand on its own (see
    #: :mod:`trailsight.scoring.combine`).
    identity: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise DetectorError(f"detector {self.name}: unknown parameter(s) {', '.join(unknown)}")
        values: dict[str, float | int | bool] = dict(self.defaults)
        for key, value in params.items():
            default = self.defaults[key]
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            else:
                ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not ok:
                raise DetectorError(f"detector {self.name}: parameter {key} must be {type(default).__name__}")
            values[key] = value
        self.params: Mapping[str, float | int | bool] = values

    def p(self, key: str) -> float:
        """A numeric parameter."""
        return float(self.params[key])

    @property
    def threshold(self) -> float:
        """Anomaly score (0–100) at or above which the detector fires."""
        return self.p("threshold")

    def score(self, features: pa.Table, cols: Columns | None = None) -> DetectorScores:
        """Score every row of ``features``; never changes the detector.

        ``cols`` (a :class:`Columns` of ``features``) lets several detectors share one set of
        numpy views; detectors read them and never write into them.
        """
        have = set(features.column_names)
        missing = [c for c in (*self.requires, "event_id") if c not in have]
        if missing:
            raise DetectorError(f"detector {self.name}: feature table lacks column(s) {', '.join(missing)}")
        cols = cols if cols is not None else Columns(features)
        n = features.num_rows
        if n == 0:
            empty = np.zeros(0)
            return DetectorScores(
                self.name, [], empty, np.zeros(0, dtype=bool), [], self.kind, self.people_only, self.identity
            )
        raw, explain = self._score(cols)
        score = np.clip(np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0.0), 0.0, 1.0)
        fired = np.rint(score * 100.0) >= self.threshold
        reasons = Reasons(fired, score, explain)
        return DetectorScores(
            self.name, cols.event_ids(), score, fired, reasons, self.kind, self.people_only, self.identity
        )

    @abstractmethod
    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        """Return (raw scores, explain) where ``explain(i, score) -> list[Reason]`` for fired rows."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({params})"


def rarity_score(share: FloatArray, rare_share: float) -> FloatArray:
    """Map a share of history (0..1) to a score: 0.75 at ``rare_share``, rising to 0.95 near 0.

    Mirrors how Elastic's ``rare`` jobs grade a value: the rarer, the higher; a value seen in
    more than about ten times ``rare_share`` of the history scores under 0.25.
    """
    share = np.clip(share, 1e-9, 1.0)
    below = 0.75 + 0.2 * (1.0 - share / rare_share)
    above = 0.75 * np.power(rare_share / share, 0.6)
    return np.where(share <= rare_share, below, above)


def upper_tail_p(z: FloatArray) -> FloatArray:
    """One-sided normal upper-tail probability of ``z`` (each distinct value computed once)."""
    from math import erfc, sqrt

    values, inverse = np.unique(np.asarray(z, dtype=np.float64), return_inverse=True)
    tails = np.fromiter((0.5 * erfc(v / sqrt(2.0)) for v in values), dtype=np.float64, count=len(values))
    out: FloatArray = tails[inverse.reshape(np.shape(z))]
    return out


def days_between(later: FloatArray, earlier: FloatArray) -> FloatArray:
    """Days from ``earlier`` to ``later`` (epoch seconds; NaN stays NaN)."""
    out: FloatArray = (later - earlier) / 86400.0
    return out


def recently_new(cols: Columns, count_col: str, first_col: str, hours: float) -> BoolArray:
    """True where a value was never seen before, or first seen less than ``hours`` ago.

    Splunk's first-seen searches keep a value "new" for a day after its first sighting; the
    same keeps a whole session from a new network or agent new, not just its first call.
    """
    now = cols.epoch("event_time")
    first = np.nan_to_num(cols.epoch(first_col), nan=-np.inf)
    out: BoolArray = (cols.num(count_col) == 0) | (now - first < hours * 3600.0)
    return out


def seen_today(cols: Columns, last_col: str) -> BoolArray:
    """True where the pair's last earlier sighting fell on the event's own UTC day."""
    now = cols.epoch("event_time")
    last = cols.epoch(last_col)
    out: BoolArray = np.floor(np.nan_to_num(last, nan=-1e18) / 86400.0) == np.floor(now / 86400.0)
    return out
