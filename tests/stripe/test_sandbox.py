"""The Stripe emulator through the official `stripe` library over real HTTP: customers and search, invoices from
draft to paid, charges and declines, disputes, refunds, events, Idempotency-Key, zero-decimal currencies."""
import time

import pytest
import requests
import stripe

from sandbox import stripe_api
from sandbox.models import StripeIdempotentRequest, StripeObject
from tests.stripe.conftest import SECRET_KEY


def _count(object_type):
    return StripeObject.objects.filter(object_type=object_type).count()


def test_a_customer_is_created_read_and_found_by_metadata_and_description(sandbox_stripe):
    # given
    created = sandbox_stripe.v1.customers.create({"name": "Fjordkraft AS", "email": "ap@fjordkraft.test",
                                                  "description": "Visma customer 10001",
                                                  "metadata": {"visma_customer": "10001"}})
    sandbox_stripe.v1.customers.create({"name": "Other AS", "metadata": {"visma_customer": "10002"}})

    # when
    read = sandbox_stripe.v1.customers.retrieve(created.id)
    by_metadata = sandbox_stripe.v1.customers.search({"query": "metadata['visma_customer']:'10001'"})
    by_description = sandbox_stripe.v1.customers.search({"query": "description~'customer 1000'"})

    # then
    assert created.id.startswith("cus_")
    assert (read.name, read.email, read.metadata.to_dict()) == ("Fjordkraft AS", "ap@fjordkraft.test",
                                                                {"visma_customer": "10001"})
    assert [customer.id for customer in by_metadata.data] == [created.id]
    assert [customer.id for customer in by_description.data] == [created.id]


def test_an_unknown_customer_is_a_404_the_library_raises_as_invalid_request(sandbox_stripe):
    # when
    with pytest.raises(stripe.InvalidRequestError) as raised:
        sandbox_stripe.v1.customers.retrieve("cus_missing")

    # then
    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"
    assert raised.value.user_message == "No such customer: 'cus_missing'"


def test_a_wrong_key_is_refused_with_401(live_server, stripe_account):
    # given
    client = stripe.StripeClient("sk_test_wrong0000key", base_addresses={"api": f"{live_server.url}/sandbox/stripe"},
                                 max_network_retries=0)

    # when
    with pytest.raises(stripe.AuthenticationError) as raised:
        client.v1.customers.list()

    # then
    assert raised.value.http_status == 401
    assert _count("customer") == 0


def test_an_invoice_goes_from_draft_to_open_to_paid_with_a_charge_and_its_fee(sandbox_stripe):
    # given
    customer = sandbox_stripe.v1.customers.create({"name": "Fjordkraft AS"})
    invoice = sandbox_stripe.v1.invoices.create({"customer": customer.id, "collection_method": "send_invoice",
                                                 "days_until_due": 14, "currency": "nok",
                                                 "metadata": {"visma_invoice": "100042"}})
    sandbox_stripe.v1.invoice_items.create({"customer": customer.id, "invoice": invoice.id, "amount": 100000,
                                            "currency": "nok", "description": "Consulting"})
    sandbox_stripe.v1.invoice_items.create({"customer": customer.id, "invoice": invoice.id, "amount": 25000,
                                            "currency": "nok", "description": "Travel"})

    # when
    finalized = sandbox_stripe.v1.invoices.finalize_invoice(invoice.id)
    sent = sandbox_stripe.v1.invoices.send_invoice(invoice.id)
    paid = sandbox_stripe.v1.invoices.pay(invoice.id, {"source": "tok_visa"})

    # then
    assert (finalized.status, finalized.amount_due, finalized.number) == ("open", 125000,
                                                                           f"{customer.invoice_prefix}-0001")
    assert sent.status == "open"
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 125000, 0)
    assert "payments" not in paid and "charge" not in paid  # includable only; Invoice.charge is gone
    [payment] = sandbox_stripe.v1.invoices.retrieve(invoice.id, {"expand": ["payments"]}).payments.data
    assert (payment.status, payment.amount_paid, payment.is_default, payment.payment.type) == (
        "paid", 125000, True, "payment_intent")
    intent = sandbox_stripe.v1.payment_intents.retrieve(payment.payment.payment_intent)
    charge = sandbox_stripe.v1.charges.retrieve(intent.latest_charge, {"expand": ["balance_transaction"]})
    assert "invoice" not in charge and charge.payment_intent == intent.id
    assert (charge.status, charge.amount, charge.currency, charge.customer) == ("succeeded", 125000, "nok", customer.id)
    # 2.9 % of 1250.00 = 36.25, plus kr 2.00
    assert (charge.balance_transaction.fee, charge.balance_transaction.net) == (3825, 121175)
    types = [event.type for event in sandbox_stripe.v1.events.list({"limit": 100}).data]
    assert types == ["invoice.paid", "charge.succeeded", "invoice.sent", "invoice.finalized", "invoice.created",
                     "customer.created"]


