"""The PayPal emulator: client-credentials tokens, captures and refunds (with fees and `up` links), orders,
Transaction Search (31-day ranges, late publication, RESULTSET_TOO_LARGE) and Invoicing v2, kept in the database.

Money moves only through these services (the seed, the tests, the demo); each raises the webhook event PayPal
would, which `sandbox.paypal_webhooks` signs and delivers to the subscriptions.
"""
from __future__ import annotations

import hashlib
import json
import math
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from mappings.money import minor_units, quantize

from .models import (
    PayPalApp,
    PayPalIdempotentRequest,
    PayPalObject,
    PayPalToken,
    PayPalTransaction,
    PayPalWebhookEvent,
)

PAYPAL_SANDBOX_CLIENT_ID = "ml-connector-paypal-sandbox"
PAYPAL_SANDBOX_CLIENT_SECRET = "paypal-sandbox-client-secret"
PAYPAL_SANDBOX_APP_ID = "APP-80W284485P519543T"
MERCHANT_ID = "7QKXHCJ8V3M2N"
MERCHANT_EMAIL = "payments@nordlys-friluft.example"
ACCOUNT_NUMBER = "7QKXHCJ8V3M2N"
TOKEN_SCOPES = " ".join([
    "https://uri.paypal.com/services/invoicing", "https://uri.paypal.com/services/payments/refund",
    "https://uri.paypal.com/services/payments/payment/authcapture",
    "https://uri.paypal.com/services/reporting/search/read", "https://uri.paypal.com/services/applications/webhooks",
])
# Transaction Search: "The maximum supported range is 31 days."
SEARCH_MAX_RANGE = timedelta(days=31)
# Checkout fees as the emulator charges them: a rate plus a fixed part per currency (PayPal's Nordic pricing shape).
FEE_RATE = Decimal("0.0349")
FIXED_FEE = {"EUR": "0.39", "SEK": "3.25", "NOK": "3.90", "DKK": "2.60", "USD": "0.49", "GBP": "0.30", "JPY": "40"}
# Transaction event codes (https://developer.paypal.com/docs/transaction-search/transaction-event-codes).
T_CHECKOUT_PAYMENT = "T0006"
T_INVOICE_PAYMENT = "T0007"
T_REFUND = "T1107"
T_REVERSAL = "T1106"
# PayPal's T-codes (developer.paypal.com/docs/transaction-search/transaction-event-codes): T1201 a chargeback, T0106 the
# chargeback fee taken with it (as in a settlement report: phabricator.wikimedia.org/T418191, T1201 then T0106).
T_CHARGEBACK = "T1201"
T_CHARGEBACK_FEE = "T0106"
# Money held and given back around a dispute: T1110 a hold for dispute investigation (a debit), T1111 its release
# (a credit), T1202 a chargeback reversal (a won chargeback, a credit). Same table; the hold and release pair as in
# the settlement report above.
T_DISPUTE_HOLD, T_DISPUTE_HOLD_RELEASE, T_CHARGEBACK_REVERSAL = "T1110", "T1111", "T1202"
DISPUTE_FUNDS_DIRECTION = {T_DISPUTE_HOLD: -1, T_DISPUTE_HOLD_RELEASE: 1, T_CHARGEBACK_REVERSAL: 1}


class PayPalApiError(Exception):
    """An error answer PayPal gives: status, JSON body (`name`, `message`, `debug_id`, `details`), headers."""

    def __init__(self, status: int, body: dict, headers: Mapping[str, str] | None = None):
        super().__init__(body.get("message") or body.get("error_description") or str(body))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    @classmethod
    def named(cls, status: int, name: str, message: str, details: list[dict] | None = None) -> PayPalApiError:
        body = {"name": name, "message": message, "debug_id": secrets.token_hex(7)}
        if details:
            body["details"] = details
        body["links"] = [{"href": f"https://developer.paypal.com/docs/api/overview/#error-{name.lower()}",
                          "rel": "information_link", "method": "GET"}]
        return cls(status, body)

    @classmethod
    def invalid(cls, problems: list[str], location: str = "body") -> PayPalApiError:
        return cls.named(
            400, "INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates schema.",
            [{"field": problem.split(":", 1)[0], "location": location, "issue": "INVALID_PARAMETER_SYNTAX",
              "description": problem} for problem in problems],
        )

    @classmethod
    def not_found(cls, what: str) -> PayPalApiError:
        return cls.named(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist.", [
            {"issue": "INVALID_RESOURCE_ID", "description": f"Specified resource ID {what} does not exist."}])

    @classmethod
    def unprocessable(cls, issue: str, description: str) -> PayPalApiError:
        return cls.named(422, "UNPROCESSABLE_ENTITY",
                         "The requested action could not be performed, semantically incorrect, or failed business "
                         "validation.", [{"issue": issue, "description": description}])


# --- ids, money, times ----------------------------------------------------------------------------------------

_ID_ALPHABET = string.ascii_uppercase + string.digits


