"""Square → Visma over real HTTP, both emulators live in one server: payments at a store become journals on that
store's cost center (gross, tip, fee, net), refunds reverse on it, polls page through every location once, flagged
postings send Visma nothing, Visma's 500s are retried, tokens are renewed, and every Square request fits api.json."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from audit.models import RecordStatus, SyncRecord
from connectors.models import Connection, HttpExchange, Integration, Tenant
from connectors.pipeline import record_advance, stream_poll
from connectors.services import integration_save
from mappings.models import GLMappingRule, SquareLocation
from mappings.reference import reference_data_refresh
from connectors.models import InboundEvent, WebhookRefusal
from connectors.services import inbox_process
from sandbox import square_api
from sandbox.models import SquareObject, SquareRequest, VismaDocument
from sandbox.square_webhooks import square_event_post, square_events_deliver
from sandbox.services import (
    VISMA_SANDBOX_CLIENT_ID,
    VISMA_SANDBOX_CLIENT_SECRET,
    VISMA_SANDBOX_COMPANY_ID,
    VISMA_SANDBOX_TENANT_ID,
    visma_fault_fail,
    visma_sandbox_seed,
)
from tests.factories import stream_marker
from tests.paypal.world import live_connections_close

pytestmark = pytest.mark.django_db(transaction=True)


class SquareWorld:
    """A retailer with stores in Oslo (main), Bergen and a closed one in Trondheim; Visma seeded with their cost
    centers (310, 320, 390 inactive); a rule for each open store; the integration reading Square through the
    emulator."""

    def __init__(self, url: str, *, oauth_issued_days_ago: float | None = None):
        visma_sandbox_seed()
        self.url = url
        self.merchant = square_api.square_merchant_create(
            name="Nordlys Friluft", locations=(("Store Oslo Sentrum", "ACTIVE"), ("Store Bergen", "ACTIVE"),
                                               ("Store Trondheim", "INACTIVE")))
        self.locations = {name.split()[1]: body["id"] for name, body in
                          square_api.square_locations(self.merchant).items()}
        self.tenant = Tenant.objects.create(slug="nordlys", name="Nordlys Friluft AS")
        visma = Connection.objects.create(
            tenant=self.tenant, system="visma", base_url=f"{url}/sandbox/visma",
            token_url=f"{url}/sandbox/visma/connect/token",
            credentials={"client_id": VISMA_SANDBOX_CLIENT_ID, "client_secret": VISMA_SANDBOX_CLIENT_SECRET,
                         "tenant_id": VISMA_SANDBOX_TENANT_ID, "company_id": VISMA_SANDBOX_COMPANY_ID})
        credentials = {"access_token": square_api.square_personal_token(self.merchant),
                       "webhook_signature_key": self.merchant.signature_key}
        if oauth_issued_days_ago is not None:
            issued = timezone.now() - timedelta(days=oauth_issued_days_ago)
            access, refresh, expires_at = square_api.square_oauth_tokens_issue(self.merchant, issued_at=issued)
            credentials.update(access_token=access, refresh_token=refresh, expires_at=expires_at,
                               client_id=self.merchant.application_id,
                               client_secret=self.merchant.application_secret)
        self.square_connection = Connection.objects.create(tenant=self.tenant, system="square",
                                                           base_url=f"{url}/sandbox/square", credentials=credentials)
        self.integration = integration_save(Integration(
            tenant=self.tenant, kind="square", visma_connection=visma, partner_connection=self.square_connection,
            settings={"page_size": 5}))
        notification_url = f"{url}{self.integration.webhook_path}"
        self.integration.settings = {**self.integration.settings, "webhook_notification_url": notification_url}
        self.integration = integration_save(self.integration)
        type(self.merchant).objects.filter(pk=self.merchant.pk).update(notification_url=notification_url)
        self.merchant.refresh_from_db()
        reference_data_refresh(self.tenant, full=True)
        # Each store its own rule (a rule for any store never books a Square payment: review finding 8).
        self.rule("Square sales, Oslo", priority=50, location=self.locations["Oslo"], dimensions={"1": "310"})
        self.rule("Square sales, Bergen", priority=90, location=self.locations["Bergen"], gl_account="3020",
                  dimensions={"1": "320"})
        self.journals_before = journal_count()

    def rule(self, name: str, **fields) -> GLMappingRule:
        values = {"gl_account": "3000", "fee_account": "7770", "clearing_account": "1582", "tip_account": "2960",
                  **fields}
        return GLMappingRule.objects.create(tenant=self.tenant, system="square", name=name, **values)

    def payment(self, store: str, amount: int, **options) -> dict:
        return square_api.square_payment_create(self.merchant, self.locations[store], amount, **options)

    def poll(self, stream: str = "payments"):
        return stream_poll(self.integration, stream, start=timezone.now() - timedelta(hours=1),
                           end=timezone.now() + timedelta(minutes=1))

    def marker(self, source_id: str, stream: str = "payments") -> str:
        return stream_marker(self.integration, stream, source_id)

    def journal(self, source_id: str, stream: str = "payments") -> dict:
        [journal] = journals_with(self.marker(source_id, stream))
        return journal


def journal_count() -> int:
    return VismaDocument.objects.filter(company_id=VISMA_SANDBOX_COMPANY_ID, collection="journal").count()


def journals_with(marker: str) -> list[dict]:
    return [document.body for document in VismaDocument.objects.filter(company_id=VISMA_SANDBOX_COMPANY_ID,
                                                                       collection="journal")
            if any(line.get("referenceNumber") == marker for line in document.body["journalTransactionLines"])]


def cost_center(line: dict) -> str:
    """Segment 1 (Department) of a journal line's subaccount, as the Visma sandbox stores it."""
    segments = (line.get("subaccount") or {}).get("segments") or []
    return next((str(segment["segmentValue"]) for segment in segments if str(segment["segmentId"]) == "1"), "")


