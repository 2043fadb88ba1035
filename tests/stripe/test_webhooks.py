"""Stripe-Signature verification (any v1, any configured secret, 300 s tolerance), the event envelope, and what each
event type touches."""
import json
import time

import pytest

from connectors import registry
from connectors.models import InboundEvent
from connectors.services import webhook_receive
from connectors.stripe.webhooks import StripeWebhookVerifier, stripe_event_objects, stripe_signature_problem
from tests.factories import IntegrationFactory
from tests.stripe.conftest import payload, payload_text, stripe_signature

BODY = payload_text("event_charge_succeeded.json")
SECRET = "whsec_s3cr3t"


def _integration(secrets):
    integration = IntegrationFactory(kind="stripe", settings={})
    connection = integration.partner_connection
    connection.credentials = {"secret_key": "sk_test_s3cr3t", "webhook_secrets": secrets}
    connection.save()
    return integration


def test_a_body_signed_with_the_secret_now_is_genuine():
    # given
    header = stripe_signature(BODY, SECRET)

    # when
    problem = stripe_signature_problem(body=BODY.encode(), header=header, secrets=[SECRET])

    # then
    assert problem is None


def test_any_of_several_v1_signatures_may_match():
    # given: Stripe sends one v1 per live secret while the endpoint's secret is rolled
    now = int(time.time())
    old = stripe_signature(BODY, "whsec_old", timestamp=now)
    new = stripe_signature(BODY, SECRET, timestamp=now)
    header = f"{old},v1={new.split('v1=')[1]}"

    # when
    problem = stripe_signature_problem(body=BODY.encode(), header=header, secrets=[SECRET])

    # then
    assert header.count("v1=") == 2
    assert problem is None


def test_any_of_several_configured_secrets_may_match_during_rotation():
    # given
    header = stripe_signature(BODY, "whsec_previous")

    # when
    problem = stripe_signature_problem(body=BODY.encode(), header=header, secrets=["whsec_newest", "whsec_previous"])

    # then
    assert problem is None


def test_a_changed_body_is_refused():
    # given
    header = stripe_signature(BODY, SECRET)
    tampered = BODY.replace("125000", "125001", 1)

    # when
    problem = stripe_signature_problem(body=tampered.encode(), header=header, secrets=[SECRET])

    # then
    assert problem == "Stripe-Signature matches none of the 1 configured secret(s)"


def test_another_secret_is_refused():
    # given
    header = stripe_signature(BODY, "whsec_attacker")

    # when
    problem = stripe_signature_problem(body=BODY.encode(), header=header, secrets=[SECRET, "whsec_other"])

    # then
    assert problem == "Stripe-Signature matches none of the 2 configured secret(s)"


@pytest.mark.parametrize("age", [301, -301])
def test_a_timestamp_more_than_300_seconds_away_is_refused(age):
    # given
    sent = int(time.time()) - age
    header = stripe_signature(BODY, SECRET, timestamp=sent)

    # when
    problem = stripe_signature_problem(body=BODY.encode(), header=header, secrets=[SECRET])

    # then
    assert problem == f"timestamp {sent} is outside the 300 s tolerance (replayed or delayed delivery)"


def test_a_timestamp_299_seconds_old_is_accepted():
    # given
    header = stripe_signature(BODY, SECRET, timestamp=int(time.time()) - 299)

    # when
    problem = stripe_signature_problem(body=BODY.encode(), header=header, secrets=[SECRET])

    # then
    assert problem is None


def test_a_timestamp_signed_into_the_header_cannot_be_moved():
    # given: a fresh t= pasted in front of an old signature
    old = int(time.time()) - 1000
    signature = stripe_signature(BODY, SECRET, timestamp=old).split("v1=")[1]
    header = f"t={int(time.time())},v1={signature}"

    # when
    problem = stripe_signature_problem(body=BODY.encode(), header=header, secrets=[SECRET])

    # then
    assert problem == "Stripe-Signature matches none of the 1 configured secret(s)"


@pytest.mark.parametrize("header, reason", [
    ("", "no Stripe-Signature header"),
    ("v1=abc", "Stripe-Signature has no t=<unix time>"),
    ("t=soon,v1=abc", "Stripe-Signature has no t=<unix time>"),
])
def test_a_malformed_header_is_refused_saying_why(header, reason):
    # when
    problem = stripe_signature_problem(body=BODY.encode(), header=header, secrets=[SECRET])

    # then
    assert problem == reason


