"""Sign-in and credential context: how a person signed in, and where a long-term key showed up.

Two detectors, each judged against the identity's own history (as-of features of
:mod:`trailsight.features.asof`: the ``p_signin`` / ``p_signin_mfa`` / ``k`` / ``k_asn`` pairs
and ``signin_fails``).

``signin`` — Source: GuardDuty's and Datadog's console sign-in findings (a sign-in without MFA,
a successful sign-in after a burst of failures, root credential use), made relative to the
person's own habit, as Elastic's "first time seen" rules are.

Algorithm, in plain words:

* **MFA against the person's habit.** A successful console sign-in (``ConsoleLogin``) without
  MFA (``additionalEventData.MFAUsed`` or ``sessionContext.attributes.mfaAuthenticated``) is
  raised only when the person signed in at least ``min_signins`` (5) times before in the forget
  window and at least ``mfa_habit`` (0.9) of those sign-ins were not without MFA: it scores
  ``no_mfa_score`` (0.85). A person who signs in without MFA as a habit (legacy users, sign-ins
  federated from an identity provider, whose MFA happens there) is never raised for it.
* **Failures, then a success.** A successful sign-in that follows at least ``min_failures`` (3)
  failed sign-ins of the same person since their previous success of the same UTC day, the first
  of them at most ``burst_minutes`` (30) earlier, scores ``burst_score`` (0.8). A failed
  sign-in is one with an error code or message ("Failed authentication"); a failed MFA step
  (``CheckMfa``) counts too.
* **Root.** Any call by the root user — its console sign-in included — scores ``root_score``
  (0.9 for a sign-in, ``root_api_score`` 0.75 for other calls) when the account's root user was
  active on fewer than ``root_usual_days`` (3) earlier days of the forget window: root is rarely
  used in a healthy organisation, and an account that uses it daily is judged by that habit.
* **A new network.** A successful sign-in from a country or network (ASN) the person never used
  before (``p_country`` / ``p_asn``) adds ``new_network_bonus`` (0.1) to any of the above and says
  so. On its own it scores ``new_network_score`` (0.4, under the threshold):
  ``unusual_network`` already raises a new network for every call. When the feature table
  carries a ``network_class`` column, the line names the class of the network.

The detector is *identity evidence* (:attr:`~trailsight.detectors.base.Detector.identity`): where
it fires, the event's credential itself is in doubt, so one such sign-in can raise a finding
alone (see :mod:`trailsight.scoring.combine`).

``long_term_key_network`` — Source: GuardDuty's ``unusualASNs`` and Datadog's "access key used
from a new network", narrowed to long-term keys (``AKIA…``), which never expire and are the keys
that leak.

Algorithm, in plain words: a call signed with a long-term key, from a public network (an ASN)
the key was never used from before in the forget window — or first used from less than
``new_hours`` (24) ago, so a whole session counts — scores ``score`` (0.6), when the key itself
was active on at least ``min_key_days`` (3) earlier days: a key with history suddenly used from
elsewhere. A brand-new key has no habit to break; calls from AWS networks (no ASN) score 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, recently_new, seen_today
from trailsight.finding import Reason

#: The column a network classification adds to the feature table, read when present.
NETWORK_CLASS_COLUMN = "network_class"


class SigninDetector(Detector):
    """Console sign-ins against the person's habit: MFA, failure bursts, root, new networks."""

    name: ClassVar[str] = "signin"
    source: ClassVar[str] = "GuardDuty / Datadog console sign-in findings, against the person's habit"
    identity: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = (
        "event_time",
        "event_name",
        "error_code",
        "error_message",
        "identity_type",
        "principal_name",
        "mfa",
        "asn",
        "as_org",
        "country",
        "p_signin_n",
        "p_signin_mfa_n",
        "signin_fails",
        "signin_fails_first",
        "p_days",
        "p_last",
        "p_asn_n",
        "p_country_n",
    )
    defaults: ClassVar[dict[str, float | int | bool]] = {
        "threshold": 50,
        "min_signins": 5,
        "mfa_habit": 0.9,
        "no_mfa_score": 0.85,
        "min_failures": 3,
        "burst_minutes": 30,
        "burst_score": 0.8,
        "root_usual_days": 3,
        "root_score": 0.9,
        "root_api_score": 0.75,
        "new_network_bonus": 0.1,
        "new_network_score": 0.4,
    }

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        login = cols.equals("event_name", "ConsoleLogin")
        failed = cols.present("error_code") | cols.present("error_message")
        ok = login & ~failed
        no_mfa = ok & cols.present("mfa") & ~cols.flag("mfa")
        before = cols.num("p_signin_n")
        # At a sign-in without MFA, p_signin_mfa_n counts the earlier ones without MFA too.
        with_mfa = before - cols.num("p_signin_mfa_n")
        habit = with_mfa / np.maximum(before, 1.0)
        against_habit = no_mfa & (before >= self.p("min_signins")) & (habit >= self.p("mfa_habit"))

        fails = cols.num("signin_fails")
        span = cols.epoch("event_time") - cols.epoch("signin_fails_first")
        quick = np.nan_to_num(span, nan=np.inf) <= 60 * self.p("burst_minutes")
        burst = ok & (fails >= self.p("min_failures")) & quick

        root = cols.equals("identity_type", "Root")
        root_days = cols.num("p_days") - seen_today(cols, "p_last")
        rare_root = root & (root_days < self.p("root_usual_days"))
        root_part = np.where(rare_root, np.where(ok, self.p("root_score"), self.p("root_api_score")), 0.0)

        new_asn = ok & cols.present("asn") & (cols.num("p_asn_n") == 0) & (cols.num("p_days") > 0)
        new_cty = ok & cols.present("country") & (cols.num("p_country_n") == 0) & (cols.num("p_days") > 0)
        new_net = new_asn | new_cty
        parts = np.stack(
            [
                np.where(against_habit, self.p("no_mfa_score"), 0.0),
                np.where(burst, self.p("burst_score"), 0.0),
                root_part,
            ]
        )
        strongest = parts.max(axis=0)
        score = np.where(
            strongest > 0,
            strongest + np.where(new_net, self.p("new_network_bonus"), 0.0),
            np.where(new_net, self.p("new_network_score"), 0.0),
        )
        classes = cols.text(NETWORK_CLASS_COLUMN) if cols.has(NETWORK_CLASS_COLUMN) else None

        def explain(i: int, s: float) -> list[Reason]:
            who = cols.text("principal_name")[i] or "this person"
            out: list[Reason] = []
            if against_habit[i]:
                n, m = int(before[i]), int(with_mfa[i])
                always = "always uses it" if m == n else "nearly always uses it"
                out.append(
                    self._reason(
                        "signin_without_mfa",
                        s,
                        f"signed in without MFA — {who} {always} ({m} of {n} earlier sign-ins)",
                        {"earlier_signins": n, "earlier_with_mfa": m},
                    )
                )
            if burst[i]:
                minutes = max(1, round(float(span[i]) / 60.0))
                out.append(
                    self._reason(
                        "signin_after_failures",
                        s,
                        f"signed in after {int(fails[i])} failed sign-ins in {minutes} min",
                        {"failures": int(fails[i]), "minutes": minutes},
                    )
                )
            if rare_root[i]:
                days = int(root_days[i])
                usual = "never on an earlier day" if days == 0 else f"on only {days} earlier day(s)"
                what = "signed in to the console as" if ok[i] else "called the API as"
                out.append(
                    self._reason(
                        "root_signin" if ok[i] else "root_use",
                        s,
                        f"{what} the root user — this account used root {usual} of its history",
                        {"root_days_before": days},
                    )
                )
            if new_net[i]:
                org = cols.text("as_org")[i] or "an unknown network"
                where = f"AS{int(cols.num('asn')[i])} ({org})" if cols.present("asn")[i] else org
                if classes is not None and classes[i]:
                    where += f", a {classes[i]} network"
                country = cols.text("country")[i]
                if new_cty[i] and country:
                    where += f" in {country}, a country {who} never worked from"
                out.append(
                    self._reason(
                        "signin_new_network",
                        s,
                        f"signed in from {where}, never used by {who} before",
                        {"asn": cols.text("asn")[i], "as_org": cols.text("as_org")[i], "country": country},
                    )
                )
            return out

        return score, explain

    def _reason(self, code: str, score: float, message: str, details: dict[str, Any]) -> Reason:
        return Reason(detector=self.name, code=code, score=score, message=message, details=details)


