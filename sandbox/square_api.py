"""The Square emulator's state and the Python API tests call: merchants (sellers) with their clock, locations, tokens
and webhook subscription; payments, refunds, OAuth; faults; the request log.

Sources: `sandbox/vendor_specs/square/api.json` ("spec", Square-Version 2025-08-20) and `docs/square.md` (§ numbers).
Amounts are integers in the currency's smallest unit (spec `Money`): 12500 NOK is kr 125.00.

Functions tests call (all take the merchant first, return Square's JSON as a dict, and queue the webhook events
Square would send; `square_webhooks.square_events_deliver` posts them):

- `square_merchant_create(name=..., locations=(("Oslo Sentrum", "ACTIVE"), ...), notification_url=..., ...)` → a
  merchant with a personal access token (`square_personal_token(merchant)`), its locations (the first is the main
  one; `square_locations(merchant)` gives them by name), webhook signature key, OAuth application id and secret.
- `square_location_create(merchant, name, status=, currency=, main=)`.
- `square_payment_create(merchant, location_id, amount, tip=0, currency=None, source_type="CARD",
  status="COMPLETED", fee=None, fee_later=None, customer_id=None, order_id=None)`: a card-type payment gets its
  `processing_fee[]` later when `fee_later` (default: the merchant's switch), else at once; `fee` overrides the
  emulator's price (FEE_PERCENT). `processing_fee` is absent until a fee exists (stricter than an empty list).
  `square_payment_fee_add(merchant, payment_id, amount=None, fee_type="INITIAL"|"ADJUSTMENT")`,
  `square_payment_complete`, `square_payment_cancel(merchant, payment_id, status="CANCELED"|"FAILED")`.
- `square_refund_create(merchant, payment_id, amount, fee_returned=0, status="COMPLETED"|"PENDING")`,
  `square_refund_complete(merchant, refund_id, status="COMPLETED"|"FAILED"|"REJECTED", fee_returned=None)`.
- `square_oauth_tokens_issue(merchant, pkce=False, issued_at=None)` → (access_token, refresh_token, expires_at ISO);
  `square_oauth_code_issue(merchant, code_challenge="")` → an authorization code for ObtainToken;
  `square_authorization_revoke(merchant, revoker_type="MERCHANT")` (tokens refused, oauth.authorization.revoked).
- `square_clock_advance(merchant, timedelta)`: the merchant's clock (token expiry, created_at/updated_at).
- `square_fault_set(path_prefix, status=500|429, times=1, method="")`: the next calls on that path fail.
- `square_switches_set(merchant, fee_later=, list_delay_seconds=, token_lifetime_days=)`.
- `SquareRequest.objects` is the request log (method, path, status, square_version, spec_problems);
  `square_requests_unfit()` lists the logged requests without a Square-Version or not fitting api.json.
- Orders, invoices, customers, vendors: `square_customer_create(merchant, company_name=, reference_id=, ...)`,
  `square_order_create(merchant, location_id, lines=[...], taxes=[...], discounts=[...], customer_id=)`,
  `square_invoice_create(merchant, order_id, customer_id, publish=False)`, `square_invoice_publish`,
  `square_invoice_pay(merchant, invoice_id, amount=None)` → the payment, `square_invoice_refund`,
  `square_invoice_cancel`, `square_invoice_update`, `square_vendor_create(merchant, name, status=)`,
  `square_vendor_update(merchant, vendor_id, **changes)`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import SquareAuthorizationCode, SquareFault, SquareMerchant, SquareObject, SquareRequest, SquareToken

# Payment source types Square processes (and takes a fee on): docs/square.md §6 "Build".
CARD_TYPES = frozenset({"CARD", "WALLET", "BUY_NOW_PAY_LATER", "BANK_ACCOUNT", "SQUARE_ACCOUNT"})
# spec Payment.source_type (prose): "current values include" these.
SOURCE_TYPES = CARD_TYPES | {"CASH", "EXTERNAL"}
# The emulator's own card price (Square's rates vary by country and product; tests can pass `fee=`).
FEE_PERCENT = Decimal("2.6")
# docs/square.md §3: 15-day grace to refresh after the access token expired (a Square staff forum answer; not
# confirmed by a Square page); PKCE refresh tokens are single use and live 90 days; codes 5 minutes, single use.
REFRESH_GRACE = timedelta(days=15)
PKCE_REFRESH_LIFETIME = timedelta(days=90)
AUTHORIZATION_CODE_LIFETIME = timedelta(minutes=5)
# The scopes every emulated token carries (docs/square.md §3 "Scopes").
SCOPES = ["MERCHANT_PROFILE_READ", "PAYMENTS_READ", "ORDERS_READ", "INVOICES_READ", "CUSTOMERS_READ", "VENDOR_READ"]
DEFAULT_SIGNATURE_KEY_BYTES = 16
_ID_ALPHABET = string.ascii_uppercase + string.digits
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


class SquareApiError(Exception):
    """An error answer as Square gives it: {"errors": [{"category", "code", "detail", "field"}]} (spec `Error`)."""

    CATEGORIES = {401: "AUTHENTICATION_ERROR", 403: "AUTHENTICATION_ERROR", 429: "RATE_LIMIT_ERROR"}

    def __init__(self, status: int, code: str, detail: str, *, field: str | None = None,
                 category: str | None = None):
        super().__init__(detail)
        self.status = status
        self.code = code
        error = {"category": category or self.CATEGORIES.get(status, "API_ERROR" if status >= 500
                                                              else "INVALID_REQUEST_ERROR"),
                 "code": code, "detail": detail}
        if field:
            error["field"] = field
        self.body = {"errors": [error]}

    @classmethod
    def not_found(cls, what: str, object_id: str) -> SquareApiError:
        return cls(404, "NOT_FOUND", f"Could not find {what} with id `{object_id}`.")


# --- ids, time ------------------------------------------------------------------------------------------------------


def square_id(length: int = 29, prefix: str = "") -> str:
    """An id shaped like Square's (uppercase letters and digits; locations 13, payments 29 characters)."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length - len(prefix)))


def _token(prefix: str, length: int = 64) -> str:
    return prefix + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


def square_now(merchant: SquareMerchant) -> datetime:
    """The merchant's clock: now, moved by `square_clock_advance`."""
    return timezone.now() + timedelta(seconds=merchant.clock_offset_seconds)


def square_clock_advance(merchant: SquareMerchant, delta: timedelta) -> datetime:
    """Move the merchant's clock forward (tokens expire, times move on); the new time."""
    SquareMerchant.objects.filter(pk=merchant.pk).update(
        clock_offset_seconds=F("clock_offset_seconds") + int(delta.total_seconds()))
    merchant.refresh_from_db(fields=["clock_offset_seconds"])
    return square_now(merchant)