def paypal_new_id(length: int = 17) -> str:
    """An id shaped like PayPal's transaction, order and payer ids (17 or 13 upper-case letters and digits)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def paypal_invoice_new_id() -> str:
    return "INV2-" + "-".join(paypal_new_id(4) for _ in range(4))


def money(amount: Decimal, currency: str) -> dict:
    """PayPal's money object: the value a decimal string with exactly the currency's minor units."""
    return {"currency_code": currency, "value": f"{quantize(Decimal(amount), currency):f}"}


def money_value(document: Mapping | None) -> Decimal:
    return Decimal(str((document or {}).get("value") or "0"))


def paypal_fee(gross: Decimal, currency: str) -> Decimal:
    fixed = Decimal(FIXED_FEE.get(currency, "0.35"))
    fee = (gross * FEE_RATE + fixed).quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)
    return min(fee, gross)


def paypal_time_format(moment: datetime) -> str:
    """How PayPal's Payments and Invoicing APIs write times: UTC, seconds, Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_time_format(moment: datetime) -> str:
    """How Transaction Search writes times in its rows: "2026-03-02T10:15:00+0000"."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def paypal_now() -> datetime:
    return timezone.now().replace(microsecond=0)


# --- apps and tokens ------------------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def paypal_token_issue(*, client_id: str | None, client_secret: str | None, grant_type: str | None) -> dict:
    """POST /v1/oauth2/token: a bearer token for a known app (client id and secret by HTTP Basic)."""
    app = PayPalApp.objects.filter(client_id=client_id or "").first()
    if app is None or not secrets.compare_digest(app.client_secret.encode(), (client_secret or "").encode()):
        raise PayPalApiError(401, {"error": "invalid_client", "error_description": "Client Authentication failed"})
    if grant_type != "client_credentials":
        raise PayPalApiError(400, {"error": "unsupported_grant_type",
                                   "error_description": f"Grant Type {grant_type or 'is NULL'} is not supported"})
    token = "A21AA" + secrets.token_urlsafe(48)
    now = timezone.now()
    PayPalToken.objects.create(
        token_digest=_digest(token), app=app, issued_at=now,
        expires_at=now + timedelta(seconds=app.token_lifetime_seconds),
    )
    return {
        "scope": TOKEN_SCOPES, "access_token": token, "token_type": "Bearer", "app_id": app.app_id,
        "expires_in": app.token_lifetime_seconds, "nonce": f"{paypal_time_format(now)}{secrets.token_urlsafe(32)}",
    }


def paypal_caller_authenticate(authorization: str | None) -> PayPalApp:
    """The app behind a bearer token; 401 invalid_token as PayPal answers it otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise PayPalApiError(401, {"error": "invalid_token", "error_description": "No token provided"})
    found = PayPalToken.objects.select_related("app").filter(token_digest=_digest(token.strip())).first()
    if found is None:
        raise PayPalApiError(401, {"error": "invalid_token",
                                   "error_description": "Token signature verification failed"})
    if found.expires_at <= timezone.now():
        raise PayPalApiError(401, {"error": "invalid_token", "error_description": "Access Token expired"})
    return found.app


def paypal_sandbox_configure(*, publication_delay: timedelta | None = None, token_lifetime_seconds: int | None = None,
                             search_result_limit: int | None = None) -> int:
    """Change how the emulated PayPal behaves for every app (tests make these small or large)."""
    changes = {}
    if publication_delay is not None:
        changes["publication_delay_seconds"] = int(publication_delay.total_seconds())
    if token_lifetime_seconds is not None:
        changes["token_lifetime_seconds"] = token_lifetime_seconds
    if search_result_limit is not None:
        changes["search_result_limit"] = search_result_limit
    return PayPalApp.objects.update(**changes)


def _publication_delay() -> timedelta:
    seconds = PayPalApp.objects.aggregate(delay=Max("publication_delay_seconds"))["delay"] or 0
    return timedelta(seconds=seconds)


# --- objects --------------------------------------------------------------------------------------------------


def paypal_object(kind: str, object_id: str) -> PayPalObject:
    found = PayPalObject.objects.filter(kind=kind, object_id=object_id).first()
    if found is None:
        raise PayPalApiError.not_found(object_id)
    return found


def paypal_render(body, base_url: str):
    """A stored body as the API serves it: links absolute under the emulator's base URL, private keys dropped."""
    if isinstance(body, dict):
        rendered = {key: paypal_render(value, base_url) for key, value in body.items() if not key.startswith("_")}
        href = rendered.get("href")
        if isinstance(href, str) and href.startswith("/"):
            rendered["href"] = base_url.rstrip("/") + href
        return rendered
    if isinstance(body, list):
        return [paypal_render(item, base_url) for item in body]
    return body


def _save(kind: str, object_id: str, body: dict, at: datetime) -> PayPalObject:
    found, created = PayPalObject.objects.get_or_create(
        kind=kind, object_id=object_id, defaults={"body": body, "created_at": at, "updated_at": at}
    )
    if not created:
        found.body, found.updated_at = body, at
        found.save(update_fields=["body", "updated_at"])
    return found


