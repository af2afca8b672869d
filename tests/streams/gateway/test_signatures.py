"""Request authentication: HubSpot v3 (with HubSpot's own vector), generic HMAC, Basic."""

from __future__ import annotations

import base64

import pytest

from streams.gateway.errors import Unauthorized
from streams.gateway.signatures import (
    generic_signature,
    hubspot_uri,
    hubspot_v3_signature,
    verify_basic,
    verify_generic,
    verify_hubspot_v3,
)

# The v3 vector of HubSpot's official Python client (tests/spec/utils/test_signature.py).
VECTOR = {
    "secret": "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
    "method": "POST",
    "uri": "https://www.example.com/webhook_uri",
    "body": b"{'example_field':'example_value'}",
    "timestamp": "15000000",
    "signature": "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=",
}
NOW_MS = 1_700_000_000_000
SECRET = "app-secret"
URI = "https://hooks.example.com/webhooks/hubspot?portal=62515"
BODY = b'[{"eventId":1,"objectId":123,"subscriptionType":"deal.creation"}]'


def _sign(secret: str = SECRET, uri: str = URI, body: bytes = BODY, ts: int = NOW_MS) -> str:
    return hubspot_v3_signature(secret, "POST", uri, body, str(ts))


def _verify(signature: str, uri: str = URI, body: bytes = BODY, ts: int = NOW_MS) -> None:
    verify_hubspot_v3(SECRET, "POST", uri, body, signature, str(ts), now=NOW_MS / 1000)


def test_hubspot_v3_matches_hubspots_published_vector() -> None:
    v = VECTOR
    got = hubspot_v3_signature(v["secret"], v["method"], v["uri"], v["body"], v["timestamp"])
    assert got == v["signature"]
    verify_hubspot_v3(  # accepted when "now" is within 5 minutes of the vector's timestamp
        v["secret"], v["method"], v["uri"], v["body"], v["signature"], v["timestamp"],
        now=15000000 / 1000 + 60,
    )  # fmt: skip


def test_hubspot_v3_accepts_a_fresh_correct_signature() -> None:
    _verify(_sign())


@pytest.mark.parametrize("age_s", [301, 3600, 86400 * 365])
def test_hubspot_v3_rejects_stale_timestamp(age_s: int) -> None:
    ts = NOW_MS - age_s * 1000
    with pytest.raises(Unauthorized, match="older than 5 minutes"):
        _verify(_sign(ts=ts), ts=ts)


def test_hubspot_v3_accepts_timestamp_just_inside_the_window() -> None:
    ts = NOW_MS - 299_000
    _verify(_sign(ts=ts), ts=ts)


def test_hubspot_v3_rejects_timestamp_far_in_the_future() -> None:
    ts = NOW_MS + 600_000
    with pytest.raises(Unauthorized, match="future"):
        _verify(_sign(ts=ts), ts=ts)


def test_hubspot_v3_rejects_wrong_secret() -> None:
    with pytest.raises(Unauthorized, match="mismatch"):
        _verify(_sign(secret="another-secret"))


def test_hubspot_v3_rejects_modified_body() -> None:
    with pytest.raises(Unauthorized, match="mismatch"):
        _verify(_sign(), body=BODY.replace(b"123", b"124"))


def test_hubspot_v3_rejects_modified_uri() -> None:
    with pytest.raises(Unauthorized, match="mismatch"):
        _verify(_sign(), uri=URI.replace("portal=62515", "portal=62516"))
    with pytest.raises(Unauthorized, match="mismatch"):
        _verify(_sign(), uri=URI.replace("https://", "http://"))


def test_hubspot_v3_rejects_a_timestamp_other_than_the_signed_one() -> None:
    with pytest.raises(Unauthorized, match="mismatch"):
        _verify(_sign(ts=NOW_MS), ts=NOW_MS + 1)


@pytest.mark.parametrize(
    ("signature", "timestamp", "reason"),
    [
        (None, str(NOW_MS), "missing"),
        ("", str(NOW_MS), "missing"),
        ("c2ln", None, "missing"),
        ("c2ln", "yesterday", "not an integer"),
        ("not base64 !!", str(NOW_MS), "not base64"),
    ],
)
def test_hubspot_v3_rejects_missing_or_malformed_headers(
    signature: str | None, timestamp: str | None, reason: str
) -> None:
    with pytest.raises(Unauthorized, match=reason):
        verify_hubspot_v3(SECRET, "POST", URI, BODY, signature, timestamp, now=NOW_MS / 1000)


def test_hubspot_uri_decodes_exactly_the_documented_escapes() -> None:
    raw = "https://h.example/p%3Aa%2Fb%3Fc%40d%21e%24f%27g%28h%29i%2Aj%2Ck%3Bl%20m%2B?q=%3a"
    assert hubspot_uri(raw) == "https://h.example/p:a/b?c@d!e$f'g(h)i*j,k;l%20m%2B?q=:"
    # ... so a signature over the decoded form verifies a request with the encoded URI.
    signed = _sign(uri="https://h.example/x:y")
    _verify(signed, uri="https://h.example/x%3Ay")


def test_generic_signature_round_trip_and_rejections() -> None:
    body, ts = b'{"a":1}', "1700000000"
    sig = generic_signature("s", ts, body)
    verify_generic("s", body, sig, ts, now=1700000000)
    verify_generic("s", body, "sha256=" + sig.upper(), ts, now=1700000000)
    with pytest.raises(Unauthorized, match="older"):
        verify_generic("s", body, sig, ts, now=1700000000 + 301)
    with pytest.raises(Unauthorized, match="mismatch"):
        verify_generic("other", body, sig, ts, now=1700000000)
    with pytest.raises(Unauthorized, match="mismatch"):
        verify_generic("s", body + b" ", sig, ts, now=1700000000)
    with pytest.raises(Unauthorized, match="mismatch"):
        verify_generic("s", body, "é" * 64, ts, now=1700000000)
    with pytest.raises(Unauthorized, match="missing"):
        verify_generic("s", body, sig, None, now=1700000000)


def test_basic_auth() -> None:
    good = "Basic " + base64.b64encode(b"user:pa:ss").decode()
    verify_basic(good, "user", "pa:ss")
    for header in (
        None,
        "Bearer x",
        "Basic !!!",
        "Basic " + base64.b64encode(b"user:wrong").decode(),
        "Basic " + base64.b64encode(b"user").decode(),
        "Basic " + base64.b64encode(b"other:pa:ss").decode(),
    ):
        with pytest.raises(Unauthorized):
            verify_basic(header, "user", "pa:ss")
