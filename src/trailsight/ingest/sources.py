"""Where CloudTrail comes from: local files and folders, globs, stdin, and ``s3://`` prefixes.

:func:`discover` turns the command line's paths into :class:`SourceFile` items, pruning by
the CloudTrail S3 layout before anything is opened::

    AWSLogs/[o-<org id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<stamp>_<rand>.json.gz

A folder is walked recursively for ``.json``, ``.jsonl``, ``.ndjson`` (each optionally
``.gz``); ``CloudTrail-Digest`` and ``CloudTrail-Insight`` folders and hidden entries are
skipped. A file named on the command line is read whatever its name. Filters on account,
region and date prune whole folders (and S3 keys) whose path says they are out of range;
dates keep one day of margin on each side because a delivery folder's date is the delivery
time, not the event time (records are filtered exactly later).

:func:`read_blocks` yields a source's bytes in blocks, whatever it is.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Final

from trailsight.errors import IngestError

BLOCK_SIZE: Final = 4 << 20
STDIN: Final = "-"

_EXTENSIONS: Final = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
_SKIP_DIRS: Final = frozenset({"CloudTrail-Digest", "CloudTrail-Insight"})
_GLOB_CHARS: Final = re.compile(r"[*?\[]")
_LAYOUT_RE: Final = re.compile(
    r"AWSLogs/(?:o-[a-z0-9]+/)?(\d{12})/CloudTrail/([A-Za-z0-9_-]+)/(\d{4})/(\d{2})/(\d{2})(?:/|$)"
)
_NAME_RE: Final = re.compile(r"(?:^|/)(\d{12})_CloudTrail_([A-Za-z0-9_-]+?)_(\d{4})(\d{2})(\d{2})T\d{4}Z")
_ACCOUNT_DIR_RE: Final = re.compile(r"\d{12}")
_ORG_DIR_RE: Final = re.compile(r"o-[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One thing to read: a local file, an S3 object, or stdin.

    ``key`` identifies it in the ingest manifest (absolute path, ``s3://`` URI or ``-``);
    ``version`` is the modification time in nanoseconds (local) or the ETag (S3).
    ``account`` is the account its S3-layout path names, used when a record has none.
    """

    key: str
    size: int
    version: str
    account: str | None = None

    @property
    def is_stdin(self) -> bool:
        """Whether this source is standard input."""
        return self.key == STDIN

    @property
    def is_s3(self) -> bool:
        """Whether this source is an S3 object."""
        return self.key.startswith("s3://")


