"""Outputs by name: formats and destinations from one table, plus third-party ones by entry point.

An output is ``DESTINATION[:TARGET][?option=value&...]``::

    jsonl | stdout | -                        the watch alert as JSON lines on standard output
    ocsf | asff | csv | slack | teams         that format on standard output
    file:PATH                                 appended to PATH (fsynced), JSON lines by default
    webhook:URL                               one POST per alert
    slack:URL  /  teams:URL                   webhook:URL?format=slack / ?format=teams
    securityhub[:REGION]                      BatchImportFindings (format asff)
    sns:TOPIC_ARN                             Publish, message attributes for filtering
    eventbridge[:BUS_NAME_OR_ARN]             PutEvents on the bus (default: ``default``)

Options (after ``?``; for a webhook, names that are not options stay in the URL's query):
``format`` (any format name), ``min_severity`` (Low, Medium, High, Critical), ``retries``,
``backoff`` (seconds), ``timeout`` (seconds), ``region``, ``endpoint`` (an AWS endpoint URL),
``source`` (EventBridge), ``ui_url``.

Built-in formats and destinations are listed in :data:`BUILTIN_FORMATS` and
:data:`BUILTIN_DESTINATIONS`; packages add their own through the ``trailsight.outputs``
entry-point group (``name = "module:Class"``, the class an :class:`OutputFormat` or a
:class:`Destination` subclass). A name registered twice is rejected; an unknown name or
option is a :class:`~trailsight.errors.ConfigError` naming the ``--output`` value.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

from trailsight.errors import ConfigError
from trailsight.outputs.base import Sink
from trailsight.outputs.formats import BUILTIN_FORMATS, OutputFormat, RenderContext
from trailsight.outputs.retry import RetryPolicy
from trailsight.outputs.routing import FanOutSink, SeverityFloorSink, severity_rank

ENTRY_POINT_GROUP = "trailsight.outputs"

#: Options every output takes.
COMMON_OPTIONS: frozenset[str] = frozenset(
    {"format", "min_severity", "retries", "backoff", "timeout", "ui_url", "region"}
)


@dataclass(frozen=True, kw_only=True)
class OutputDefaults:
    """Settings an output takes unless its spec says otherwise (the CLI's flags)."""

    retries: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)
    ui_url: str | None = None
    region: str | None = None
    min_severity: str | None = None
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True, kw_only=True)
class SinkRequest:
    """Everything a destination needs to build its sink."""

    spec: str
    target: str
    fmt: OutputFormat
    ctx: RenderContext
    policy: RetryPolicy
    options: Mapping[str, str]
    headers: Mapping[str, str]