@dataclass(frozen=True)
class Payer:
    """A PayPal buyer: the payer id (13 characters), email, name and country PayPal knows them by."""

    payer_id: str
    email: str
    given_name: str
    surname: str
    country: str = "SE"

    def order_payer(self) -> dict:
        return {"name": {"given_name": self.given_name, "surname": self.surname}, "email_address": self.email,
                "payer_id": self.payer_id, "address": {"country_code": self.country}}

    def search_payer(self) -> dict:
        return {"account_id": self.payer_id, "email_address": self.email, "address_status": "Y", "payer_status": "Y",
                "payer_name": {"given_name": self.given_name, "surname": self.surname,
                               "alternate_full_name": f"{self.given_name} {self.surname}"},
                "country_code": self.country}


def _search_row(*, transaction_id: str, event_code: str, at: datetime, amount: Decimal, fee: Decimal | None,
                currency: str, payer: Mapping | None, reference_id: str = "", invoice_id: str = "",
                custom_id: str = "", status: str = "S", delay: timedelta | None = None) -> PayPalTransaction:
    info = {
        "paypal_account_id": (payer or {}).get("account_id", ""),
        "transaction_id": transaction_id,
        "transaction_event_code": event_code,
        "transaction_initiation_date": search_time_format(at),
        "transaction_updated_date": search_time_format(at),
        "transaction_amount": money(amount, currency),
        "transaction_status": status,
        "protection_eligibility": "01",
    }
    if fee:
        info["fee_amount"] = money(fee, currency)
    if reference_id:
        info["paypal_reference_id"], info["paypal_reference_id_type"] = reference_id, "TXN"
    if invoice_id:
        info["invoice_id"] = invoice_id
    if custom_id:
        info["custom_field"] = custom_id
    if not info["paypal_account_id"]:
        del info["paypal_account_id"]
    detail = {"transaction_info": info, "payer_info": dict(payer or {}), "shipping_info": {},
              "cart_info": {}, "store_info": {}, "auction_info": {}, "incentive_info": {}}
    delay = _publication_delay() if delay is None else delay
    return PayPalTransaction.objects.create(
        transaction_id=transaction_id, event_code=event_code, initiated_at=at, published_at=at + delay, detail=detail
    )


# --- captures ---------------------------------------------------------------------------------------------------


def paypal_capture_create(*, amount: Decimal | str, currency: str, payer: Payer, invoice_id: str = "",
                          custom_id: str = "", fee: Decimal | str | None = None, at: datetime | None = None,
                          publication_delay: timedelta | None = None, event_code: str = T_CHECKOUT_PAYMENT,
                          notify: bool = True, receivable_currency: str = "",
                          exchange_rate: Decimal | str | None = None) -> PayPalObject:
    """A buyer pays through Checkout: an order (with the payer) and its completed capture, the fee taken, a row in
    Transaction Search, and PAYMENT.CAPTURE.COMPLETED raised. With `receivable_currency` (and PayPal's
    `exchange_rate` to it) PayPal converts the net into the account's currency."""
    at = (at or paypal_now()).replace(microsecond=0)
    gross = quantize(Decimal(str(amount)), currency)
    fee = quantize(Decimal(str(fee)), currency) if fee is not None else paypal_fee(gross, currency)
    order_id, capture_id = paypal_new_id(), paypal_new_id()
    capture = {
        "id": capture_id,
        "status": "COMPLETED",
        "amount": money(gross, currency),
        "final_capture": True,
        "seller_protection": {"status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED",
                                                                            "UNAUTHORIZED_TRANSACTION"]},
        "seller_receivable_breakdown": {
            "gross_amount": money(gross, currency), "paypal_fee": money(fee, currency),
            "net_amount": money(gross - fee, currency),
        },
        "links": [
            {"href": f"/v2/payments/captures/{capture_id}", "rel": "self", "method": "GET"},
            {"href": f"/v2/payments/captures/{capture_id}/refund", "rel": "refund", "method": "POST"},
            {"href": f"/v2/checkout/orders/{order_id}", "rel": "up", "method": "GET"},
        ],
        "create_time": paypal_time_format(at),
        "update_time": paypal_time_format(at),
        "supplementary_data": {"related_ids": {"order_id": order_id}},
        "payee": {"email_address": MERCHANT_EMAIL, "merchant_id": MERCHANT_ID},
    }
    if receivable_currency and receivable_currency != currency:
        # payments_payment_v2.json seller_receivable_breakdown: receivable_amount "is computed as net_amount times
        # exchange_rate", returned only when the account credits another currency; exchange_rate.value a string.
        rate = Decimal(str(exchange_rate))
        capture["seller_receivable_breakdown"].update(
            receivable_amount=money((gross - fee) * rate, receivable_currency),
            exchange_rate={"source_currency": currency, "target_currency": receivable_currency, "value": f"{rate:f}"})
    if invoice_id:
        capture["invoice_id"] = invoice_id
    if custom_id:
        capture["custom_id"] = custom_id
    unit = {"reference_id": "default", "amount": money(gross, currency),
            "payee": {"email_address": MERCHANT_EMAIL, "merchant_id": MERCHANT_ID},
            "payments": {"captures": [capture]}}
    if invoice_id:
        unit["invoice_id"] = invoice_id
    if custom_id:
        unit["custom_id"] = custom_id
    order = {
        "id": order_id, "intent": "CAPTURE", "status": "COMPLETED", "payer": payer.order_payer(),
        "purchase_units": [unit], "create_time": paypal_time_format(at), "update_time": paypal_time_format(at),
        "links": [{"href": f"/v2/checkout/orders/{order_id}", "rel": "self", "method": "GET"}],
    }
    with transaction.atomic():
        _save("order", order_id, order, at)
        stored = _save("capture", capture_id, capture, at)
        _search_row(transaction_id=capture_id, event_code=event_code, at=at, amount=gross, fee=-fee,
                    currency=currency, payer=payer.search_payer(), invoice_id=invoice_id, custom_id=custom_id,
                    delay=publication_delay)
    _event(notify, "PAYMENT.CAPTURE.COMPLETED", "capture", capture,
           f"Payment completed for {gross} {currency}", at)
    return stored