def square_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as Square writes times (spec examples: 2021-10-13T19:34:33.524Z)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def square_expiry_time(moment: datetime) -> str:
    """ObtainTokenResponse.expires_at as Square writes it (spec example 2025-04-03T18:31:06Z, minLength 20)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def square_time_parse(text: str, field: str) -> datetime:
    """An RFC 3339 time from a request (Z or an offset); 400 INVALID_TIME otherwise (spec ErrorCode)."""
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise SquareApiError(400, "INVALID_TIME", f"`{text}` is not a valid RFC 3339 time.", field=field)
    return moment


def money(amount: int, currency: str) -> dict:
    return {"amount": int(amount), "currency": currency}


# --- objects ------------------------------------------------------------------------------------------------------


def square_object(merchant: SquareMerchant, object_type: str, object_id: str) -> dict | None:
    """One object as Square answers it, or None."""
    row = SquareObject.objects.filter(merchant=merchant, object_type=object_type, square_id=object_id).first()
    return square_public(row.body) if row else None


def square_object_required(merchant: SquareMerchant, object_type: str, object_id: str) -> dict:
    body = square_object(merchant, object_type, object_id)
    if body is None:
        raise SquareApiError.not_found(object_type, object_id)
    return body


def _store(merchant: SquareMerchant, object_type: str, body: dict, *, at: datetime,
           listed_after_seconds: int = 0) -> dict:
    SquareObject.objects.create(merchant=merchant, object_type=object_type, square_id=body["id"], body=body,
                                created_at=at, updated_at=at,
                                listed_from=at + timedelta(seconds=listed_after_seconds))
    return body


def _save(merchant: SquareMerchant, object_type: str, body: dict, *, at: datetime) -> dict:
    SquareObject.objects.filter(merchant=merchant, object_type=object_type, square_id=body["id"]).update(
        body=body, updated_at=at)
    return body


def square_objects(merchant: SquareMerchant, object_type: str, *, listed_at: datetime | None = None) -> list[dict]:
    """The merchant's objects of one type as Square answers them, oldest first; with `listed_at`, only those lists
    already show."""
    rows = SquareObject.objects.filter(merchant=merchant, object_type=object_type)
    if listed_at is not None:
        rows = rows.filter(listed_from__lte=listed_at)
    return [square_public(row.body) for row in rows.order_by("pk")]


def square_event_emit(merchant: SquareMerchant, event_type: str, data_type: str, data_id: str,
                      data_object: dict | None, *, location_id: str | None = None) -> dict:
    """Queue a webhook event in the spec's envelope (`PaymentCreatedEvent` etc.: merchant_id, type, event_id,
    created_at, data {type, id, object}); a snapshot of the object as it is now."""
    at = square_now(merchant)
    event: dict[str, Any] = {"merchant_id": merchant.merchant_id}
    if location_id:
        # vendor.* and location.* events carry location_id (spec VendorCreatedEvent).
        event["location_id"] = location_id
    event.update({"type": event_type, "event_id": str(uuid.uuid4()), "created_at": square_time(at),
                  "data": {"type": data_type, "id": data_id}})
    if data_object is not None:
        event["data"]["object"] = _copy(data_object)
    SquareObject.objects.create(merchant=merchant, object_type="event", square_id=event["event_id"], body=event,
                                created_at=at, updated_at=at, listed_from=at)
    return event


def _copy(body: Any) -> Any:
    return json.loads(json.dumps(body))


# --- merchants and locations --------------------------------------------------------------------------------------


def square_merchant_create(*, name: str = "Nordlys Friluft", merchant_id: str | None = None,
                           locations: Iterable[tuple[str, str]] = (("Oslo Sentrum", "ACTIVE"),),
                           currency: str = "NOK", timezone_name: str = "Europe/Oslo", country: str = "NO",
                           notification_url: str = "", signature_key: str | None = None,
                           application_id: str | None = None, application_secret: str | None = None,
                           personal_access_token: str | None = None, fee_later: bool = True,
                           list_delay_seconds: int = 0, token_lifetime_days: int = 30) -> SquareMerchant:
    """A seller with its locations (the first is the main one), a personal access token and a webhook
    subscription; the locations are given as (name, status)."""
    with transaction.atomic():
        merchant = SquareMerchant.objects.create(
            merchant_id=merchant_id or square_id(13, "ML"), name=name, notification_url=notification_url,
            signature_key=signature_key or base64.urlsafe_b64encode(
                secrets.token_bytes(DEFAULT_SIGNATURE_KEY_BYTES)).decode().rstrip("="),
            application_id=application_id or square_id(22, "sq0idp-"),
            application_secret=application_secret or _token("sq0csp-", 43),
            fee_later=fee_later, list_delay_seconds=list_delay_seconds, token_lifetime_days=token_lifetime_days)
        for index, (location_name, status) in enumerate(locations):
            square_location_create(merchant, location_name, status=status, currency=currency,
                                   timezone_name=timezone_name, country=country, main=index == 0)
        SquareToken.objects.create(merchant=merchant, flow=SquareToken.PERSONAL,
                                   access_token=personal_access_token or _token("EAAA", 60),
                                   issued_at=square_now(merchant))
    return merchant


def square_personal_token(merchant: SquareMerchant) -> str:
    """The merchant's personal access token (never expires: docs/square.md §3)."""
    return merchant.tokens.filter(flow=SquareToken.PERSONAL).values_list("access_token", flat=True).first()


def square_location_create(merchant: SquareMerchant, name: str, *, status: str = "ACTIVE", currency: str = "NOK",
                           timezone_name: str = "Europe/Oslo", country: str = "NO", main: bool = False,
                           location_id: str | None = None) -> dict:
    """A location (spec `Location`: id ≤32 characters, status ACTIVE|INACTIVE, currency used for all its
    transactions, timezone)."""
    at = square_now(merchant)
    body = {"id": location_id or square_id(13, "L"), "name": name, "status": status, "currency": currency,
            "timezone": timezone_name, "country": country, "merchant_id": merchant.merchant_id,
            "business_name": merchant.name, "type": "PHYSICAL", "language_code": "nb-NO", "mcc": "5941",
            "created_at": square_time(at), "capabilities": ["CREDIT_CARD_PROCESSING"]}
    _store(merchant, "location", body, at=at)
    if main:
        SquareMerchant.objects.filter(pk=merchant.pk).update(main_location_id=body["id"])
        merchant.main_location_id = body["id"]
    return body


def square_locations(merchant: SquareMerchant) -> dict[str, dict]:
    """The merchant's locations by name."""
    return {body["name"]: body for body in square_objects(merchant, "location")}


def square_location_status_set(merchant: SquareMerchant, location_id: str, status: str) -> dict:
    body = square_object_required(merchant, "location", location_id)
    body["status"] = status
    return _save(merchant, "location", body, at=square_now(merchant))


def _location(merchant: SquareMerchant, location_id: str | None) -> dict:
    return square_object_required(merchant, "location", location_id or merchant.main_location_id)


# --- payments -----------------------------------------------------------------------------------------------------


