"""The normalised event: one row per CloudTrail record, as every later stage sees it.

This module owns the column names. CloudTrail's own camelCase field names
appear only in :mod:`trailsight.ingest.normalise`; everything downstream uses the
snake_case columns declared here.

Identity keys come at two levels (see DESIGN.md):

* ``principal`` — the IAM user ARN; for an assumed role the *role* ARN taken from
  ``sessionContext.sessionIssuer`` (never the session ARN); ``arn:aws:iam::ACCT:root``
  for the root user; the service host (``lambda.amazonaws.com``) for AWS services.
* ``actor`` — the person or workload behind it where the record says so: for
  IAM Identity Center permission-set roles (``AWSReservedSSO_*``) and roles whose
  session names are stable identifiers, ``<role ARN>/<session name>``; otherwise
  equal to ``principal``.
"""

from __future__ import annotations

import pyarrow as pa

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")

#: Columns taken from the record itself.
RECORD_FIELDS: list[pa.Field] = [
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("event_time", UTC_TIMESTAMP, nullable=False),
    pa.field("event_date", pa.date32(), nullable=False),
    pa.field("account_id", pa.string(), nullable=False),
    pa.field("region", pa.string()),
    pa.field("event_source", pa.string()),
    pa.field("service", pa.string()),
    pa.field("event_name", pa.string(), nullable=False),
    pa.field("read_only", pa.bool_()),
    pa.field("event_type", pa.string()),
    pa.field("error_code", pa.string()),
    pa.field("error_message", pa.string()),
    pa.field("source_ip", pa.string()),
    pa.field("user_agent", pa.string()),
    pa.field("ua_family", pa.string()),
    pa.field("identity_type", pa.string()),
    pa.field("principal", pa.string(), nullable=False),
    pa.field("principal_arn", pa.string()),
    pa.field("principal_name", pa.string()),
    pa.field("actor", pa.string(), nullable=False),
    pa.field("session_name", pa.string()),
    pa.field("access_key_id", pa.string()),
    pa.field("mfa", pa.bool_()),
    pa.field("invoked_by", pa.string()),
    pa.field("vpc_endpoint_id", pa.string()),
    pa.field("request_parameters", pa.string()),
    pa.field("resources", pa.string()),
    pa.field("source_file", pa.string()),
    pa.field("source_offset", pa.int64()),
    pa.field("raw", pa.string()),
]

#: Columns added by enrichment (:mod:`trailsight.enrich`).
ENRICHMENT_FIELDS: list[pa.Field] = [
    pa.field("ip_kind", pa.string()),
    pa.field("country", pa.string()),
    pa.field("city", pa.string()),
    pa.field("asn", pa.int64()),
    pa.field("as_org", pa.string()),
    pa.field("tactic", pa.string()),
    pa.field("technique", pa.string()),
    pa.field("api_risk", pa.float64()),
    pa.field("credential_type", pa.string()),  # trailsight.enrich.credentials.CREDENTIAL_TYPES
    pa.field("time_zone", pa.string()),  # IANA zone of the source address (trailsight.enrich.timezone)
    pa.field("utc_offset", pa.int64()),  # minutes east of UTC in that zone at the event's time
    pa.field("net_class", pa.string()),  # trailsight.enrich.netclass.NET_CLASSES
    pa.field("net_prefix", pa.string()),  # the public source's /24 (IPv4) or /48 (IPv6)
    pa.field("latitude", pa.float64()),
    pa.field("longitude", pa.float64()),
]

#: The whole normalised event, as written to the lake.
EVENT_SCHEMA = pa.schema(RECORD_FIELDS + ENRICHMENT_FIELDS)

EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)

#: Values of ``ip_kind``.
IP_KINDS = ("public", "private", "aws", "aws-service", "internal", "unknown")

#: Values of ``ua_family``; SDKs are ``sdk-<language>`` (``sdk-python``, ``sdk-go`` ...).
UA_FAMILIES = ("console", "cli", "sdk-python", "terraform", "cloudformation", "aws-service", "other")

#: Identity types CloudTrail writes in ``userIdentity.type``.
IDENTITY_TYPES = (
    "IAMUser",
    "AssumedRole",
    "Root",
    "AWSService",
    "AWSAccount",
    "FederatedUser",
    "WebIdentityUser",
    "SAMLUser",
    "IdentityCenterUser",
    "Unknown",
)


def empty_events() -> pa.Table:
    """Return an empty table with the normalised event schema."""
    return EVENT_SCHEMA.empty_table()