def _payer_of_capture(capture: dict) -> dict:
    order_id = ((capture.get("supplementary_data") or {}).get("related_ids") or {}).get("order_id")
    order = PayPalObject.objects.filter(kind="order", object_id=order_id or "").first()
    payer = (order.body.get("payer") if order else None) or {}
    if not payer:
        return {}
    name = payer.get("name") or {}
    return {"account_id": payer.get("payer_id", ""), "email_address": payer.get("email_address", ""),
            "address_status": "Y", "payer_status": "Y",
            "payer_name": {"given_name": name.get("given_name", ""), "surname": name.get("surname", "")},
            "country_code": (payer.get("address") or {}).get("country_code", "")}


def paypal_refund_create(capture_id: str, *, amount: Decimal | str | None = None, request_id: str = "",
                         note_to_payer: str = "", at: datetime | None = None, reversal: bool = False,
                         publication_delay: timedelta | None = None, notify: bool = True,
                         reversal_code: str = T_REVERSAL) -> PayPalObject:
    """Refund a capture in part or whole (the rest when no amount): the fee is returned in proportion, the last
    refund returns what is left of it; the capture becomes PARTIALLY_REFUNDED or REFUNDED.

    A reversal (PayPal takes the money back, e.g. a chargeback) returns no fee and raises PAYMENT.CAPTURE.REVERSED.
    """
    at = (at or paypal_now()).replace(microsecond=0)
    with transaction.atomic():
        stored = PayPalObject.objects.select_for_update().filter(kind="capture", object_id=capture_id).first()
        if stored is None:
            raise PayPalApiError.not_found(capture_id)
        capture = stored.body
        currency = capture["amount"]["currency_code"]
        gross = money_value(capture["amount"])
        breakdown = capture.get("seller_receivable_breakdown") or {}
        fee_total = money_value(breakdown.get("paypal_fee"))
        refunds = [PayPalObject.objects.get(kind="refund", object_id=refund_id).body
                   for refund_id in capture.get("_refund_ids", [])]
        refunded = sum((money_value(refund["amount"]) for refund in refunds), Decimal("0"))
        fee_returned = sum((money_value(refund["seller_payable_breakdown"].get("paypal_fee")) for refund in refunds),
                           Decimal("0"))
        remaining = gross - refunded
        if capture["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED") or remaining <= 0:
            raise PayPalApiError.unprocessable("CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded.")
        value = remaining if amount is None else Decimal(str(amount))
        if value <= 0 or value != quantize(value, currency):
            raise PayPalApiError.unprocessable("AMOUNT_MISMATCH" if value > 0 else "INVALID_AMOUNT",
                                               f"The refund amount {value} {currency} is not a valid amount.")
        if value > remaining:
            raise PayPalApiError.unprocessable(
                "REFUND_AMOUNT_EXCEEDED", f"The refund amount {value} exceeds what is left to refund ({remaining})."
            )
        if reversal:
            fee_back = Decimal("0")
        elif value == remaining:
            fee_back = fee_total - fee_returned
        else:
            fee_back = quantize(fee_total * value / gross, currency)
        refund_id = paypal_new_id()
        refund = {
            "id": refund_id,
            "amount": money(value, currency),
            "seller_payable_breakdown": {
                "gross_amount": money(value, currency), "paypal_fee": money(fee_back, currency),
                "net_amount": money(value - fee_back, currency),
                "total_refunded_amount": money(refunded + value, currency),
            },
            "status": "COMPLETED",
            "create_time": paypal_time_format(at),
            "update_time": paypal_time_format(at),
            "links": [
                {"href": f"/v2/payments/refunds/{refund_id}", "rel": "self", "method": "GET"},
                {"href": f"/v2/payments/captures/{capture_id}", "rel": "up", "method": "GET"},
            ],
        }
        for field in ("invoice_id", "custom_id"):
            if capture.get(field):
                refund[field] = capture[field]
        if note_to_payer:
            refund["note_to_payer"] = note_to_payer
        if reversal:
            refund["status_details"] = {"reason": "CHARGEBACK"}
        saved = _save("refund", refund_id, refund, at)
        capture["status"] = "REFUNDED" if value == remaining else "PARTIALLY_REFUNDED"
        # Kept with the capture for the emulator only (a leading underscore is never served).
        capture["_refund_ids"] = [*capture.get("_refund_ids", []), refund_id]
        capture["update_time"] = paypal_time_format(at)
        stored.body, stored.updated_at = capture, at
        stored.save(update_fields=["body", "updated_at"])
        _search_row(transaction_id=refund_id, event_code=reversal_code if reversal else T_REFUND, at=at, amount=-value,
                    fee=fee_back, currency=currency, payer=_payer_of_capture(capture), reference_id=capture_id,
                    invoice_id=capture.get("invoice_id", ""), custom_id=capture.get("custom_id", ""),
                    delay=publication_delay)
    _event(notify, "PAYMENT.CAPTURE.REVERSED" if reversal else "PAYMENT.CAPTURE.REFUNDED", "refund", refund,
           f"A {value} {currency} capture payment was {'reversed' if reversal else 'refunded'}", at)
    return saved