def square_fee_price(total: int) -> int:
    """The emulator's processing fee on `total` minor units (FEE_PERCENT, half up)."""
    return int((Decimal(total) * FEE_PERCENT / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _source_details(source_type: str, status: str, total: int, currency: str, at: str) -> dict:
    """The details object of a payment's source (spec Payment.card_details, wallet_details, cash_details...)."""
    card_status = {"COMPLETED": "CAPTURED", "APPROVED": "AUTHORIZED", "CANCELED": "VOIDED",
                   "FAILED": "FAILED"}.get(status, "AUTHORIZED")
    if source_type == "CARD":
        timeline = {"authorized_at": at}
        if card_status == "CAPTURED":
            timeline["captured_at"] = at
        return {"card_details": {
            "status": card_status, "entry_method": "EMV", "cvv_status": "CVV_NOT_CHECKED",
            "avs_status": "AVS_NOT_CHECKED", "statement_description": "SQ *NORDLYS FRILUFT",
            "card": {"card_brand": "VISA", "last_4": "1111", "exp_month": 12, "exp_year": 2030,
                     "card_type": "DEBIT", "prepaid_type": "NOT_PREPAID", "bin": "411111"},
            "card_payment_timeline": timeline}}
    if source_type == "WALLET":
        return {"wallet_details": {"status": card_status, "brand": "CASH_APP"}}
    if source_type == "CASH":
        # spec CashPaymentDetails: buyer_supplied_money required; change_back_money.
        supplied = -(-total // 10000) * 10000 if total % 10000 else total
        return {"cash_details": {"buyer_supplied_money": money(supplied, currency),
                                 "change_back_money": money(supplied - total, currency)}}
    if source_type == "EXTERNAL":
        return {"external_details": {"type": "OTHER_GIFT_CARD", "source": "Gavekort"}}
    if source_type == "BANK_ACCOUNT":
        return {"bank_account_details": {"bank_name": "Sandbox Bank", "transfer_type": "ACH",
                                         "account_ownership_type": "INDIVIDUAL"}}
    return {}


def square_payment_create(merchant: SquareMerchant, location_id: str | None = None, amount: int = 10000, *,
                          tip: int = 0, currency: str | None = None, source_type: str = "CARD",
                          status: str = "COMPLETED", fee: int | None = None, fee_later: bool | None = None,
                          customer_id: str | None = None, order_id: str | None = None,
                          note: str | None = None) -> dict:
    """A payment taken at the location (spec `Payment`); queues payment.created (spec PaymentCreatedEvent)."""
    if source_type not in SOURCE_TYPES:
        raise ValueError(f"Unknown source type {source_type}")
    if status not in ("APPROVED", "PENDING", "COMPLETED", "CANCELED", "FAILED"):
        raise ValueError(f"Unknown payment status {status}")
    location = _location(merchant, location_id)
    currency = currency or location["currency"]
    at = square_now(merchant)
    stamp = square_time(at)
    total = amount + tip
    body: dict[str, Any] = {
        "id": square_id(29), "created_at": stamp, "updated_at": stamp,
        "amount_money": money(amount, currency),
    }
    if tip:
        body["tip_money"] = money(tip, currency)
    body.update({"total_money": money(total, currency), "approved_money": money(total, currency),
                 "status": status, "source_type": source_type})
    body.update(_source_details(source_type, status, total, currency, stamp))
    body.update({"location_id": location["id"], "version_token": _token("", 43),
                 "application_details": {"square_product": "SQUARE_POS",
                                         "application_id": merchant.application_id}})
    body["receipt_number"] = body["id"][:4]
    body["receipt_url"] = f"https://squareupsandbox.com/receipt/preview/{body['id']}"
    pos_order = None
    if not order_id:
        # Every Square payment has an order: CreatePayment without an order_id makes one for it (review finding 4,
        # api.json Payment.order_id; Square's Take Payments guide). A POS payment here gets a one-line order of
        # its amount (the tip is the payment's, not a line), tendered by the payment and so COMPLETED.
        pos_order = square_order_create(merchant, location["id"], lines=[{"name": "Custom amount",
                                                                          "base_price": amount}],
                                        source_name="Square Point of Sale")
        order_id = pos_order["id"]
    body["order_id"] = order_id
    if customer_id:
        body["customer_id"] = customer_id
    if note:
        body["note"] = note
    if status == "APPROVED" and source_type == "CARD":
        # spec Payment.delay_duration: card-present default 36 hours, then delay_action.
        body.update({"delay_duration": "PT36H", "delay_action": "CANCEL",
                     "delayed_until": square_time(at + timedelta(hours=36))})
    later = merchant.fee_later if fee_later is None else fee_later
    if status == "COMPLETED" and source_type in CARD_TYPES and not later:
        body["processing_fee"] = [_fee_entry(fee if fee is not None else square_fee_price(total), currency, at)]
    elif fee is not None and status == "COMPLETED" and not later:
        body["processing_fee"] = [_fee_entry(fee, currency, at)]
    body["_fee_planned"] = fee  # the fee a later square_payment_fee_add books; removed before answering
    _store(merchant, "payment", body, at=at, listed_after_seconds=merchant.list_delay_seconds)
    if pos_order is not None and status == "COMPLETED":
        with transaction.atomic():
            _order_paid(merchant, order_id, body, at)
    square_event_emit(merchant, "payment.created", "payment", body["id"], {"payment": square_public(body)})
    return square_public(body)


def square_public(body: dict) -> dict:
    """The object as Square answers it (without the emulator's own bookkeeping keys, which start with `_`)."""
    return {key: value for key, value in body.items() if not key.startswith("_")}


def _fee_entry(amount: int, currency: str, at: datetime, fee_type: str = "INITIAL") -> dict:
    # spec ProcessingFee: effective_at, type ("INITIAL" | "ADJUSTMENT", a string), amount_money (may be negative).
    return {"effective_at": square_time(at), "type": fee_type, "amount_money": money(amount, currency)}


def _payment_touch(merchant: SquareMerchant, body: dict, at: datetime) -> dict:
    body["updated_at"] = square_time(at)
    body["version_token"] = _token("", 43)
    _save(merchant, "payment", body, at=at)
    square_event_emit(merchant, "payment.updated", "payment", body["id"], {"payment": square_public(body)})
    return square_public(body)


def square_payment_fee_add(merchant: SquareMerchant, payment_id: str, amount: int | None = None, *,
                           fee_type: str = "INITIAL") -> dict:
    """Square fills in the processing fee after the payment (docs/square.md §6: "usually available after about ten
    seconds"), or adjusts it: a `processing_fee[]` entry, updated_at and version_token bumped, payment.updated."""
    with transaction.atomic():
        row = SquareObject.objects.select_for_update().get(merchant=merchant, object_type="payment",
                                                           square_id=payment_id)
        body = row.body
        at = square_now(merchant)
        if amount is None:
            planned = body.get("_fee_planned")
            amount = planned if planned is not None else square_fee_price(body["total_money"]["amount"])
        body.setdefault("processing_fee", []).append(_fee_entry(amount, body["total_money"]["currency"], at,
                                                                fee_type))
        return _payment_touch(merchant, body, at)


def square_payment_complete(merchant: SquareMerchant, payment_id: str) -> dict:
    """CompletePayment: an APPROVED payment becomes COMPLETED (spec CompletePayment); its fee follows the switch."""
    with transaction.atomic():
        body = SquareObject.objects.select_for_update().get(merchant=merchant, object_type="payment",
                                                            square_id=payment_id).body
        if body["status"] != "APPROVED":
            raise SquareApiError(400, "BAD_REQUEST", f"Payment {payment_id} is {body['status']}, not APPROVED.")
        at = square_now(merchant)
        body["status"] = "COMPLETED"
        for key in ("delay_duration", "delay_action", "delayed_until"):
            body.pop(key, None)
        if "card_details" in body:
            body["card_details"]["status"] = "CAPTURED"
            body["card_details"]["card_payment_timeline"]["captured_at"] = square_time(at)
        if body["source_type"] in CARD_TYPES and not merchant.fee_later:
            planned = body.get("_fee_planned")
            body["processing_fee"] = [_fee_entry(planned if planned is not None else square_fee_price(
                body["total_money"]["amount"]), body["total_money"]["currency"], at)]
        return _payment_touch(merchant, body, at)


def square_payment_cancel(merchant: SquareMerchant, payment_id: str, *, status: str = "CANCELED") -> dict:
    """CancelPayment (or a failed capture): only an APPROVED or PENDING payment can end CANCELED or FAILED; a
    COMPLETED one is refunded instead (spec CancelPayment, Payment.status)."""
    if status not in ("CANCELED", "FAILED"):
        raise ValueError("A payment is cancelled to CANCELED or FAILED")
    with transaction.atomic():
        body = SquareObject.objects.select_for_update().get(merchant=merchant, object_type="payment",
                                                            square_id=payment_id).body
        if body["status"] not in ("APPROVED", "PENDING"):
            raise SquareApiError(400, "BAD_REQUEST", f"Payment {payment_id} is {body['status']}; only an APPROVED "
                                                     "or PENDING payment can be cancelled.")
        body["status"] = status
        if "card_details" in body:
            body["card_details"]["status"] = "VOIDED" if status == "CANCELED" else "FAILED"
        return _payment_touch(merchant, body, square_now(merchant))


# --- refunds ------------------------------------------------------------------------------------------------------


def square_refund_create(merchant: SquareMerchant, payment_id: str, amount: int, *, fee_returned: int = 0,
                         status: str = "COMPLETED", reason: str = "Returned goods") -> dict:
    """RefundPayment on a COMPLETED payment (spec `PaymentRefund`): the payment's refunded_money, refund_ids and
    updated_at change (payment.updated); refund.created. `fee_returned` > 0 → a negative processing_fee entry
    (docs/square.md §6: a negative entry is fee returned by Square)."""
    if status not in ("PENDING", "COMPLETED", "REJECTED", "FAILED"):
        raise ValueError(f"Unknown refund status {status}")
    with transaction.atomic():
        row = SquareObject.objects.select_for_update().get(merchant=merchant, object_type="payment",
                                                           square_id=payment_id)
        payment = row.body
        if payment["status"] != "COMPLETED":
            raise SquareApiError(400, "BAD_REQUEST", f"Payment {payment_id} is {payment['status']}; only a "
                                                     "COMPLETED payment can be refunded.", category="REFUND_ERROR")
        currency = payment["total_money"]["currency"]
        refunded = (payment.get("refunded_money") or {}).get("amount", 0)
        if not 0 < amount <= payment["total_money"]["amount"] - refunded:
            raise SquareApiError(400, "REFUND_AMOUNT_INVALID", f"Refund of {amount} exceeds what is left of "
                                                               f"payment {payment_id}.", category="REFUND_ERROR")
        at = square_now(merchant)
        stamp = square_time(at)
        refund: dict[str, Any] = {
            "id": f"{payment_id}_{square_id(20)}", "status": status, "location_id": payment["location_id"],
            "unlinked": False, "destination_type": payment["source_type"], "amount_money": money(amount, currency),
            "payment_id": payment_id, "reason": reason, "created_at": stamp, "updated_at": stamp,
        }
        if payment.get("order_id"):
            refund["order_id"] = payment["order_id"]
        if fee_returned and status == "COMPLETED":
            refund["processing_fee"] = [_fee_entry(-fee_returned, currency, at)]
        refund["_fee_returned"] = fee_returned
        _store(merchant, "refund", refund, at=at, listed_after_seconds=merchant.list_delay_seconds)
        if status in ("PENDING", "COMPLETED"):
            payment["refunded_money"] = money(refunded + amount, currency)
        payment.setdefault("refund_ids", []).append(refund["id"])
        square_event_emit(merchant, "refund.created", "refund", refund["id"], {"refund": square_public(refund)})
        _payment_touch(merchant, payment, at)
    return square_public(refund)


def square_refund_complete(merchant: SquareMerchant, refund_id: str, *, status: str = "COMPLETED",
                           fee_returned: int | None = None) -> dict:
    """A PENDING refund ends COMPLETED, FAILED or REJECTED (spec PaymentRefund.status); refund.updated, and the
    payment's refunded_money goes back down when it did not complete."""
    if status not in ("COMPLETED", "FAILED", "REJECTED"):
        raise ValueError(f"A refund ends COMPLETED, FAILED or REJECTED, not {status}")
    with transaction.atomic():
        refund = SquareObject.objects.select_for_update().get(merchant=merchant, object_type="refund",
                                                              square_id=refund_id).body
        if refund["status"] != "PENDING":
            raise SquareApiError(400, "BAD_REQUEST", f"Refund {refund_id} is {refund['status']}, not PENDING.")
        at = square_now(merchant)
        refund["status"] = status
        refund["updated_at"] = square_time(at)
        returned = refund.get("_fee_returned", 0) if fee_returned is None else fee_returned
        if status == "COMPLETED" and returned:
            refund["processing_fee"] = [_fee_entry(-returned, refund["amount_money"]["currency"], at)]
        _save(merchant, "refund", refund, at=at)
        square_event_emit(merchant, "refund.updated", "refund", refund_id, {"refund": square_public(refund)})
        if status != "COMPLETED":
            payment = SquareObject.objects.select_for_update().get(merchant=merchant, object_type="payment",
                                                                   square_id=refund["payment_id"]).body
            left = payment["refunded_money"]["amount"] - refund["amount_money"]["amount"]
            payment["refunded_money"] = money(left, payment["refunded_money"]["currency"])
            _payment_touch(merchant, payment, at)
    return square_public(refund)


# --- OAuth --------------------------------------------------------------------------------------------------------


def square_oauth_tokens_issue(merchant: SquareMerchant, *, pkce: bool = False,
                              issued_at: datetime | None = None) -> tuple[str, str, str]:
    """The seller authorized the application: (access_token, refresh_token, expires_at as Square writes it).
    `issued_at` backdates the grant (e.g. a 29.5-day-old token)."""
    token = _tokens_issue(merchant, pkce=pkce, issued_at=issued_at or square_now(merchant))
    return token.access_token, token.refresh_token, square_expiry_time(token.expires_at)


def _tokens_issue(merchant: SquareMerchant, *, pkce: bool, issued_at: datetime,
                  refresh_token: str | None = None) -> SquareToken:
    return SquareToken.objects.create(
        merchant=merchant, flow=SquareToken.PKCE if pkce else SquareToken.CODE,
        access_token=_token("EAAA", 60), issued_at=issued_at,
        expires_at=issued_at + timedelta(days=merchant.token_lifetime_days),
        refresh_token=refresh_token or _token("EQAA", 60),
        refresh_token_expires_at=issued_at + PKCE_REFRESH_LIFETIME if pkce else None)


def square_oauth_code_issue(merchant: SquareMerchant, *, code_challenge: str = "") -> str:
    """An authorization code, as the seller's consent redirect carries it (with PKCE: for this code_challenge)."""
    code = _token("sq0cgp-", 22)
    SquareAuthorizationCode.objects.create(merchant=merchant, code=code, code_challenge=code_challenge,
                                           issued_at=square_now(merchant))
    return code


def square_pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(SHA-256(code_verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _refused(detail: str) -> SquareApiError:
    # What ObtainToken answers for a refused code or refresh token is not confirmed (docs/square.md §3: the spec
    # lists only 200); the emulator answers 401 UNAUTHORIZED, the stricter reading (a client must not retry it).
    return SquareApiError(401, "UNAUTHORIZED", detail)


def square_token_obtain(body: dict) -> dict:
    """ObtainToken (spec `ObtainToken`, docs/square.md §3 table): authorization_code or refresh_token; code flow
    keeps its refresh token, PKCE gets a new single-use one; a refresh more than REFRESH_GRACE after the access
    token expired, a spent PKCE token or a revoked grant → refused."""
    grant_type = body.get("grant_type")
    client_id = body.get("client_id")
    secret = body.get("client_secret")
    if grant_type == "authorization_code":
        with transaction.atomic():
            code = SquareAuthorizationCode.objects.select_for_update().filter(code=body.get("code") or "").first()
            if code is None or code.merchant.application_id != client_id:
                raise _refused("The authorization code is not valid for this client.")
            merchant = code.merchant
            now = square_now(merchant)
            if code.used_at or now - code.issued_at > AUTHORIZATION_CODE_LIFETIME:
                raise _refused("The authorization code was used or has expired.")
            pkce = bool(code.code_challenge)
            if pkce:
                if square_pkce_challenge(body.get("code_verifier") or "") != code.code_challenge:
                    raise _refused("The code_verifier does not match the code_challenge.")
            elif secret != merchant.application_secret:
                raise _refused("Invalid client_secret.")
            code.used_at = now
            code.save(update_fields=["used_at"])
            token = _tokens_issue(merchant, pkce=pkce, issued_at=now)
    elif grant_type == "refresh_token":
        with transaction.atomic():
            token = (SquareToken.objects.select_for_update().select_related("merchant")
                     .filter(refresh_token=body.get("refresh_token") or "").exclude(flow=SquareToken.PERSONAL)
                     .order_by("-pk").first())
            if token is None or token.merchant.application_id != client_id:
                raise _refused("The refresh token is not valid for this client (unknown, or the seller revoked "
                               "the authorization).")
            merchant = token.merchant
            now = square_now(merchant)
            if token.flow == SquareToken.CODE and secret != merchant.application_secret:
                raise _refused("Invalid client_secret.")
            if token.flow == SquareToken.PKCE:
                if token.refresh_used_at:
                    raise _refused("The refresh token was already used (PKCE refresh tokens are single use).")
                if now > token.refresh_token_expires_at:
                    raise _refused("The refresh token has expired (PKCE refresh tokens live 90 days).")
            if now > token.expires_at + REFRESH_GRACE:
                raise _refused("The refresh token can no longer be used: the access token expired more than "
                               "15 days ago; the seller must authorize again.")
            if token.flow == SquareToken.PKCE:
                token.refresh_used_at = now
                token.save(update_fields=["refresh_used_at"])
                token = _tokens_issue(merchant, pkce=True, issued_at=now)
            else:
                token = _tokens_issue(merchant, pkce=False, issued_at=now, refresh_token=token.refresh_token)
    else:
        raise SquareApiError(400, "INVALID_VALUE", f"Unsupported grant_type `{grant_type}`.", field="grant_type")
    answer = {"access_token": token.access_token, "token_type": "bearer",
              "expires_at": square_expiry_time(token.expires_at), "merchant_id": merchant.merchant_id,
              "refresh_token": token.refresh_token, "short_lived": False}
    if token.flow == SquareToken.PKCE:
        answer["refresh_token_expires_at"] = square_expiry_time(token.refresh_token_expires_at)
    return answer


def square_token_authenticate(authorization: str | None) -> tuple[SquareMerchant, SquareToken]:
    """The merchant and token of `Authorization: Bearer …` (docs/square.md §3 "Errors"): unknown → 401
    UNAUTHORIZED, revoked → 401 ACCESS_TOKEN_REVOKED, expired by the merchant's clock → 401 ACCESS_TOKEN_EXPIRED
    (that status is not confirmed by a Square page; 401 is the stricter reading)."""
    scheme, _, credential = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise SquareApiError(401, "UNAUTHORIZED", "This request could not be authorized: give an access token as "
                                                  "`Authorization: Bearer ACCESS_TOKEN`.")
    token = SquareToken.objects.select_related("merchant").filter(access_token=credential.strip()).first()
    if token is None:
        raise SquareApiError(401, "UNAUTHORIZED", "This request could not be authorized.")
    if token.revoked_at:
        raise SquareApiError(401, "ACCESS_TOKEN_REVOKED", "The access token has been revoked.")
    if token.expires_at and square_now(token.merchant) >= token.expires_at:
        raise SquareApiError(401, "ACCESS_TOKEN_EXPIRED", "The access token has expired.")
    return token.merchant, token


def square_token_status(token: SquareToken) -> dict:
    """RetrieveTokenStatus (spec): scopes, expires_at ("Empty if the token never expires"), client_id,
    merchant_id."""
    answer = {"scopes": SCOPES, "client_id": token.merchant.application_id,
              "merchant_id": token.merchant.merchant_id}
    if token.expires_at:
        answer["expires_at"] = square_expiry_time(token.expires_at)
    return answer


def square_token_revoke(authorization: str | None, body: dict) -> tuple[SquareMerchant, dict]:
    """RevokeToken (spec): `Authorization: Client <application secret>`; revokes every token of the seller for
    the application, or only the access token with revoke_only_access_token; oauth.authorization.revoked."""
    scheme, _, secret = (authorization or "").partition(" ")
    # The seller is the one the access token (or merchant_id) names; one application may serve many sellers.
    if body.get("access_token"):
        token = SquareToken.objects.select_related("merchant").filter(access_token=body["access_token"]).first()
        merchant = token.merchant if token else None
    else:
        merchant = SquareMerchant.objects.filter(merchant_id=body.get("merchant_id") or "").first()
    if scheme != "Client" or merchant is None or merchant.application_id != body.get("client_id") \
            or secret.strip() != merchant.application_secret:
        raise SquareApiError(401, "UNAUTHORIZED", "RevokeToken takes `Authorization: Client APPLICATION_SECRET` "
                                                  "for the client_id, and an access_token or merchant_id it knows.")
    tokens = merchant.tokens.exclude(flow=SquareToken.PERSONAL).filter(revoked_at=None)
    if body.get("revoke_only_access_token"):
        # Only that access token; the refresh token still works (spec RevokeTokenRequest).
        tokens.filter(access_token=body.get("access_token") or "").update(revoked_at=square_now(merchant))
        return merchant, {"success": True}
    square_authorization_revoke(merchant, revoker_type="APPLICATION")
    return merchant, {"success": True}


def square_authorization_revoke(merchant: SquareMerchant, *, revoker_type: str = "MERCHANT") -> dict:
    """The seller (or the application, or Square) revoked the authorization: every OAuth token and refresh token is
    refused from now on; oauth.authorization.revoked (spec OauthAuthorizationRevokedEvent, data.id "not
    applicable")."""
    at = square_now(merchant)
    # A revoked grant's refresh tokens are gone: ObtainToken no longer knows them.
    merchant.tokens.exclude(flow=SquareToken.PERSONAL).update(revoked_at=at, refresh_token="")
    return square_event_emit(merchant, "oauth.authorization.revoked", "revocation", "",
                             {"revocation": {"revoked_at": square_time(at), "revoker_type": revoker_type}})


# --- switches, faults and the request log --------------------------------------------------------------------------


def square_switches_set(merchant: SquareMerchant, *, fee_later: bool | None = None,
                        list_delay_seconds: int | None = None, token_lifetime_days: int | None = None) -> None:
    """Turn the merchant's switches (docs/square-sandbox.md): a later fee for card payments, the delay before a new
    payment or refund is listed, the lifetime of OAuth access tokens issued from now on."""
    changes = {name: value for name, value in (("fee_later", fee_later), ("list_delay_seconds", list_delay_seconds),
                                               ("token_lifetime_days", token_lifetime_days)) if value is not None}
    for name, value in changes.items():
        setattr(merchant, name, value)
    merchant.save(update_fields=list(changes))


def square_requests_unfit() -> list[str]:
    """Every logged request that came without a Square-Version or did not fit api.json, described; empty when all
    did (what an end-to-end test asserts)."""
    return [f"{row.method} {row.path}?{row.query} → {row.status}: "
            f"{'no Square-Version; ' if not row.square_version else ''}{row.spec_problems}".rstrip("; ")
            for row in SquareRequest.objects.order_by("pk") if not row.square_version or row.spec_problems]


def square_fault_set(path_prefix: str, *, status: int = 500, times: int = 1, method: str = "",
                     after: int = 0) -> SquareFault:
    """After `after` calls whose API path (e.g. /v2/payments) starts with `path_prefix`, the next `times` get
    `status`: 500 INTERNAL_SERVER_ERROR, 503 SERVICE_UNAVAILABLE or 429 RATE_LIMITED without Retry-After
    (docs/square.md §8); 401: the OAuth access token the call presents expires then (a token running out in the
    middle of a sync), so this call and the next with it get 401 ACCESS_TOKEN_EXPIRED until it is refreshed."""
    if status not in (401, 429, 500, 503):
        raise ValueError("A fault is a 401 (token expiry), 429, 500 or 503")
    return SquareFault.objects.create(path_prefix=path_prefix, method=method.upper(), status=status,
                                      remaining=times, after=after)


def square_fault_take(method: str, path: str) -> int | None:
    """The status of a fault armed for this call (and one fewer left), or None."""
    taken = None
    with transaction.atomic():
        for fault in SquareFault.objects.select_for_update().filter(remaining__gt=0).order_by("pk"):
            if not path.startswith(fault.path_prefix) or fault.method not in ("", method.upper()):
                continue
            if fault.after:
                fault.after -= 1
                fault.save(update_fields=["after"])
            elif taken is None:
                fault.remaining -= 1
                fault.save(update_fields=["remaining"])
                taken = fault.status
    return taken


def square_token_expire(authorization: str | None) -> None:
    """The OAuth access token in `Authorization: Bearer …` expires now (by its merchant's clock); a personal token,
    which never expires, is left as it is."""
    _, _, credential = (authorization or "").partition(" ")
    token = SquareToken.objects.select_related("merchant").filter(access_token=credential.strip()).exclude(
        flow=SquareToken.PERSONAL).first()
    if token is not None and (token.expires_at is None or token.expires_at > square_now(token.merchant)):
        token.expires_at = square_now(token.merchant)
        token.save(update_fields=["expires_at"])


def square_fault_error(status: int) -> SquareApiError:
    if status == 429:
        return SquareApiError(429, "RATE_LIMITED", "Rate limit exceeded; retry with exponential backoff.")
    if status == 503:
        return SquareApiError(503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable.")
    return SquareApiError(500, "INTERNAL_SERVER_ERROR", "An internal error has occurred.")


# --- customers ----------------------------------------------------------------------------------------------------


def square_customer_create(merchant: SquareMerchant, *, given_name: str = "", family_name: str = "",
                           company_name: str = "", email_address: str = "", reference_id: str = "",
                           phone_number: str = "") -> dict:
    """A customer profile (spec `Customer`); `reference_id` is "an optional second ID used to associate the customer
    profile with an entity in another system" (here: the Visma customer number)."""
    at = square_now(merchant)
    body: dict[str, Any] = {"id": square_id(26), "created_at": square_time(at), "updated_at": square_time(at)}
    for field, value in (("given_name", given_name), ("family_name", family_name), ("company_name", company_name),
                         ("email_address", email_address), ("phone_number", phone_number),
                         ("reference_id", reference_id)):
        if value:
            body[field] = value
    body.update({"preferences": {"email_unsubscribed": False}, "creation_source": "THIRD_PARTY", "version": 0})
    return _store(merchant, "customer", body, at=at)


# --- orders -------------------------------------------------------------------------------------------------------


def _minor(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _shares(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights`, the rounding remainder on the last share (so the parts add up)."""
    whole = sum(weights)
    if not whole:
        return [0] * len(weights)
    parts = [_minor(Decimal(total) * weight / whole) for weight in weights[:-1]]
    return [*parts, total - sum(parts)]


def square_order_create(merchant: SquareMerchant, location_id: str | None = None, *, lines: list[dict],
                        taxes: list[dict] = (), discounts: list[dict] = (), customer_id: str | None = None,
                        reference_id: str | None = None, state: str = "OPEN", source_name: str = "Nordlys nettbutikk",
                        ) -> dict:
    """An order with its amounts computed as Square does (spec `Order`, `OrderLineItem`): per line gross sales =
    base price × quantity; discounts (FIXED_PERCENTAGE on each line, FIXED_AMOUNT shared by gross) then taxes on the
    discounted amount: ADDITIVE added to the line, INCLUSIVE part of it ("For Europe and Australia, inclusive tax
    remains as part of the gross sale": OrderLineItem.gross_sales_money). Half up per line (Square does not say
    how it rounds). ORDER-scope taxes and discounts apply to every line, LINE_ITEM ones to the lines naming them.

    lines: [{"name", "quantity": "2", "base_price": 10000, "taxes": ["VAT"], "discounts": ["Spring"]}] (names of
    LINE_ITEM-scope taxes and discounts); taxes: [{"name", "percentage": "25", "type": "ADDITIVE"|"INCLUSIVE",
    "scope": "ORDER"|"LINE_ITEM"}]; discounts: [{"name", "percentage": "10"} or {"name", "amount": 5000}, "scope"].
    """
    location = _location(merchant, location_id)
    currency = location["currency"]
    at = square_now(merchant)
    tax_bodies = [{"uid": f"tax-{index}", "name": tax["name"], "percentage": str(tax["percentage"]),
                   "type": tax.get("type", "ADDITIVE"), "scope": tax.get("scope", "ORDER")}
                  for index, tax in enumerate(taxes)]
    discount_bodies = []
    for index, discount in enumerate(discounts):
        body = {"uid": f"discount-{index}", "name": discount["name"], "scope": discount.get("scope", "ORDER")}
        if "percentage" in discount:
            body.update({"type": "FIXED_PERCENTAGE", "percentage": str(discount["percentage"])})
        else:
            body.update({"type": "FIXED_AMOUNT", "amount_money": money(discount["amount"], currency)})
        discount_bodies.append(body)
    line_bodies = []
    for index, line in enumerate(lines):
        quantity = Decimal(str(line.get("quantity", "1")))
        gross = _minor(quantity * line["base_price"])
        line_bodies.append({"uid": f"line-{index}", "name": line["name"], "quantity": str(line.get("quantity", "1")),
                            "item_type": "ITEM", "base_price_money": money(line["base_price"], currency),
                            "variation_total_price_money": money(gross, currency),
                            "gross_sales_money": money(gross, currency), "applied_taxes": [],
                            "applied_discounts": [], "_tax_names": line.get("taxes", []),
                            "_discount_names": line.get("discounts", [])})

    def applies(item: dict, line: dict, names_key: str) -> bool:
        return item["scope"] == "ORDER" or item["name"] in line[names_key]

    discount_of = [0] * len(line_bodies)
    for discount in discount_bodies:
        targets = [index for index, line in enumerate(line_bodies) if applies(discount, line, "_discount_names")]
        if discount["type"] == "FIXED_PERCENTAGE":
            amounts = [_minor(Decimal(line_bodies[index]["gross_sales_money"]["amount"])
                              * Decimal(discount["percentage"]) / 100) for index in targets]
        else:
            amounts = _shares(discount["amount_money"]["amount"],
                              [line_bodies[index]["gross_sales_money"]["amount"] for index in targets])
        for index, amount in zip(targets, amounts):
            discount_of[index] += amount
            line_bodies[index]["applied_discounts"].append({"uid": f"{discount['uid']}-{index}",
                                                            "discount_uid": discount["uid"],
                                                            "applied_money": money(amount, currency)})
        discount["applied_money"] = money(sum(amounts), currency)
    tax_of = [0] * len(line_bodies)
    additive_of = [0] * len(line_bodies)
    for tax in tax_bodies:
        rate = Decimal(tax["percentage"])
        applied = 0
        for index, line in enumerate(line_bodies):
            if not applies(tax, line, "_tax_names"):
                continue
            taxable = Decimal(line["gross_sales_money"]["amount"] - discount_of[index])
            amount = _minor(taxable * rate / 100) if tax["type"] == "ADDITIVE" else _minor(taxable * rate
                                                                                            / (100 + rate))
            tax_of[index] += amount
            if tax["type"] == "ADDITIVE":
                additive_of[index] += amount
            applied += amount
            line["applied_taxes"].append({"uid": f"{tax['uid']}-{index}", "tax_uid": tax["uid"],
                                          "applied_money": money(amount, currency)})
        tax["applied_money"] = money(applied, currency)
    for index, line in enumerate(line_bodies):
        line.pop("_tax_names")
        line.pop("_discount_names")
        line["total_discount_money"] = money(discount_of[index], currency)
        line["total_tax_money"] = money(tax_of[index], currency)
        line["total_service_charge_money"] = money(0, currency)
        line["total_money"] = money(line["gross_sales_money"]["amount"] - discount_of[index] + additive_of[index],
                                    currency)
        for key in ("applied_taxes", "applied_discounts"):
            if not line[key]:
                line.pop(key)
    total = sum(line["total_money"]["amount"] for line in line_bodies)
    stamp = square_time(at)
    order: dict[str, Any] = {"id": square_id(29), "location_id": location["id"], "source": {"name": source_name},
                             "line_items": line_bodies}
    if reference_id:
        order["reference_id"] = reference_id
    if customer_id:
        order["customer_id"] = customer_id
    if tax_bodies:
        order["taxes"] = tax_bodies
    if discount_bodies:
        order["discounts"] = discount_bodies
    order.update({
        "net_amounts": {"total_money": money(total, currency), "tax_money": money(sum(tax_of), currency),
                        "discount_money": money(sum(discount_of), currency), "tip_money": money(0, currency),
                        "service_charge_money": money(0, currency)},
        "created_at": stamp, "updated_at": stamp, "state": state, "version": 1,
        "total_money": money(total, currency), "total_tax_money": money(sum(tax_of), currency),
        "total_discount_money": money(sum(discount_of), currency), "total_tip_money": money(0, currency),
        "total_service_charge_money": money(0, currency), "net_amount_due_money": money(total, currency)})
    if state == "COMPLETED":
        order["closed_at"] = stamp
    return _store(merchant, "order", order, at=at)


def _order_paid(merchant: SquareMerchant, order_id: str, payment: dict, at: datetime) -> dict:
    """A payment tendered for the order: a tender, the amount due down, COMPLETED (closed_at) when nothing is due."""
    order = SquareObject.objects.select_for_update().get(merchant=merchant, object_type="order",
                                                         square_id=order_id).body
    tender_type = payment["source_type"] if payment["source_type"] in ("CARD", "CASH", "WALLET", "BANK_ACCOUNT") \
        else "OTHER"
    order.setdefault("tenders", []).append({
        "id": payment["id"], "location_id": payment["location_id"], "transaction_id": order_id,
        "created_at": payment["created_at"], "amount_money": payment["amount_money"], "type": tender_type,
        "payment_id": payment["id"]})
    due = order["net_amount_due_money"]["amount"] - payment["amount_money"]["amount"]
    order["net_amount_due_money"] = money(max(due, 0), order["total_money"]["currency"])
    if due <= 0:
        order["state"] = "COMPLETED"
        order["closed_at"] = square_time(at)
    order["version"] += 1
    order["updated_at"] = square_time(at)
    return _save(merchant, "order", order, at=at)


# --- invoices -----------------------------------------------------------------------------------------------------


def _invoice_event(merchant: SquareMerchant, event_type: str, invoice: dict) -> dict:
    return square_event_emit(merchant, event_type, "invoice", invoice["id"], {"invoice": square_public(_copy(invoice))})


def _invoice_locked(merchant: SquareMerchant, invoice_id: str) -> dict:
    return SquareObject.objects.select_for_update().get(merchant=merchant, object_type="invoice",
                                                        square_id=invoice_id).body


def _invoice_save(merchant: SquareMerchant, invoice: dict, at: datetime) -> dict:
    invoice["version"] += 1
    invoice["updated_at"] = square_time(at)
    return _save(merchant, "invoice", invoice, at=at)


def square_invoice_create(merchant: SquareMerchant, order_id: str, customer_id: str, *, due_date: str | None = None,
                          title: str = "", description: str = "", invoice_number: str | None = None,
                          publish: bool = False) -> dict:
    """A DRAFT invoice for the order (spec `Invoice`: one BALANCE payment request due on `due_date`, the customer as
    primary recipient, version 0); invoice.created. With `publish`, published at once."""
    order = square_object_required(merchant, "order", order_id)
    customer = square_object_required(merchant, "customer", customer_id)
    at = square_now(merchant)
    stamp = square_time(at)
    location = square_object_required(merchant, "location", order["location_id"])
    recipient = {"customer_id": customer_id}
    for field in ("given_name", "family_name", "email_address", "company_name", "phone_number"):
        if customer.get(field):
            recipient[field] = customer[field]
    invoice: dict[str, Any] = {
        # Invoice ids look like inv:0-ChCHu2mZEabLeeHahQnXDjZQECY (spec GetInvoice example).
        "id": "inv:0-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(28)),
        "version": 0, "location_id": order["location_id"], "order_id": order_id,
        "primary_recipient": recipient,
        "payment_requests": [{"uid": str(uuid.uuid4()), "request_type": "BALANCE",
                              "due_date": due_date or (at + timedelta(days=14)).date().isoformat(),
                              "tipping_enabled": False, "automatic_payment_source": "NONE",
                              "computed_amount_money": order["total_money"],
                              "total_completed_amount_money": money(0, order["total_money"]["currency"])}],
        "delivery_method": "EMAIL", "status": "DRAFT", "timezone": location["timezone"],
        "created_at": stamp, "updated_at": stamp,
        "accepted_payment_methods": {"card": True, "square_gift_card": False, "bank_account": False,
                                     "buy_now_pay_later": False, "cash_app_pay": False},
        "sale_or_service_date": at.date().isoformat(), "store_payment_method_enabled": False,
    }
    if invoice_number:
        invoice["invoice_number"] = invoice_number
    if title:
        invoice["title"] = title
    if description:
        invoice["description"] = description
    _store(merchant, "invoice", invoice, at=at)
    _invoice_event(merchant, "invoice.created", invoice)
    return square_invoice_publish(merchant, invoice["id"]) if publish else invoice


def square_invoice_publish(merchant: SquareMerchant, invoice_id: str) -> dict:
    """PublishInvoice: DRAFT → UNPAID, an invoice number if it had none ("increments from 1 … 7 characters long":
    spec Invoice.invoice_number, unique within a location), public_url, next_payment_amount_money; invoice.published."""
    with transaction.atomic():
        invoice = _invoice_locked(merchant, invoice_id)
        if invoice["status"] != "DRAFT":
            raise SquareApiError(400, "BAD_REQUEST", f"Invoice {invoice_id} is {invoice['status']}, not DRAFT.")
        at = square_now(merchant)
        if "invoice_number" not in invoice:
            numbered = [body for body in square_objects(merchant, "invoice")
                        if body["location_id"] == invoice["location_id"] and body.get("invoice_number", "").isdigit()]
            invoice["invoice_number"] = f"{max((int(body['invoice_number']) for body in numbered), default=0) + 1:07d}"
        invoice["status"] = "UNPAID"
        # Square keeps the publication date (SearchInvoices sorts published invoices by it: InvoiceSortField
        # INVOICE_SORT_DATE) but does not answer it: a bookkeeping key, left out of every answer.
        invoice["_published_at"] = square_time(at)
        invoice["public_url"] = f"https://squareupsandbox.com/pay-invoice/{invoice_id}"
        invoice["next_payment_amount_money"] = invoice["payment_requests"][0]["computed_amount_money"]
        _invoice_save(merchant, invoice, at)
        _invoice_event(merchant, "invoice.published", invoice)
    return square_public(invoice)


def square_invoice_pay(merchant: SquareMerchant, invoice_id: str, amount: int | None = None, *,
                       source_type: str = "CARD", fee: int | None = None, fee_later: bool | None = None) -> dict:
    """The customer pays (all that is left, or `amount`): a payment with the invoice's order_id and customer
    (payment.created), the order tendered, the invoice PAID or PARTIALLY_PAID (invoice.payment_made). The payment."""
    with transaction.atomic():
        invoice = _invoice_locked(merchant, invoice_id)
        if invoice["status"] not in ("UNPAID", "PARTIALLY_PAID", "SCHEDULED"):
            raise SquareApiError(400, "BAD_REQUEST", f"Invoice {invoice_id} is {invoice['status']}; it cannot be "
                                                     "paid.")
        request = invoice["payment_requests"][0]
        left = request["computed_amount_money"]["amount"] - request["total_completed_amount_money"]["amount"]
        amount = left if amount is None else amount
        if not 0 < amount <= left:
            raise SquareApiError(400, "BAD_REQUEST", f"Payment of {amount} does not fit the {left} left.")
        payment = square_payment_create(merchant, invoice["location_id"], amount, source_type=source_type, fee=fee,
                                        fee_later=fee_later, customer_id=invoice["primary_recipient"]["customer_id"],
                                        order_id=invoice["order_id"])
        at = square_now(merchant)
        _order_paid(merchant, invoice["order_id"], payment, at)
        request["total_completed_amount_money"] = money(request["total_completed_amount_money"]["amount"] + amount,
                                                        request["computed_amount_money"]["currency"])
        paid_in_full = amount == left
        invoice["status"] = "PAID" if paid_in_full else "PARTIALLY_PAID"
        if paid_in_full:
            invoice.pop("next_payment_amount_money", None)
        else:
            invoice["next_payment_amount_money"] = money(left - amount, request["computed_amount_money"]["currency"])
        _invoice_save(merchant, invoice, at)
        _invoice_event(merchant, "invoice.payment_made", invoice)
    return payment


def square_invoice_refund(merchant: SquareMerchant, invoice_id: str, amount: int, *, fee_returned: int = 0) -> dict:
    """A refund of the invoice's (last) payment (refund.created, payment.updated); the invoice PARTIALLY_REFUNDED or
    REFUNDED (invoice.refunded). The refund."""
    with transaction.atomic():
        invoice = _invoice_locked(merchant, invoice_id)
        order = square_object_required(merchant, "order", invoice["order_id"])
        payment_id = (order.get("tenders") or [{}])[-1].get("payment_id")
        if not payment_id:
            raise SquareApiError(400, "BAD_REQUEST", f"Invoice {invoice_id} has no payment to refund.")
        refund = square_refund_create(merchant, payment_id, amount, fee_returned=fee_returned)
        paid = invoice["payment_requests"][0]["total_completed_amount_money"]["amount"]
        refunded = sum(square_object_required(merchant, "refund", refund_id)["amount_money"]["amount"]
                       for tender in order.get("tenders", [])
                       for refund_id in square_object_required(merchant, "payment", tender["payment_id"]).get(
                           "refund_ids", []))
        invoice["status"] = "REFUNDED" if refunded >= paid else "PARTIALLY_REFUNDED"
        _invoice_save(merchant, invoice, square_now(merchant))
        _invoice_event(merchant, "invoice.refunded", invoice)
    return refund


def square_invoice_cancel(merchant: SquareMerchant, invoice_id: str) -> dict:
    """CancelInvoice: a published, unpaid invoice → CANCELED (spec CancelInvoice); invoice.canceled."""
    with transaction.atomic():
        invoice = _invoice_locked(merchant, invoice_id)
        if invoice["status"] not in ("UNPAID", "SCHEDULED", "PARTIALLY_PAID"):
            raise SquareApiError(400, "BAD_REQUEST", f"Invoice {invoice_id} is {invoice['status']}; it cannot be "
                                                     "canceled.")
        invoice["status"] = "CANCELED"
        invoice.pop("next_payment_amount_money", None)
        _invoice_save(merchant, invoice, square_now(merchant))
        _invoice_event(merchant, "invoice.canceled", invoice)
    return square_public(invoice)


def square_invoice_update(merchant: SquareMerchant, invoice_id: str, **changes: Any) -> dict:
    """UpdateInvoice of title, description or the due date (`due_date`); version + 1, invoice.updated."""
    with transaction.atomic():
        invoice = _invoice_locked(merchant, invoice_id)
        for field, value in changes.items():
            if field == "due_date":
                invoice["payment_requests"][0]["due_date"] = value
            elif field in ("title", "description"):
                invoice[field] = value
            else:
                raise ValueError(f"The emulator updates title, description and due_date, not {field}")
        _invoice_save(merchant, invoice, square_now(merchant))
        _invoice_event(merchant, "invoice.updated", invoice)
    return square_public(invoice)


# --- vendors ------------------------------------------------------------------------------------------------------


def _vendor_event(merchant: SquareMerchant, operation: str, vendor: dict) -> dict:
    # spec VendorCreatedEvent / VendorUpdatedEvent: {operation, vendor}, location_id on the envelope (BETA).
    return square_event_emit(merchant, f"vendor.{operation.lower()}", "vendor", vendor["id"],
                             {"operation": operation, "vendor": vendor}, location_id=merchant.main_location_id)


def square_vendor_create(merchant: SquareMerchant, name: str, *, status: str = "ACTIVE", account_number: str = "",
                         note: str = "", contact_name: str = "", contact_email: str = "") -> dict:
    """A vendor (spec `Vendor`, BETA: name ≤100, status ACTIVE|INACTIVE, version); vendor.created."""
    if status not in ("ACTIVE", "INACTIVE"):
        raise ValueError(f"A vendor is ACTIVE or INACTIVE, not {status}")
    at = square_now(merchant)
    vendor: dict[str, Any] = {"id": square_id(16), "created_at": square_time(at), "updated_at": square_time(at),
                              "name": name[:100]}
    if contact_name or contact_email:
        contact = {"id": square_id(16), "ordinal": 0, "removed": False}
        if contact_name:
            contact["name"] = contact_name
        if contact_email:
            contact["email_address"] = contact_email
        vendor["contacts"] = [contact]
    if account_number:
        vendor["account_number"] = account_number
    if note:
        vendor["note"] = note
    vendor.update({"version": 1, "status": status})
    _store(merchant, "vendor", vendor, at=at)
    _vendor_event(merchant, "CREATED", vendor)
    return vendor


def square_vendor_update(merchant: SquareMerchant, vendor_id: str, **changes: Any) -> dict:
    """UpdateVendor of name, status, account_number or note; version + 1; vendor.updated."""
    with transaction.atomic():
        vendor = SquareObject.objects.select_for_update().get(merchant=merchant, object_type="vendor",
                                                              square_id=vendor_id).body
        for field, value in changes.items():
            if field not in ("name", "status", "account_number", "note"):
                raise ValueError(f"The emulator updates name, status, account_number and note, not {field}")
            vendor[field] = value
        at = square_now(merchant)
        vendor["version"] += 1
        vendor["updated_at"] = square_time(at)
        _save(merchant, "vendor", vendor, at=at)
        _vendor_event(merchant, "UPDATED", vendor)
    return vendor
