"""``behaviour_model`` — how likely this principal is to make this call, given itself, its peers and its account.

Sources: GuardDuty's probabilistic model of API calls in context and Sophos' new-event model
softened by what similar users do. It replaces the yes/no "first seen" of the seed rules with a
probability, so that a call new to the principal but everyday for its peers is only mildly
surprising, and a call nobody in the account makes is very surprising.

Algorithm, in plain words (hierarchical count smoothing, from history strictly before the
event, over the forget window): the chance that the principal uses the API on a day it is
active is estimated from its own active days, pulled towards what its peers do, which is pulled
towards what the account does, which is pulled towards a small global prior:

* account: ``p_a = (principals of the account that used it + γ·prior) / (active principals + γ)``;
* peers (the most similar principals, :mod:`trailsight.features.behaviour`):
  ``p_g = (similarity of the peers that used it + β·p_a) / (total peer similarity + β)``;
* principal: ``p_p = (its active days with the API + α·p_g) / (its active days + α)``;
* person behind a shared role (SSO permission set): the same once more, over the person's own
  days, pulled towards ``p_p``.

The score is the surprise ``−log10 p`` over ``surprise_scale`` (3: one in a thousand scores 1),
so it reads as a probability in words: 0.33 — one day in ten, 0.67 — one day in a hundred.
The reasons name the peers that use the API and how many principals of the account do.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray
from trailsight.finding import Reason


class BehaviourModelDetector(Detector):
    """P(api | principal, peers, account) by hierarchical smoothing; scores the surprise."""

    kind: ClassVar[str] = "what"
    name: ClassVar[str] = "behaviour_model"
    source: ClassVar[str] = "GuardDuty anomalous-behaviour model; Sophos new-event model softened by similar users"
    requires: ClassVar[tuple[str, ...]] = (
        "api",
        "principal",
        "actor",
        "p_api_days",
        "p_days",
        "x_api_days",
        "x_days",
        "peers_n",
        "peers_sim",
        "peers_using",
        "peers_using_sim",
        "peer_names",
        "peer_group",
        "a_api_users",
        "a_principals",
        "auto_score",
    )
    defaults: ClassVar[dict[str, float | int | bool]] = {
        "threshold": 50,
        "alpha": 2.0,
        "beta": 1.0,
        "gamma": 1.0,
        "prior": 0.02,
        "surprise_scale": 3.0,
    }

    def probability(self, cols: Columns) -> FloatArray:
        """The smoothed probability of each row's API for its principal (or actor)."""
        alpha, beta, gamma = self.p("alpha"), self.p("beta"), self.p("gamma")
        users = cols.num("a_api_users", fill=np.nan)
        rich = np.isnan(users)  # the principal's own history is rich: population figures were not needed
        users = np.nan_to_num(users, nan=0.0)
        p_a = (users + gamma * self.p("prior")) / (cols.num("a_principals") + gamma)
        p_g = (cols.num("peers_using_sim") + beta * p_a) / (cols.num("peers_sim") + beta)
        p_g = np.where(rich, 1.0, p_g)
        p_p = (cols.num("p_api_days") + alpha * p_g) / (cols.num("p_days") + alpha)
        shared = cols.differ("actor", "principal")
        p_x = (cols.num("x_api_days") + alpha * p_p) / (cols.num("x_days") + alpha)
        out: FloatArray = np.clip(np.where(shared, p_x, p_p), 1e-12, 1.0)
        return out

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        prob = self.probability(cols)
        shared = cols.differ("actor", "principal")
        score = -np.log10(prob) / self.p("surprise_scale")

        def explain(i: int, s: float) -> list[Reason]:
            api = cols.text("api")[i]
            peers = int(cols.num("peers_n")[i])
            using = int(cols.num("peers_using")[i])
            users = int(cols.num("a_api_users")[i])
            names = cols.text("peer_names")[i]
            days = int(cols.num("p_days")[i])
            own = int(cols.num("p_api_days")[i])
            # For a person behind a shared role the score is theirs: say their own days.
            subject = "this principal"
            if shared[i]:
                subject = "this person"
                days, own = int(cols.num("x_days")[i]), int(cols.num("x_api_days")[i])
            details: dict[str, Any] = {
                "api": api,
                "probability": float(f"{prob[i]:.3g}"),
                "principal_days_with_api": own,
                "principal_active_days": days,
                "peers": peers,
                "peers_using": using,
                "peers_using_names": names,
                "peer_group": cols.text("peer_group")[i],
                "principals_in_account_using": users,
                "principals_in_account": int(cols.num("a_principals")[i]),
                "automation": round(float(cols.num("auto_score")[i]), 2),
            }
            who = f"{using} of its {peers} closest peers" if peers else "it has no close peers yet;"
            if peers and using:
                who += f" ({names})"
            if own == 0:
                msg = f"{api} is new for {subject}: not used on any of its {days} active days; {who} use it"
            else:
                msg = f"{api} was used on only {own} of {subject}'s {days} active days; {who} use it"
            if peers == 0:
                msg = msg.replace("; it has no close peers yet; use it", "; it has no close peers yet")
            msg += f", {users} other principal(s) of the account do (chance ≈ {prob[i]:.2g} a day)"
            return [Reason(detector=self.name, code="unlikely_api", score=s, message=msg, details=details)]

        return score, explain
