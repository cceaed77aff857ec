"""Webhook signature schemes (GitHub, Stripe, the generic HMAC scheme with Standard Webhooks as
its default) and the webhook trigger's spec: a valid request verifies, any change to what was
signed, a stale timestamp or a wrong secret is refused; bad declarations are spec errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import nimbus
from nimbus.edge.signatures import Unverified, Verifier, verifier_for
from nimbus.errors import SpecError
from nimbus.spec.loader import load_app
from nimbus.spec.manifest import load_manifest
from nimbus.spec.webhooks import WebhookTrigger
from webhook_signing import github_headers, standard_headers, stripe_headers

NOW = 1_700_000_000
STANDARD_SECRET = "whsec_" + base64.b64encode(b"a key of Standard Webhooks").decode()
secrets = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1)
bodies = st.binary(max_size=2048)
ids = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


def verifier(verify: str, secret: str | list[str], **settings: Any) -> Verifier:
    names = [secret] if isinstance(secret, str) else secret
    trigger = WebhookTrigger(
        path="/hook", verify=verify, secret=[f"S{i}" for i in range(len(names))], **settings
    )  # type: ignore[arg-type]
    return verifier_for(trigger, names)


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def flip(text: str, index: int, delta: int) -> str:
    """`text` with the byte at `index` (of its Latin-1 form, as headers travel) changed."""
    raw = bytearray(text.encode("latin-1"))
    raw[index % len(raw)] = (raw[index % len(raw)] + delta) % 256
    return raw.decode("latin-1")


def flip_bytes(data: bytes, index: int, delta: int) -> bytes:
    changed = bytearray(data)
    changed[index % len(changed)] = (changed[index % len(changed)] + delta) % 256
    return bytes(changed)


changes = st.tuples(st.integers(0, 10_000), st.integers(1, 255))


# GitHub


@given(secret=secrets, body=bodies, delivery=ids)
def test_github_accepts_what_github_signs(secret: str, body: bytes, delivery: str) -> None:
    verified = verifier("github", secret).verify(
        lower(github_headers(secret, body, delivery)), body, NOW
    )
    assert (verified.delivery_id, verified.event_type) == (delivery, "push")


@given(secret=secrets, body=bodies.filter(bool), change=changes, where=st.sampled_from("bs"))
def test_github_refuses_any_changed_byte_of_body_or_signature(
    secret: str, body: bytes, change: tuple[int, int], where: str
) -> None:
    headers = lower(github_headers(secret, body, "d1"))
    if where == "b":
        body = flip_bytes(body, *change)
    else:
        headers["x-hub-signature-256"] = flip(headers["x-hub-signature-256"], *change)
    with pytest.raises(Unverified):
        verifier("github", secret).verify(headers, body, NOW)


def test_github_refuses_a_missing_signature_or_another_secret() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    with pytest.raises(Unverified, match="no x-hub-signature-256 header"):
        verifier("github", "s3cret").verify({}, body, NOW)
    with pytest.raises(Unverified, match="does not match"):
        verifier("github", "s3cret").verify(lower(github_headers("other", body, "d")), body, NOW)


def test_github_without_a_delivery_id_is_known_by_its_digest() -> None:
    body = b"{}"
    headers = lower(github_headers("s", body, "d"))
    del headers["x-github-delivery"]
    first = verifier("github", "s").verify(headers, body, NOW)
    assert first.delivery_id == "sha256:" + hashlib.sha256(body).hexdigest()


# Stripe


@given(secret=secrets, body=bodies, age=st.integers(-300, 300))
def test_stripe_accepts_within_its_tolerance(secret: str, body: bytes, age: int) -> None:
    headers = lower(stripe_headers([secret], body, NOW - age))
    verifier("stripe", secret).verify(headers, body, NOW)


@given(secret=secrets, body=bodies, age=st.integers(301, 10**9), sign=st.sampled_from([1, -1]))
def test_stripe_refuses_a_stale_or_future_timestamp(
    secret: str, body: bytes, age: int, sign: int
) -> None:
    headers = lower(stripe_headers([secret], body, NOW - sign * age))
    with pytest.raises(Unverified, match="more than 300 s from now"):
        verifier("stripe", secret).verify(headers, body, NOW)


@given(secret=secrets, body=bodies.filter(bool), change=changes, where=st.sampled_from("bh"))
def test_stripe_refuses_any_changed_byte_of_body_or_header(
    secret: str, body: bytes, change: tuple[int, int], where: str
) -> None:
    headers = lower(stripe_headers([secret], body, NOW))
    if where == "b":
        body = flip_bytes(body, *change)
    else:
        headers["stripe-signature"] = flip(headers["stripe-signature"], *change)
    with pytest.raises(Unverified):
        verifier("stripe", secret).verify(headers, body, NOW)


def test_stripe_rotation_any_v1_and_any_configured_secret() -> None:
    body = b'{"id": "evt_1", "type": "invoice.paid"}'
    rolled = lower(stripe_headers(["old", "new"], body, NOW))  # Stripe signs with both
    assert verifier("stripe", "new").verify(rolled, body, NOW).delivery_id == "evt_1"
    only_old = lower(stripe_headers(["old"], body, NOW))
    verified = verifier("stripe", ["new", "old"]).verify(only_old, body, NOW)
    assert (verified.delivery_id, verified.event_type) == ("evt_1", "invoice.paid")
    with pytest.raises(Unverified, match="no v1 signature matches"):
        verifier("stripe", "new").verify(only_old, body, NOW)


def test_stripe_tolerance_is_configurable() -> None:
    body = b"{}"
    headers = lower(stripe_headers(["s"], body, NOW - 1000))
    verifier("stripe", "s", tolerance=3600).verify(headers, body, NOW)


# the generic scheme: Standard Webhooks by default


@given(body=bodies, message=ids, age=st.integers(-300, 300))
def test_standard_webhooks_accepted(body: bytes, message: str, age: int) -> None:
    headers = lower(standard_headers(STANDARD_SECRET, body, message, NOW - age))
    verified = verifier("hmac", STANDARD_SECRET).verify(headers, body, NOW)
    assert verified.delivery_id == message


@given(
    body=bodies.filter(bool),
    change=changes,
    where=st.sampled_from(["body", "webhook-id", "webhook-timestamp", "webhook-signature"]),
)
def test_standard_webhooks_refuses_any_changed_byte(
    body: bytes, change: tuple[int, int], where: str
) -> None:
    headers = lower(standard_headers(STANDARD_SECRET, body, "msg_1", NOW))
    if where == "body":
        body = flip_bytes(body, *change)
    else:
        headers[where] = flip(headers[where], *change)
    with pytest.raises(Unverified):
        verifier("hmac", STANDARD_SECRET).verify(headers, body, NOW)


def test_standard_webhooks_several_signatures_and_stale_timestamps() -> None:
    body = b'{"type": "user.created"}'
    headers = lower(standard_headers(STANDARD_SECRET, body, "msg_2", NOW))
    headers["webhook-signature"] = f"v1,bm90IGl0 v2,ignored {headers['webhook-signature']}"
    verified = verifier("hmac", STANDARD_SECRET).verify(headers, body, NOW)
    assert verified.event_type == "user.created"
    stale = lower(standard_headers(STANDARD_SECRET, body, "msg_2", NOW - 301))
    with pytest.raises(Unverified, match="more than 300 s"):
        verifier("hmac", STANDARD_SECRET).verify(stale, body, NOW)
    with pytest.raises(Unverified, match="no webhook-timestamp header"):
        del headers["webhook-timestamp"]
        verifier("hmac", STANDARD_SECRET).verify(headers, body, NOW)


@given(body=bodies.filter(bool), change=changes, algorithm=st.sampled_from(["sha1", "sha512"]))
def test_configured_hmac_hex_with_prefix(
    body: bytes, change: tuple[int, int], algorithm: str
) -> None:
    settings = {
        "header": "X-Signature", "algorithm": algorithm, "encoding": "hex",
        "prefix": f"{algorithm}=", "timestamp_header": None, "id_header": None, "signed": "{body}",
    }  # fmt: skip
    check = verifier("hmac", "plain secret", **settings)
    signature = hmac.new(b"plain secret", body, algorithm).hexdigest()
    headers = {"x-signature": f"{algorithm}={signature}"}
    assert check.verify(headers, body, NOW).delivery_id.startswith("sha256:")
    with pytest.raises(Unverified):
        check.verify(headers, flip_bytes(body, *change), NOW)


def test_slack_style_signed_content_with_a_timestamp() -> None:
    settings = {
        "header": "X-Slack-Signature", "encoding": "hex", "prefix": "v0=",
        "timestamp_header": "X-Slack-Request-Timestamp", "id_header": None,
        "signed": "v0:{timestamp}:{body}",
    }  # fmt: skip
    body = b"token=x&team_id=T1"
    digest = hmac.new(b"slack", f"v0:{NOW}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {"x-slack-signature": f"v0={digest}", "x-slack-request-timestamp": str(NOW)}
    verifier("hmac", "slack", **settings).verify(headers, body, NOW)
    with pytest.raises(Unverified, match="more than 300 s"):
        verifier("hmac", "slack", **settings).verify(headers, body, NOW + 301)


def test_a_malformed_standard_secret_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="base64 after its prefix"):
        verifier("hmac", "whsec_not base64!")


# the spec


def handler(event: Any) -> None:
    return None


def declare(**settings: Any) -> None:
    nimbus.App("hooks").on_webhook(**settings)(handler)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"path": "/hooks/{id}"}, "static path"),
        ({"path": "/_nimbus/hook"}, "reserved for the platform"),
        ({"secret": "whsec_abc=="}, "not an environment variable name"),
        ({"secret": []}, "at least 1 item"),
        ({"verify": "paypal"}, "'github', 'stripe' or 'hmac'"),
        ({"prefix": "v1="}, "only for verify='hmac'"),
        ({"tolerance": 60}, "GitHub signs no timestamp"),
        ({"verify": "hmac", "signed": "{id}.{nonce}.{body}"}, "unknown part {nonce}"),
        ({"verify": "hmac", "signed": "{timestamp}"}, "{body} appears exactly once"),
        ({"verify": "hmac", "timestamp_header": None}, "{timestamp} needs a timestamp_header"),
        ({"verify": "hmac", "header": "bad header"}, "not an HTTP header name"),
        ({"callback": "ftp://example.com/x"}, "http:// or https:// URL"),
        ({"completion": "eventually"}, "'handler' or 'progress'"),
    ],
)
def test_bad_declarations_are_refused(settings: dict[str, Any], message: str) -> None:
    base = {"path": "/hooks/github", "verify": "github", "secret": "GITHUB_SECRET"}
    with pytest.raises(SpecError, match=message.replace("{", r"\{").replace("(", r"\(")):
        declare(**{**base, **settings})


def test_webhook_paths_and_status_urls_clash_with_routes(tmp_path: Path) -> None:
    clashes = {
        "/hooks/github": "claimed twice: .* and by the webhook of 'hook'",
        "/hooks/github/deliveries/x": "claimed twice: .* and by the webhook of 'hook'",
    }
    for path, message in clashes.items():
        source = f"""
