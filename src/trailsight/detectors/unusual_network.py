"""``unusual_network`` — a network (ASN) or country new for the principal and for the account.

Source: Amazon GuardDuty's behaviour features ``unusualASNs`` (new for the user, new for the
account) and the location part of its anomalous-behaviour findings.

Algorithm, in plain words: for an event from a public address, look up whether the principal
used its autonomous system (ASN) and its country before (forget window), and whether anyone in
the account did. A value stays *new* for ``new_hours`` (24) after its first sighting, so a whole
session from a new network counts, not only its first call. New ASN for the principal *and*
the account scores 0.8, new for the principal only 0.5; a country new for the principal adds
(0.9 when the ASN is also new for the account, else 0.7); scores take the maximum. AWS-internal
calls (no ASN) score 0. Principals with less than ``min_principal_days`` (3) active days score
at most half: everything is new to a newcomer.

The network's class (``net_class``, :mod:`trailsight.enrich.netclass`) weighs against the
principal's own habit: a rented network — a hosting provider, a commercial VPN or a Tor exit —
on a new ASN, from a class the principal never called from before (within ``new_hours`` of its
first sighting), scores ``new_rented_class`` (0.9). A class the principal already uses (the
engineer whose cron job runs on a VPS, the person who routes through a personal VPN) adds
nothing, and a new home broadband or mobile address keeps the ASN and country scores above.

The organisation's own egress is learned as of the event: a network (the source's /24 or /48,
``net_prefix``) that at least ``egress_principals`` (5) principals of the account called from on
earlier days of the forget window (``a_net_principals``) is the office, the corporate VPN or a
shared NAT, and scores 0 whatever its ASN says. Offices and VPNs named in ``[network]`` are
their own classes from the first day.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, recently_new
from trailsight.enrich.netclass import EGRESS_PRINCIPALS, RENTED, label
from trailsight.finding import Reason


class UnusualNetworkDetector(Detector):
    """New ASN / country for the principal and the account (GuardDuty unusualASNs)."""

    name: ClassVar[str] = "unusual_network"
    source: ClassVar[str] = "GuardDuty unusualASNs"
    requires: ClassVar[tuple[str, ...]] = (
        "asn",
        "as_org",
        "country",
        "source_ip",
        "event_time",
        "p_asn_n",
        "p_asn_first",
        "a_asn_n",
        "a_asn_first",
        "p_country_n",
        "p_country_first",
        "a_api_n",
        "p_days",
        "p_asn_freq",
        "net_class",
        "p_ncls_n",
        "p_ncls_first",
        "a_net_principals",
    )
    defaults: ClassVar[dict[str, float | int | bool]] = {
        "threshold": 50,
        "min_principal_days": 3,
        "new_hours": 24,
        "new_rented_class": 0.9,
        "egress_principals": EGRESS_PRINCIPALS,
    }

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        has_asn = cols.present("asn")
        has_country = cols.present("country")
        hours = self.p("new_hours")
        new_p_asn = recently_new(cols, "p_asn_n", "p_asn_first", hours)
        new_a_asn = recently_new(cols, "a_asn_n", "a_asn_first", hours)
        new_p_cty = recently_new(cols, "p_country_n", "p_country_first", hours)
        asn_score = np.where(new_p_asn, np.where(new_a_asn, 0.8, 0.5), 0.0)
        cty_score = np.where(has_country & new_p_cty, 0.7, 0.0)
        cty_score = np.where((cty_score > 0) & new_a_asn, 0.9, cty_score)
        rented = cols.isin("net_class", RENTED)
        new_cls = rented & new_p_asn & recently_new(cols, "p_ncls_n", "p_ncls_first", hours)
        cls_score = np.where(new_cls, float(self.p("new_rented_class")), 0.0)
        egress = cols.num("a_net_principals") >= self.p("egress_principals")
        score = np.where(has_asn & ~egress, np.maximum(np.maximum(asn_score, cty_score), cls_score), 0.0)
        young = cols.num("p_days") < self.p("min_principal_days")
        score = np.where(young, score * 0.5, score)

        def explain(i: int, s: float) -> list[Reason]:
            asn, org, country = cols.text("asn")[i], cols.text("as_org")[i], cols.text("country")[i]
            classes = cols.text("net_class")
            details = {
                "asn": asn,
                "as_org": org,
                "country": country,
                "source_ip": cols.text("source_ip")[i],
                "new_asn_for_principal": bool(new_p_asn[i]),
                "new_asn_for_account": bool(new_a_asn[i]),
                "new_country_for_principal": bool(new_p_cty[i]),
                "principal_calls_from_asn_before": int(cols.num("p_asn_n")[i]),
                "net_class": classes[i],
                "new_net_class_for_principal": bool(new_cls[i]),
            }
            out = []
            if new_cls[i]:
                where = f" in {country}" if country else ""
                nobody = " — nobody in this account uses it" if new_a_asn[i] else ""
                out.append(
                    Reason(
                        detector=self.name,
                        code="new_rented_network_for_principal",
                        score=s,
                        message=(
                            f"from a {label(classes[i])} (AS{asn} {org}){where}{nobody}; "
                            f"the principal never called from a {label(classes[i])} before"
                        ),
                        details=details,
                    )
                )
            elif new_p_asn[i]:
                where = "the principal and the account" if new_a_asn[i] else "the principal"
                code = "new_asn_for_account" if new_a_asn[i] else "new_asn_for_principal"
                out.append(
                    Reason(
                        detector=self.name,
                        code=code,
                        score=s,
                        message=f"AS{asn} ({org}) is new for {where}",
                        details=details,
                    )
                )
            if new_p_cty[i] and country:
                out.append(
                    Reason(
                        detector=self.name,
                        code="new_country_for_principal",
                        score=s,
                        message=f"first call from {country} for this principal",
                        details=details,
                    )
                )
            return out

        return score, explain
