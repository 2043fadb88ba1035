"""The Stripe API version we speak, pinned, and its removed fields: Charge.invoice and Invoice.charge /
Invoice.payment_intent are never read; a charge's invoice is found through its InvoicePayment."""
import json
from decimal import Decimal

import pytest
import responses
import stripe

from connectors.pipeline import SourceDataError
from connectors.stripe.client import STRIPE_API_VERSION, StripeApi
from connectors.stripe.flows import ChargesStream
from tests.factories import ConnectionFactory, IntegrationFactory, TenantFactory
from tests.stripe.conftest import SECRET_KEY, invoice_charge_id

API = "https://stripe.example"


def _stream(base_url: str) -> ChargesStream:
    tenant = TenantFactory()
    partner = ConnectionFactory(tenant=tenant, system="stripe", base_url=base_url,
                                credentials={"secret_key": SECRET_KEY})
    return ChargesStream(IntegrationFactory(tenant=tenant, kind="stripe", partner_connection=partner))


def _charge(**fields) -> dict:
    return {"id": "ch_1", "object": "charge", "amount": 12000, "currency": "eur", "status": "succeeded",
            "metadata": {}, "balance_transaction": None, **fields}


def test_the_pinned_version_is_the_packages_own_and_every_request_names_it(db):
    # given
    api = StripeApi(ConnectionFactory(system="stripe", base_url=API, credentials={"secret_key": SECRET_KEY}))

    # when
    with responses.RequestsMock() as mock:
        mock.get(f"{API}/v1/charges/ch_1", json=_charge(payment_intent=None))
        api.charge("ch_1")
        sent = mock.calls[0].request.headers["Stripe-Version"]

    # then
    assert STRIPE_API_VERSION == stripe.api_version == "2026-10-28.endive"
    assert sent == STRIPE_API_VERSION


def test_a_paid_invoices_charge_finds_the_invoice_through_its_invoice_payment(live_server, stripe_account,
                                                                                sandbox_stripe):
    # given: the sandbox renders the pinned shape, so the charge has no `invoice` to read
    customer = sandbox_stripe.v1.customers.create({"name": "Helsinki Trail Oy"})
    invoice = sandbox_stripe.v1.invoices.create({"customer": customer.id, "collection_method": "send_invoice",
                                                 "days_until_due": 14, "currency": "eur"})
    sandbox_stripe.v1.invoice_items.create({"customer": customer.id, "invoice": invoice.id, "amount": 12000,
                                            "currency": "eur"})
    sandbox_stripe.v1.invoices.pay(invoice.id, {"source": "tok_visa"})
    charge_id = invoice_charge_id(sandbox_stripe, invoice.id)

    # when
    charge, found = _stream(f"{live_server.url}/sandbox/stripe")._charge_with_invoice(charge_id)

    # then
    assert "invoice" not in charge
    assert charge["payment_intent"].startswith("pi_")
    assert found["id"] == invoice.id
    assert "charge" not in found and "payment_intent" not in found


def test_a_stale_charge_invoice_key_pointing_elsewhere_is_ignored(db):
    # given: a charge still carrying `invoice` (an older version's field) naming another invoice
    stream = _stream(API)

    # when
    with responses.RequestsMock() as mock:
        mock.get(f"{API}/v1/charges/ch_1", json=_charge(invoice="in_STALE", payment_intent="pi_1"))
        listing = mock.get(f"{API}/v1/invoice_payments", json={
            "object": "list", "has_more": False, "url": "/v1/invoice_payments", "data": [
                {"id": "inpay_1", "object": "invoice_payment", "invoice": "in_PAID", "is_default": True,
                 "payment": {"type": "payment_intent", "payment_intent": "pi_1"}, "status": "paid"}]})
        mock.get(f"{API}/v1/invoices/in_PAID", json={"id": "in_PAID", "object": "invoice", "metadata": {}})
        charge, invoice = stream._charge_with_invoice("ch_1")

    # then: the list was filtered by the payment intent, as the pinned version's list filters allow
    query = listing.calls[0].request.url.split("?", 1)[1]
    assert "payment%5Btype%5D=payment_intent" in query and "payment%5Bpayment_intent%5D=pi_1" in query
    assert invoice["id"] == "in_PAID"


def test_a_charge_without_a_payment_intent_has_no_invoice_whatever_a_stale_key_says(db):
    # given
    stream = _stream(API)

    # when: only the charge is served; any other call would fail the mock
    with responses.RequestsMock() as mock:
        mock.get(f"{API}/v1/charges/ch_1", json=_charge(invoice="in_STALE", payment_intent=None))
        charge, invoice = stream._charge_with_invoice("ch_1")
        calls = len(mock.calls)

    # then
    assert invoice is None
    assert calls == 1


def test_a_payment_intent_paying_two_invoices_is_flagged_naming_both(db):
    # given
    stream = _stream(API)
    with responses.RequestsMock() as mock:
        mock.get(f"{API}/v1/charges/ch_1", json=_charge(payment_intent="pi_1"))
        mock.get(f"{API}/v1/invoice_payments", json={"object": "list", "has_more": False, "url": "/v1/invoice_payments",
                                                     "data": [{"id": "inpay_1", "invoice": "in_A"},
                                                              {"id": "inpay_2", "invoice": "in_B"}]})
        charge, invoice = stream._charge_with_invoice("ch_1")

    # when
    with pytest.raises(SourceDataError) as raised:
        stream.visma_invoice([charge, invoice], currency="EUR", what="charge ch_1")

    # then
    assert str(raised.value) == ("charge ch_1: its payment intent pi_1 pays several Stripe invoices (in_A, in_B); "
                                 "which Visma invoice it settles needs a person")


def test_the_charge_is_read_with_numbers_as_decimal_never_float(db):
    # given: exchange_rate is a JSON number with a fraction
    stream = _stream(API)
    body = json.dumps(_charge(payment_intent=None, balance_transaction={
        "id": "txn_1", "object": "balance_transaction", "amount": 131120, "currency": "nok", "fee": 4052,
        "net": 127068, "exchange_rate": 10.926667}))

    # when
    with responses.RequestsMock() as mock:
        mock.get(f"{API}/v1/charges/ch_1", body=body, content_type="application/json")
        charge, _ = stream._charge_with_invoice("ch_1")

    # then
    rate = charge["balance_transaction"]["exchange_rate"]
    assert (type(rate), rate) == (Decimal, Decimal("10.926667"))