def test_a_header_with_only_v0_signatures_is_refused():
    # given: v0 is Stripe's test scheme, never accepted
    signed = stripe_signature(BODY, SECRET)
    header = signed.replace("v1=", "v0=")

    # when
    problem = stripe_signature_problem(body=BODY.encode(), header=header, secrets=[SECRET])

    # then
    assert problem == "Stripe-Signature has no v1 signature"


def test_no_configured_secret_refuses_everything():
    # when
    problem = stripe_signature_problem(body=BODY.encode(), header=stripe_signature(BODY, SECRET), secrets=[])

    # then
    assert problem == "no webhook signing secret on the Stripe connection (credentials webhook_secrets)"


def test_the_verifier_reads_secrets_and_the_header_case_insensitively(db):
    # given
    integration = _integration(["whsec_newest", SECRET])

    # when
    verdict = StripeWebhookVerifier().verify(integration=integration,
                                             headers={"STRIPE-SIGNATURE": stripe_signature(BODY, SECRET)},
                                             body=BODY.encode(), url="https://example.test/webhooks/stripe/x/")

    # then
    assert verdict.ok is True


def test_the_verifier_honours_the_integrations_tolerance(db):
    # given
    integration = _integration([SECRET])
    integration.settings = {"webhook_tolerance_seconds": 60}
    sent = int(time.time()) - 61

    # when
    verdict = StripeWebhookVerifier().verify(integration=integration,
                                             headers={"Stripe-Signature": stripe_signature(BODY, SECRET,
                                                                                           timestamp=sent)},
                                             body=BODY.encode(), url="")

    # then
    assert verdict.ok is False
    assert verdict.reason == f"timestamp {sent} is outside the 60 s tolerance (replayed or delayed delivery)"


def test_parse_gives_the_event_id_type_and_raw_body():
    # when
    events = StripeWebhookVerifier().parse(headers={}, body=BODY.encode())

    # then
    assert [(event.event_id, event.event_type) for event in events] == [
        ("evt_3PxQ2aLkdIwHu7ix0Yb1CgZQ", "charge.succeeded")]
    assert events[0].body == BODY


@pytest.mark.parametrize("body, message", [
    (b"not json", "body is not JSON"),
    (b"[]", "body is not a JSON object"),
    (b'{"object": "charge", "id": "ch_1"}', "object is 'charge', not 'event'"),
    (b'{"object": "event", "id": "evt_1"}', "field type is missing"),
])
def test_parse_refuses_a_malformed_body_naming_the_problem(body, message):
    # when
    with pytest.raises(ValueError) as raised:
        StripeWebhookVerifier().parse(headers={}, body=body)

    # then
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("event_type, object_id, touched", [
    ("charge.succeeded", "ch_1", [("charges", "ch_1")]),
    ("charge.failed", "ch_2", [("charges", "ch_2")]),
    ("charge.refunded", "ch_3", []),
    ("refund.created", "re_1", [("refunds", "re_1")]),
    ("charge.dispute.created", "dp_1", [("disputes", "dp_1")]),
    ("charge.dispute.updated", "dp_2", [("disputes", "dp_2")]),
    ("charge.dispute.closed", "dp_3", [("disputes", "dp_3")]),
    ("charge.dispute.funds_withdrawn", "dp_4", [("disputes", "dp_4")]),
    ("refund.failed", "re_3", [("refunds", "re_3")]),
    ("customer.created", "cus_1", []),
    ("charge.updated", "ch_5", []),
    ("payout.paid", "po_1", [("unhandled", "evt_1")]),
    ("charge.expired", "ch_6", [("unhandled", "evt_1")]),
    ("charge.succeeded", "", []),
])
def test_each_event_type_names_the_object_to_re_read(event_type, object_id, touched):
    # given
    document = {"object": "event", "id": "evt_1", "type": event_type, "data": {"object": {"id": object_id}}}

    # then
    assert stripe_event_objects(document) == touched


def test_a_charge_refunded_event_names_each_refund_of_the_charge():
    # given
    document = {"object": "event", "id": "evt_1", "type": "charge.refunded",
                "data": {"object": {"id": "ch_4", "object": "charge", "amount_refunded": 12000, "refunds": {
                    "object": "list", "data": [{"id": "re_2", "object": "refund", "amount": 9000},
                                               {"id": "re_1", "object": "refund", "amount": 3000}]}}}}

    # then
    assert stripe_event_objects(document) == [("refunds", "re_2"), ("refunds", "re_1")]