def test_a_declined_card_fails_the_payment_and_leaves_a_failed_charge_and_events(sandbox_stripe):
    # given
    customer = sandbox_stripe.v1.customers.create({"name": "Fjordkraft AS"})
    invoice = sandbox_stripe.v1.invoices.create({"customer": customer.id, "collection_method": "send_invoice",
                                                 "days_until_due": 14})
    sandbox_stripe.v1.invoice_items.create({"customer": customer.id, "invoice": invoice.id, "amount": 50000,
                                            "currency": "nok"})
    sandbox_stripe.v1.invoices.finalize_invoice(invoice.id)

    # when
    with pytest.raises(stripe.CardError) as raised:
        sandbox_stripe.v1.invoices.pay(invoice.id, {"source": "tok_chargeDeclined"})

    # then
    assert (raised.value.http_status, raised.value.code) == (402, "card_declined")
    after = sandbox_stripe.v1.invoices.retrieve(invoice.id)
    assert (after.status, after.amount_paid, after.attempt_count) == ("open", 0, 1)
    [charge] = sandbox_stripe.v1.charges.list().data
    assert (charge.status, charge.failure_code, charge.paid) == ("failed", "card_declined", False)
    types = [event.type for event in sandbox_stripe.v1.events.list({"limit": 3}).data]
    assert types == ["invoice.payment_failed", "charge.failed", "invoice.finalized"]


def test_a_dispute_token_pays_then_disputes_and_closing_loses_it(sandbox_stripe):
    # given
    charge = sandbox_stripe.v1.charges.create({"amount": 80000, "currency": "nok", "source": "tok_createDispute"})

    # when
    [dispute] = sandbox_stripe.v1.disputes.list({"charge": charge.id}).data
    closed = sandbox_stripe.v1.disputes.close(dispute.id)

    # then
    assert (dispute.amount, dispute.currency, dispute.status, dispute.reason) == (80000, "nok", "needs_response",
                                                                                  "fraudulent")
    assert sandbox_stripe.v1.charges.retrieve(charge.id).disputed is True
    assert closed.status == "lost"
    types = [event.type for event in sandbox_stripe.v1.events.list({"limit": 4}).data]
    assert types == ["charge.dispute.closed", "charge.dispute.funds_withdrawn", "charge.dispute.created",
                     "charge.succeeded"]
    # Stripe took the amount and the dispute fee at once; a lost dispute gives nothing back
    [withdrawn] = closed.balance_transactions
    assert (withdrawn.type, withdrawn.reporting_category, withdrawn.amount, withdrawn.fee, withdrawn.net,
            withdrawn.source) == ("adjustment", "dispute", -80000, 15000, -95000, dispute.id)