def paypal_chargeback_fee_create(capture_id: str, *, fee: Decimal | str, currency: str,
                                  at: datetime | None = None) -> PayPalTransaction:
    """The fee PayPal takes with a chargeback: a Transaction Search row of its own (T0106, a debit referring to the
    capture), with no REST object behind it."""
    at = (at or paypal_now()).replace(microsecond=0)
    return _search_row(transaction_id=paypal_new_id(), event_code=T_CHARGEBACK_FEE, at=at,
                       amount=-quantize(Decimal(str(fee)), currency), fee=None, currency=currency, payer=None,
                       reference_id=capture_id)


def paypal_dispute_funds_move(capture_id: str, event_code: str, *, amount: Decimal | str, currency: str,
                              at: datetime | None = None) -> PayPalTransaction:
    """A dispute's money movement as Transaction Search lists it (no REST object): a hold on the capture's amount,
    its release, or a chargeback given back; the sign follows the code (a hold is a debit)."""
    at = (at or paypal_now()).replace(microsecond=0)
    value = quantize(Decimal(str(amount)), currency) * DISPUTE_FUNDS_DIRECTION[event_code]
    return _search_row(transaction_id=paypal_new_id(), event_code=event_code, at=at, amount=value, fee=None,
                       currency=currency, payer=None, reference_id=capture_id)


def paypal_dispute_event(capture_id: str, event_type: str, *, status: str, dispute_id: str = "",
                         reason: str = "MERCHANDISE_OR_SERVICE_NOT_RECEIVED", outcome_code: str = "",
                         at: datetime | None = None, notify: bool = True) -> dict:
    """A customer's dispute of a capture as its CUSTOMER.DISPUTE.* webhook carries it (developer.paypal.com/docs/
    disputes/webhooks: CREATED, UPDATED, RESOLVED; the resource is the dispute of the Disputes API v1: dispute_id,
    disputed_transactions[].seller_transaction_id, reason, status, dispute_amount, dispute_outcome.outcome_code)."""
    at = (at or paypal_now()).replace(microsecond=0)
    capture = paypal_object("capture", capture_id).body
    dispute_id = dispute_id or f"PP-D-{paypal_new_id(8)}"
    dispute = {
        "dispute_id": dispute_id,
        "create_time": paypal_time_format(at), "update_time": paypal_time_format(at),
        "disputed_transactions": [{"seller_transaction_id": capture_id, "seller_protection_eligible": True}],
        "reason": reason, "status": status, "dispute_amount": dict(capture["amount"]),
        "dispute_life_cycle_stage": "INQUIRY", "dispute_channel": "INTERNAL",
        "links": [{"href": f"/v1/customer/disputes/{dispute_id}", "rel": "self", "method": "GET"}],
    }
    if outcome_code:
        dispute["dispute_outcome"] = {"outcome_code": outcome_code}
    _event(notify, event_type, "dispute", dispute, f"A dispute is {event_type.rsplit('.', 1)[1].lower()}", at)
    return dispute