def booked(journal: dict) -> list[tuple[str, str, str, str]]:
    """(account, debit, credit, cost center) of each line, as Visma holds them."""
    return [(line["accountNumber"], f"{Decimal(str(line['debitAmountInCurrency'])):.2f}",
             f"{Decimal(str(line['creditAmountInCurrency'])):.2f}", cost_center(line))
            for line in journal["journalTransactionLines"]]


def visma_writes() -> int:
    return HttpExchange.objects.filter(method="POST", url__contains="/sandbox/visma/").exclude(
        url__contains="/connect/token").count()


@pytest.fixture
def world(live_server):
    yield SquareWorld(live_server.url)
    live_connections_close()


def test_a_card_payment_at_a_non_main_store_posts_gross_tip_fee_and_net_on_that_store_s_cost_center(world):
    # given: NOK 500 + 50 tip at Bergen (not the main location), its fee reported at once
    payment = world.payment("Bergen", 50000, tip=5000, fee=1430, fee_later=False)
    # when
    run = world.poll()
    # then
    assert (run.fetched, run.posted) == (1, 1)
    journal = world.journal(payment["id"])
    assert sorted(booked(journal)) == sorted([
        ("1582", "535.70", "0.00", "320"), ("7770", "14.30", "0.00", "320"),
        ("3020", "0.00", "500.00", "320"), ("2960", "0.00", "50.00", "320")])
    assert payment["id"] in journal["description"]
    assert {line["referenceNumber"] for line in journal["journalTransactionLines"]} == {world.marker(payment["id"])}
    # the mirror knows Bergen is not the main location, and the closed store is marked
    assert dict(SquareLocation.objects.values_list("name", "is_main")) == {
        "Store Oslo Sentrum": True, "Store Bergen": False, "Store Trondheim": False}
    assert SquareLocation.objects.get(name="Store Trondheim").status == "INACTIVE"


def test_a_fee_reported_later_keeps_the_payment_waiting_then_it_posts(world):
    payment = world.payment("Oslo", 20000)  # the fee comes on a later update (the merchant's switch)
    assert world.poll().waiting == 1
    assert journal_count() == world.journals_before
    square_api.square_payment_fee_add(world.merchant, payment["id"], 520)
    world.poll()
    assert SyncRecord.objects.get(stream="payments", source_id=payment["id"]).status == RecordStatus.POSTED
    assert sorted(booked(world.journal(payment["id"]))) == sorted([
        ("1582", "194.80", "0.00", "310"), ("7770", "5.20", "0.00", "310"), ("3000", "0.00", "200.00", "310")])