class Destination:
    """Where alerts go. Subclasses set the class attributes and implement :meth:`build`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: ``"none"``, ``"optional"`` or ``"required"``: whether ``NAME:TARGET`` takes a target.
    target: ClassVar[str] = "none"
    default_format: ClassVar[str] = "jsonl"
    #: Formats it accepts (None: any).
    formats: ClassVar[frozenset[str] | None] = None
    #: Options besides :data:`COMMON_OPTIONS`.
    options: ClassVar[frozenset[str]] = frozenset()

    def build(self, request: SinkRequest) -> Sink:
        """The sink for ``request``."""
        raise NotImplementedError


class StdoutDestination(Destination):
    """Standard output, one payload per line."""

    name = "stdout"
    description = "standard output, one payload per line"

    def build(self, request: SinkRequest) -> Sink:
        """A :class:`~trailsight.outputs.jsonl.StreamSink`."""
        from trailsight.outputs.jsonl import StreamSink

        return StreamSink(fmt=request.fmt, ctx=request.ctx)


class FileDestination(Destination):
    """A file, appended to and fsynced."""

    name = "file"
    description = "a file, one payload per line, appended and fsynced"
    target = "required"

    def build(self, request: SinkRequest) -> Sink:
        """A :class:`~trailsight.outputs.jsonl.FileSink`."""
        from trailsight.outputs.jsonl import FileSink

        return FileSink(Path(request.target), fmt=request.fmt, ctx=request.ctx)


class WebhookDestination(Destination):
    """An HTTP(S) endpoint, one POST per alert."""

    name = "webhook"
    description = "HTTP(S) POST per alert (Slack, Teams or any receiver)"
    target = "required"

    def build(self, request: SinkRequest) -> Sink:
        """A :class:`~trailsight.outputs.webhook.WebhookSink`."""
        from trailsight.outputs.webhook import WebhookSink

        if not request.target.startswith(("http://", "https://")):
            raise ConfigError(f"--output {request.spec!r}: the webhook URL must start with http:// or https://")
        name = request.fmt.name if request.fmt.name in ("slack", "teams") else "webhook"
        return WebhookSink(
            request.target, policy=request.policy, headers=request.headers, fmt=request.fmt, ctx=request.ctx, name=name
        )


class SecurityHubDestination(Destination):
    """AWS Security Hub, BatchImportFindings."""

    name = "securityhub"
    description = "AWS Security Hub BatchImportFindings (ASFF), 100 findings a call"
    target = "optional"
    default_format = "asff"
    formats = frozenset({"asff"})
    options = frozenset({"endpoint"})

    def build(self, request: SinkRequest) -> Sink:
        """A :class:`~trailsight.outputs.aws.SecurityHubSink` (target: the region)."""
        from trailsight.outputs.aws import SecurityHubSink

        region = request.target or request.ctx.region
        ctx = RenderContext(region=region, ui_url=request.ctx.ui_url)
        return SecurityHubSink(
            region=region, endpoint_url=request.options.get("endpoint"), policy=request.policy, ctx=ctx
        )


class SnsDestination(Destination):
    """An SNS topic, Publish per alert."""

    name = "sns"
    description = "Amazon SNS Publish per alert, message attributes for filter policies"
    target = "required"
    options = frozenset({"endpoint"})

    def build(self, request: SinkRequest) -> Sink:
        """A :class:`~trailsight.outputs.aws.SnsSink` (target: the topic ARN)."""
        from trailsight.outputs.aws import SnsSink

        return SnsSink(
            request.target,
            fmt=request.fmt,
            endpoint_url=request.options.get("endpoint"),
            policy=request.policy,
            ctx=request.ctx,
        )


class EventBridgeDestination(Destination):
    """An EventBridge bus, PutEvents."""

    name = "eventbridge"
    description = "Amazon EventBridge PutEvents, 10 entries a call, detail-type per finding kind"
    target = "optional"
    formats = frozenset({"jsonl", "ocsf", "asff"})
    options = frozenset({"endpoint", "source"})

    def build(self, request: SinkRequest) -> Sink:
        """A :class:`~trailsight.outputs.aws.EventBridgeSink` (target: bus name or ARN)."""
        from trailsight.outputs.aws import EventBridgeSink

        return EventBridgeSink(
            request.target or "default",
            source=request.options.get("source", "trailsight"),
            fmt=request.fmt,
            region=request.ctx.region,
            endpoint_url=request.options.get("endpoint"),
            policy=request.policy,
            ctx=request.ctx,
        )


#: The built-in destinations, by name.
BUILTIN_DESTINATIONS: dict[str, type[Destination]] = {
    cls.name: cls
    for cls in (
        StdoutDestination,
        FileDestination,
        WebhookDestination,
        SecurityHubDestination,
        SnsDestination,
        EventBridgeDestination,
    )
}

#: Short names: ``jsonl`` and ``-`` are standard output; ``slack:URL`` is a webhook in Slack format.
ALIASES: dict[str, tuple[str, str | None]] = {
    "-": ("stdout", None),
    "slack": ("webhook", "slack"),
    "teams": ("webhook", "teams"),
}


@dataclass(frozen=True)
class Registry:
    """Formats and destinations by name."""

    formats: dict[str, type[OutputFormat]]
    destinations: dict[str, type[Destination]]


def available(include_plugins: bool = True) -> Registry:
    """Built-in formats and destinations, then entry points (a duplicate name is rejected)."""
    reg = Registry(dict(BUILTIN_FORMATS), dict(BUILTIN_DESTINATIONS))
    if not include_plugins:
        return reg
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:
            raise ConfigError(f"entry point {ENTRY_POINT_GROUP}:{ep.name} failed to load: {exc}") from None
        register(reg, cls, origin=f"entry point {ep.name}")
    return reg


def register(reg: Registry, cls: object, origin: str = "") -> None:
    """Add a format or destination class to ``reg`` under its ``name``; duplicates are rejected."""
    where = f" ({origin})" if origin else ""
    if isinstance(cls, type) and issubclass(cls, OutputFormat):
        table: dict[str, type] = reg.formats
    elif isinstance(cls, type) and issubclass(cls, Destination):
        table = reg.destinations
    else:
        raise ConfigError(f"output plugin{where} is neither an OutputFormat nor a Destination subclass")
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name or ":" in name or "?" in name:
        raise ConfigError(f"output class {cls.__qualname__}{where} has no usable name")
    taken = name in reg.formats or name in reg.destinations or name in ALIASES
    if taken and table.get(name) is not cls:
        raise ConfigError(f"output name {name!r} is registered twice{where}")
    table[name] = cls


def get_format(name: str, reg: Registry | None = None, *, setting: str = "--format") -> OutputFormat:
    """A new instance of the format called ``name``."""
    reg = reg or available()
    try:
        return reg.formats[name]()
    except KeyError:
        raise ConfigError(f"{setting}: unknown format {name!r} (known: {', '.join(sorted(reg.formats))})") from None


def split_spec(spec: str, reg: Registry) -> tuple[str, str, dict[str, str]]:
    """``DEST[:TARGET][?opts]`` → (destination name, target, options); aliases resolved."""
    head, target = spec, ""
    name, sep, rest = spec.partition(":")
    if sep and "?" not in name:
        head, target = name, rest
    elif "?" in spec:
        head, _, query = spec.partition("?")
        target = "?" + query
    options: dict[str, str] = {}
    if "?" in target:
        base, _, query = target.partition("?")
        kept: list[tuple[str, str]] = []
        url_target = head in ("webhook", "slack", "teams")
        for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            if not url_target or key in COMMON_OPTIONS:
                options[key] = value
            else:
                kept.append((key, value))
        target = base + ("?" + urllib.parse.urlencode(kept) if kept else "")
    if head in ALIASES:
        dest, fmt = ALIASES[head]
        if fmt and "format" not in options:
            options["format"] = fmt
        head = dest
    elif head in reg.formats and not target:
        options.setdefault("format", head)
        head = "stdout"
    return head, target, options


def _float(value: str, key: str, spec: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"--output {spec!r}: {key}={value!r} is not a number") from None
    if number < 0:
        raise ConfigError(f"--output {spec!r}: {key} must be 0 or more")
    return number


def parse_output(
    spec: str,
    *,
    retries: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
    headers: Mapping[str, str] | None = None,
    defaults: OutputDefaults | None = None,
    registry: Registry | None = None,
) -> Sink:
    """Turn one ``--output`` value into a sink (see the module docstring)."""
    base = defaults or OutputDefaults(retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, headers=headers or {})
    reg = registry or available()
    name, target, options = split_spec(spec.strip(), reg)
    known = ", ".join(sorted({*reg.destinations, *ALIASES, *reg.formats} - {"-"}))
    cls = reg.destinations.get(name)
    if cls is None:
        raise ConfigError(f"--output {spec!r}: unknown output {name!r} (known: {known})")
    if cls.target == "required" and not target:
        raise ConfigError(f"--output {spec!r}: {name} needs a target ({name}:...)")
    if cls.target == "none" and target:
        raise ConfigError(f"--output {spec!r}: {name} takes no target")
    extra = set(options) - COMMON_OPTIONS - cls.options
    if extra:
        raise ConfigError(f"--output {spec!r}: {name} does not take option {sorted(extra)[0]!r}")
    fmt_name = options.get("format", cls.default_format)
    fmt = get_format(fmt_name, reg, setting=f"--output {spec!r}")
    if cls.formats is not None and fmt_name not in cls.formats:
        raise ConfigError(f"--output {spec!r}: {name} takes format {', '.join(sorted(cls.formats))}, not {fmt_name!r}")
    retries_n = base.retries
    if "retries" in options:
        retries_n = int(_float(options["retries"], "retries", spec))
    policy = RetryPolicy(
        retries=retries_n,
        backoff_s=_float(options["backoff"], "backoff", spec) if "backoff" in options else base.backoff_s,
        timeout_s=_float(options["timeout"], "timeout", spec) if "timeout" in options else base.timeout_s,
        sleep=base.sleep,
    )
    ctx = RenderContext(region=options.get("region", base.region), ui_url=options.get("ui_url", base.ui_url))
    request = SinkRequest(
        spec=spec, target=target, fmt=fmt, ctx=ctx, policy=policy, options=options, headers=dict(base.headers)
    )
    sink = cls().build(request)
    floor = options.get("min_severity", base.min_severity)
    if floor:
        severity_rank(floor, setting=f"--output {spec!r}: min_severity")
        return SeverityFloorSink(sink, floor)
    return sink


def parse_outputs(specs: Sequence[str], *, defaults: OutputDefaults | None = None) -> Sink:
    """One sink for several ``--output`` values (a :class:`FanOutSink` when more than one)."""
    reg = available()
    sinks = [parse_output(spec, defaults=defaults or OutputDefaults(), registry=reg) for spec in specs]
    if len(sinks) == 1:
        return sinks[0]
    names = [s.name for s in sinks]
    for name in names:
        if names.count(name) > 1:
            # dead letters are filed by sink name; two sinks of a kind get numbered names
            for index, sink in enumerate(s for s in sinks if s.name == name):
                sink.name = f"{name}#{index + 1}"
    return FanOutSink(sinks)


__all__ = [
    "ALIASES",
    "BUILTIN_DESTINATIONS",
    "COMMON_OPTIONS",
    "ENTRY_POINT_GROUP",
    "Destination",
    "EventBridgeDestination",
    "FileDestination",
    "OutputDefaults",
    "Registry",
    "SecurityHubDestination",
    "SinkRequest",
    "SnsDestination",
    "StdoutDestination",
    "WebhookDestination",
    "available",
    "get_format",
    "parse_output",
    "parse_outputs",
    "register",
    "split_spec",
]
