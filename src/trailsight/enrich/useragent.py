"""User-agent family: which kind of client made a CloudTrail call.

CloudTrail's ``userAgent`` is free text written by the client (and so attacker-controlled);
the family keeps the part that says *what kind* of client it is and drops versions and
platforms, so that an SDK upgrade is not a new agent while a switch from the console to a
Go program is.

Families (``trailsight.schema.UA_FAMILIES`` plus one ``sdk-<language>`` per SDK):

``console``
    the AWS Management Console: browsers (``Mozilla/...``), ``console.amazonaws.com``,
    ``signin.amazonaws.com``, ``console.<service>.amazonaws.com``, the console front ends
    (``S3Console``, ``EC2ConsoleFrontend``, ``RDS Console`` ...) and ``AWS Internal``, which
    CloudTrail writes for calls the console makes on a signed-in person's behalf (in the
    benchmark and in real trails it comes with that person's IP address).
``cli``
    ``aws-cli/`` (v1 and v2) and AWS Tools for PowerShell.
``sdk-<language>``
    ``sdk-python``, ``sdk-go``, ``sdk-java``, ``sdk-js``, ``sdk-dotnet``, ``sdk-ruby``, ``sdk-php``,
    ``sdk-rust``, ``sdk-cpp``: the AWS SDKs (Boto3/botocore, aws-sdk-go and -go-v2, ...).
``terraform``
    HashiCorp Terraform's AWS provider (checked before the Go SDK it embeds).
``cloudformation``
    ``cloudformation.amazonaws.com`` acting for a stack.
``aws-service``
    another AWS service acting on its own (``lambda.amazonaws.com``, ``config.amazonaws.com``,
    ``aws-internal/3`` service agents, the Lambda poller ``awslambda-worker``).
``other``
    anything else: scripts (``python-requests``), scanners (TruffleHog), empty or garbage.

The *client agent* (:func:`client_agent`) is the agent without the token that names the call:
the AWS CLI v2 appends the command it ran (``command/iam.list-users``, or ``md/command#iam.list-users``
in the newer format), so every new CLI command is a new agent string, although the client is the
same program on the same machine. Novelty of the exact agent (``unusual_user_agent``) is judged
on the client agent; the API itself is judged by the API detectors.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

UA_OTHER = "other"

#: The token of an agent that names the call rather than the client (AWS CLI v2, both formats):
#: a regular expression that RE2, Python and Java read alike, with no backslash to escape (DuckDB
#: and Spark apply it in SQL).
CALL_PATTERN = " (?:md/)?command[/#][^ ]*"
_CALL_PATTERN = re.compile(CALL_PATTERN)

#: Families this module can return, most specific first in the order they are checked.
FAMILIES: tuple[str, ...] = (
    "console",
    "cli",
    "terraform",
    "cloudformation",
    "sdk-python",
    "sdk-go",
    "sdk-java",
    "sdk-js",
    "sdk-dotnet",
    "sdk-ruby",
    "sdk-php",
    "sdk-rust",
    "sdk-cpp",
    "aws-service",
    UA_OTHER,
)

_CONSOLE_HOSTS = ("console.amazonaws.com", "signin.amazonaws.com")
_CONSOLE_FRONTENDS = re.compile(r"^(?:s3console|ec2consolefrontend|rds console|[a-z0-9 ]*console\b)", re.IGNORECASE)
_BROWSER = re.compile(r"^(?:mozilla|opera|chrome|safari)\b", re.IGNORECASE)
_SERVICE_HOST = re.compile(r"^[a-z0-9-]+(?:\.[a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$", re.IGNORECASE)

# (family, pattern) checked in order on the lower-cased agent; Terraform embeds aws-sdk-go and
# the CLI embeds botocore, so they come first.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cli", ("aws-cli/", "awspowershell", "aws-tools-for-powershell", "awscli/")),
    ("terraform", ("terraform/", "terraform-provider-aws", "hashicorp/")),
    ("sdk-python", ("boto3/", "botocore/", "aws-sdk-python", "aioboto", "aiobotocore")),
    ("sdk-go", ("aws-sdk-go",)),
    ("sdk-java", ("aws-sdk-java",)),
    ("sdk-js", ("aws-sdk-js", "aws-sdk-nodejs")),
    ("sdk-dotnet", ("aws-sdk-dotnet",)),
    ("sdk-ruby", ("aws-sdk-ruby",)),
    ("sdk-php", ("aws-sdk-php",)),
    ("sdk-rust", ("aws-sdk-rust", "rusoto/")),
    ("sdk-cpp", ("aws-sdk-cpp",)),
)


def classify_user_agent(user_agent: str | None) -> str:
    """Return the family of ``user_agent`` (one of :data:`FAMILIES`); ``other`` for null or unknown."""
    if not user_agent:
        return UA_OTHER
    ua = user_agent.strip()
    # Console calls are often wrapped as "[S3Console/0.4, aws-internal/3 ...]".
    if ua.startswith("[") and ua.endswith("]"):
        ua = ua[1:-1].strip()
    if not ua:
        return UA_OTHER
    lower = ua.lower()
    if lower == "aws internal" or lower in _CONSOLE_HOSTS:
        return "console"
    if _SERVICE_HOST.match(lower):
        if lower.startswith("console."):
            return "console"
        if lower == "cloudformation.amazonaws.com":
            return "cloudformation"
        return "aws-service"
    if _BROWSER.match(lower) or _CONSOLE_FRONTENDS.match(lower):
        return "console"
    if lower.startswith("awslambda-worker") or "aws-internal/" in lower:
        # AWS's own service agents (console front ends were matched above).
        return "aws-service"
    for family, needles in _RULES:
        if any(needle in lower for needle in needles):
            return family
    return UA_OTHER


def client_agent(user_agent: str | None) -> str | None:
    """``user_agent`` without the token that names the call (:data:`CALL_PATTERN`): the client that made it."""
    if user_agent is None:
        return None
    return _CALL_PATTERN.sub("", user_agent)


def client_agents(user_agents: pa.Array | pa.ChunkedArray) -> pa.DictionaryArray:
    """:func:`client_agent` of a column of user agents, worked out once per distinct agent.

    A day holds millions of calls but a few hundred agents, so the pattern runs over the
    distinct values (Arrow's RE2, as DuckDB's and Spark's) and the result stays dictionary
    encoded: distinct client agents, and each call's index into them (null where the call has
    no user agent).
    """
    encoded = pc.dictionary_encode(user_agents)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks() if encoded.num_chunks else pa.array([], pa.string()).dictionary_encode()
    clients = pc.dictionary_encode(pc.replace_substring_regex(encoded.dictionary, CALL_PATTERN, ""))
    return pa.DictionaryArray.from_arrays(clients.indices.take(encoded.indices), clients.dictionary)