def paypal_refund_by_request(capture_id: str, body: dict, *, request_id: str) -> tuple[int, dict]:
    """POST /v2/payments/captures/{id}/refund: with a PayPal-Request-Id a repeat gets the first answer back."""
    operation = f"refund:{capture_id}"
    if request_id:
        answered = PayPalIdempotentRequest.objects.filter(request_id=request_id, operation=operation).first()
        if answered is not None:
            return answered.status, answered.body
    amount = (body.get("amount") or {})
    capture = paypal_object("capture", capture_id).body
    if amount and amount.get("currency_code") != capture["amount"]["currency_code"]:
        raise PayPalApiError.unprocessable(
            "CURRENCY_MISMATCH", "Currency of refund must be the same as currency of capture.")
    refund = paypal_refund_create(capture_id, amount=amount.get("value") if amount else None,
                                  note_to_payer=body.get("note_to_payer", ""), request_id=request_id)
    if request_id:
        try:
            with transaction.atomic():
                PayPalIdempotentRequest.objects.create(request_id=request_id, operation=operation, status=201,
                                                       body=refund.body)
        except IntegrityError:
            pass
    return 201, refund.body


# --- Transaction Search -----------------------------------------------------------------------------------------


def _search_date(query: Mapping[str, str], name: str) -> datetime:
    text = query[name]
    value = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    return datetime.fromisoformat(value.replace("t", "T")).astimezone(UTC)


def paypal_transactions_search(app: PayPalApp, query: Mapping[str, str]) -> dict:
    """GET /v1/reporting/transactions: rows initiated in [start_date, end_date] that PayPal has published.

    Publishes late, as PayPal does ("It takes a maximum of three hours for executed transactions to appear"): a row
    appears `publication_delay_seconds` after it happened, last_refreshed_datetime says how far the data reaches,
    and a start beyond that is refused. Refuses a range over 31 days (as PayPal does) and a result larger than the
    app's cap (RESULTSET_TOO_LARGE, never a silent cut); pages with page/page_size.
    """
    start, end = _search_date(query, "start_date"), _search_date(query, "end_date")
    if end < start:
        raise PayPalApiError.invalid(["end_date: must not be before start_date"], location="query")
    if end - start > SEARCH_MAX_RANGE:
        raise PayPalApiError.invalid(
            [f"end_date: The maximum supported range is 31 days (asked {query['start_date']} – {query['end_date']})"],
            location="query",
        )
    now = timezone.now()
    # "The date and time when the data was last refreshed" (search_response.last_refreshed_datetime): this app's lag.
    refreshed = now - timedelta(seconds=app.publication_delay_seconds)
    if start > refreshed:
        # PayPal's answer to a start its data has not reached yet (seen in production: PayPal-node-SDK issue #452).
        raise PayPalApiError.named(400, "INVALID_REQUEST", "Data for the given start date is not available.")
    rows = PayPalTransaction.objects.filter(initiated_at__gte=start, initiated_at__lte=end, published_at__lte=now)
    if query.get("transaction_id"):
        rows = rows.filter(transaction_id=query["transaction_id"])
    if query.get("transaction_type"):
        rows = rows.filter(event_code=query["transaction_type"])
    if query.get("transaction_status"):
        rows = rows.filter(detail__transaction_info__transaction_status=query["transaction_status"])
    total = rows.count()
    if total > app.search_result_limit:
        raise PayPalApiError.named(
            400, "RESULTSET_TOO_LARGE",
            "Result set size is greater than the maximum limit. Change the filter criteria and try again.",
        )
    page_size = int(query.get("page_size") or 100)
    page = int(query.get("page") or 1)
    fields = {field.strip() for field in (query.get("fields") or "transaction_info").split(",")}
    details = []
    for row in rows.order_by("initiated_at", "id")[(page - 1) * page_size: page * page_size]:
        detail = row.detail if "all" in fields else {key: value for key, value in row.detail.items() if key in fields}
        details.append(detail)
    return {
        "transaction_details": details,
        "account_number": ACCOUNT_NUMBER,
        "start_date": search_time_format(start),
        # "The end date and time or the last date when the data can be served" (search_response.end_date).
        "end_date": search_time_format(min(end, refreshed)),
        "last_refreshed_datetime": search_time_format(refreshed),
        "page": page,
        "total_items": total,
        "total_pages": math.ceil(total / page_size) if total else 0,
        "links": [{"href": "/v1/reporting/transactions", "rel": "self", "method": "GET"}],
    }


# --- Invoicing v2 -----------------------------------------------------------------------------------------------


def _item_tax(item: dict, net: Decimal, currency: str) -> Decimal:
    """An item's tax: `tax.amount` is read-only, "the calculated tax amount" (invoicing_v2.json `tax`), PayPal works
    it out from `tax.percent` on the item after its discount (template configuration tax_calculated_after_discount),
    rounded half up to the currency's minor unit (the rounding is an assumption: PayPal does not publish it)."""
    tax = item.get("tax")
    if not tax or tax.get("percent") in (None, ""):
        return Decimal("0")
    amount = (net * Decimal(str(tax["percent"])) / 100).quantize(Decimal(1).scaleb(-minor_units(currency)),
                                                               rounding=ROUND_HALF_UP)
    tax["amount"] = money(amount, currency)
    return amount


