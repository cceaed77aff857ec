"""Webhook signature schemes: is this request really from the provider, unchanged and fresh?

Each verifier recomputes the HMAC over the raw body (never a re-serialised one) with every
configured secret and compares it, encoded as the provider does (hex in lower case), in constant
time (`hmac.compare_digest`); anything missing, malformed, wrong or stale raises `Unverified`.
The schemes, as their providers document them:

- GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`; the delivery is
  `X-GitHub-Delivery` (kept on redeliveries), the event name `X-GitHub-Event`.
- Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]` over `<t>.<body>`; any `v1`
  may match (Stripe sends one per active secret while one is rolled); a timestamp further than
  `tolerance` (300 s, as Stripe's libraries) from now is refused; the delivery is the event's
  `id` in the body.
- hmac: configurable header, algorithm, encoding, prefix, signed content and timestamp; by
  default Standard Webhooks (space-separated `v1,<base64>` signatures; a `whsec_` secret is
  base64 of the key).

A request with no delivery id gets the digest of what was signed: an identical replay is still
recognised as one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from nimbus.errors import NimbusError, SpecError
from nimbus.json_input import decode_json
from nimbus.spec.webhooks import PLACEHOLDER, WebhookTrigger

Headers = Mapping[str, str]
"""Lower-case names; a repeated header's values joined by commas (RFC 9110)."""
STANDARD_SECRET_PREFIX = "whsec_"


class Unverified(NimbusError):
    """The request does not prove it comes from the provider: 401, nothing runs."""

    status = 401


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verified request says of itself: its delivery id, and its event type if any."""

    delivery_id: str
    event_type: str | None = None


class _Envelope(msgspec.Struct):
    """What a JSON webhook body says about itself (Stripe's event, Standard Webhooks' type)."""

    id: str | None = None
    type: str | None = None


_envelope = msgspec.json.Decoder(_Envelope)


def _envelope_of(body: bytes) -> _Envelope:
    try:
        return decode_json(body, _envelope)
    except msgspec.DecodeError:
        return _Envelope()


def _digest_id(signed: bytes) -> str:
    return "sha256:" + hashlib.sha256(signed).hexdigest()


def _matches(expected: Sequence[bytes], provided: Sequence[bytes]) -> bool:
    """Every pair compared in constant time (no early exit that would tell which failed)."""
    found = False
    for mine in expected:
        for theirs in provided:
            found |= hmac.compare_digest(mine, theirs)
    return found


def _required(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if not value:
        raise Unverified(f"no {name} header")
    return value


def _check_age(timestamp: str, now: float, tolerance: float) -> None:
    if not timestamp.isdigit() or not timestamp.isascii():
        raise Unverified("the signed timestamp is not a whole number of seconds")
    if abs(now - int(timestamp)) > tolerance:
        raise Unverified(f"the signed timestamp is more than {tolerance:g} s from now")


class GitHubVerifier:
    """GitHub's `X-Hub-Signature-256`."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._keys = keys

    def verify(self, headers: Headers, body: bytes, now: float) -> Verified:
        signature = _required(headers, "x-hub-signature-256")
        scheme, _, value = signature.partition("=")
        if scheme != "sha256" or not value:
            raise Unverified("X-Hub-Signature-256 is not sha256=<hex>")
        expected = [hmac.new(k, body, hashlib.sha256).hexdigest().encode() for k in self._keys]
        if not _matches(expected, [value.encode("latin-1")]):
            raise Unverified("the signature does not match the body")
        delivery = headers.get("x-github-delivery") or _digest_id(body)
        return Verified(delivery, headers.get("x-github-event"))


