""" "Suppress similar": turn a finding into a suppression rule appended to the rules file (TOML).

The rule is :func:`trailsight.findings.suppress.rule_from_finding` narrowed to what the
analyst ticked (principal always; account, APIs, networks optional) and written as one
``[[suppress]]`` table in the format :func:`trailsight.findings.suppress.load_rules` reads.
The file is parsed again after the append and restored if it no longer loads. Values come
from CloudTrail and are attacker-controlled, so every string is written as an escaped TOML
basic string, never pasted raw.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from trailsight.errors import ConfigError
from trailsight.findings.suppress import SuppressionRule, load_rules, rule_from_finding
from trailsight.store.findings import finding_from_dict

SCOPES = ("account", "apis", "networks")
"""What "suppress similar" can match on besides the principal."""


def toml_string(value: str) -> str:
    """Quote ``value`` as a TOML basic string (JSON escapes are TOML escapes; DEL escaped too)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return toml_string(str(value))


def similar_rule(finding: dict[str, Any], *, scope: Sequence[str], reason: str) -> SuppressionRule:
    """The rule "suppress findings like this one", narrowed to ``scope`` (a subset of :data:`SCOPES`)."""
    base = rule_from_finding(finding_from_dict(finding), reason)
    return replace(
        base,
        account=base.account if "account" in scope else (),
        api=base.api if "apis" in scope else (),
        from_feedback=False,  # read as a rules-file rule (principal, all APIs): what is saved is what matches
        networks=base.networks if "networks" in scope else (),
        asn=base.asn if "networks" in scope else (),
        reason=reason or f"similar to finding {finding['id']} (suppressed from the web UI)",
    )


def rule_toml(rule: SuppressionRule) -> str:
    """The ``[[suppress]]`` table for ``rule``."""
    fields: list[tuple[str, Any]] = [
        ("principal", list(rule.principal)),
        ("account", list(rule.account)),
        ("api", list(rule.api)),
        ("cidr", [str(n) for n in rule.networks]),
        ("asn", list(rule.asn)),
        ("user_agent", list(rule.user_agent)),
    ]
    lines = ["[[suppress]]"]
    for key, values in fields:
        if values:
            lines.append(f"{key} = {_toml_value(values[0] if len(values) == 1 else values)}")
    lines.append(f"reason = {toml_string(rule.reason)}")
    return "\n".join(lines) + "\n"


def append_rule(path: Path, rule: SuppressionRule) -> None:
    """Append ``rule`` to the TOML rules file ``path`` (created if missing); keep the file loadable."""
    old = path.read_text(encoding="utf-8") if path.is_file() else None
    if old is not None and old.strip():
        load_rules(path)  # refuse to add to a file that is already broken (raises ConfigError)
    prefix = "" if not old else (old if old.endswith("\n") else old + "\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(prefix + rule_toml(rule), encoding="utf-8")
    try:
        load_rules(tmp)
    except ConfigError as exc:  # pragma: no cover - every value is escaped
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: the new rule would not load, file left unchanged: {exc}") from None
    tmp.replace(path)