def test_a_partial_refund_reverses_on_the_same_cost_center(world):
    payment = world.payment("Bergen", 30000, fee=780, fee_later=False)
    world.poll()
    refund = square_api.square_refund_create(world.merchant, payment["id"], 10000)
    run = world.poll("refunds")
    assert run.posted == 1
    assert sorted(booked(world.journal(refund["id"], "refunds"))) == sorted([
        ("3020", "100.00", "0.00", "320"), ("1582", "0.00", "100.00", "320")])


def test_thirteen_payments_at_two_stores_five_a_page_post_once_also_when_synced_twice(world):
    # given
    ids = [world.payment("Oslo" if index % 2 else "Bergen", 1000 + index, fee=30, fee_later=False)["id"]
           for index in range(13)]
    # when
    first, second = world.poll(), world.poll()
    # then
    assert (first.fetched, first.posted) == (13, 13)
    assert (second.fetched, second.posted, second.skipped) == (13, 0, 13)
    assert journal_count() == world.journals_before + 13
    assert all(len(journals_with(world.marker(payment_id))) == 1 for payment_id in ids)
    pages = SquareRequest.objects.filter(method="GET", path="/v2/payments")
    assert pages.filter(query__contains="cursor").exists()
    assert all("limit=5" in request.query for request in pages)


def test_an_inactive_cost_center_or_account_is_flagged_and_nothing_is_written_to_visma(world):
    # given: the closed Trondheim store books to inactive department 390; tips to an inactive account
    world.rule("Square Trondheim (closed)", priority=5, location=world.locations["Trondheim"],
               dimensions={"1": "390"}, tip_account="3099")
    writes = visma_writes()
    # when
    world.payment("Trondheim", 10000, tip=1000, fee=290, fee_later=False)
    run = world.poll()
    # then
    assert run.flagged == 1
    [record] = SyncRecord.objects.filter(stream="payments")
    assert any("Dimension value 390 of segment 1" in reason and "inactive in Visma" in reason
               for reason in record.reasons)
    assert any("GL account 3099 on line 4 (tip) is inactive in Visma" in reason for reason in record.reasons)
    assert visma_writes() == writes
    assert journal_count() == world.journals_before


def test_a_store_without_a_rule_is_flagged_naming_the_store(world):
    GLMappingRule.objects.filter(name="Square sales, Oslo").delete()
    world.payment("Oslo", 10000, fee=290, fee_later=False)
    world.poll()
    [record] = SyncRecord.objects.filter(stream="payments")
    assert record.status == RecordStatus.FLAGGED
    assert f"at location Store Oslo Sentrum ({world.locations['Oslo']})" in record.reasons[0]
    assert journal_count() == world.journals_before


def test_a_store_without_a_rule_is_flagged_even_with_a_rule_for_any_store(world):
    # given: Oslo has no rule of its own, a rule for any store would give it Bergen's cost center
    GLMappingRule.objects.filter(name="Square sales, Oslo").delete()
    world.rule("Square sales, any store", priority=1, dimensions={"1": "320"})
    writes = visma_writes()
    # when
    world.payment("Oslo", 10000, fee=290, fee_later=False)
    world.poll()
    # then
    [record] = SyncRecord.objects.filter(stream="payments")
    assert record.status == RecordStatus.FLAGGED
    assert record.reasons[0].startswith(f"No mapping rule for store Store Oslo Sentrum ({world.locations['Oslo']}): "
                                        "add one")
    assert visma_writes() == writes
    assert journal_count() == world.journals_before


