"""A principal's console sign-in habit, in one line: "usually signs in with MFA (41 of 41 sign-ins)".

The same definitions the ``signin`` detector reads (:func:`trailsight.features.asof.signin_keys`):
a console sign-in is a ``ConsoleLogin``; it failed when it carries an error code or message; it
used MFA when the normalised ``mfa`` column says so. The habit thresholds are the detector's
``mfa_habit`` default, so the profile and the findings agree on who "always" uses MFA.
"""

from __future__ import annotations

from typing import Any

import duckdb

from trailsight.detectors.signin import SigninDetector

__all__ = ["signin_habit", "signin_line"]


def signin_line(signins: int, with_mfa: int, without_mfa: int) -> str:
    """The profile line for ``signins`` successful sign-ins, ``with_mfa`` / ``without_mfa`` of them known."""
    if signins == 0:
        return "never signed in to the console"
    habit = float(SigninDetector.defaults["mfa_habit"])
    if with_mfa >= habit * signins:
        return f"usually signs in with MFA ({with_mfa} of {signins} sign-ins)"
    if without_mfa >= habit * signins:
        return f"signs in without MFA as a habit ({without_mfa} of {signins} sign-ins)"
    if with_mfa + without_mfa == 0:
        return f"signed in to the console {signins} times (whether with MFA is not recorded)"
    return f"signs in with MFA sometimes ({with_mfa} of {signins} sign-ins)"


def signin_habit(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> dict[str, Any]:
    """``{"signins", "with_mfa", "without_mfa", "failed", "line"}`` over the ``events`` matching ``where``."""
    row = con.execute(
        "SELECT count(*) FILTER (WHERE NOT failed), count(*) FILTER (WHERE NOT failed AND mfa), "
        "count(*) FILTER (WHERE NOT failed AND NOT mfa), count(*) FILTER (WHERE failed) FROM ("
        "SELECT mfa, error_code IS NOT NULL OR error_message IS NOT NULL AS failed FROM events "
        f"WHERE event_name = 'ConsoleLogin' AND {where})",
        params,
    ).fetchone()
    ok, with_mfa, without_mfa, failed = (int(v or 0) for v in row) if row is not None else (0, 0, 0, 0)
    return {
        "signins": ok,
        "with_mfa": with_mfa,
        "without_mfa": without_mfa,
        "failed": failed,
        "line": signin_line(ok, with_mfa, without_mfa),
    }