def test_winning_evidence_wins_a_dispute_and_reinstates_the_amount_not_the_fee(sandbox_stripe):
    # given
    charge = sandbox_stripe.v1.charges.create({"amount": 80000, "currency": "nok", "source": "tok_createDispute"})
    [dispute] = sandbox_stripe.v1.disputes.list({"charge": charge.id}).data

    # when
    won = sandbox_stripe.v1.disputes.update(dispute.id, {"evidence": {"uncategorized_text": "winning_evidence"}})

    # then
    assert won.status == "won"
    withdrawn, reinstated = won.balance_transactions
    assert (reinstated.reporting_category, reinstated.amount, reinstated.fee, reinstated.net) == (
        "dispute_reversal", 80000, 0, 80000)
    assert withdrawn.net == -95000
    types = [event.type for event in sandbox_stripe.v1.events.list({"limit": 2}).data]
    assert types == ["charge.dispute.funds_reinstated", "charge.dispute.closed"]


def test_with_fees_returned_a_won_dispute_returns_its_fee_and_a_refund_its_share_of_the_charge_fee(sandbox_stripe,
                                                                                                    settings):
    # given: fees are returned (SANDBOX_STRIPE_FEES_RETURNED), a NOK 1000.00 charge (fee 2.9 % + 2.00 = 31.00)
    settings.SANDBOX_STRIPE_FEES_RETURNED = True
    disputed = sandbox_stripe.v1.charges.create({"amount": 80000, "currency": "nok", "source": "tok_createDispute"})
    [dispute] = sandbox_stripe.v1.disputes.list({"charge": disputed.id}).data
    charge = sandbox_stripe.v1.charges.create({"amount": 100000, "currency": "nok", "source": "tok_visa"})

    # when
    won = sandbox_stripe.v1.disputes.update(dispute.id, {"evidence": {"uncategorized_text": "winning_evidence"}})
    refund = sandbox_stripe.v1.refunds.create({"charge": charge.id, "amount": 25000})

    # then
    assert (won.balance_transactions[1].fee, won.balance_transactions[1].net) == (-15000, 95000)
    returned = sandbox_stripe.v1.balance_transactions.retrieve(refund.balance_transaction)
    assert (returned.type, returned.amount, returned.fee, returned.net) == ("refund", -25000, -775, -24225)


def test_a_partial_refund_updates_the_charge_and_emits_charge_refunded(sandbox_stripe):
    # given
    charge = sandbox_stripe.v1.charges.create({"amount": 10000, "currency": "nok", "source": "tok_visa"})

    # when
    refund = sandbox_stripe.v1.refunds.create({"charge": charge.id, "amount": 2500})

    # then
    after = sandbox_stripe.v1.charges.retrieve(charge.id)
    assert (refund.amount, after.amount_refunded, after.refunded) == (2500, 2500, False)
    # Stripe keeps its processing fee on a refund: the money going back is the refunded amount
    returned = sandbox_stripe.v1.balance_transactions.retrieve(refund.balance_transaction)
    assert (returned.type, returned.amount, returned.fee, returned.net, returned.source) == (
        "refund", -2500, 0, -2500, refund.id)
    [event] = sandbox_stripe.v1.events.list({"type": "charge.refunded"}).data
    assert event.data.object.id == charge.id


def test_the_same_idempotency_key_gets_the_same_customer_and_creates_one(sandbox_stripe):
    # when
    first = sandbox_stripe.v1.customers.create({"name": "Fjordkraft AS"}, {"idempotency_key": "visma-inv-100042"})
    second = sandbox_stripe.v1.customers.create({"name": "Fjordkraft AS"}, {"idempotency_key": "visma-inv-100042"})

    # then
    assert first.id == second.id
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert _count("customer") == 1


def test_an_idempotency_key_reused_with_other_parameters_is_refused(sandbox_stripe):
    # given
    sandbox_stripe.v1.customers.create({"name": "Fjordkraft AS"}, {"idempotency_key": "k-1"})

    # when
    with pytest.raises(stripe.IdempotencyError):
        sandbox_stripe.v1.customers.create({"name": "Other AS"}, {"idempotency_key": "k-1"})

    # then
    assert _count("customer") == 1
    assert StripeIdempotentRequest.objects.count() == 1


