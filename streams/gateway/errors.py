"""Errors the gateway answers with: each carries its HTTP status and a JSON body.

Every refusal of client input is a :class:`GatewayError` subclass, answered as
``{"error": ..., "field": ..., "reason": ...}``; anything else that escapes a handler is a
server bug (answered 500 by the catch-all middleware and counted).

>>> err = Invalid("[0].objectId", "required")
>>> err.status, err.body()
(422, {'error': 'invalid_payload', 'field': '[0].objectId', 'reason': 'required'})
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """A refusal with an HTTP status; ``field`` names the offending input, if any."""

    status = 400
    error = "bad_request"
    outcome = "invalid"

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        return {"error": self.error, "field": self.field, "reason": self.reason}

    def headers(self) -> dict[str, str]:
        """Extra response headers."""
        return {}


class Malformed(GatewayError):
    """The body cannot be decoded at all (not JSON, not XML, not UTF-8)."""

    status = 400
    error = "malformed_body"


class Invalid(GatewayError):
    """The body decodes but a field is missing or has an unusable value."""

    status = 422
    error = "invalid_payload"


class Unauthorized(GatewayError):
    """Missing or wrong signature, timestamp or credentials."""

    status = 401
    error = "unauthorized"
    outcome = "unauthorized"

    def headers(self) -> dict[str, str]:
        if self.field == "Authorization":
            return {"WWW-Authenticate": 'Basic realm="salespulse"'}
        return {}


class Forbidden(GatewayError):
    """Authenticated-looking input from a party we do not accept (wrong org)."""

    status = 403
    error = "forbidden"
    outcome = "forbidden"


class TooLarge(GatewayError):
    """The body exceeds the configured maximum size."""

    status = 413
    error = "payload_too_large"
    outcome = "too_large"


class UnsupportedMediaType(GatewayError):
    """The Content-Type is not the one the endpoint speaks."""

    status = 415
    error = "unsupported_media_type"
    outcome = "unsupported_media_type"


class Unavailable(GatewayError):
    """Kafka or Redis cannot be reached (or the source is not configured): retry later."""

    status = 503
    error = "unavailable"
    outcome = "unavailable"

    def __init__(self, field: str | None, reason: str, retry_after: int = 5) -> None:
        super().__init__(field, reason)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class NotConfigured(Unavailable):
    """The endpoint's secret or org id is not set; the provider should retry later."""

    error = "not_configured"
    outcome = "not_configured"

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(field, reason, retry_after=60)