class StripeVerifier:
    """Stripe's `Stripe-Signature`, with its timestamp's tolerance."""

    def __init__(self, keys: Sequence[bytes], tolerance: float) -> None:
        self._keys = keys
        self._tolerance = tolerance

    def verify(self, headers: Headers, body: bytes, now: float) -> Verified:
        timestamp, signatures = None, []
        for item in _required(headers, "stripe-signature").split(","):
            key, _, value = item.strip().partition("=")
            if key == "t" and timestamp is None:
                timestamp = value
            elif key == "v1":
                signatures.append(value.encode("latin-1"))
        if timestamp is None or not signatures:
            raise Unverified("Stripe-Signature has no timestamp (t=) or no v1 signature")
        signed = timestamp.encode("latin-1") + b"." + body
        expected = [hmac.new(k, signed, hashlib.sha256).hexdigest().encode() for k in self._keys]
        if not _matches(expected, signatures):
            raise Unverified("no v1 signature matches the body and timestamp")
        _check_age(timestamp, now, self._tolerance)
        envelope = _envelope_of(body)
        return Verified(envelope.id or _digest_id(signed), envelope.type)


class HmacVerifier:
    """The generic scheme: Standard Webhooks by default, configurable by the trigger."""

    def __init__(self, keys: Sequence[bytes], trigger: WebhookTrigger) -> None:
        self._keys = keys
        self._trigger = trigger
        pieces = PLACEHOLDER.split(trigger.signed)  # literal, part, literal, part, ...
        self._pieces = [p.encode() if i % 2 == 0 else p for i, p in enumerate(pieces)]

    def verify(self, headers: Headers, body: bytes, now: float) -> Verified:
        trigger = self._trigger
        provided = [
            token.removeprefix(trigger.prefix).encode("latin-1")
            for token in _required(headers, trigger.header).split()
            if token.startswith(trigger.prefix)  # other versions are ignored, as the spec says
        ]
        timestamp = delivery = None
        if trigger.timestamp_header is not None:
            timestamp = _required(headers, trigger.timestamp_header)
        if trigger.id_header is not None:
            delivery = headers.get(trigger.id_header)
        signed = bytearray()
        for piece in self._pieces:
            if isinstance(piece, bytes):
                signed += piece
            elif piece == "body":
                signed += body
            else:  # {id} or {timestamp}: required when signed
                signed += _required(headers, _header_of(trigger, piece)).encode("latin-1")
        expected = [self._sign(key, bytes(signed)) for key in self._keys]
        if not provided or not _matches(expected, provided):
            raise Unverified(f"no signature in {trigger.header} matches the request")
        if timestamp is not None:
            _check_age(timestamp, now, trigger.tolerance)
        return Verified(delivery or _digest_id(bytes(signed)), _envelope_of(body).type)

    def _sign(self, key: bytes, content: bytes) -> bytes:
        digest = hmac.new(key, content, self._trigger.algorithm).digest()
        if self._trigger.encoding == "hex":
            return digest.hex().encode()
        return base64.b64encode(digest)


def _header_of(trigger: WebhookTrigger, part: str) -> str:
    name = trigger.id_header if part == "id" else trigger.timestamp_header
    assert name is not None  # the spec refuses a signed part without its header
    return name


Verifier = GitHubVerifier | StripeVerifier | HmacVerifier


def verifier_for(trigger: WebhookTrigger, secrets: Sequence[str]) -> Verifier:
    """The trigger's verifier, keyed with the secrets' values (SpecError if one is unusable)."""
    keys = [signing_key(trigger, secret) for secret in secrets]
    if trigger.verify == "github":
        return GitHubVerifier(keys)
    if trigger.verify == "stripe":
        return StripeVerifier(keys, trigger.tolerance)
    return HmacVerifier(keys, trigger)


def signing_key(trigger: WebhookTrigger, secret: str) -> bytes:
    """The HMAC key: the secret's UTF-8 bytes (GitHub, Stripe: `whsec_...` is used as it is);
    for the generic scheme a `whsec_` secret is Standard Webhooks' base64 of the key."""
    if trigger.verify == "hmac" and secret.startswith(STANDARD_SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(STANDARD_SECRET_PREFIX), validate=True)
        except binascii.Error:
            raise SpecError(
                f"webhook {trigger.path}: a {STANDARD_SECRET_PREFIX} secret is base64 after "
                "its prefix (Standard Webhooks)"
            ) from None
    return secret.encode()