def test_visma_500_four_times_on_a_posting_is_retried_and_posted_once(world, settings):
    payment = world.payment("Bergen", 10000, fee=260, fee_later=False)
    visma_fault_fail(4)
    world.poll()
    record = SyncRecord.objects.get(stream="payments", source_id=payment["id"])
    while record.status == RecordStatus.RETRYING:
        with time_machine.travel(record.next_attempt_at + timedelta(seconds=1)):
            record = record_advance(record)
    assert record.status == RecordStatus.POSTED
    assert len(journals_with(world.marker(payment["id"]))) == 1
    assert journal_count() == world.journals_before + 1


def test_every_square_request_fits_api_json_and_names_the_square_version(world):
    payment = world.payment("Bergen", 10000, fee=260, fee_later=False)
    world.poll()
    square_api.square_refund_create(world.merchant, payment["id"], 5000)
    world.poll("refunds")
    requests_made = list(SquareRequest.objects.all())
    assert requests_made
    assert [(request.method, request.path, request.spec_problems) for request in requests_made
            if request.spec_problems] == []
    assert {request.square_version for request in requests_made} == {"2025-08-20"}


def test_a_token_29_and_a_half_days_old_is_renewed_before_it_is_used(live_server):
    world = SquareWorld(live_server.url, oauth_issued_days_ago=29.5)
    try:
        old_token = world.square_connection.credentials["access_token"]
        payment = world.payment("Oslo", 10000, fee=260, fee_later=False)
        run = world.poll()
        assert run.posted == 1 and len(journals_with(world.marker(payment["id"]))) == 1
        paths = list(SquareRequest.objects.values_list("path", flat=True))
        assert paths[0] == "/oauth2/token"
        assert not SquareRequest.objects.filter(status=401).exists()
        world.square_connection.refresh_from_db()
        assert world.square_connection.access_token not in ("", None, old_token)
        assert world.square_connection.token_expires_at > timezone.now() + timedelta(days=29)
    finally:
        live_connections_close()


def test_a_token_that_expires_during_a_long_sync_is_renewed_and_the_sync_completes(live_server, monkeypatch):
    # given: a fresh OAuth token; the seller's clock passes its expiry after the third payment is taken
    world = SquareWorld(live_server.url, oauth_issued_days_ago=1)
    try:
        ids = [world.payment("Bergen" if index % 2 else "Oslo", 1000 + index, fee=30, fee_later=False)["id"]
               for index in range(12)]
        import connectors.pipeline as pipeline

        taken = []
        original = pipeline.source_take

        def take_then_expire(integration, stream, source):
            taken.append(source.source_id)
            if len(taken) == 3:
                square_api.square_clock_advance(world.merchant, timedelta(days=30))
            return original(integration, stream, source)

        monkeypatch.setattr(pipeline, "source_take", take_then_expire)
        # when
        run = world.poll()
        # then: one 401, one renewal, every payment posted once
        assert run.status == "completed" and run.posted == 12
        assert SquareRequest.objects.filter(status=401).count() == 1
        assert SquareRequest.objects.filter(path="/oauth2/token").count() == 1
        assert all(len(journals_with(world.marker(payment_id))) == 1 for payment_id in ids)
    finally:
        live_connections_close()


# --- webhooks -------------------------------------------------------------------------------------------------


def deliver(world, **switches) -> tuple[int, int]:
    """Square sends its queued events (signed as Square signs), then the inbox is worked off."""
    return square_events_deliver(world.merchant, **switches), inbox_process()


def test_a_payment_at_a_non_main_store_via_webhook_waits_for_its_fee_and_posts_when_the_update_brings_it(world):
    # given: a card payment at Bergen; Square reports the fee on a later payment.updated
    payment = world.payment("Bergen", 25000, tip=2500)
    # when: payment.created arrives
    deliver(world)
    # then: it waits for the fee, nothing in Visma
    record = SyncRecord.objects.get(stream="payments", source_id=payment["id"])
    assert record.status == RecordStatus.WAITING
    assert journal_count() == world.journals_before
    # when: the fee comes with payment.updated
    square_api.square_payment_fee_add(world.merchant, payment["id"], 715)
    deliver(world)
    # then: posted on Bergen's cost center: gross, tip, fee, net
    record.refresh_from_db()
    assert record.status == RecordStatus.POSTED
    assert sorted(booked(world.journal(payment["id"]))) == sorted([
        ("1582", "267.85", "0.00", "320"), ("7770", "7.15", "0.00", "320"),
        ("3020", "0.00", "250.00", "320"), ("2960", "0.00", "25.00", "320")])