class LongTermKeyNetworkDetector(Detector):
    """A long-term access key with history, first seen from a new network (GuardDuty unusualASNs, per key)."""

    name: ClassVar[str] = "long_term_key_network"
    source: ClassVar[str] = "GuardDuty unusualASNs, per long-term access key"
    requires: ClassVar[tuple[str, ...]] = (
        "event_time",
        "access_key_id",
        "asn",
        "as_org",
        "k_n",
        "k_days",
        "k_last",
        "k_asn_n",
        "k_asn_first",
    )
    defaults: ClassVar[dict[str, float | int | bool]] = {
        "threshold": 50,
        "score": 0.6,
        "min_key_days": 3,
        "new_hours": 24,
    }

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        long_term = cols.starts_with("access_key_id", "AKIA")
        key_days = cols.num("k_days") - seen_today(cols, "k_last")
        new_asn = recently_new(cols, "k_asn_n", "k_asn_first", self.p("new_hours"))
        hit = long_term & cols.present("asn") & new_asn & (key_days >= self.p("min_key_days"))
        score = np.where(hit, self.p("score"), 0.0)

        def explain(i: int, s: float) -> list[Reason]:
            key = cols.text("access_key_id")[i] or ""
            org = cols.text("as_org")[i] or "an unknown network"
            asn = int(cols.num("asn")[i])
            days = int(key_days[i])
            return [
                Reason(
                    detector=self.name,
                    code="long_term_key_new_network",
                    score=s,
                    message=(
                        f"long-term access key {key[:4]}…{key[-4:]} used from AS{asn} ({org}) for the first time "
                        f"(the key was active on {days} earlier days)"
                    ),
                    details={"access_key_id": key, "asn": asn, "as_org": org, "key_days_before": days},
                )
            ]

        return score, explain