def _invoice_totals(invoice: dict) -> dict:
    currency = invoice["detail"]["currency_code"]
    total = tax_total = Decimal("0")
    for item in invoice.get("items") or []:
        line = Decimal(str(item.get("quantity") or "1")) * money_value(item.get("unit_amount"))
        discount = money_value((item.get("discount") or {}).get("amount"))
        net = quantize(line - discount, currency)
        tax = _item_tax(item, net, currency)
        tax_total += tax
        total += net + tax
    breakdown = {"item_total": money(total - tax_total, currency)}
    if tax_total:
        # amount_with_breakdown.tax_total: "The aggregated amount of the item and shipping taxes."
        breakdown["tax_total"] = money(tax_total, currency)
    invoice["amount"] = {**money(total, currency), "breakdown": breakdown}
    paid = money_value((invoice.get("payments") or {}).get("paid_amount"))
    invoice["due_amount"] = money(total - paid, currency)
    return invoice


def paypal_invoice_create(document: dict, *, at: datetime | None = None, notify: bool = True) -> PayPalObject:
    """POST /v2/invoicing/invoices: a draft invoice, numbered, with totals computed from its items."""
    at = (at or paypal_now()).replace(microsecond=0)
    invoice_id = paypal_invoice_new_id()
    number = PayPalObject.objects.filter(kind="invoice").count() + 1
    invoice = {key: value for key, value in document.items() if key not in ("id", "status", "links")}
    detail = dict(invoice.get("detail") or {})
    detail.setdefault("invoice_number", f"{number:04d}")
    detail.setdefault("invoice_date", at.date().isoformat())
    detail["metadata"] = {"create_time": paypal_time_format(at), "last_update_time": paypal_time_format(at)}
    invoice.update({"id": invoice_id, "status": "DRAFT", "detail": detail,
                    "links": [{"href": f"/v2/invoicing/invoices/{invoice_id}", "rel": "self", "method": "GET"}]})
    invoice.setdefault("invoicer", {"email_address": MERCHANT_EMAIL})
    stored = _save("invoice", invoice_id, _invoice_totals(invoice), at)
    _event(notify, "INVOICING.INVOICE.CREATED", "invoices", {"invoice": stored.body}, "An invoice was created", at)
    return stored


def _invoice_change(invoice_id: str, at: datetime, change) -> PayPalObject:
    with transaction.atomic():
        stored = PayPalObject.objects.select_for_update().filter(kind="invoice", object_id=invoice_id).first()
        if stored is None:
            raise PayPalApiError.not_found(invoice_id)
        invoice = change(dict(stored.body))
        invoice["detail"]["metadata"]["last_update_time"] = paypal_time_format(at)
        stored.body, stored.updated_at = _invoice_totals(invoice), at
        stored.save(update_fields=["body", "updated_at"])
    return stored


def paypal_invoice_send(invoice_id: str, *, at: datetime | None = None, notify: bool = True) -> PayPalObject:
    """POST /v2/invoicing/invoices/{id}/send: a draft becomes UNPAID (the recipient owes it)."""
    at = (at or paypal_now()).replace(microsecond=0)

    def send(invoice: dict) -> dict:
        if invoice["status"] != "DRAFT":
            raise PayPalApiError.unprocessable("INVALID_INVOICE_STATUS",
                                               f"Invoice {invoice_id} is {invoice['status']}; only a DRAFT is sent.")
        invoice["status"] = "UNPAID"
        invoice["detail"]["metadata"]["first_sent_time"] = paypal_time_format(at)
        return invoice

    stored = _invoice_change(invoice_id, at, send)
    _event(notify, "INVOICING.INVOICE.UPDATED", "invoices", {"invoice": stored.body}, "An invoice was sent", at)
    return stored


def paypal_invoice_pay(invoice_id: str, *, payer: Payer, at: datetime | None = None,
                       publication_delay: timedelta | None = None, notify: bool = True) -> PayPalObject:
    """The recipient pays the invoice through PayPal: a capture (invoice_id = the invoice id) and the payment
    recorded on the invoice, which becomes PAID; INVOICING.INVOICE.PAID raised."""
    at = (at or paypal_now()).replace(microsecond=0)
    invoice = paypal_object("invoice", invoice_id).body
    if invoice["status"] not in ("UNPAID", "SENT", "PARTIALLY_PAID"):
        raise PayPalApiError.unprocessable("INVALID_INVOICE_STATUS", f"Invoice {invoice_id} is {invoice['status']}.")
    currency = invoice["detail"]["currency_code"]
    due = money_value(invoice["due_amount"])
    capture = paypal_capture_create(amount=due, currency=currency, payer=payer, invoice_id=invoice_id, at=at,
                                    publication_delay=publication_delay, event_code=T_INVOICE_PAYMENT,
                                    notify=notify)

    def record(current: dict) -> dict:
        payments = current.get("payments") or {"transactions": []}
        payments["transactions"] = [*payments.get("transactions", []), {
            "type": "PAYPAL", "payment_id": capture.object_id, "payment_date": at.date().isoformat(),
            "method": "PAYPAL", "amount": money(due, currency),
        }]
        payments["paid_amount"] = money(money_value(payments.get("paid_amount")) + due, currency)
        current["payments"] = payments
        current["status"] = "PAID"
        return current

    stored = _invoice_change(invoice_id, at, record)
    _event(notify, "INVOICING.INVOICE.PAID", "invoices", {"invoice": stored.body}, "An invoice was paid", at)
    return stored