def test_every_event_delivered_twice_and_in_reverse_order_ends_in_each_posting_once(world):
    # given: two payments whose fees come later, one refunded in part, one fee adjusted after the first delivery
    first = world.payment("Bergen", 40000)
    second = world.payment("Oslo", 12000, source_type="CASH")
    square_api.square_payment_fee_add(world.merchant, first["id"], 1040)
    refund = square_api.square_refund_create(world.merchant, first["id"], 15000)
    # when: every event twice, newest first
    delivered, processed = deliver(world, duplicate=True, reverse=True)
    # then: each event stored once, each object posted once
    events = SquareObject.objects.filter(merchant=world.merchant, object_type="event").count()
    assert delivered == 2 * events
    assert InboundEvent.objects.filter(integration=world.integration).count() == events
    assert dict(SyncRecord.objects.values_list("source_id", "status")) == {
        first["id"]: RecordStatus.POSTED, second["id"]: RecordStatus.POSTED, refund["id"]: RecordStatus.POSTED}
    assert journal_count() == world.journals_before + 3
    for source_id, stream in ((first["id"], "payments"), (second["id"], "payments"), (refund["id"], "refunds")):
        assert len(journals_with(world.marker(source_id, stream))) == 1
    # and a fee adjustment after that is its own fee journal, the sale not posted again
    adjustment = square_api.square_payment_fee_add(world.merchant, first["id"], 50, fee_type="ADJUSTMENT")
    deliver(world, duplicate=True, reverse=True)
    assert journal_count() == world.journals_before + 4
    assert len(journals_with(world.marker(first["id"]))) == 1
    effective_at = adjustment["processing_fee"][-1]["effective_at"]
    [fee_record] = SyncRecord.objects.filter(stream="payments", source_id=f"{first['id']}:fee:{effective_at}")
    assert fee_record.status == RecordStatus.POSTED


def test_a_forged_key_a_signature_over_another_url_or_a_tampered_body_is_refused_401_and_nothing_posted(world):
    world.payment("Bergen", 10000, fee=260, fee_later=False)
    [event] = [row.body for row in SquareObject.objects.filter(merchant=world.merchant, object_type="event")]
    forged = [
        square_event_post(world.merchant, event, signature_key="bm90LXRoZS1zdWJzY3JpcHRpb24ta2V5"),
        square_event_post(world.merchant, event, signed_url="https://shop.example.com/webhooks/square"),
        square_event_post(world.merchant, event, tamper=True),
    ]
    assert forged == [401, 401, 401]
    assert inbox_process() == 0
    assert InboundEvent.objects.count() == 0 and SyncRecord.objects.count() == 0
    assert journal_count() == world.journals_before
    assert WebhookRefusal.objects.filter(integration=world.integration).exists()
    # the genuine delivery still goes through
    assert deliver(world) == (1, 1)
    assert SyncRecord.objects.get().status == RecordStatus.POSTED


def test_a_pending_refund_waits_and_posts_on_its_refund_updated_with_the_fee_square_returned(world):
    # given: a posted sale in Bergen; a refund Square has not completed yet
    payment = world.payment("Bergen", 40000, fee=1040, fee_later=False)
    refund = square_api.square_refund_create(world.merchant, payment["id"], 40000, status="PENDING")
    deliver(world)
    record = SyncRecord.objects.get(stream="refunds", source_id=refund["id"])
    assert record.status == RecordStatus.WAITING
    # when: Square completes it and gives its fee back
    square_api.square_refund_complete(world.merchant, refund["id"], fee_returned=1040)
    deliver(world)
    # then: the whole sale reversed on Bergen's cost center, the fee back to the fee account
    record.refresh_from_db()
    assert record.status == RecordStatus.POSTED
    assert sorted(booked(world.journal(refund["id"], "refunds"))) == sorted([
        ("3020", "400.00", "0.00", "320"), ("7770", "0.00", "10.40", "320"), ("1582", "0.00", "389.60", "320")])


