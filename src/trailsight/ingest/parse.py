"""Turn the bytes of one source (a file, an S3 object, stdin) into CloudTrail records.

Accepted shapes, detected from the content (never from the name alone):

* a gzip stream (magic bytes ``1f 8b``; several members are read one after another);
* ``{"Records": [...]}`` — a CloudTrail delivery file, also several of them back to back;
* a JSON array of records, or a single record object;
* JSON lines — one record per line (CloudTrail Lake / SIEM exports, OTRF), where a line may
  also be a whole ``{"Records": [...]}`` document.

The fast path parses a whole document with orjson. When that fails (a truncated gzip, a bad
record, invalid UTF-8) or the source is larger than :data:`WHOLE_LIMIT`, a splitter walks the
``Records`` array record by record, so that every good record before and after a bad one is
kept and each bad one is reported with its index. Nothing here raises on bad input: problems
come out as :class:`Problem` items.

:class:`Limits` caps what one source or record may cost: a gzip stream that inflates past
``max_inflated_bytes``, or to more than ``max_inflate_ratio`` times its compressed size (once
past :data:`RATIO_FLOOR`), is stopped there — a gzip bomb costs a few MiB, not minutes — and the
complete records before the stop are kept. A compact delivery file holding a record nested
deeper than ``max_depth`` or longer than ``max_record_bytes`` goes the row path, where that record
alone is rejected (:func:`trailsight.ingest.normalise.normalise_row`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import orjson
from isal import isal_zlib

WHOLE_LIMIT: Final = 256 << 20
"""Sources up to this size (decompressed) are parsed in one piece; larger ones are streamed."""

SNIPPET_CHARS: Final = 200

PARSER_DEPTH: Final = 1024
"""How deep orjson reads JSON; text nested deeper does not parse at all."""

RATIO_FLOOR: Final = 16 << 20
"""Inflated bytes after which the inflate ratio is checked (a small file may compress very well)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """Caps on one source and one record: the ``[ingest]`` settings of the same names."""

    max_depth: int = 64
    """Deepest nesting of objects and arrays in a record (the record itself is level 1)."""
    max_record_bytes: int = 1 << 20
    """Longest record, as JSON text."""
    max_inflated_bytes: int = 16 << 30
    """Most bytes one gzip source may inflate to."""
    max_inflate_ratio: int = 100
    """Most inflated bytes per compressed byte of one gzip source (checked past :data:`RATIO_FLOOR`)."""


DEFAULT_LIMITS: Final = Limits()