def paypal_invoice_cancel(invoice_id: str, *, at: datetime | None = None, notify: bool = True) -> PayPalObject:
    at = (at or paypal_now()).replace(microsecond=0)

    def cancel(invoice: dict) -> dict:
        if invoice["status"] not in ("UNPAID", "SENT", "SCHEDULED"):
            raise PayPalApiError.unprocessable("INVALID_INVOICE_STATUS",
                                               f"Invoice {invoice_id} is {invoice['status']}; it cannot be cancelled.")
        invoice["status"] = "CANCELLED"
        invoice["detail"]["metadata"]["cancel_time"] = paypal_time_format(at)
        return invoice

    stored = _invoice_change(invoice_id, at, cancel)
    _event(notify, "INVOICING.INVOICE.CANCELLED", "invoices", {"invoice": stored.body}, "An invoice was cancelled", at)
    return stored


# search_data.fields (invoicing_v2.json): "Because the invoice object can be very large, field filtering is required.
# Valid collection fields are items, payments, refunds, additional_recipients_info, and attachments." A search row
# carries a collection only when `fields` names it; the key each names in the invoice object.
SEARCH_COLLECTION_FIELDS = {"items": ("items",), "payments": ("payments",), "refunds": ("refunds",),
                            "additional_recipients_info": ("additional_recipients",),
                            "attachments": ("detail", "attachments")}


def paypal_invoice_search_row(invoice: dict, fields: list[str] | str | None) -> dict:
    """An invoice as a search-invoices row: without the collections `fields` (a list, or CSV text) does not name."""
    named = {name.strip() for name in (fields.split(",") if isinstance(fields, str) else fields or [])}
    row = json.loads(json.dumps(invoice))
    for field, path in SEARCH_COLLECTION_FIELDS.items():
        if field in named:
            continue
        holder = row
        for key in path[:-1]:
            holder = holder.get(key) or {}
        holder.pop(path[-1], None)
    return row


def paypal_invoices_page(*, page: int, page_size: int, created_from: datetime | None = None,
                         created_to: datetime | None = None, statuses: list[str] | None = None,
                         search_fields: list[str] | str | None = None, search: bool = False) -> dict:
    """GET /v2/invoicing/invoices and POST /v2/invoicing/search-invoices: newest first, paged; a search row without
    the collections its `fields` does not name."""
    invoices = PayPalObject.objects.filter(kind="invoice")
    if created_from is not None:
        invoices = invoices.filter(created_at__gte=created_from)
    if created_to is not None:
        invoices = invoices.filter(created_at__lte=created_to)
    if statuses:
        invoices = invoices.filter(body__status__in=statuses)
    total = invoices.count()
    items = [row.body for row in invoices.order_by("-created_at", "-id")[(page - 1) * page_size: page * page_size]]
    if search:
        items = [paypal_invoice_search_row(item, search_fields) for item in items]
    return {"items": items, "total_items": total, "total_pages": math.ceil(total / page_size) if total else 0,
            "links": [{"href": "/v2/invoicing/invoices", "rel": "self", "method": "GET"}]}


# --- events -------------------------------------------------------------------------------------------------------


def paypal_event_raise(event_type: str, resource_type: str, resource: dict, summary: str,
                       at: datetime | None = None) -> PayPalWebhookEvent:
    """Record a webhook event (PayPal's envelope); delivery is `sandbox.paypal_webhooks.paypal_event_deliver`."""
    at = (at or paypal_now()).replace(microsecond=0)
    event_id = f"WH-{paypal_new_id()}-{paypal_new_id()}"
    body = {
        "id": event_id, "create_time": paypal_time_format(at), "resource_type": resource_type,
        "event_type": event_type, "summary": summary, "resource": resource, "event_version": "1.0",
        "resource_version": "2.0",
        "links": [
            {"href": f"/v1/notifications/webhooks-events/{event_id}", "rel": "self", "method": "GET"},
            {"href": f"/v1/notifications/webhooks-events/{event_id}/resend", "rel": "resend", "method": "POST"},
        ],
    }
    return PayPalWebhookEvent.objects.create(event_id=event_id, event_type=event_type, body=body, created_at=at)


def _event(notify: bool, event_type: str, resource_type: str, resource: dict, summary: str, at: datetime) -> None:
    event = paypal_event_raise(event_type, resource_type, resource, summary, at)
    if notify:
        from .paypal_webhooks import paypal_event_deliver_to_subscribers

        transaction.on_commit(lambda: paypal_event_deliver_to_subscribers(event))