def test_a_dispute_event_names_the_dispute_and_each_of_its_balance_transactions():
    # given: spec3.yaml dispute.balance_transactions, "funds withdrawn and reinstated"
    document = {"object": "event", "id": "evt_1", "type": "charge.dispute.closed",
                "data": {"object": {"id": "dp_5", "object": "dispute", "status": "won", "balance_transactions": [
                    {"id": "txn_1", "object": "balance_transaction", "amount": -12000},
                    {"id": "txn_2", "object": "balance_transaction", "amount": 12000}]}}}

    # then
    assert stripe_event_objects(document) == [("disputes", "dp_5"), ("disputes", "dp_5:txn_1"),
                                              ("disputes", "dp_5:txn_2")]


@pytest.mark.parametrize("event_type", ["invoice.paid", "invoice.payment_failed"])
def test_an_invoice_event_names_the_charge_of_an_included_invoice_payment(event_type):
    # given: `payments` included, one InvoicePayment of type charge (stripe/_invoice_payment.py Payment.charge)
    document = {"object": "event", "id": "evt_1", "type": event_type,
                "data": {"object": {"id": "in_1", "object": "invoice", "payments": {"object": "list", "data": [
                    {"id": "inpay_1", "object": "invoice_payment", "invoice": "in_1",
                     "payment": {"type": "charge", "charge": "ch_9"}}]}}}}

    # then
    assert stripe_event_objects(document) == [("charges", "ch_9")]


@pytest.mark.parametrize("event_type", ["invoice.paid", "invoice.payment_failed"])
def test_an_invoice_events_removed_charge_field_is_not_read(event_type):
    # given: an invoice as an older API version rendered it, Invoice.charge still there (removed in the pinned one)
    document = {"object": "event", "id": "evt_1", "type": event_type,
                "data": {"object": {"id": "in_1", "object": "invoice", "charge": "ch_9",
                                    "payment_intent": "pi_9"}}}

    # then: neither removed field names anything; the charge's own charge.* event carries it
    assert stripe_event_objects(document) == []


def test_an_invoice_paid_out_of_band_names_nothing():
    # given
    document = {"object": "event", "id": "evt_1", "type": "invoice.paid",
                "data": {"object": {"id": "in_1", "object": "invoice", "charge": None}}}

    # then
    assert stripe_event_objects(document) == []


def test_the_stripe_kind_carries_the_verifier_ping_and_tolerance_setting():
    # given
    import connectors.stripe  # noqa: F401  (connectors/apps.py imports it once the lead adds the line)
    from connectors.stripe.client import stripe_ping

    spec = registry.kind_spec("stripe")

    # then
    assert isinstance(spec.verifier, StripeWebhookVerifier)
    assert spec.ping is stripe_ping
    assert spec.settings_schema["webhook_tolerance_seconds"] == (int, 300)
    assert sorted(spec.settings_schema) == ["cash_account", "collect_currencies", "collect_field", "collect_value",
                                            "create_customers", "customer_match", "customer_metadata_key",
                                            "days_until_due", "payment_method", "webhook_tolerance_seconds"]
    assert {name: stream.__name__ for name, stream in spec.streams.items()} == {
        "charges": "ChargesStream", "disputes": "DisputesStream", "refunds": "RefundsStream",
        "unhandled": "UnhandledStream", "visma_invoices": "VismaInvoicesStream"}


def test_a_genuine_delivery_is_stored_once_and_a_forged_one_not_at_all(db):
    # given
    import connectors.stripe  # noqa: F401

    integration = _integration([SECRET])
    integration.enabled = False
    integration.save()

    # when
    first = webhook_receive(kind="stripe", integration_id=integration.pk,
                            headers={"Stripe-Signature": stripe_signature(BODY, SECRET)}, body=BODY.encode(), url="")
    again = webhook_receive(kind="stripe", integration_id=integration.pk,
                            headers={"Stripe-Signature": stripe_signature(BODY, SECRET)}, body=BODY.encode(), url="")
    forged_body = json.dumps({**payload("event_charge_succeeded.json"), "id": "evt_forged"})
    forged = webhook_receive(kind="stripe", integration_id=integration.pk,
                             headers={"Stripe-Signature": stripe_signature(forged_body, "whsec_attacker")},
                             body=forged_body.encode(), url="")

    # then
    assert (first.status_code, first.body) == (200, {"received": 1, "duplicates": 0})
    assert (again.status_code, again.body) == (200, {"received": 0, "duplicates": 1})
    assert forged.status_code == 401
    assert list(InboundEvent.objects.values_list("event_id", "event_type")) == [
        ("evt_3PxQ2aLkdIwHu7ix0Yb1CgZQ", "charge.succeeded")]
