"""The Square emulator's webhook sender: events in the spec's shapes, signed as Square signs (checked with
squareup's own `verify_signature`), and the switches that deliver twice, in reverse, or forged."""
import json

import pytest
import responses
from square.utils.webhooks_helper import verify_signature

from sandbox import square_api
from sandbox.models import SquareObject
from sandbox.square_openapi import square_schema_problems
from sandbox.square_webhooks import SIGNATURE_HEADER, square_events_deliver, square_signature

NOTIFICATION_URL = "https://connector.example/webhooks/square/7"
# The reference's test vector (shared/reference/paypal-stripe-square.md §3.1; docs/square.md §4).
VECTOR_KEY = "Ibxx_5AKakO-3qeNVR61Dw"
VECTOR_URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"
VECTOR_BODY = ('{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":'
               '"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":'
               '{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}')
VECTOR_HEADER = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="
EVENT_SCHEMAS = {"payment.created": "PaymentCreatedEvent", "payment.updated": "PaymentUpdatedEvent",
                 "refund.created": "RefundCreatedEvent", "refund.updated": "RefundUpdatedEvent",
                 "oauth.authorization.revoked": "OauthAuthorizationRevokedEvent"}


@pytest.fixture
def merchant(db):
    return square_api.square_merchant_create(notification_url=NOTIFICATION_URL)


def _received(calls) -> list[tuple[str, str]]:
    return [(call.request.body.decode(), call.request.headers[SIGNATURE_HEADER]) for call in calls]


def test_the_reference_vector_is_what_the_sender_computes_and_squareup_verifies():
    # when
    computed = square_signature(VECTOR_KEY, VECTOR_URL, VECTOR_BODY)

    # then
    assert computed == VECTOR_HEADER
    assert verify_signature(request_body=VECTOR_BODY, signature_header=VECTOR_HEADER, signature_key=VECTOR_KEY,
                            notification_url=VECTOR_URL)
    assert not verify_signature(request_body=VECTOR_BODY, signature_header=VECTOR_HEADER, signature_key=VECTOR_KEY,
                                notification_url=VECTOR_URL + "/")
    assert not verify_signature(request_body=VECTOR_BODY.replace("MLEF", "MLEG"), signature_header=VECTOR_HEADER,
                                signature_key=VECTOR_KEY, notification_url=VECTOR_URL)
    assert not verify_signature(request_body=VECTOR_BODY, signature_header=VECTOR_HEADER,
                                signature_key="another-key", notification_url=VECTOR_URL)


@responses.activate
def test_events_are_posted_in_order_in_the_specs_shapes_and_verify_with_squareups_helper(merchant):
    # given
    responses.post(NOTIFICATION_URL, status=200)
    payment = square_api.square_payment_create(merchant, None, 10000)
    square_api.square_payment_fee_add(merchant, payment["id"])
    square_api.square_refund_create(merchant, payment["id"], 2000, status="PENDING")
    refund_id = square_api.square_object(merchant, "payment", payment["id"])["refund_ids"][0]
    square_api.square_refund_complete(merchant, refund_id)
    square_api.square_authorization_revoke(merchant)

    # when
    delivered = square_events_deliver(merchant)
    again = square_events_deliver(merchant)

    # then
    received = _received(responses.calls)
    events = [json.loads(body) for body, _ in received]
    assert (delivered, again) == (6, 0)
    assert [event["type"] for event in events] == ["payment.created", "payment.updated", "refund.created",
                                                   "payment.updated", "refund.updated",
                                                   "oauth.authorization.revoked"]
    assert all(verify_signature(request_body=body, signature_header=signature, signature_key=merchant.signature_key,
                                notification_url=NOTIFICATION_URL) for body, signature in received)
    for event in events:
        assert square_schema_problems(EVENT_SCHEMAS[event["type"]], event) == [], event["type"]
    assert events[0]["data"] == {"type": "payment", "id": payment["id"], "object": {"payment": payment}}
    assert "processing_fee" in events[1]["data"]["object"]["payment"]
    assert len({event["event_id"] for event in events}) == 6
    assert {event["merchant_id"] for event in events} == {merchant.merchant_id}


@responses.activate
def test_duplicate_and_reverse_send_each_event_twice_newest_first(merchant):
    # given
    responses.post(NOTIFICATION_URL, status=200)
    payment = square_api.square_payment_create(merchant, None, 10000)
    square_api.square_payment_fee_add(merchant, payment["id"])

    # when
    delivered = square_events_deliver(merchant, duplicate=True, reverse=True)

    # then
    types = [json.loads(body)["type"] for body, _ in _received(responses.calls)]
    assert delivered == 4
    assert types == ["payment.updated", "payment.created", "payment.updated", "payment.created"]


@responses.activate
def test_forged_deliveries_do_not_verify_and_a_refused_event_stays_undelivered(merchant):
    # given
    responses.post(NOTIFICATION_URL, status=401)
    square_api.square_payment_create(merchant, None, 10000)

    # when
    square_events_deliver(merchant, signed_url="http://internal:8000/webhooks/square/7")
    square_events_deliver(merchant, signature_key="forged-key")
    delivered = square_events_deliver(merchant, tamper=True)

    # then
    assert delivered == 0
    assert [verify_signature(request_body=body, signature_header=signature, signature_key=merchant.signature_key,
                             notification_url=NOTIFICATION_URL) for body, signature in _received(responses.calls)] == [
        False, False, False]
    assert list(SquareObject.objects.filter(object_type="event").values_list("delivered_at", flat=True)) == [None]


def test_without_a_notification_url_nothing_is_sent(db):
    # given
    merchant = square_api.square_merchant_create(notification_url="")
    square_api.square_payment_create(merchant, None, 10000)

    # when / then
    assert square_events_deliver(merchant) == 0


@responses.activate
def test_the_control_endpoint_delivers_the_merchants_events(client, merchant):
    # given
    responses.post(NOTIFICATION_URL, status=200)
    square_api.square_payment_create(merchant, None, 10000)

    # when
    response = client.post("/sandbox/square/_control/deliver_events",
                           headers={"Authorization": f"Bearer {square_api.square_personal_token(merchant)}"})
    refused = client.post("/sandbox/square/_control/deliver_events", headers={"Authorization": "Bearer nope"})

    # then
    assert (response.status_code, response.json()) == (200, {"delivered": 1})
    assert refused.status_code == 401
