"""The PayPal emulator's seed: app, certificate, subscription and demo money movements, once; for a tenant, its
credentials, webhook address and payer mappings."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from mappings.models import ExternalReference
from sandbox.models import PayPalApp, PayPalCertificate, PayPalObject, PayPalTransaction, PayPalWebhook
from sandbox.paypal_seed import GUEST, paypal_sandbox_seed
from tests.factories import ConnectionFactory, IntegrationFactory, TenantFactory


def _counts() -> dict[str, int]:
    return {kind: PayPalObject.objects.filter(kind=kind).count() for kind in ("order", "capture", "refund", "invoice")}


def test_the_seed_makes_captures_with_fees_refunds_an_invoice_and_a_guest_payment_once(db):
    # when
    first = paypal_sandbox_seed(base_url="http://127.0.0.1:8000/sandbox/paypal")
    again = paypal_sandbox_seed(base_url="http://127.0.0.1:8000/sandbox/paypal")

    # then
    assert (first.demo_created, again.demo_created) == (True, False)
    assert _counts() == {"order": 6, "capture": 6, "refund": 3, "invoice": 1}
    assert PayPalApp.objects.count() == 1 and PayPalCertificate.objects.count() == 1
    assert sorted(PayPalTransaction.objects.values_list("event_code", flat=True)) == [
        "T0006", "T0006", "T0006", "T0006", "T0006", "T0007", "T1107", "T1107", "T1107"]
    captures = PayPalObject.objects.filter(kind="capture")
    assert all(capture.body["seller_receivable_breakdown"]["paypal_fee"]["value"] != "0.00" for capture in captures)
    assert sorted(capture.body["status"] for capture in captures) == [
        "COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"]
    assert PayPalObject.objects.get(kind="invoice").body["status"] == "PAID"
    guest_orders = [order for order in PayPalObject.objects.filter(kind="order")
                    if order.body["payer"]["payer_id"] == GUEST.payer_id]
    assert len(guest_orders) == 1
    assert PayPalWebhook.objects.count() == 0


def test_the_seed_for_a_tenant_takes_its_credentials_webhook_address_and_maps_its_payers(db):
    # given
    tenant = TenantFactory(slug="nordlys-friluft")
    paypal = ConnectionFactory(tenant=tenant, system="paypal", base_url="http://127.0.0.1:8000/sandbox/paypal",
                               credentials={"client_id": "demo-client", "client_secret": "demo-secret",
                                            "webhook_id": "8PT597110X687430LKGECATA"})
    integration = IntegrationFactory(tenant=tenant, partner_connection=paypal)
    stdout = StringIO()

    # when
    call_command("paypal_sandbox_seed", "--base-url", "http://127.0.0.1:8000", "--tenant", "nordlys-friluft",
                 stdout=stdout)

    # then
    app = PayPalApp.objects.get()
    assert (app.client_id, app.client_secret, app.base_url) == ("demo-client", "demo-secret",
                                                                "http://127.0.0.1:8000/sandbox/paypal")
    subscription = PayPalWebhook.objects.get()
    assert (subscription.webhook_id, subscription.url) == (
        "8PT597110X687430LKGECATA", f"http://127.0.0.1:8000/webhooks/paypal/{integration.pk}/")
    assert sorted(ExternalReference.objects.filter(tenant=tenant).values_list("external_id", "visma_id")) == [
        ("7E9KPHR2Z4WQA", "10002"), ("M3XK8D2QJRB5P", "10004"), ("QYR5Z8XDVJNXQ", "10001")]
    assert "client id demo-client" in stdout.getvalue()
    assert f"→ http://127.0.0.1:8000/webhooks/paypal/{integration.pk}/" in stdout.getvalue()


def test_the_seed_refuses_a_tenant_without_a_paypal_integration(db):
    # given
    TenantFactory(slug="no-paypal")

    # when
    with pytest.raises(CommandError) as raised:
        call_command("paypal_sandbox_seed", "--tenant", "no-paypal", stdout=StringIO())

    # then
    assert str(raised.value) == "Tenant 'no-paypal' has no PayPal integration."
    assert PayPalApp.objects.count() == 0