_GZIP_MAGIC: Final = b"\x1f\x8b"
_WS: Final = b" \t\r\n"
_RECORDS_START_RE: Final = re.compile(rb'\{\s*"Records"\s*:\s*\[')
# A string token (its closing quote is group 1, missing when the data ends inside it) or a bracket.
_TOKEN_RE: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(")?|[{}\[\]]', re.DOTALL)
_SCAN_BLOCK: Final = 8 << 20
# isal (ISA-L) inflates gzip about twice as fast as zlib, with zlib's interface.
_INFLATE_ERROR: Final[type[Exception]] = isal_zlib.error  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in a source that could not be read: where, why, and the start of it."""

    location: str
    reason: str
    snippet: str = ""


@dataclass(frozen=True, slots=True)
class Document:
    """A compact CloudTrail delivery file (``{"Records":[{"eventVersion":...},...]}`` as AWS writes it):
    its records' JSON texts, in order, valid UTF-8, each an object beginning with ``eventVersion``.

    The texts are :class:`msgspec.Raw` views of the file's text (buffers: ``bytes(text)`` copies one
    out); they keep that text alive.
    """

    texts: list[msgspec.Raw]


class _Envelope(msgspec.Struct):
    Records: list[msgspec.Raw]


_decode_envelope: Final = msgspec.json.Decoder(_Envelope).decode
_COMPACT_START: Final = b'{"Records":[{"eventVersion"'

Item = tuple[int, Any, str, bytes | None] | Problem
"""What the parser yields: ``(offset, record, unit, text)`` — ``unit`` is ``"record"`` when offset is
the record's index in a JSON document (0-based) and ``"line"`` when it is the line number in JSON
lines (1-based); ``text`` is the record's own compact JSON text when the parser could cut it out
of the source cheaply, else None — or a :class:`Problem`."""


def snippet(data: bytes | str) -> str:
    """The first :data:`SNIPPET_CHARS` characters of ``data``, safe to print."""
    if isinstance(data, bytes):
        return data[: SNIPPET_CHARS * 4].decode("utf-8", "backslashreplace")[:SNIPPET_CHARS]
    return data[:SNIPPET_CHARS]


class _GzipError(Exception):
    """The compressed stream broke; carries a one-line reason."""


def decompress(blocks: Iterable[bytes], limits: Limits = DEFAULT_LIMITS) -> Iterator[bytes]:
    """Yield the data of ``blocks``, gunzipping it when it starts with the gzip magic.

    Concatenated gzip members are read in turn. A truncated or corrupt stream, or one that
    inflates past the ``limits``, yields what could be decoded and then raises
    :class:`_GzipError` with the reason.
    """
    it = iter(blocks)
    pending = b""
    for block in it:
        pending += block
        if len(pending) >= 2:
            break
    if not pending.startswith(_GZIP_MAGIC):
        if pending:
            yield pending
        yield from it
        return
    dec = isal_zlib.decompressobj(31)
    in_member = True
    consumed = inflated = 0
    while True:
        while pending:
            if not in_member:
                pending = pending.lstrip(b"\0")  # padding between members
                if not pending:
                    break
                dec = isal_zlib.decompressobj(31)
                in_member = True
            try:
                out = dec.decompress(pending, _SCAN_BLOCK)
            except _INFLATE_ERROR as exc:
                raise _GzipError(f"gzip data corrupt after {consumed:,} compressed bytes ({exc})") from None
            inflated += len(out)
            used = consumed + len(pending) - len(dec.unused_data if dec.eof else dec.unconsumed_tail)
            if inflated > limits.max_inflated_bytes:
                yield out[: len(out) - (inflated - limits.max_inflated_bytes)]  # up to the cap: its records are kept
                raise _GzipError(
                    f"stopped: inflates past {limits.max_inflated_bytes:,} bytes ([ingest] max_inflated_bytes)"
                )
            if inflated > RATIO_FLOOR and inflated > limits.max_inflate_ratio * max(used, 1):
                yield out
                raise _GzipError(
                    f"stopped: inflates more than {limits.max_inflate_ratio} times its {used:,} compressed bytes, "
                    "a gzip bomb? ([ingest] max_inflate_ratio)"
                )
            if out:
                yield out
            if dec.eof:
                consumed += len(pending) - len(dec.unused_data)
                pending = dec.unused_data
                in_member = False
            else:
                consumed += len(pending) - len(dec.unconsumed_tail)
                pending = dec.unconsumed_tail
        following = next(it, None)
        if following is None:
            break
        pending = following
    if in_member:
        raise _GzipError(f"gzip stream truncated after {consumed:,} compressed bytes")


def iter_records(
    blocks: Iterable[bytes], *, documents: bool = False, limits: Limits = DEFAULT_LIMITS
) -> Iterator[Item | Document]:
    """Parse a source given as blocks of bytes; yield records and problems. Never raises.

    With ``documents``, a source that is one compact delivery file comes out as a single
    :class:`Document` instead of its records (the caller normalises it column by column).
    """
    stream = decompress(blocks, limits)
    buf = bytearray()
    gzip_problem: str | None = None
    big = False
    try:
        for block in stream:
            buf += block
            if len(buf) > WHOLE_LIMIT:
                big = True
                break
    except _GzipError as exc:
        gzip_problem = str(exc)
    except OSError as exc:
        gzip_problem = f"read failed: {exc}"
    if big:
        yield from _stream_big(bytes(buf), stream)
        return
    data = bytes(buf)
    del buf
    if gzip_problem is None:
        if documents and (doc := _compact_document(data, limits)) is not None:
            yield doc
            return
        yield from _parse_whole(data)
    else:
        # Keep what came before the break: the splitter returns each complete record.
        yield from _parse_partial(data, gzip_problem)


def _first_char(data: bytes) -> tuple[int, int]:
    start = 0
    if data.startswith(b"\xef\xbb\xbf"):
        start = 3
    n = len(data)
    while start < n and data[start] in _WS:
        start += 1
    return start, (data[start] if start < n else -1)


def _compact_document(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Document | None:
    """``data`` as a :class:`Document` when it is exactly one compact delivery file, else None.

    Compact means what :func:`_record_texts` can cut: records separated by ``},{"eventVersion"``
    and nothing else, so each record's text is the same either way. A file with a record over
    the ``limits`` is not taken either: the row path rejects that record alone.
    """
    if not data.startswith(_COMPACT_START):
        return None
    try:
        texts = _decode_envelope(data).Records
        # msgspec does not check the UTF-8 of what it skips; ASCII (the usual case) is valid as it is.
        if not data.isascii():
            data.decode()
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    n = len(texts)
    close = _records_end(data)
    if not n or close is None or data.count(_SEPARATOR) != n - 1:
        return None
    # The records fill the array with one comma between each two and no space anywhere: then each
    # starts where the lengths before it say, and begins with the first key there.
    at = _HEADER
    max_depth, max_bytes = limits.max_depth, limits.max_record_bytes
    for text in texts:
        if data[at : at + _KEY_LENGTH] != _FIRST_KEY:
            return None
        end = at + len(text)
        if end - at > max_bytes or depth_over(data, max_depth, at, end):
            return None
        at = end + 1
    return Document(texts) if at - 1 == close else None


def depth_over(data: bytes, limit: int, start: int = 0, end: int | None = None) -> int:
    """How deep objects and arrays nest in the JSON text ``data[start:end]`` when that is over
    ``limit`` levels (an object alone is 1), else 0.

    Counting brackets first makes the usual case cheap: text with no more than ``limit`` of them
    cannot nest deeper.
    """
    stop = len(data) if end is None else end
    if data.count(b"{", start, stop) + data.count(b"[", start, stop) <= limit:
        return 0
    depth = deepest = 0
    for match in _TOKEN_RE.finditer(data, start, stop):
        c = data[match.start()]
        if c == 0x22:
            continue
        if c in (0x7B, 0x5B):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest if deepest > limit else 0


def depth_reason(depth: int, limit: int) -> str:
    """The quarantine reason for a record nested ``depth`` levels deep."""
    return f"record nested {depth:,} levels deep, over the {limit:,}-level cap ([ingest] max_depth)"


def _too_deep_to_read(depth: int) -> str:
    return (
        f"record nested {depth:,} levels deep, deeper than JSON is read ({PARSER_DEPTH:,}; [ingest] max_depth is lower)"
    )


def _records_end(data: bytes) -> int | None:
    """Where the closing ``]}`` of a Records document starts (trailing whitespace allowed), else None."""
    end = len(data)
    while end > 0 and data[end - 1] in _WS:
        end -= 1
    return end - 2 if data[end - 2 : end] == b"]}" else None


def _parse_whole(data: bytes) -> Iterator[Item]:
    start, first = _first_char(data)
    if first == -1:
        yield Problem("file", "empty source")
        return
    if first not in (ord("{"), ord("[")):
        yield Problem("byte 0", "not JSON: does not start with '{' or '['", snippet(data))
        return
    try:
        doc = orjson.loads(data[start:] if start else data)
    except orjson.JSONDecodeError:
        yield from _parse_fallback(data, start)
        return
    if isinstance(doc, dict) and isinstance(records := doc.get("Records"), list):
        texts = _record_texts(data, start, records)
        if texts is not None:
            for i, (rec, text) in enumerate(zip(records, texts, strict=True)):
                yield i, rec, "record", text
            return
    yield from _from_document(doc, 0)


_SEPARATOR: Final = b'},{"eventVersion"'
_FIRST_KEY: Final = b'{"eventVersion"'
_HEADER: Final = len(b'{"Records":[')
_KEY_LENGTH: Final = len(_FIRST_KEY)


def _record_texts(data: bytes, start: int, records: list[Any]) -> list[bytes] | None:
    """Each record's text, cut from a compact CloudTrail delivery file, or None if unsure.

    AWS writes ``{"Records":[{"eventVersion":...},{"eventVersion":...}]}`` with no spaces. A
    ``"`` inside a JSON string is always escaped, so ``},{"eventVersion"`` can only occur between
    objects; it splits the array into exactly the records when every record begins with
    ``eventVersion`` and the split gives as many pieces as there are records (a nested object
    beginning the same way would add a piece, and then the caller falls back to re-encoding).
    """
    n = len(records)
    if n == 0:
        return None
    for rec in records:
        if rec.__class__ is not dict or next(iter(rec), None) != "eventVersion":
            return None
    match = _RECORDS_START_RE.match(data, start)
    if match is None or data[match.end() - 1 : match.end()] != b"[":
        return None
    close = _records_end(data)
    if close is None:
        return None
    body = data[match.end() : close]
    if not body.startswith(_FIRST_KEY) or not body.endswith(b"}"):
        return None
    pieces = body.split(_SEPARATOR)
    if len(pieces) != n:
        return None
    if n == 1:
        return pieces
    last = n - 1
    out = [pieces[0] + b"}"]
    out.extend(_FIRST_KEY + piece + b"}" for piece in pieces[1:last])
    out.append(_FIRST_KEY + pieces[last])
    return out


def _from_document(doc: object, line: int) -> Iterator[Item]:
    """Records of a parsed value: a Records document, an array of records, or one record."""
    if isinstance(doc, dict):
        records = doc.get("Records")
        if isinstance(records, list):
            if line:
                for rec in records:
                    yield line, rec, "line", None
            else:
                for i, rec in enumerate(records):
                    yield i, rec, "record", None
        elif "Records" in doc:
            yield Problem(f"line {line}" if line else "file", "wrong shape: Records is not an array")
        elif _looks_like_event(doc):
            yield line, doc, ("line" if line else "record"), None
        else:
            where = f"line {line}" if line else "file"
            yield Problem(where, 'wrong shape: a JSON object that is neither {"Records": [...]} nor an event')
    elif isinstance(doc, list):
        for i, rec in enumerate(doc):
            if line:
                yield line, rec, "line", None
            else:
                yield i, rec, "record", None
    else:
        yield Problem(f"line {line}" if line else "file", f"wrong shape: a JSON {type(doc).__name__}")


def _looks_like_event(doc: dict[str, Any]) -> bool:
    return "eventName" in doc or "eventTime" in doc or "@timestamp" in doc or "eventID" in doc


def _parse_fallback(data: bytes, start: int) -> Iterator[Item]:
    """The whole-document parse failed: JSON lines, or a document with bad parts."""
    newline = data.find(b"\n", start)
    if newline != -1 and data[newline:].strip():
        first_line = data[start:newline].strip()
        try:
            orjson.loads(first_line)
        except orjson.JSONDecodeError:
            pass
        else:
            yield from _parse_lines(data.split(b"\n"))
            return
    if _RECORDS_START_RE.match(data, start) or data[start] == ord("["):
        yield from _split(data, start, final=True, problem_at_end=None)
        return
    yield from _parse_lines(data.split(b"\n"))


def _parse_partial(data: bytes, why: str) -> Iterator[Item]:
    """A stream that broke (truncated gzip): keep every complete record before the break."""
    start, first = _first_char(data)
    if first == -1:
        yield Problem("file", why)
        return
    if _RECORDS_START_RE.match(data, start) or first == ord("["):
        yield from _split(data, start, final=True, problem_at_end=why)
        return
    if first == ord("{"):
        lines = data.split(b"\n")
        # The last line is cut off by the break; it is reported with the reason.
        yield from _parse_lines(lines[:-1])
        yield Problem(f"line {len(lines)}", why, snippet(lines[-1]))
        return
    yield Problem("file", why, snippet(data))


def _parse_lines(lines: Iterable[bytes], first_line: int = 1) -> Iterator[Item]:
    loads = orjson.loads
    for number, line in enumerate(lines, first_line):
        if not line or line.isspace():
            continue
        try:
            value = loads(line)
        except orjson.JSONDecodeError as exc:
            start, _ = _first_char(line)
            if _RECORDS_START_RE.match(line, start):
                # Whole delivery files on one line, possibly several back to back (zcat *.json.gz).
                for item in _split(line, start, final=True, problem_at_end=None):
                    if isinstance(item, Problem):
                        yield Problem(f"line {number} {item.location}", item.reason, item.snippet)
                    else:
                        yield number, item[1], "line", item[3]
                continue
            deep = depth_over(line, PARSER_DEPTH)
            reason = _too_deep_to_read(deep) if deep else _json_reason(line, exc)
            yield Problem(f"line {number}", reason, snippet(line))
            continue
        if isinstance(value, dict) and "Records" not in value:
            yield number, value, "line", None
        else:
            yield from _from_document(value, number)


def _json_reason(text: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    return f"invalid JSON: {exc.msg} at character {exc.pos}"


def _split(
    data: bytes,
    start: int,
    *,
    final: bool,
    problem_at_end: str | None,
    index: int = 0,
) -> Iterator[Item]:
    """Walk ``{"Records":[...]}`` documents (or a JSON array) in ``data`` record by record."""
    for item in _Splitter(index).feed(data, start, final=final, problem_at_end=problem_at_end):
        if not isinstance(item, int):
            yield item


class _Splitter:
    """Record-by-record walker over the ``Records`` arrays of one or more documents.

    It tracks string and bracket nesting with a regular expression, so a bad record (invalid
    JSON, invalid UTF-8) costs only itself; each record's text is parsed on its own.
    """

    def __init__(self, index: int = 0) -> None:
        self.index = index  # record index across the source
        self.in_array = False

    def feed(self, data: bytes, pos: int, *, final: bool, problem_at_end: str | None) -> Iterator[Item | int]:
        """Yield items for complete records in ``data[pos:]``; when not ``final``, end by yielding
        the int position where an incomplete record starts (the caller keeps ``data[pos:]``)."""
        n = len(data)
        loads = orjson.loads
        cut_off = False
        while True:
            while pos < n and data[pos] in b" \t\r\n,":
                pos += 1
            if pos >= n:
                break
            if not self.in_array:
                match = _RECORDS_START_RE.match(data, pos)
                if match is not None:
                    self.in_array = True
                    pos = match.end()
                    continue
                if data[pos] == ord("[") and self.index == 0:
                    self.in_array = True
                    pos += 1
                    continue
                nxt = _RECORDS_START_RE.search(data, pos)
                if nxt is None:
                    if final:
                        tail = data[pos:].strip()
                        if tail.strip(b"}] \t\r\n"):
                            yield Problem(f"byte {pos}", "unexpected data after the Records array", snippet(tail))
                        pos = n
                    break
                pos = nxt.start()
                continue
            if data[pos] == ord("]"):
                self.in_array = False
                pos += 1
                continue
            if data[pos] != ord("{"):
                # A bare value in the array (not an object): take it up to the next comma.
                end = _scalar_end(data, pos)
                if end is None and not final:
                    break
                end = n if end is None else end
                text = data[pos:end]
                yield Problem(f"record {self.index}", "record is not a JSON object", snippet(text))
                self.index += 1
                pos = end
                continue
            end = _object_end(data, pos)
            if end is None:
                if not final:
                    break
                reason = problem_at_end or "file ends inside a record (truncated)"
                yield Problem(f"record {self.index}", reason, snippet(data[pos:]))
                self.index += 1
                pos = n
                cut_off = True
                break
            text = data[pos:end]
            try:
                yield self.index, loads(text), "record", text
            except orjson.JSONDecodeError as exc:
                deep = depth_over(text, PARSER_DEPTH)
                reason = _too_deep_to_read(deep) if deep else _json_reason(text, exc)
                yield Problem(f"record {self.index}", reason, snippet(text))
            self.index += 1
            pos = end
        if final:
            if cut_off:
                pass
            elif problem_at_end is not None:
                yield Problem(f"byte {n}", problem_at_end)
            elif self.in_array:
                yield Problem(f"byte {n}", "file ends inside the Records array (truncated)")
        else:
            yield pos


def _object_end(data: bytes, pos: int) -> int | None:
    """Index just past the object starting at ``data[pos]`` ('{'), or None if it is cut off."""
    depth = 0
    for match in _TOKEN_RE.finditer(data, pos):
        tok = match.group()
        c = tok[0]
        if c == 0x22:  # a string token: skip it, unless the data ends inside it
            if match.group(1) is None:
                return None
            continue
        if c in (0x7B, 0x5B):  # { [
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return match.end()
    return None


def _scalar_end(data: bytes, pos: int) -> int | None:
    for i in range(pos, len(data)):
        if data[i] in b",]":
            return i
    return None


def _stream_big(head: bytes, rest: Iterator[bytes]) -> Iterator[Item]:
    """Stream a source over :data:`WHOLE_LIMIT`: splitter for documents, line by line otherwise."""
    start, first = _first_char(head)
    if _RECORDS_START_RE.match(head, start) or first == ord("["):
        yield from _stream_split(head, start, rest)
    elif first == ord("{"):
        yield from _stream_lines(head, rest)
    else:
        yield Problem("byte 0", "not JSON: does not start with '{' or '['", snippet(head))


def _stream_split(head: bytes, start: int, rest: Iterator[bytes]) -> Iterator[Item]:
    splitter = _Splitter()
    buf = head
    pos = start
    try:
        for block in rest:
            buf = buf[pos:] + block if pos else buf + block
            pos = 0
            if len(buf) < _SCAN_BLOCK:
                continue
            for item in splitter.feed(buf, 0, final=False, problem_at_end=None):
                if isinstance(item, int):
                    pos = item
                else:
                    yield item
    except (_GzipError, OSError) as exc:
        yield from _finish(splitter, buf[pos:], str(exc))
        return
    yield from _finish(splitter, buf[pos:], None)


def _finish(splitter: _Splitter, buf: bytes, why: str | None) -> Iterator[Item]:
    for item in splitter.feed(buf, 0, final=True, problem_at_end=why):
        if not isinstance(item, int):
            yield item


def _stream_lines(head: bytes, rest: Iterator[bytes]) -> Iterator[Item]:
    carry = head
    line_no = 1
    try:
        for block in rest:
            carry += block
            cut = carry.rfind(b"\n")
            if cut == -1:
                continue
            lines = carry[:cut].split(b"\n")
            carry = carry[cut + 1 :]
            yield from _parse_lines(lines, line_no)
            line_no += len(lines)
    except (_GzipError, OSError) as exc:
        yield Problem(f"line {line_no}", str(exc), snippet(carry))
        return
    if carry.strip():
        yield from _parse_lines([carry], line_no)
