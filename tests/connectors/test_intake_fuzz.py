"""Property-based fuzzing of the webhook intake (hypothesis): whatever headers and body a sender chooses, signed or not,
the answer is never a 5xx, a 4xx stores nothing, and what is stored reads back. Through config.wsgi.application.

HYPOTHESIS_PROFILE=thorough runs 3,000 examples per test instead of the CI profile's 150."""
import base64
import json
import logging

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from connectors.models import InboundEvent
from tests.connectors.deliveries import SANDBOX_HOST, paypal_vendor, stripe_vendor, visma_vendor
from tests.wsgi_client import wsgi_request

pytestmark = pytest.mark.django_db

# --- what a sender can choose --------------------------------------------------------------------------------------

# Header values as a WSGI server hands them over (latin-1), control characters included, and a few beyond latin-1.
HEADER_TEXT = st.text(alphabet=st.characters(codec="latin-1"), max_size=80) | st.text(max_size=10)
DIGITS = st.text(alphabet="0123456789", min_size=0, max_size=500)
STRIPE_SIGNATURES = st.one_of(
    HEADER_TEXT,
    st.builds(lambda t, v: f"t={t},v1={v}", DIGITS | st.text("0123456789+-_ .e", max_size=30),
              st.text("0123456789abcdef", max_size=70)),
    st.builds(lambda parts: ",".join(parts), st.lists(st.sampled_from(["t=", "v1=", "v0=abc", "t=1,t=2", "=", ","])
                                                      | HEADER_TEXT, max_size=6)),
)
PAYPAL_TIMES = st.one_of(
    HEADER_TEXT,
    st.builds(lambda moment, offset: moment.strftime("%Y-%m-%dT%H:%M:%S") + offset, st.datetimes(),
              st.sampled_from(["Z", "+00:00", "+01:00", "-01:00", "+14:00", "-12:00", "+0000", "", "+99:99"])),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0000-00-00T00:00:00Z"]),
)
PAYPAL_CERT_URLS = st.one_of(
    HEADER_TEXT,
    st.builds(lambda scheme, host, path: f"{scheme}://{host}{path}", st.sampled_from(["http", "https", "ftp", ""]),
              st.sampled_from(["api.paypal.com", "api.paypal.com:8443", "127.0.0.1", SANDBOX_HOST, "[::1]:8000",
                               "user:pw@api.paypal.com", "api.paypal.com.evil.example", "[::1", "localhost"]),
              st.sampled_from(["/v1/notifications/certs/CERT-1", "/sandbox/paypal/certs/x", "", "/%00"])),
)

JSON_LEAVES = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
               | st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=4))
JSON_TEXT = st.recursive(JSON_LEAVES, lambda children: st.lists(children, max_size=3)
                         | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=10).map(json.dumps)
NESTED = st.integers(min_value=0, max_value=3000).map(lambda depth: "[" * depth + "]" * depth)
SPECIAL_JSON = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000, '"\\ud800"', '"\\u0000"',
                                '"\\udc00\\ud800"', '"\\ud83d\\ude00"', "{", "", '{"a": 1, "a": 2}'])
# An event id as JSON text: any text at all (lone surrogates and NUL come out as escapes), or not a string.
EVENT_IDS = (st.text(alphabet=st.characters(codec=None, exclude_categories=()), min_size=0, max_size=300)
             .map(json.dumps) | JSON_TEXT | SPECIAL_JSON)
INSIDES = JSON_TEXT | NESTED | SPECIAL_JSON


@st.composite
def bodies(draw, vendor):
    """A delivery body: the vendor's envelope around hostile parts, with or without a BOM, or bytes of anything."""
    kind = draw(st.sampled_from(["envelope", "envelope", "bom", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "json":
        return draw(JSON_TEXT | NESTED | SPECIAL_JSON).encode("utf-8")
    body = vendor.envelope(event_id_json=draw(EVENT_IDS), inside=draw(INSIDES))
    return b"\xef\xbb\xbf" + body if kind == "bom" else body


# Per vendor: a hostile value for each header its verifier reads.
HOSTILE_HEADERS = {
    "stripe": {"Stripe-Signature": STRIPE_SIGNATURES},
    "paypal": {"PAYPAL-TRANSMISSION-ID": HEADER_TEXT, "PAYPAL-TRANSMISSION-TIME": PAYPAL_TIMES,
               "PAYPAL-TRANSMISSION-SIG": HEADER_TEXT | st.binary(max_size=300).map(
                   lambda raw: base64.b64encode(raw).decode()),
               "PAYPAL-CERT-URL": PAYPAL_CERT_URLS,
               "PAYPAL-AUTH-ALGO": st.sampled_from(["SHA256withRSA", "SHA1withRSA", "", "sha256withrsa"]) | HEADER_TEXT},
    "visma": {"x-vwd-signature-v1": HEADER_TEXT | st.binary(max_size=40).map(
        lambda raw: base64.b64encode(raw).decode())},
}


# --- what must hold for every example ------------------------------------------------------------------------------


def assert_answered_and_stored_only_when_taken(vendor, body: bytes, headers: dict, caplog) -> None:
    caplog.clear()
    before = InboundEvent.objects.count()

    response = wsgi_request(vendor.path, body, headers=headers)

    assert response.status_code < 500, response.content
    after = InboundEvent.objects.count()
    if response.status_code >= 400:
        assert after == before, response.content
        assert json.loads(response.content)["detail"]
    else:
        assert response.status_code == 200, response.content
        for event in InboundEvent.objects.order_by("-id")[: after - before]:
            json.loads(event.body)
            assert event.event_id.isprintable() and len(event.event_id) <= 255
    # Neither safety net (a verifier or parser raising) was needed, and no server error was logged.
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text


@pytest.fixture
def certificate_mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture(params=["stripe", "paypal", "visma"])
def vendor(request, certificate_mock):
    return {"stripe": stripe_vendor, "visma": visma_vendor}.get(
        request.param, lambda: paypal_vendor(certificate_mock))()


@given(data=st.data())
def test_a_validly_signed_delivery_of_anything_is_taken_or_refused_never_an_error(vendor, caplog, data):
    # given a body of anything, signed by the vendor's own scheme (Stripe signs text: bytes that are not UTF-8 go
    # with a made-up signature), with maybe a hostile extra header
    body = data.draw(bodies(vendor))
    try:
        headers = vendor.signed(body)
    except UnicodeDecodeError:
        headers = {"Stripe-Signature": data.draw(STRIPE_SIGNATURES)}
    headers.update(data.draw(st.dictionaries(st.sampled_from(["X-Extra", "User-Agent"]), HEADER_TEXT, max_size=1)))

    # then
    assert_answered_and_stored_only_when_taken(vendor, body, headers, caplog)


@given(data=st.data())
def test_a_delivery_with_any_of_its_signature_headers_replaced_is_answered_never_an_error(vendor, caplog, data):
    # given a signed delivery, then some of the headers the verifier reads replaced (or dropped), and maybe more
    body = data.draw(bodies(vendor))
    try:
        headers = vendor.signed(body)
    except UnicodeDecodeError:
        headers = {}
    for name, hostile in HOSTILE_HEADERS[vendor.kind].items():
        choice = data.draw(st.sampled_from(["keep", "replace", "drop"]))
        if choice == "replace":
            headers[name] = data.draw(hostile)
        elif choice == "drop":
            headers.pop(name, None)
    headers.update(data.draw(st.dictionaries(st.sampled_from(["X-Extra", "Content-Type"]), HEADER_TEXT, max_size=1)))

    # then
    assert_answered_and_stored_only_when_taken(vendor, body, headers, caplog)