def test_jpy_amounts_are_whole_yen(sandbox_stripe):
    # given
    customer = sandbox_stripe.v1.customers.create({"name": "Tokyo KK"})

    # when
    charge = sandbox_stripe.v1.charges.create({"amount": 5000, "currency": "jpy", "customer": customer.id,
                                               "source": "tok_visa", "expand": ["balance_transaction"]})
    with pytest.raises(stripe.InvalidRequestError) as too_small:
        sandbox_stripe.v1.charges.create({"amount": 49, "currency": "jpy", "source": "tok_visa"})

    # then: 3.6 % of ¥5000 = ¥180, no fixed part
    assert (charge.amount, charge.currency) == (5000, "jpy")
    bt = sandbox_stripe.v1.balance_transactions.retrieve(charge.balance_transaction.id)
    assert (bt.fee, bt.net) == (180, 4820)
    assert too_small.value.code == "amount_too_small"
    assert too_small.value.user_message == "Amount must be at least 50 jpy (given 49)"


def test_a_nok_amount_below_kr_3_is_too_small(sandbox_stripe):
    # when
    with pytest.raises(stripe.InvalidRequestError) as raised:
        sandbox_stripe.v1.charges.create({"amount": 299, "currency": "nok", "source": "tok_visa"})

    # then
    assert raised.value.user_message == "Amount must be at least 3.00 nok (given 2.99)"
    assert _count("charge") == 0


def test_events_list_by_created_and_types_and_pages_with_starting_after(sandbox_stripe):
    # given
    for number in range(3):
        sandbox_stripe.v1.charges.create({"amount": 1000 + number, "currency": "nok", "source": "tok_visa"})
    sandbox_stripe.v1.customers.create({"name": "Fjordkraft AS"})

    # when
    amounts = [event.data.object.amount for event in sandbox_stripe.v1.events.list(
        {"types": ["charge.succeeded"], "created": {"gte": int(time.time()) - 60}, "limit": 2}).auto_paging_iter()]

    # then
    assert amounts == [1002, 1001, 1000]


def test_events_older_than_30_days_are_not_listed(sandbox_stripe, stripe_account):
    # given
    old = stripe_api.event_emit(stripe_account, "charge.succeeded", {"id": "ch_old", "object": "charge"})
    StripeObject.objects.filter(stripe_id=old["id"]).update(created=int(time.time()) - 31 * 86400)

    # when
    listed = sandbox_stripe.v1.events.list().data
    with pytest.raises(stripe.InvalidRequestError):
        sandbox_stripe.v1.events.retrieve(old["id"])

    # then
    assert listed == []


def test_an_unknown_parameter_is_refused_as_stripe_does(sandbox_stripe):
    # when
    with pytest.raises(stripe.InvalidRequestError) as raised:
        sandbox_stripe.v1.customers.create({"name": "X", "colour": "blue"})

    # then
    assert (raised.value.param, raised.value.user_message) == ("colour", "Received unknown parameter: colour")
    assert _count("customer") == 0


def test_a_json_body_is_refused(live_server, stripe_account):
    # when
    response = requests.post(f"{live_server.url}/sandbox/stripe/v1/customers", json={"name": "X"},
                             headers={"Authorization": f"Bearer {SECRET_KEY}"}, timeout=5)

    # then
    assert response.status_code == 400
    assert _count("customer") == 0


def test_a_parameter_stripes_openapi_file_does_not_document_is_refused_before_anything_is_done(sandbox_stripe):
    # when: "colour" is in no operation; "coupon" is documented for customers but the emulator does not take it
    with pytest.raises(stripe.InvalidRequestError) as undocumented:
        sandbox_stripe.v1.invoices.create({"customer": "cus_1", "colour": "blue"})

    # then
    assert (undocumented.value.http_status, undocumented.value.param) == (400, "colour")
    assert _count("invoice") == 0


def test_the_openapi_check_names_unknown_paths_and_parameters():
    # when
    from sandbox.stripe_openapi import stripe_request_problems

    # then
    assert stripe_request_problems("GET", "/v1/customers/search", {"query": "x", "limit": "1"}) == []
    assert stripe_request_problems("POST", "/v1/invoices/in_1/pay", {"source": "tok_visa"}) == []
    assert stripe_request_problems("POST", "/v1/invoices/in_1/pay", {"sauce": "x"}) == [
        "Received unknown parameter: sauce"]
    assert stripe_request_problems("POST", "/v1/teleport", {}) == ["Unrecognized request URL (POST: /v1/teleport)."]