import nimbus
app = nimbus.App("shop")

@app.on_webhook("/hooks/github", verify="github", secret="GH")
def hook(event):
    return None

@app.http("GET", "{path}")
def page(request):
    return None
"""
        (tmp_path / "clash.py").write_text(source)
        with pytest.raises(SpecError, match=message):
            load_app(str(tmp_path / "clash.py"))


def test_a_webhook_in_nimbus_yaml(tmp_path: Path) -> None:
    manifest = tmp_path / "nimbus.yaml"
    manifest.write_text(
        """
name: shop
functions:
  stripe_events:
    handler: app:stripe_events
    triggers:
      - type: webhook
        path: /hooks/stripe
        verify: stripe
        secret: [STRIPE_SECRET, STRIPE_PREVIOUS_SECRET]
        callback: https://ops.example.com/done
      - type: webhook
        path: /hooks/stripe
        verify: stripe
        secret: STRIPE_SECRET
"""
    )
    with pytest.raises(SpecError, match=r"nimbus.yaml:\d+: .*path /hooks/stripe is claimed twice"):
        load_manifest(manifest)
    manifest.write_text(manifest.read_text().rsplit("      - type: webhook", 1)[0])
    trigger = load_manifest(manifest).functions["stripe_events"].triggers[0]
    assert isinstance(trigger, WebhookTrigger)
    assert trigger.secret == ("STRIPE_SECRET", "STRIPE_PREVIOUS_SECRET")
    assert (trigger.tolerance, trigger.callback) == (300, "https://ops.example.com/done")


def test_the_signing_helpers_match_the_documented_examples() -> None:
    """GitHub's documented test vector: secret "It's a Secret to Everybody", body
    "Hello, World!" (docs.github.com, validating webhook deliveries)."""
    headers = github_headers("It's a Secret to Everybody", b"Hello, World!", "d")
    assert headers["X-Hub-Signature-256"] == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
