"""Request authentication: HubSpot signature v3, the generic HMAC, HTTP Basic.

All comparisons are constant-time (:func:`hmac.compare_digest`); all timestamps must lie
within :data:`MAX_SKEW_S` (5 minutes) of now, so a captured request cannot be replayed
later.

HubSpot v3 (developers.hubspot.com, "Validating requests"): base64 of
HMAC-SHA256(app secret, method + URI + body + timestamp), where the URI is the full
request URI with the percent-escapes of ``: / ? @ ! $ ' ( ) * , ;`` decoded, and the
timestamp is the ``X-HubSpot-Request-Timestamp`` header (epoch milliseconds). The vector
below is the one of HubSpot's own Python client tests:

>>> hubspot_v3_signature("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", "POST",
...     "https://www.example.com/webhook_uri", b"{'example_field':'example_value'}", "15000000")
'HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw='

Generic endpoint: lowercase hex HMAC-SHA256(secret, f"{timestamp}.{body}") with the
timestamp (epoch seconds) in ``X-SalesPulse-Timestamp``:

>>> generic_signature("s3cret", "1700000000", b"{}")[:16]
'97926816e98fbb41'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time

from streams.gateway.errors import Unauthorized

MAX_SKEW_S = 300

HUBSPOT_SIGNATURE = "X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP = "X-HubSpot-Request-Timestamp"
GENERIC_SIGNATURE = "X-SalesPulse-Signature"
GENERIC_TIMESTAMP = "X-SalesPulse-Timestamp"

# The escapes HubSpot decodes before signing (its docs list exactly these).
_HUBSPOT_DECODE = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
_ESCAPE = re.compile("|".join(_HUBSPOT_DECODE), re.IGNORECASE)
_DIGITS = re.compile(r"\d{1,16}")


def hubspot_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the listed percent-escapes decoded."""
    return _ESCAPE.sub(lambda m: _HUBSPOT_DECODE[m.group(0).upper()], uri)


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The expected ``X-HubSpot-Signature-v3`` value."""
    message = method.encode() + hubspot_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _timestamp_s(raw: str | None, header: str, unit_ms: bool, now: float) -> None:
    if not raw:
        raise Unauthorized(header, "missing")
    if not _DIGITS.fullmatch(raw.strip()):
        raise Unauthorized(header, "not an integer timestamp")
    value = int(raw.strip())
    seconds = value / 1000 if unit_ms else value
    if now - seconds > MAX_SKEW_S:
        raise Unauthorized(header, "timestamp older than 5 minutes")
    if seconds - now > MAX_SKEW_S:
        raise Unauthorized(header, "timestamp more than 5 minutes in the future")


def verify_hubspot_v3(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float | None = None,
) -> None:
    """Raise :class:`Unauthorized` unless the v3 signature and timestamp are valid."""
    now = time.time() if now is None else now
    if not signature:
        raise Unauthorized(HUBSPOT_SIGNATURE, "missing")
    _timestamp_s(timestamp, HUBSPOT_TIMESTAMP, unit_ms=True, now=now)
    assert timestamp is not None
    expected = hubspot_v3_signature(secret, method, uri, body, timestamp.strip())
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorized(HUBSPOT_SIGNATURE, "not base64") from None
    if not hmac.compare_digest(given, base64.b64decode(expected)):
        raise Unauthorized(HUBSPOT_SIGNATURE, "signature mismatch")


def generic_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The expected ``X-SalesPulse-Signature`` value (lowercase hex)."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_generic(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float | None = None,
) -> None:
    """Raise :class:`Unauthorized` unless the generic signature and timestamp are valid."""
    now = time.time() if now is None else now
    if not signature:
        raise Unauthorized(GENERIC_SIGNATURE, "missing")
    _timestamp_s(timestamp, GENERIC_TIMESTAMP, unit_ms=False, now=now)
    assert timestamp is not None
    given = signature.strip().lower().removeprefix("sha256=")
    expected = generic_signature(secret, timestamp.strip(), body)
    if not hmac.compare_digest(given.encode("ascii", "replace"), expected.encode()):
        raise Unauthorized(GENERIC_SIGNATURE, "signature mismatch")


def verify_basic(header: str | None, user: str, password: str) -> None:
    """Raise :class:`Unauthorized` unless ``header`` is HTTP Basic with these credentials."""
    if not header:
        raise Unauthorized("Authorization", "missing")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        raise Unauthorized("Authorization", "not HTTP Basic")
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorized("Authorization", "not base64") from None
    given_user, sep, given_password = decoded.partition(b":")
    # Compare both parts, always, so timing does not tell which one was wrong.
    user_ok = hmac.compare_digest(given_user, user.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    if not (sep and user_ok and password_ok):
        raise Unauthorized("Authorization", "wrong credentials")