def test_invoice_payments_are_listed_by_invoice_or_by_payment_intent_as_the_pinned_version_filters(sandbox_stripe):
    # given
    customer = sandbox_stripe.v1.customers.create({"name": "Fjordkraft AS"})
    invoice = sandbox_stripe.v1.invoices.create({"customer": customer.id, "collection_method": "send_invoice",
                                                 "days_until_due": 14, "currency": "nok"})
    sandbox_stripe.v1.invoice_items.create({"customer": customer.id, "invoice": invoice.id, "amount": 50000,
                                            "currency": "nok"})
    sandbox_stripe.v1.invoices.finalize_invoice(invoice.id)

    # when: finalized, the default InvoicePayment is open; paid, it is paid
    [opened] = sandbox_stripe.v1.invoice_payments.list({"invoice": invoice.id}).data
    sandbox_stripe.v1.invoices.pay(invoice.id, {"source": "tok_visa"})
    [paid] = sandbox_stripe.v1.invoice_payments.list(
        {"payment": {"type": "payment_intent", "payment_intent": opened.payment.payment_intent}}).data
    with pytest.raises(stripe.InvalidRequestError) as untyped:
        sandbox_stripe.v1.invoice_payments.list({"payment": {"payment_intent": opened.payment.payment_intent}})

    # then
    assert (opened.status, opened.amount_paid, opened.amount_requested, opened.is_default) == ("open", None, 50000,
                                                                                               True)
    assert (paid.id, paid.invoice, paid.status, paid.amount_paid) == (opened.id, invoice.id, "paid", 50000)
    assert untyped.value.param == "payment[type]"
    assert sandbox_stripe.v1.invoice_payments.list({"invoice": "in_other"}).data == []


def test_tax_rates_on_items_and_as_the_invoices_default_give_line_taxes_and_total_taxes(sandbox_stripe):
    # given: 25 % on one item, 12 % by the invoice's default on the other
    high = sandbox_stripe.v1.tax_rates.create({"display_name": "VAT", "percentage": 25, "inclusive": False,
                                               "metadata": {"visma_vat_code": "3"}})
    low = sandbox_stripe.v1.tax_rates.create({"display_name": "VAT", "percentage": 12, "inclusive": False})
    customer = sandbox_stripe.v1.customers.create({"name": "Fjordkraft AS"})
    invoice = sandbox_stripe.v1.invoices.create({"customer": customer.id, "collection_method": "send_invoice",
                                                 "days_until_due": 14, "currency": "nok",
                                                 "default_tax_rates": [low.id]})
    sandbox_stripe.v1.invoice_items.create({"customer": customer.id, "invoice": invoice.id, "amount": 80000,
                                            "currency": "nok", "tax_rates": [high.id]})
    sandbox_stripe.v1.invoice_items.create({"customer": customer.id, "invoice": invoice.id, "amount": 10000,
                                            "currency": "nok"})

    # when
    draft = sandbox_stripe.v1.invoices.retrieve(invoice.id).to_dict()

    # then
    assert (draft["subtotal"], draft["total"], draft["amount_due"], draft["total_excluding_tax"]) == (
        90000, 111200, 111200, 90000)
    assert [(tax["amount"], tax["taxable_amount"], tax["tax_rate_details"]["tax_rate"], tax["tax_behavior"])
            for tax in draft["total_taxes"]] == [(20000, 80000, high.id, "exclusive"), (1200, 10000, low.id, "exclusive")]
    assert [[tax["amount"] for tax in line["taxes"]] for line in draft["lines"]["data"]] == [[20000], [1200]]
    listed = sandbox_stripe.v1.tax_rates.list({"active": True, "inclusive": False})
    assert sorted(rate.id for rate in listed.data) == sorted([high.id, low.id])
    assert sandbox_stripe.v1.tax_rates.list({"inclusive": True}).data == []
