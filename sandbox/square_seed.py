"""The Square emulator's seed: the seller "Nordlys Friluft" with four NOK locations in Europe/Oslo (Oslo Sentrum the
main one, Trondheim closed), a personal access token, a webhook subscription, and demo data: card, cash and wallet
payments with tips at three locations (one whose fee comes later), a partial refund, a customer who is Visma customer
10002 with one invoice paid by card (two lines, 25 % VAT, a discount), and two vendors (one INACTIVE, one named as
Visma supplier 20002). Seeding twice changes nothing."""
from __future__ import annotations

from django.db import transaction

from . import square_api
from .models import SquareMerchant, SquareObject, SquareToken

SQUARE_SANDBOX_MERCHANT_ID = "MLNORDLYSFRIL"
SQUARE_SANDBOX_ACCESS_TOKEN = "EAAAsandbox-nordlys-friluft-personal-access-token-0000000000"
SQUARE_SANDBOX_APPLICATION_ID = "sq0idp-NordlysSandboxApplication"
SQUARE_SANDBOX_APPLICATION_SECRET = "sq0csp-nordlys-sandbox-application-secret-000000"
SQUARE_SANDBOX_SIGNATURE_KEY = "nordlys-sandbox-square-signature-key"
# (id, name, status): Square location ids are ≤32 characters (spec Location.id); Oslo Sentrum is the main location.
SQUARE_SANDBOX_LOCATIONS = (
    ("LNORDLYSOSLO1", "Oslo Sentrum", "ACTIVE"),
    ("LNORDLYSBERG1", "Bergen", "ACTIVE"),
    ("LNORDLYSWEB01", "Web shop", "ACTIVE"),
    ("LNORDLYSTRD01", "Trondheim", "INACTIVE"),
)
OSLO, BERGEN, WEB_SHOP, TRONDHEIM = (location_id for location_id, _, _ in SQUARE_SANDBOX_LOCATIONS)
# The demo customer stands for Visma customer 10002 (sandbox/visma_seed.py NAMED_CUSTOMERS).
DEMO_CUSTOMER = {"company_name": "Fjordline Sport AS", "email_address": "post@fjordline-sport.example",
                 "reference_id": "10002"}
DEMO_VENDORS = (("Oslo Cloud Hosting AS", "ACTIVE"), ("Trykkeriet Nord AS", "INACTIVE"))


def square_sandbox_seed(*, notification_url: str = "", access_token: str = SQUARE_SANDBOX_ACCESS_TOKEN,
                        signature_key: str = SQUARE_SANDBOX_SIGNATURE_KEY,
                        demo: bool = True) -> tuple[SquareMerchant, int]:
    """The merchant (its notification URL, token and key updated in place when it exists) and how many demo objects
    were created (none when the demo is there already)."""
    with transaction.atomic():
        merchant = SquareMerchant.objects.filter(merchant_id=SQUARE_SANDBOX_MERCHANT_ID).first()
        if merchant is None:
            merchant = square_api.square_merchant_create(
                name="Nordlys Friluft", merchant_id=SQUARE_SANDBOX_MERCHANT_ID, locations=(),
                notification_url=notification_url, signature_key=signature_key,
                application_id=SQUARE_SANDBOX_APPLICATION_ID, application_secret=SQUARE_SANDBOX_APPLICATION_SECRET,
                personal_access_token=access_token)
            for location_id, name, status in SQUARE_SANDBOX_LOCATIONS:
                square_api.square_location_create(merchant, name, status=status, location_id=location_id,
                                                  main=location_id == OSLO)
        else:
            merchant.notification_url = notification_url
            merchant.signature_key = signature_key
            merchant.save(update_fields=["notification_url", "signature_key"])
            SquareToken.objects.filter(merchant=merchant, flow=SquareToken.PERSONAL).update(access_token=access_token)
        created = 0
        if demo and not SquareObject.objects.filter(merchant=merchant, object_type="payment").exists():
            created = _demo(merchant)
    return merchant, created


def _demo(merchant: SquareMerchant) -> int:
    api = square_api
    objects = [
        api.square_payment_create(merchant, OSLO, 45000, tip=5000, fee_later=False),
        api.square_payment_create(merchant, OSLO, 19900, source_type="CASH", fee_later=False),
        api.square_payment_create(merchant, BERGEN, 34900, tip=2000, source_type="WALLET", fee_later=False),
        api.square_payment_create(merchant, WEB_SHOP, 89900, fee_later=False),
    ]
    refunded = api.square_payment_create(merchant, BERGEN, 129900, fee_later=False)
    objects.append(refunded)
    # The fee of a card payment arrives on a later update (docs/square.md §6): payment.created without it, then
    # payment.updated with it.
    late = api.square_payment_create(merchant, OSLO, 24900, tip=1000, fee_later=True)
    api.square_payment_fee_add(merchant, late["id"])
    objects.append(late)
    objects.append(api.square_refund_create(merchant, refunded["id"], 20000, reason="Returned sleeping bag"))
    customer = api.square_customer_create(merchant, **DEMO_CUSTOMER)
    order = api.square_order_create(
        merchant, WEB_SHOP, customer_id=customer["id"], reference_id="NETT-1001",
        lines=[{"name": "Telt Fjellheim 3", "quantity": "1", "base_price": 399000},
               {"name": "Sovepose Polar", "quantity": "2", "base_price": 149000}],
        taxes=[{"name": "MVA 25 %", "percentage": "25", "type": "ADDITIVE", "scope": "ORDER"}],
        discounts=[{"name": "Klubbrabatt 10 %", "percentage": "10", "scope": "ORDER"}])
    invoice = api.square_invoice_create(merchant, order["id"], customer["id"], title="Utstyr til klubbtur",
                                        publish=True)
    objects += [customer, order, invoice, api.square_invoice_pay(merchant, invoice["id"], fee_later=False)]
    objects += [api.square_vendor_create(merchant, name, status=status) for name, status in DEMO_VENDORS]
    return len(objects)