def test_a_payment_of_a_posted_invoice_becomes_its_customer_payment_in_the_payments_poll_and_no_sale(live_server):
    # The invoices e2e world (its customer, VAT codes and invoice rules); imported here, it imports this module.
    from tests.e2e.test_square_invoices import InvoiceWorld

    world = InvoiceWorld(live_server.url)
    try:
        # given: the invoice posted, then paid by card
        invoice = world.invoice()
        world.poll("invoices")
        payment = square_api.square_invoice_pay(world.merchant, invoice["id"], fee=7966, fee_later=False)
        # when: only the payments stream polls
        world.poll("payments")
        # then: the payment is settled as the invoice's and handed over at once: its customer payment is posted
        # without waiting for the next invoices poll; no sale journal
        left = SyncRecord.objects.get(stream="payments", source_id=payment["id"])
        paid = SyncRecord.objects.get(stream="invoice_payments", source_id=payment["id"])
        assert (left.status, left.target_kind) == (RecordStatus.POSTED, "invoice_payments")
        assert (paid.status, paid.target_kind) == (RecordStatus.POSTED, "customer_payment")
        assert journals_with(world.marker(payment["id"])) == []
    finally:
        live_connections_close()


def test_a_sale_from_before_the_start_refunded_after_it_by_webhook_books_nothing_and_flags_the_refund(world):
    # given: a sale at Bergen; the integration starts half a minute after it (setting begin_time)
    from connectors.square.sources import square_time

    payment = world.payment("Bergen", 30000, fee=780, fee_later=False)
    start = square_time(payment["created_at"]) + timedelta(seconds=30)
    world.integration.settings = {**world.integration.settings, "begin_time": start.isoformat()}
    world.integration = integration_save(world.integration)
    # when: a minute later it is refunded; Square sends payment.created, refund.created and payment.updated
    square_api.square_clock_advance(world.merchant, timedelta(minutes=1))
    refund = square_api.square_refund_create(world.merchant, payment["id"], 10000)
    deliver(world)
    # then: the old sale is settled as nothing booked, the refund waits for a person, Visma gets nothing
    sale = SyncRecord.objects.get(stream="payments", source_id=payment["id"])
    assert (sale.status, sale.target_kind) == (RecordStatus.POSTED, "nothing_booked")
    assert "was taken before this integration's start on" in sale.proposed_posting["description"]
    flagged = SyncRecord.objects.get(stream="refunds", source_id=refund["id"])
    assert flagged.status == RecordStatus.FLAGGED
    assert "refund of a payment from before the integration's start" in flagged.reasons[0]
    assert journal_count() == world.journals_before


def test_refunds_of_a_sale_with_a_tip_split_between_revenue_and_tips_and_leave_no_cent(world):
    # given: NOK 250 + 25 tip at Bergen, posted
    payment = world.payment("Bergen", 25000, tip=2500, fee=715, fee_later=False)
    world.poll()
    # when: 100.00 refunded, then the remaining 175.00
    first = square_api.square_refund_create(world.merchant, payment["id"], 10000)
    world.poll("refunds")
    last = square_api.square_refund_create(world.merchant, payment["id"], 17500)
    world.poll("refunds")
    # then
    assert sorted(booked(world.journal(first["id"], "refunds"))) == sorted([
        ("3020", "90.91", "0.00", "320"), ("2960", "9.09", "0.00", "320"), ("1582", "0.00", "100.00", "320")])
    assert sorted(booked(world.journal(last["id"], "refunds"))) == sorted([
        ("3020", "159.09", "0.00", "320"), ("2960", "15.91", "0.00", "320"), ("1582", "0.00", "175.00", "320")])
    journals = [world.journal(payment["id"]), world.journal(first["id"], "refunds"),
                world.journal(last["id"], "refunds")]
    for account in ("3020", "2960"):
        assert sum(Decimal(debit) - Decimal(credit) for journal in journals
                   for number, debit, credit, _ in booked(journal) if number == account) == 0