@dataclass(frozen=True, kw_only=True)
class PathFilter:
    """Account / region / time filters, applied to paths (pruning) and to records."""

    since: datetime | None = None
    until: datetime | None = None
    accounts: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return bool(self.since or self.until or self.accounts or self.regions)

    def scope(self) -> str:
        """The filter as text for the ingest manifest (``""`` for none), read back by :meth:`covers`."""
        if not self.active:
            return ""
        return json.dumps(
            {
                "since": self.since.astimezone(UTC).isoformat() if self.since else None,
                "until": self.until.astimezone(UTC).isoformat() if self.until else None,
                "accounts": sorted(self.accounts),
                "regions": sorted(self.regions),
            },
            sort_keys=True,
        )

    def covers(self, scope: str) -> bool:
        """Whether the filter ``scope`` (:meth:`scope` text) kept every record this filter keeps.

        An earlier run under such a filter read all that this run wants from a file, so the file
        can be skipped; otherwise it is read again and de-duplication drops what is there already.
        """
        if not scope:
            return True
        try:
            old = json.loads(scope)
            since = datetime.fromisoformat(old["since"]) if old["since"] else None
            until = datetime.fromisoformat(old["until"]) if old["until"] else None
            accounts, regions = frozenset(old["accounts"]), frozenset(old["regions"])
        except (ValueError, KeyError, TypeError):
            return False
        if since is not None and (self.since is None or self.since < since):
            return False
        if until is not None and (self.until is None or self.until > until):
            return False
        if accounts and not (self.accounts and self.accounts <= accounts):
            return False
        return not (regions and not (self.regions and self.regions <= regions))

    def _first_day(self) -> date | None:
        return (self.since.astimezone(UTC) - timedelta(days=1)).date() if self.since else None

    def _last_day(self) -> date | None:
        return (self.until.astimezone(UTC) + timedelta(days=1)).date() if self.until else None

    def keep_path(self, path: str) -> bool:
        """False when the path's S3 layout (or CloudTrail file name) puts it outside the filters."""
        if not self.active:
            return True
        found = _parse_layout(path)
        if found is None:
            return True
        account, region, day = found
        if self.accounts and account not in self.accounts:
            return False
        if self.regions and region not in self.regions:
            return False
        first, last = self._first_day(), self._last_day()
        if day is not None and first is not None and day < first:
            return False
        return not (day is not None and last is not None and day > last)

    def keep_dir(self, parts_after_awslogs: list[str]) -> bool:
        """False when a folder below ``AWSLogs/`` holds only files outside the filters."""
        if not self.active:
            return True
        parts = list(parts_after_awslogs)
        if parts and _ORG_DIR_RE.fullmatch(parts[0]):
            parts = parts[1:]
        if not parts:
            return True
        if self.accounts and _ACCOUNT_DIR_RE.fullmatch(parts[0]) and parts[0] not in self.accounts:
            return False
        if len(parts) < 3 or parts[1] != "CloudTrail":
            return True
        if self.regions and _region(parts[2]) not in self.regions:
            return False
        return self._keep_date_parts(parts[3:6])

    def _keep_date_parts(self, date_parts: list[str]) -> bool:
        if not date_parts or not all(p.isdigit() for p in date_parts):
            return True
        first, last = self._first_day(), self._last_day()
        nums = [int(p) for p in date_parts]
        try:
            low = date(nums[0], nums[1] if len(nums) > 1 else 1, nums[2] if len(nums) > 2 else 1)
            if len(nums) == 1:
                high = date(nums[0], 12, 31)
            elif len(nums) == 2:
                high = (date(nums[0], nums[1], 28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
            else:
                high = low
        except ValueError:
            return True
        if first is not None and high < first:
            return False
        return not (last is not None and low > last)


def _region(text: str) -> str:
    return text.replace("_", "-")


def _parse_layout(path: str) -> tuple[str, str, date | None] | None:
    text = path.replace("\\", "/")
    match = _LAYOUT_RE.search(text) or _NAME_RE.search(text)
    if match is None:
        return None
    try:
        day: date | None = date(int(match[3]), int(match[4]), int(match[5]))
    except ValueError:
        day = None
    return match[1], _region(match[2]), day


def path_account(path: str) -> str | None:
    """The account an S3-layout path or CloudTrail file name names, if any."""
    found = _parse_layout(path)
    return found[0] if found else None


def _is_log_name(name: str) -> bool:
    return name.endswith(_EXTENSIONS) and not name.startswith(".")


def is_cloudtrail_key(key: str, *, any_name: bool = False) -> bool:
    """Whether an S3 key names a CloudTrail log file (not a digest, an Insights file or another service's log).

    CloudTrail names every log file ``<account>_CloudTrail_<region>_<time>_<random>.json.gz``;
    digests say ``CloudTrail-Digest`` and Insights files ``CloudTrail-Insight`` instead. With
    ``any_name`` every ``.json[l][.gz]`` key outside the digest and Insights folders counts.
    """
    name = key.rsplit("/", 1)[-1]
    if not _is_log_name(name) or any(p in _SKIP_DIRS for p in key.split("/")[:-1]):
        return False
    return any_name or "_CloudTrail_" in name


def _local_source(path: Path) -> SourceFile:
    st = path.stat()
    text = str(path)
    return SourceFile(key=text, size=st.st_size, version=str(st.st_mtime_ns), account=path_account(text))


SkipFn = Callable[[str, str], None]
"""``on_skip(path, why)``: told of each file-system object discovery passes over, and why."""


def _ignore(path: str, why: str) -> None:
    """The default ``on_skip``: nothing."""


def _unreadable(exc: OSError, *, link: bool) -> str:
    """Why a path whose stat failed cannot be read."""
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT and link:
        return "dangling symlink (its target does not exist)"
    return f"cannot read: {exc.strerror or exc}"


def not_a_file(mode: int) -> str | None:
    """Why an object of stat ``mode`` is not a file to read (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _walk(root: Path, filters: PathFilter, on_skip: SkipFn = _ignore) -> Iterator[SourceFile]:
    """Files below ``root`` in a stable order, pruning folders the filters exclude.

    Symlinks are followed, but a folder is walked once: a link back to one already walked (a
    loop) is skipped. Loops, dangling links, FIFOs, sockets, devices, unreadable files and
    folders that cannot be listed are each passed to ``on_skip`` and passed over.
    """
    walked: set[tuple[int, int]] = set()
    try:
        top = root.stat()
        walked.add((top.st_dev, top.st_ino))
    except OSError:
        pass
    stack = [str(root)]  # plain strings and DirEntry stats: pathlib costs more than the listing
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError as exc:
            if folder == str(root):
                raise IngestError(f"{folder}: cannot list folder: {exc.strerror or exc}") from None
            on_skip(folder, f"cannot list folder: {exc.strerror or exc}")
            continue
        files: list[tuple[os.DirEntry[str], os.stat_result]] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            link = entry.is_symlink()
            log_name = _is_log_name(name)
            real_dir = not link and entry.is_dir(follow_symlinks=False)
            if not (link or log_name or real_dir):
                continue  # another kind of file: not read, nothing to check
            try:
                # Real folders come from the listing's file types; links and log files need a stat.
                st = None if real_dir else entry.stat()
            except OSError as exc:
                if log_name or (link and exc.errno == errno.ELOOP):
                    on_skip(entry.path, _unreadable(exc, link=link))
                continue
            if st is None or stat.S_ISDIR(st.st_mode):
                if name in _SKIP_DIRS:
                    continue
                sub = entry.path
                if st is None:
                    st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) in walked:
                    on_skip(sub, "a link to a folder already walked (a loop or a second way in)")
                    continue
                walked.add((st.st_dev, st.st_ino))
                parts = sub.replace(os.sep, "/").split("/")
                if "AWSLogs" in parts:
                    after = parts[len(parts) - 1 - parts[::-1].index("AWSLogs") + 1 :]
                    if not filters.keep_dir(after):
                        continue
                stack.append(sub)
            elif log_name and filters.keep_path(entry.path):
                why = not_a_file(st.st_mode)
                if why is None and not os.access(entry.path, os.R_OK):
                    why = "cannot read: permission denied"
                if why is not None:
                    on_skip(entry.path, why)
                    continue
                files.append((entry, st))
        for file, st in reversed(files):
            text = file.path
            yield SourceFile(key=text, size=st.st_size, version=str(st.st_mtime_ns), account=path_account(text))


def discover(
    paths: Iterable[str | Path],
    filters: PathFilter | None = None,
    *,
    s3_client: Callable[[], Any] | None = None,
    on_skip: SkipFn = _ignore,
) -> Iterator[SourceFile]:
    """Yield the sources named by ``paths`` (files, folders, globs, ``-``, ``s3://…``).

    Raises :class:`~trailsight.errors.IngestError` for a path that does not exist, a glob that
    matches nothing, or a named path that is not a file or folder — before anything is read.
    What a folder or a glob holds that cannot be read (see :func:`_walk`) goes to ``on_skip``.
    """
    filters = filters or PathFilter()
    for raw in paths:
        text = str(raw)
        if text == STDIN:
            yield SourceFile(key=STDIN, size=0, version="")
            continue
        if text.startswith("s3://"):
            yield from _discover_s3(text, filters, s3_client)
            continue
        path = Path(text).expanduser()
        named = True
        if path.exists():
            targets = [path]
        elif _GLOB_CHARS.search(text):
            matches = sorted(glob.glob(str(path), recursive=True))  # noqa: PTH207 - patterns may be absolute
            targets = [Path(p) for p in matches]
            named = False
            if not targets:
                raise IngestError(f"{text}: no files match this pattern")
        else:
            raise IngestError(f"{text}: no such file or folder")
        for target in targets:
            try:
                resolved = target.resolve(strict=True)
                mode = resolved.stat().st_mode
            except (OSError, RuntimeError) as exc:
                why = _unreadable(exc, link=target.is_symlink()) if isinstance(exc, OSError) else "symlink loop"
                if named:
                    raise IngestError(f"{target}: {why}") from None
                on_skip(str(target), why)
                continue
            if stat.S_ISDIR(mode):
                yield from _walk(resolved, filters, on_skip)
                continue
            odd = not_a_file(mode)
            if odd is not None:
                if named:
                    raise IngestError(f"{target}: {odd}")
                on_skip(str(target), odd)
            elif filters.keep_path(str(resolved)):
                yield _local_source(resolved)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → (bucket, prefix)."""
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise IngestError(f"{uri}: no bucket in S3 URI")
    return bucket, prefix


def _discover_s3(uri: str, filters: PathFilter, s3_client: Callable[[], Any] | None) -> Iterator[SourceFile]:
    if s3_client is None:
        raise IngestError(f"{uri}: no S3 client configured")
    bucket, prefix = split_s3_uri(uri)
    client = s3_client()
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        found = False
        for page in pages:
            for obj in page.get("Contents", ()):
                key = obj["Key"]
                found = True
                name = key.rsplit("/", 1)[-1]
                if not _is_log_name(name) and key != prefix:
                    continue
                if any(part in _SKIP_DIRS for part in key.split("/")[:-1]):
                    continue
                if not filters.keep_path(key):
                    continue
                yield SourceFile(
                    key=f"s3://{bucket}/{key}",
                    size=int(obj.get("Size", 0)),
                    version=str(obj.get("ETag", "")).strip('"'),
                    account=path_account(key),
                )
        if not found:
            raise IngestError(f"{uri}: no objects under this prefix")
    except (ClientError, BotoCoreError) as exc:
        raise IngestError(f"{uri}: cannot list S3 objects: {exc}") from None


def make_s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client; ``endpoint_url`` (or ``$AWS_ENDPOINT_URL``) points it elsewhere (moto, MinIO)."""
    import boto3

    url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client("s3", endpoint_url=url)


def lazy_s3_client(endpoint_url: str | None = None) -> Callable[[], Any]:
    """A function that makes one S3 client on its first call and returns it ever after."""
    client: list[Any] = []

    def get() -> Any:
        if not client:
            client.append(make_s3_client(endpoint_url))
        return client[0]

    return get


def read_blocks(
    source: SourceFile,
    *,
    s3_client: Callable[[], Any] | None = None,
    stdin: BinaryIO | None = None,
) -> Iterator[bytes]:
    """Yield the raw bytes of ``source`` in blocks of :data:`BLOCK_SIZE`.

    Raises ``OSError`` (local), botocore errors (S3) — the pipeline quarantines the source.
    """
    if source.is_stdin:
        stream = stdin if stdin is not None else sys.stdin.buffer
        while block := stream.read(BLOCK_SIZE):
            yield block
        return
    if source.is_s3:
        if s3_client is None:
            raise OSError("no S3 client configured")
        bucket, key = split_s3_uri(source.key)
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        try:
            yield from body.iter_chunks(BLOCK_SIZE)
        finally:
            body.close()
        return
    # O_NONBLOCK: opening a FIFO put in a file's place since discovery must not wait for a writer.
    fd = os.open(source.key, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        why = not_a_file(os.fstat(fd).st_mode)
        if why is not None:
            raise OSError(f"{source.key}: {why}")
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        while block := fh.read(BLOCK_SIZE):
            yield block
