"""The Square emulator's seed: the seller, its four locations, demo payments at three of them, a partial refund, an
invoice paid by card for Visma customer 10002, two vendors; a second run changes nothing."""
from collections import Counter
from io import StringIO

from django.core.management import call_command

from sandbox import square_api
from sandbox.models import SquareMerchant, SquareObject
from sandbox.square_openapi import square_schema_problems
from sandbox.square_seed import SQUARE_SANDBOX_ACCESS_TOKEN, SQUARE_SANDBOX_SIGNATURE_KEY

URL = "http://127.0.0.1:8000/webhooks/square/demo/"


def test_seeding_twice_makes_one_seller_and_its_demo_once(db):
    # when
    first, second = StringIO(), StringIO()
    call_command("square_sandbox_seed", "--notification-url", URL, stdout=first)
    call_command("square_sandbox_seed", "--notification-url", URL, stdout=second)

    # then
    merchant = SquareMerchant.objects.get()
    assert (merchant.name, merchant.notification_url, merchant.signature_key) == (
        "Nordlys Friluft", URL, SQUARE_SANDBOX_SIGNATURE_KEY)
    assert square_api.square_personal_token(merchant) == SQUARE_SANDBOX_ACCESS_TOKEN
    assert "13 demo object(s) created" in first.getvalue()
    assert "0 demo object(s) created" in second.getvalue()
    # Each POS payment has an order of its own, as at Square (six POS payments, one invoice order).
    assert Counter(SquareObject.objects.exclude(object_type="event").values_list("object_type", flat=True)) == {
        "location": 4, "payment": 7, "refund": 1, "customer": 1, "order": 7, "invoice": 1, "vendor": 2}


def test_the_demo_has_payments_at_three_locations_a_late_fee_a_partial_refund_and_a_paid_invoice(db):
    # when
    call_command("square_sandbox_seed", stdout=StringIO())

    # then
    merchant = SquareMerchant.objects.get()
    locations = {body["id"]: body for body in square_api.square_objects(merchant, "location")}
    assert sorted((body["name"], body["status"], body["currency"], body["timezone"])
                  for body in locations.values()) == [
        ("Bergen", "ACTIVE", "NOK", "Europe/Oslo"), ("Oslo Sentrum", "ACTIVE", "NOK", "Europe/Oslo"),
        ("Trondheim", "INACTIVE", "NOK", "Europe/Oslo"), ("Web shop", "ACTIVE", "NOK", "Europe/Oslo")]
    assert locations[merchant.main_location_id]["name"] == "Oslo Sentrum"
    payments = square_api.square_objects(merchant, "payment")
    assert {locations[body["location_id"]]["name"] for body in payments} == {"Oslo Sentrum", "Bergen", "Web shop"}
    assert {body["source_type"] for body in payments} == {"CARD", "CASH", "WALLET"}
    assert sum(body.get("tip_money", {}).get("amount", 0) for body in payments) == 8000
    events = square_api.square_objects(merchant, "event")
    late = [event["data"]["id"] for event in events if event["type"] == "payment.created"
            and "processing_fee" not in event["data"]["object"]["payment"]
            and event["data"]["object"]["payment"]["source_type"] != "CASH"]
    assert len(late) == 1
    assert square_api.square_object(merchant, "payment", late[0])["processing_fee"]
    refund = square_api.square_objects(merchant, "refund")[0]
    refunded = square_api.square_object(merchant, "payment", refund["payment_id"])
    assert (refund["amount_money"]["amount"], refunded["total_money"]["amount"]) == (20000, 129900)
    invoice = square_api.square_objects(merchant, "invoice")[0]
    order = square_api.square_object(merchant, "order", invoice["order_id"])
    customer = square_api.square_object(merchant, "customer", invoice["primary_recipient"]["customer_id"])
    assert (invoice["status"], customer["reference_id"], len(order["line_items"])) == ("PAID", "10002", 2)
    assert (order["total_money"]["amount"], order["total_tax_money"]["amount"],
            order["total_discount_money"]["amount"]) == (784125, 156825, 69700)
    assert sorted((body["name"], body["status"]) for body in square_api.square_objects(merchant, "vendor")) == [
        ("Oslo Cloud Hosting AS", "ACTIVE"), ("Trykkeriet Nord AS", "INACTIVE")]
    schemas = {"payment.created": "PaymentCreatedEvent", "payment.updated": "PaymentUpdatedEvent",
               "refund.created": "RefundCreatedEvent", "invoice.created": "InvoiceCreatedEvent",
               "invoice.published": "InvoicePublishedEvent", "invoice.payment_made": "InvoicePaymentMadeEvent",
               "vendor.created": "VendorCreatedEvent"}
    assert [(event["type"], problem) for event in events
            for problem in square_schema_problems(schemas[event["type"]], event)] == []


def test_seeding_for_a_tenant_takes_its_square_token_and_key_and_posts_to_its_notification_url(db):
    # given a tenant whose Square connection points at the sandbox
    from tests.factories import ConnectionFactory, IntegrationFactory

    partner = ConnectionFactory(system="square", base_url="http://127.0.0.1:8000/sandbox/square",
                                credentials={"access_token": "EAAAtenant-token-0001",
                                             "webhook_signature_keys": ["tenant-key-new", "tenant-key-old"]})
    IntegrationFactory(tenant=partner.tenant, kind="square", partner_connection=partner,
                       settings={"webhook_notification_url": "https://books.example/webhooks/square/9/"})
    out = StringIO()

    # when
    call_command("square_sandbox_seed", "--tenant", partner.tenant.slug, "--no-demo", stdout=out)

    # then
    merchant = SquareMerchant.objects.get()
    assert (square_api.square_personal_token(merchant), merchant.signature_key, merchant.notification_url) == (
        "EAAAtenant-token-0001", "tenant-key-new", "https://books.example/webhooks/square/9/")
    assert "EAAAtenant-token-0001" not in out.getvalue()
    assert SquareObject.objects.filter(object_type="payment").count() == 0
