"""The Stripe emulator's behaviour: customers (with search), invoice items, invoices (finalize, send, pay), charges,
disputes, refunds, balance transactions and events, as Stripe's JSON, with Idempotency-Key replays.

Amounts are integers in the currency's smallest unit, as Stripe's: 1250 NOK is kr 12.50, 1250 JPY is ¥1250.
Test tokens work as on Stripe: `tok_visa` pays, `tok_chargeDeclined` is declined (402 card_error, charge.failed),
`tok_createDispute` pays and is then disputed (charge.dispute.created).
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
import time
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from .models import StripeAccount, StripeIdempotentRequest, StripeObject

# Stripe's zero-decimal currencies (docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                          "xaf", "xof", "xpf"})
# docs.stripe.com/currencies "Three-decimal currencies": the last digit of the amount must be 0.
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# docs.stripe.com/currencies "Special cases"; support.stripe.com "Deprecation of fractional ISK charges and refunds":
# ISK amounts stay two-decimal (100 = 1 króna) and must be divisible by 100 in charges, invoices and refunds.
WHOLE_UNITS = frozenset({"isk"})
# Stripe's minimum charge amounts, in the smallest unit (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
MINIMUM_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30, "nok": 300, "sek": 300, "dkk": 250, "chf": 50, "jpy": 50}
# The emulator's card pricing: a percentage and a fixed part in the smallest unit (JPY: 3.6 %, no fixed part).
FEE_PERCENT = {"jpy": Decimal("3.6")}
FEE_FIXED = {"usd": 30, "eur": 25, "gbp": 20, "nok": 200, "sek": 180, "dkk": 180, "chf": 30, "jpy": 0}
DEFAULT_FEE_PERCENT = Decimal("2.9")
# The emulator's conversion rates (one unit of the charge's currency in the settlement currency) for accounts that
# settle in one currency; Stripe's own rates move, these are fixed so tests can reckon.
CONVERSION_RATES = {("eur", "sek"): Decimal("11.42"), ("eur", "nok"): Decimal("11.62"),
                    ("usd", "sek"): Decimal("10.52"), ("nok", "sek"): Decimal("0.975")}
# The dispute fee Stripe takes with the disputed amount, in the smallest unit ("Disputes and fraud": 15.00 in the
# account's currency in most countries; docs.stripe.com/disputes/how-disputes-work, stripe.com/pricing).
DISPUTE_FEE = {"usd": 1500, "eur": 1500, "gbp": 1500, "nok": 15000, "sek": 15000, "dkk": 11000, "chf": 1500,
               "jpy": 1500}
# Stripe's test evidence that wins a dispute (docs.stripe.com/testing#disputes: uncategorized_text "winning_evidence").
WINNING_EVIDENCE = "winning_evidence"
LOSING_EVIDENCE = "losing_evidence"
EVENTS_KEPT_SECONDS = 30 * 24 * 3600
DECLINED_TOKEN = "tok_chargeDeclined"
DISPUTE_TOKEN = "tok_createDispute"
PREFIX = {"customer": "cus", "invoiceitem": "ii", "invoice": "in", "charge": "ch", "dispute": "dp", "event": "evt",
          "refund": "re", "balance_transaction": "txn", "invoice_payment": "inpay", "payment_intent": "pi",
          "tax_rate": "txr"}
# The API version the emulator renders: stripe==16.1.0's (stripe/_api_version.py), the one our client pins. Its
# shapes follow that package's typed objects (stripe/_charge.py, _invoice.py, _invoice_payment.py,
# _payment_intent.py), as the vendored spec3.yaml is of 2023-08-16 (vendor_specs/stripe/SOURCES.md).
API_VERSION = "2026-10-28.endive"
_ALPHABET = string.ascii_letters + string.digits


class StripeApiError(Exception):
    """An error answer as Stripe gives it: {"error": {"type", "message", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, extra: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        # A declined card leaves its failed charge and events behind although the call fails.
        self.keeps_changes = type_ == "card_error"
        error = {"type": type_, "message": message}
        if param:
            error["param"] = param
        if code:
            error["code"] = code
        error.update(extra or {})
        self.body = {"error": error}

    @classmethod
    def missing(cls, object_type: str, object_id: str, param: str = "id") -> StripeApiError:
        return cls(404, f"No such {object_type}: '{object_id}'", param=param, code="resource_missing")


def now() -> int:
    return int(time.time())


def new_id(object_type: str) -> str:
    return f"{PREFIX[object_type]}_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


# --- form encoding ------------------------------------------------------------------------------------------------


def form_decode(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`metadata[k]=v`, `expand[0]=x`, `created[gte]=1`) → nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + (re.findall(r"([^\[\]]*)\]", "[" + rest) if rest else [])
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise StripeApiError(400, f"Invalid parameter: {key}", param=key)
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(key.isdigit() for key in node):
            return [_lists(node[key]) for key in sorted(node, key=int)]
        return {key: _lists(value) for key, value in node.items()}
    return node


def _int(params: Mapping, name: str, *, required: bool = False, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        if required:
            raise StripeApiError(400, f"Missing required param: {name}.", param=name, code="parameter_missing")
        return default
    if not re.fullmatch(r"-?\d+", str(raw)):
        raise StripeApiError(400, f"Invalid integer: {raw}", param=name, code="parameter_invalid_integer")
    return int(raw)


def _bool(params: Mapping, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if str(raw) not in ("true", "false"):
        raise StripeApiError(400, f"Invalid boolean: {raw}", param=name)
    return str(raw) == "true"


def _currency(params: Mapping, *, required: bool = True, default: str | None = None) -> str:
    raw = str(params.get("currency") or default or "").lower()
    if not raw:
        if required:
            raise StripeApiError(400, "Missing required param: currency.", param="currency", code="parameter_missing")
        return raw
    if not re.fullmatch(r"[a-z]{3}", raw):
        raise StripeApiError(400, f"Invalid currency: {raw}.", param="currency")
    return raw


def _amount_allowed(amount: int, currency: str, param: str = "amount") -> int:
    """Refuse an amount Stripe refuses for its currency (fractional ISK, a three-decimal amount not ending in 0)."""
    if currency in WHOLE_UNITS and amount % 100:
        raise StripeApiError(400, f"Invalid amount. Currency {currency.upper()} has become effectively zero-decimal "
                                  "and charged amounts must be evenly divisible by 100.", param=param,
                             code="invalid_charge_amount_no_decimal_compatible")
    if currency in THREE_DECIMAL and amount % 10:
        raise StripeApiError(400, f"Invalid amount. Amounts in {currency.upper()} must end in 0.", param=param,
                             code="amount_invalid")
    return amount


def _metadata(params: Mapping, existing: Mapping | None = None) -> dict[str, str]:
    metadata = dict(existing or {})
    given = params.get("metadata")
    if given in (None, ""):
        return metadata if given is None else {}
    if not isinstance(given, dict):
        raise StripeApiError(400, "Invalid object", param="metadata")
    for key, value in given.items():
        # An empty value removes the key, as on Stripe.
        if value == "":
            metadata.pop(key, None)
        else:
            metadata[key] = str(value)
    return metadata


def _known(params: Mapping, allowed: set[str]) -> None:
    for name in params:
        if name not in allowed | {"expand"}:
            raise StripeApiError(400, f"Received unknown parameter: {name}", param=name)


# --- storage ------------------------------------------------------------------------------------------------------


def account_authenticate(authorization: str | None) -> StripeAccount:
    """The account whose secret key is the bearer token (or the basic-auth user name), as Stripe accepts both."""
    import base64
    import binascii

    scheme, _, credential = (authorization or "").partition(" ")
    key = ""
    if scheme.lower() == "bearer":
        key = credential.strip()
    elif scheme.lower() == "basic":
        try:
            key = base64.b64decode(credential).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            key = ""
    if not key:
        raise StripeApiError(401, "You did not provide an API key. You need to provide your API key in the "
                                  "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
    account = StripeAccount.objects.filter(secret_key=key).first()
    if account is None:
        raise StripeApiError(401, f"Invalid API Key provided: {key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}",
                             code="api_key_expired" if key.startswith("sk_") and "expired" in key else None)
    return account


def _store(account: StripeAccount, body: dict) -> dict:
    StripeObject.objects.create(account=account, object_type=body["object"], stripe_id=body["id"], body=body,
                                created=body["created"])
    return body


def _save(account: StripeAccount, body: dict) -> dict:
    StripeObject.objects.filter(account=account, stripe_id=body["id"]).update(body=body)
    return body


def object_get(account: StripeAccount, object_type: str, object_id: str, *, param: str = "id",
               lock: bool = False) -> dict:
    rows = StripeObject.objects.filter(account=account, object_type=object_type, stripe_id=object_id)
    row = (rows.select_for_update() if lock else rows).first()
    if row is None:
        raise StripeApiError.missing(object_type, object_id, param)
    return row.body


def event_emit(account: StripeAccount, event_type: str, body: dict, *, previous: dict | None = None) -> dict:
    """Record an event with a snapshot of the object, as Stripe does for every change."""
    data: dict[str, Any] = {"object": json.loads(json.dumps(body))}
    if previous:
        data["previous_attributes"] = previous
    event = {
        "id": new_id("event"), "object": "event", "api_version": API_VERSION, "created": now(),
        "data": data, "livemode": False, "pending_webhooks": 1 if account.webhook_url else 0,
        "request": {"id": None, "idempotency_key": None}, "type": event_type,
    }
    return _store(account, event)


def expanded(account: StripeAccount, body: dict, expand: list[str] | None) -> dict:
    """`expand[]=field`: an id in `field` replaced by the object itself (one level)."""
    if not expand:
        return body
    result = dict(body)
    for path in expand:
        field = path.split(".")[-1] if path.startswith("data.") else path
        if field == "payments" and result.get("object") == "invoice":
            # Invoice.payments is includable: present only when expanded (stripe/_invoice.py `payments`).
            result["payments"] = invoice_payments_list(account, {"invoice": result["id"]},
                                                       url="/v1/invoice_payments")
            continue
        value = result.get(field)
        if isinstance(value, str):
            row = StripeObject.objects.filter(account=account, stripe_id=value).first()
            if row is not None:
                result[field] = row.body
    return result


def object_list(account: StripeAccount, object_type: str, params: Mapping, *, url: str,
                where: Mapping[str, Any] | None = None, created_since: int | None = None) -> dict:
    """A page, newest first, with `limit`, `starting_after`, `ending_before` and `created[gte|gt|lte|lt]`."""
    limit = _int(params, "limit", default=10)
    if not 1 <= limit <= 100:
        raise StripeApiError(400, "Invalid limit: must be between 1 and 100", param="limit")
    rows = StripeObject.objects.filter(account=account, object_type=object_type)
    created = params.get("created")
    if isinstance(created, dict):
        for operator in ("gte", "gt", "lte", "lt"):
            if created.get(operator) not in (None, ""):
                rows = rows.filter(**{f"created__{operator}": _int(created, operator)})
    elif created not in (None, ""):
        rows = rows.filter(created=_int(params, "created"))
    if created_since is not None:
        rows = rows.filter(created__gte=created_since)
    for field, value in (where or {}).items():
        rows = rows.filter(**{f"body__{field}": value})
    if params.get("starting_after"):
        anchor = StripeObject.objects.filter(account=account, stripe_id=params["starting_after"]).first()
        if anchor is None:
            raise StripeApiError.missing(object_type, params["starting_after"], "starting_after")
        rows = rows.filter(pk__lt=anchor.pk).order_by("-pk")
        page = list(rows[: limit + 1])
    elif params.get("ending_before"):
        anchor = StripeObject.objects.filter(account=account, stripe_id=params["ending_before"]).first()
        if anchor is None:
            raise StripeApiError.missing(object_type, params["ending_before"], "ending_before")
        page = list(rows.filter(pk__gt=anchor.pk).order_by("pk")[: limit + 1])[::-1]
    else:
        page = list(rows.order_by("-pk")[: limit + 1])
    has_more = len(page) > limit
    page = page[1:] if has_more and params.get("ending_before") else page[:limit]
    expand = params.get("expand") or []
    return {"object": "list", "data": [expanded(account, row.body, expand) for row in page],
            "has_more": has_more, "url": url}


def idempotent(account: StripeAccount, key: str | None, path: str, params: Mapping, answer) -> tuple[int, dict, bool]:
    """(status, body, replayed): a key seen before with the same parameters gets the stored answer again."""
    if not key:
        status, body = _answer(answer)
        return status, body, False
    digest = hashlib.sha256(json.dumps([path, params], sort_keys=True).encode()).hexdigest()
    seen = StripeIdempotentRequest.objects.filter(account=account, key=key).first()
    if seen is not None:
        if (seen.path, seen.params_digest) != (path, digest):
            raise StripeApiError(
                400, "Keys for idempotent requests can only be used with the same parameters they were first used "
                     f"with. Try using a key other than '{key}' if you meant to execute a different request.",
                type_="idempotency_error")
        return seen.status, seen.body, True
    status, body = _answer(answer)
    # 5xx answers are not kept on Stripe either; a retry runs again.
    if status < 500:
        try:
            with transaction.atomic():
                StripeIdempotentRequest.objects.create(account=account, key=key, path=path, params_digest=digest,
                                                       status=status, body=body)
        except IntegrityError:
            seen = StripeIdempotentRequest.objects.get(account=account, key=key)
            return seen.status, seen.body, True
    return status, body, False


def _answer(answer) -> tuple[int, dict]:
    try:
        with transaction.atomic():
            try:
                return 200, answer()
            except StripeApiError as error:
                if error.keeps_changes:
                    return error.status, error.body
                raise
    except StripeApiError as error:
        return error.status, error.body


# --- customers ----------------------------------------------------------------------------------------------------

CUSTOMER_FIELDS = {"name", "email", "description", "metadata", "phone", "preferred_locales", "address", "currency"}


def customer_create(account: StripeAccount, params: Mapping) -> dict:
    _known(params, CUSTOMER_FIELDS)
    customer = {
        "id": new_id("customer"), "object": "customer", "created": now(), "livemode": False,
        "name": params.get("name") or None, "email": params.get("email") or None,
        "description": params.get("description") or None, "phone": params.get("phone") or None,
        "address": params.get("address") or None, "currency": None, "balance": 0, "delinquent": False,
        "invoice_prefix": "".join(secrets.choice(string.ascii_uppercase) for _ in range(8)),
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None},
        "metadata": _metadata(params), "preferred_locales": params.get("preferred_locales") or [],
        "default_source": None, "tax_exempt": "none", "test_clock": None,
    }
    _store(account, customer)
    event_emit(account, "customer.created", customer)
    return customer


def customer_update(account: StripeAccount, customer_id: str, params: Mapping) -> dict:
    _known(params, CUSTOMER_FIELDS)
    customer = object_get(account, "customer", customer_id, lock=True)
    previous = {}
    for field in ("name", "email", "description", "phone", "address"):
        if field in params:
            previous[field] = customer[field]
            customer[field] = params[field] or None
    if "metadata" in params:
        previous["metadata"] = customer["metadata"]
        customer["metadata"] = _metadata(params, customer["metadata"])
    _save(account, customer)
    event_emit(account, "customer.updated", customer, previous=previous)
    return customer


_CLAUSE = re.compile(r"""\s*(?:metadata\[['"](?P<key>[^'"]+)['"]\]|(?P<field>[a-z_]+))\s*(?P<op>[:~])\s*
                         (?:'(?P<single>(?:[^'\\]|\\.)*)'|"(?P<double>(?:[^"\\]|\\.)*)")\s*""", re.VERBOSE)
SEARCHABLE = {"email", "name", "phone", "description", "created"}


def customer_search(account: StripeAccount, params: Mapping) -> dict:
    """Stripe's search query language for customers: `field:'v'`, `field~'v'`, `metadata['k']:'v'`, AND / OR."""
    query = str(params.get("query") or "")
    if not query.strip():
        raise StripeApiError(400, "Missing required param: query.", param="query", code="parameter_missing")
    parts = re.split(r"\s+(AND|OR)\s+", query.strip())
    joins = set(parts[1::2])
    if len(joins) > 1:
        raise StripeApiError(400, "Search query cannot mix AND and OR.", param="query")
    clauses = []
    for text in parts[0::2]:
        match = _CLAUSE.fullmatch(text)
        if match is None or (match["field"] and match["field"] not in SEARCHABLE):
            raise StripeApiError(400, f"Search query is malformed or uses an unsupported field: {text!r}",
                                 param="query")
        value = re.sub(r"\\(.)", r"\1", match["single"] if match["single"] is not None else match["double"])
        clauses.append((match["key"], match["field"], match["op"], value))

    def matches(customer: dict) -> bool:
        results = []
        for key, field, operator, value in clauses:
            found = (customer.get("metadata") or {}).get(key) if key else customer.get(field)
            found = "" if found is None else str(found)
            results.append(value.lower() in found.lower() if operator == "~" else found == value)
        return any(results) if joins == {"OR"} else all(results)

    limit = _int(params, "limit", default=10)
    rows = StripeObject.objects.filter(account=account, object_type="customer").order_by("-pk")
    found = [row.body for row in rows if matches(row.body)]
    return {"object": "search_result", "data": found[:limit], "has_more": len(found) > limit,
            "next_page": None, "url": "/v1/customers/search", "total_count": len(found)}


# --- tax rates ------------------------------------------------------------------------------------------------


def tax_rate_create(account: StripeAccount, params: Mapping) -> dict:
    """POST /v1/tax_rates (stripe-python 16.1.0 TaxRateCreateParams: display_name, inclusive and percentage
    required)."""
    _known(params, {"display_name", "inclusive", "percentage", "active", "country", "description", "jurisdiction",
                    "metadata", "state", "tax_type"})
    for name in ("display_name", "inclusive", "percentage"):
        if params.get(name) in (None, ""):
            raise StripeApiError(400, f"Missing required param: {name}.", param=name, code="parameter_missing")
    try:
        percentage = Decimal(str(params["percentage"]))
    except ArithmeticError:
        raise StripeApiError(400, f"Invalid decimal: {params['percentage']}", param="percentage") from None
    if not percentage.is_finite() or not 0 <= percentage <= 100:
        raise StripeApiError(400, "percentage must be between 0 and 100.", param="percentage")
    rate = {
        "id": new_id("tax_rate"), "object": "tax_rate", "created": now(), "livemode": False,
        "active": _bool(params, "active", default=True), "country": params.get("country") or None,
        "description": params.get("description") or None, "display_name": str(params["display_name"]),
        "effective_percentage": float(percentage), "flat_amount": None,
        "inclusive": _bool(params, "inclusive"), "jurisdiction": params.get("jurisdiction") or None,
        "jurisdiction_level": None, "metadata": _metadata(params), "percentage": float(percentage),
        "rate_type": "percentage", "state": params.get("state") or None, "tax_type": params.get("tax_type") or None,
    }
    return _store(account, rate)


def tax_rate_list(account: StripeAccount, params: Mapping, *, url: str) -> dict:
    """GET /v1/tax_rates with the `active` and `inclusive` filters (TaxRateListParams)."""
    where = {name: _bool(params, name) for name in ("active", "inclusive") if params.get(name) not in (None, "")}
    return object_list(account, "tax_rate", params, url=url, where=where)


def _tax_rates(account: StripeAccount, params: Mapping, name: str) -> list[dict]:
    """The TaxRate objects a `tax_rates[]` / `default_tax_rates[]` parameter names; each must exist and be active."""
    given = params.get(name)
    if given in (None, ""):
        return []
    if not isinstance(given, list):
        raise StripeApiError(400, f"Invalid array: {name}", param=name)
    rates = []
    for rate_id in given:
        rate = object_get(account, "tax_rate", str(rate_id), param=name)
        if not rate["active"]:
            raise StripeApiError(400, f"Tax rate {rate_id} is archived and cannot be applied.", param=name)
        rates.append(rate)
    return rates


# --- invoice items and invoices -------------------------------------------------------------------------------


def invoice_item_create(account: StripeAccount, params: Mapping) -> dict:
    _known(params, {"customer", "amount", "currency", "description", "metadata", "invoice", "quantity",
                    "unit_amount_decimal", "period", "tax_rates"})
    customer_id = str(params.get("customer") or "")
    if not customer_id:
        raise StripeApiError(400, "Missing required param: customer.", param="customer", code="parameter_missing")
    object_get(account, "customer", customer_id, param="customer")
    currency = _currency(params, default=account.default_currency)
    amount = _amount_allowed(_int(params, "amount", required=True), currency)
    invoice_id = params.get("invoice") or None
    if invoice_id:
        invoice = object_get(account, "invoice", invoice_id, param="invoice", lock=True)
        if invoice["status"] != "draft":
            raise StripeApiError(400, f"You can only add invoice items to draft invoices; {invoice_id} is "
                                      f"{invoice['status']}.", param="invoice")
        if invoice["currency"] != currency:
            raise StripeApiError(400, f"The currency of this invoice item ({currency}) does not match the invoice "
                                      f"currency ({invoice['currency']}).", param="currency")
    item = {
        "id": new_id("invoiceitem"), "object": "invoiceitem", "created": now(), "date": now(), "livemode": False,
        "amount": amount, "currency": currency, "customer": customer_id,
        "description": params.get("description") or None, "discountable": True, "invoice": invoice_id,
        "metadata": _metadata(params), "quantity": _int(params, "quantity", default=1), "proration": False,
        # InvoiceItem.tax_rates (stripe-python 16.1.0 stripe/_invoice_item.py): the TaxRate objects themselves.
        "tax_rates": _tax_rates(account, params, "tax_rates"),
    }
    _store(account, item)
    if invoice_id:
        _invoice_add_line(invoice, item)
        _save(account, invoice)
    return item


def _line(item: dict, default_tax_rates: list[dict]) -> dict:
    """An invoice line item of an invoice item (stripe-python 16.1.0 stripe/_invoice_line_item.py, pinned
    2026-10-28.endive): `taxes` per tax rate, each {amount, tax_behavior, tax_rate_details: {tax_rate}, taxability_reason,
    taxable_amount, type: "tax_rate_details"}. The item's own tax_rates apply, else the invoice's default_tax_rates
    (InvoiceItemCreateParams.tax_rates). Tax is computed per line item ("assign a tax rate on individual invoice
    items", docs.stripe.com/invoicing/taxes/tax-rates), rounded half up to the smallest unit (an assumption: Stripe
    does not publish its rounding)."""
    rates = item.get("tax_rates") or default_tax_rates
    taxes = []
    for rate in rates:
        percentage = Decimal(str(rate["percentage"]))
        if rate["inclusive"]:
            amount = (Decimal(item["amount"]) - Decimal(item["amount"]) / (1 + percentage / 100)).quantize(
                Decimal(1), rounding=ROUND_HALF_UP)
            taxable = item["amount"] - int(amount)
        else:
            amount = (Decimal(item["amount"]) * percentage / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            taxable = item["amount"]
        taxes.append({"amount": int(amount), "tax_behavior": "inclusive" if rate["inclusive"] else "exclusive",
                      "tax_rate_details": {"tax_rate": rate["id"]}, "taxability_reason": "standard_rated",
                      "taxable_amount": taxable, "type": "tax_rate_details"})
    return {"id": f"il_{item['id'][3:]}", "object": "line_item", "amount": item["amount"],
            "subtotal": item["amount"], "currency": item["currency"], "description": item["description"],
            "metadata": item["metadata"], "quantity": item["quantity"], "taxes": taxes,
            "parent": {"type": "invoice_item_details", "invoice_item_details": {"invoice_item": item["id"]}}}


def _invoice_add_line(invoice: dict, item: dict) -> None:
    invoice["lines"]["data"].append(_line(item, invoice.get("default_tax_rates") or []))
    invoice["lines"]["total_count"] = len(invoice["lines"]["data"])
    _invoice_totals(invoice)


def _invoice_totals(invoice: dict) -> None:
    """Invoice.subtotal (the lines before tax), total_taxes (per tax rate: amount and taxable_amount summed over the
    lines, Invoice.TotalTax in stripe-python 16.1.0 stripe/_invoice.py), total = subtotal + exclusive taxes,
    total_excluding_tax, amount_due and amount_remaining."""
    lines = invoice["lines"]["data"]
    subtotal = sum(line["amount"] for line in lines)
    by_rate: dict[str, dict] = {}
    for line in lines:
        for tax in line.get("taxes") or []:
            rate_id = tax["tax_rate_details"]["tax_rate"]
            total_tax = by_rate.setdefault(rate_id, {**tax, "amount": 0, "taxable_amount": 0})
            total_tax["amount"] += tax["amount"]
            total_tax["taxable_amount"] += tax["taxable_amount"]
    total_taxes = list(by_rate.values())
    exclusive = sum(tax["amount"] for tax in total_taxes if tax["tax_behavior"] == "exclusive")
    inclusive = sum(tax["amount"] for tax in total_taxes if tax["tax_behavior"] == "inclusive")
    total = subtotal + exclusive
    invoice.update(subtotal=subtotal, subtotal_excluding_tax=subtotal - inclusive, total_taxes=total_taxes,
                   total=total, total_excluding_tax=total - exclusive - inclusive, amount_due=total,
                   amount_remaining=total - invoice["amount_paid"])


INVOICE_FIELDS = {"customer", "currency", "description", "metadata", "collection_method", "days_until_due",
                  "due_date", "auto_advance", "pending_invoice_items_behavior", "footer", "default_tax_rates"}


def invoice_create(account: StripeAccount, params: Mapping) -> dict:
    _known(params, INVOICE_FIELDS)
    customer_id = str(params.get("customer") or "")
    if not customer_id:
        raise StripeApiError(400, "Missing required param: customer.", param="customer", code="parameter_missing")
    customer = object_get(account, "customer", customer_id, param="customer")
    collection = params.get("collection_method") or "charge_automatically"
    if collection not in ("charge_automatically", "send_invoice"):
        raise StripeApiError(400, f"Invalid collection_method: {collection}", param="collection_method")
    created = now()
    due_date = _int(params, "due_date")
    days = _int(params, "days_until_due")
    if collection == "send_invoice" and due_date is None and days is None:
        raise StripeApiError(400, "Missing required param: days_until_due or due_date (collection_method is "
                                  "send_invoice).", param="days_until_due")
    if collection == "send_invoice" and due_date is None:
        due_date = created + days * 86400
    currency = _currency(params, required=False, default=account.default_currency)
    invoice = {
        "id": new_id("invoice"), "object": "invoice", "created": created, "livemode": False,
        "customer": customer_id, "customer_email": customer.get("email"), "customer_name": customer.get("name"),
        "currency": currency, "description": params.get("description") or None, "metadata": _metadata(params),
        "collection_method": collection, "due_date": due_date if collection == "send_invoice" else None,
        "auto_advance": _bool(params, "auto_advance", default=False), "status": "draft", "number": None,
        "lines": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                  "url": "/v1/invoices/{}/lines"},
        "subtotal": 0, "subtotal_excluding_tax": 0, "total": 0, "total_excluding_tax": 0, "total_taxes": [],
        "default_tax_rates": _tax_rates(account, params, "default_tax_rates"),
        "amount_due": 0, "amount_paid": 0, "amount_remaining": 0,
        "attempt_count": 0, "attempted": False, "hosted_invoice_url": None, "invoice_pdf": None,
        "footer": params.get("footer") or None,
        # No `charge` and no `payment_intent` (gone in the pinned version); `payments` only when expanded.
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None, "paid_at": None,
                               "voided_at": None},
        "last_finalization_error": None,
    }
    invoice["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
    # Stripe's default "include" pulls the customer's pending invoice items of the invoice's currency in.
    if (params.get("pending_invoice_items_behavior") or "exclude") == "include":
        pending = StripeObject.objects.filter(account=account, object_type="invoiceitem",
                                              body__customer=customer_id).order_by("pk")
        for row in pending:
            if row.body.get("invoice") is None and row.body["currency"] == currency:
                row.body["invoice"] = invoice["id"]
                row.save(update_fields=["body"])
                _invoice_add_line(invoice, row.body)
    _store(account, invoice)
    event_emit(account, "invoice.created", invoice)
    return invoice


def invoice_finalize(account: StripeAccount, invoice_id: str, params: Mapping) -> dict:
    _known(params, {"auto_advance"})
    invoice = object_get(account, "invoice", invoice_id, lock=True)
    if invoice["status"] != "draft":
        raise StripeApiError(400, "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                             code="invoice_not_editable")
    customer = object_get(account, "customer", invoice["customer"])
    sequence = StripeObject.objects.filter(account=account, object_type="invoice",
                                           body__customer=invoice["customer"]).exclude(body__number=None).count() + 1
    invoice.update(status="open", number=f"{customer['invoice_prefix']}-{sequence:04d}",
                   hosted_invoice_url=f"https://invoice.stripe.com/i/{invoice_id}",
                   invoice_pdf=f"https://pay.stripe.com/invoice/{invoice_id}/pdf")
    invoice["status_transitions"]["finalized_at"] = now()
    if invoice["amount_due"] == 0:
        invoice["status"] = "paid"
        invoice["status_transitions"]["paid_at"] = now()
    else:
        _invoice_default_payment(account, invoice)
    _save(account, invoice)
    event_emit(account, "invoice.finalized", invoice, previous={"status": "draft"})
    if invoice["status"] == "paid":
        event_emit(account, "invoice.paid", invoice)
    return invoice


def invoice_send(account: StripeAccount, invoice_id: str, params: Mapping) -> dict:
    _known(params, set())
    invoice = object_get(account, "invoice", invoice_id, lock=True)
    if invoice["collection_method"] != "send_invoice":
        raise StripeApiError(400, "You can only manually send an invoice if its collection method is "
                                  "'send_invoice'.", param="collection_method")
    if invoice["status"] == "draft":
        invoice = invoice_finalize(account, invoice_id, {})
    if invoice["status"] != "open":
        raise StripeApiError(400, f"You can only send an open invoice; this one is {invoice['status']}.")
    event_emit(account, "invoice.sent", invoice)
    return invoice


def invoice_pay(account: StripeAccount, invoice_id: str, params: Mapping) -> dict:
    """Pay an open invoice: a charge with `source`, or `paid_out_of_band=true` (paid outside Stripe, no charge)."""
    _known(params, {"source", "payment_method", "paid_out_of_band"})
    invoice = object_get(account, "invoice", invoice_id, lock=True)
    if invoice["status"] == "draft":
        invoice = invoice_finalize(account, invoice_id, {})
    if invoice["status"] != "open":
        raise StripeApiError(400, "Invoice is already paid" if invoice["status"] == "paid" else
                             f"You cannot pay an invoice that is {invoice['status']}.", code="invoice_not_open")
    invoice["attempt_count"] += 1
    invoice["attempted"] = True
    if _bool(params, "paid_out_of_band"):
        return _invoice_paid(account, invoice)
    token = str(params.get("source") or params.get("payment_method") or "tok_visa")
    payment = _invoice_default_payment(account, invoice)
    intent = object_get(account, "payment_intent", payment["payment"]["payment_intent"], lock=True)
    try:
        charge = _charge_make(account, amount=invoice["amount_remaining"], currency=invoice["currency"],
                              customer=invoice["customer"], token=token,
                              description=f"Payment for Invoice {invoice['number']}", metadata={},
                              payment_intent=intent["id"])
    except StripeApiError as declined:  # the failed charge stays, as on Stripe
        intent.update(latest_charge=declined.body["error"].get("charge"), status="requires_payment_method",
                      last_payment_error={"type": "card_error", "code": declined.body["error"].get("code"),
                                          "message": str(declined)})
        _save(account, intent)
        _save(account, invoice)
        event_emit(account, "invoice.payment_failed", invoice)
        raise
    intent.update(latest_charge=charge["id"], status="succeeded", amount_received=charge["amount"],
                  last_payment_error=None)
    _save(account, intent)
    payment.update(status="paid", amount_paid=charge["amount"])
    payment["status_transitions"]["paid_at"] = now()
    _save(account, payment)
    return _invoice_paid(account, invoice)


def _invoice_default_payment(account: StripeAccount, invoice: dict) -> dict:
    """The invoice's default InvoicePayment and its payment intent, made at finalization when missing (stripe/
    _invoice_payment.py `is_default`: "Stripe automatically creates a default InvoicePayment when the invoice is
    finalized"; `payment.type` payment_intent)."""
    rows = StripeObject.objects.filter(account=account, object_type="invoice_payment", body__invoice=invoice["id"],
                                       body__is_default=True)
    found = rows.first()
    if found is not None:
        return found.body
    intent = _store(account, {
        "id": new_id("payment_intent"), "object": "payment_intent", "created": now(), "livemode": False,
        "amount": invoice["amount_remaining"], "amount_received": 0, "currency": invoice["currency"],
        "customer": invoice["customer"], "description": f"Payment for Invoice {invoice['number']}",
        "latest_charge": None, "last_payment_error": None, "metadata": {}, "payment_method_types": ["card"],
        "status": "requires_payment_method",
    })
    return _store(account, {
        "id": new_id("invoice_payment"), "object": "invoice_payment", "created": now(), "livemode": False,
        "amount_paid": None, "amount_requested": invoice["amount_remaining"], "currency": invoice["currency"],
        "invoice": invoice["id"], "is_default": True,
        "payment": {"type": "payment_intent", "payment_intent": intent["id"]}, "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    })


def invoice_payments_list(account: StripeAccount, params: Mapping, *, url: str) -> dict:
    """GET /v1/invoice_payments: filters `invoice`, `payment[type]` with `payment[payment_intent]`, and `status`
    (stripe/params/_invoice_payment_list_params.py); `payment[type]` is required when `payment` is given."""
    where: dict[str, Any] = {}
    if params.get("invoice"):
        where["invoice"] = params["invoice"]
    if params.get("status"):
        if params["status"] not in ("canceled", "open", "paid"):
            raise StripeApiError(400, f"Invalid status: {params['status']}", param="status")
        where["status"] = params["status"]
    payment = params.get("payment")
    if payment not in (None, ""):
        if not isinstance(payment, dict) or not payment.get("type"):
            raise StripeApiError(400, "Missing required param: payment[type].", param="payment[type]",
                                 code="parameter_missing")
        if payment["type"] not in ("payment_intent", "payment_record"):
            raise StripeApiError(400, f"Invalid payment[type]: {payment['type']}", param="payment[type]")
        where["payment__type"] = payment["type"]
        if payment.get(payment["type"]):
            where[f"payment__{payment['type']}"] = payment[payment["type"]]
    return object_list(account, "invoice_payment", params, url=url, where=where)


def _invoice_paid(account: StripeAccount, invoice: dict) -> dict:
    paid = invoice["amount_remaining"]
    invoice.update(status="paid", amount_paid=invoice["amount_paid"] + paid, amount_remaining=0)
    invoice["status_transitions"]["paid_at"] = now()
    _save(account, invoice)
    event_emit(account, "invoice.paid", invoice, previous={"status": "open"})
    return invoice


# --- charges, fees, refunds, disputes ---------------------------------------------------------------------------


def fee_for(amount: int, currency: str) -> int:
    """The emulator's processing fee in the smallest unit of `currency` (never below zero, never above the amount)."""
    percent = FEE_PERCENT.get(currency, DEFAULT_FEE_PERCENT)
    fee = int((Decimal(amount) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return min(amount, fee + FEE_FIXED.get(currency, 30))


def _charge_make(account: StripeAccount, *, amount: int, currency: str, customer: str | None, token: str,
                 description: str | None, metadata: dict, payment_intent: str | None = None) -> dict:
    _amount_allowed(amount, currency)
    minimum = MINIMUM_AMOUNT.get(currency, 50)
    if amount < minimum:
        shown = amount if currency in ZERO_DECIMAL else f"{Decimal(amount).scaleb(-2):.2f}"
        raise StripeApiError(400, f"Amount must be at least {minimum if currency in ZERO_DECIMAL else Decimal(minimum).scaleb(-2)} "
                                  f"{currency} (given {shown})", param="amount", code="amount_too_small")
    created = now()
    charge = {
        "id": new_id("charge"), "object": "charge", "created": created, "livemode": False, "amount": amount,
        "amount_captured": 0, "amount_refunded": 0, "currency": currency, "customer": customer,
        # No `invoice` (gone in the pinned version, stripe/_charge.py); an invoice's charge has its payment intent.
        "payment_intent": payment_intent,
        "description": description, "metadata": metadata, "balance_transaction": None, "captured": False,
        "paid": False, "refunded": False, "disputed": False, "status": "failed", "failure_code": None,
        "failure_message": None, "outcome": None, "receipt_url": None,
        "refunds": {"object": "list", "data": [], "has_more": False, "total_count": 0, "url": ""},
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
    }
    charge["refunds"]["url"] = f"/v1/charges/{charge['id']}/refunds"
    if token == DECLINED_TOKEN:
        charge.update(failure_code="card_declined", failure_message="Your card was declined.",
                      outcome={"network_status": "declined_by_network", "reason": "generic_decline",
                               "type": "issuer_declined", "seller_message": "The bank did not return any further "
                                                                            "details with this decline."})
        charge["payment_method_details"]["card"]["last4"] = "0002"
        _store(account, charge)
        event_emit(account, "charge.failed", charge)
        raise StripeApiError(402, "Your card was declined.", type_="card_error", code="card_declined",
                             extra={"decline_code": "generic_decline", "charge": charge["id"]})
    settled_in, settled, rate = _settlement(account, amount, currency)
    fee = fee_for(settled, settled_in)
    balance = {
        "id": new_id("balance_transaction"), "object": "balance_transaction", "created": created,
        "available_on": created + 2 * 86400, "amount": settled, "currency": settled_in, "fee": fee,
        "net": settled - fee, "exchange_rate": rate,
        "fee_details": [{"amount": fee, "currency": settled_in, "description": "Stripe processing fees",
                         "type": "stripe_fee"}],
        "reporting_category": "charge", "source": charge["id"], "status": "pending", "type": "charge",
    }
    _store(account, balance)
    charge.update(amount_captured=amount, balance_transaction=balance["id"], captured=True, paid=True,
                  status="succeeded", outcome={"network_status": "approved_by_network", "type": "authorized",
                                               "seller_message": "Payment complete."},
                  receipt_url=f"https://pay.stripe.com/receipts/{charge['id']}")
    _store(account, charge)
    event_emit(account, "charge.succeeded", charge)
    if token == DISPUTE_TOKEN:
        dispute_open(account, charge)
    return charge


def _settlement(account: StripeAccount, amount: int, currency: str) -> tuple[str, int, float | None]:
    """(currency, amount, exchange_rate) of the balance transaction. Converted when the account settles in another
    currency (stripe/_balance_transaction.py: `amount` in the settlement currency = the charge's amount times
    `exchange_rate`, a JSON number; null when nothing was converted)."""
    target = account.settlement_currency.lower()
    if not target or target == currency:
        return currency, amount, None
    rate = CONVERSION_RATES.get((currency, target))
    if rate is None:
        raise StripeApiError(400, f"The emulator has no conversion rate {currency}→{target}.", param="currency")
    places = (0 if target in ZERO_DECIMAL else 2) - (0 if currency in ZERO_DECIMAL else 2)
    settled = int((Decimal(amount).scaleb(places) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return target, settled, float(rate)


def charge_create(account: StripeAccount, params: Mapping) -> dict:
    _known(params, {"amount", "currency", "customer", "source", "description", "metadata", "capture"})
    customer = params.get("customer") or None
    if customer:
        object_get(account, "customer", customer, param="customer")
    return _charge_make(account, amount=_int(params, "amount", required=True), currency=_currency(params),
                        customer=customer, token=str(params.get("source") or "tok_visa"),
                        description=params.get("description") or None, metadata=_metadata(params))


def _balance_transaction(account: StripeAccount, *, amount: int, fee: int, currency: str, source: str, type_: str,
                         category: str, fee_description: str) -> dict:
    """A balance transaction (spec3.yaml `balance_transaction`): amount, fee and net (amount − fee) in the smallest
    unit; a negative fee is a fee returned."""
    created = now()
    balance = {
        "id": new_id("balance_transaction"), "object": "balance_transaction", "created": created,
        "available_on": created + 2 * 86400, "amount": amount, "currency": currency, "fee": fee, "net": amount - fee,
        "fee_details": [{"amount": fee, "currency": currency, "description": fee_description, "type": "stripe_fee"}]
        if fee else [],
        "reporting_category": category, "source": source, "status": "pending", "type": type_,
    }
    return _store(account, balance)


def _fees_returned() -> bool:
    """Stripe keeps its processing fee on a refund and its dispute fee on a won dispute ("the fees from the original
    charge aren't returned", docs.stripe.com/refunds); some accounts and older pricing returned them (a negative
    `fee` on the balance transaction). SANDBOX_STRIPE_FEES_RETURNED plays that case."""
    return bool(getattr(settings, "SANDBOX_STRIPE_FEES_RETURNED", False))


def dispute_open(account: StripeAccount, charge: dict, *, reason: str = "fraudulent") -> dict:
    """The card holder disputes a charge: Stripe takes the amount and a dispute fee back at once, as one balance
    transaction in the dispute's `balance_transactions` ("funds withdrawn and reinstated", spec3.yaml `dispute`;
    type adjustment, reporting category dispute: docs.stripe.com/reports/reporting-categories), and says so with
    charge.dispute.funds_withdrawn."""
    dispute = {
        "id": new_id("dispute"), "object": "dispute", "created": now(), "livemode": False,
        "amount": charge["amount"], "currency": charge["currency"], "charge": charge["id"], "reason": reason,
        "status": "needs_response", "is_charge_refundable": False, "metadata": {},
        "evidence_details": {"due_by": now() + 7 * 86400, "has_evidence": False, "past_due": False,
                             "submission_count": 0},
        "balance_transactions": [],
    }
    withdrawn = _balance_transaction(account, amount=-charge["amount"], fee=DISPUTE_FEE.get(charge["currency"], 1500),
                                     currency=charge["currency"], source=dispute["id"], type_="adjustment",
                                     category="dispute", fee_description="Dispute fee")
    dispute["balance_transactions"] = [withdrawn]
    _store(account, dispute)
    charge["disputed"] = True
    _save(account, charge)
    event_emit(account, "charge.dispute.created", dispute)
    event_emit(account, "charge.dispute.funds_withdrawn", dispute)
    return dispute


def dispute_update(account: StripeAccount, dispute_id: str, params: Mapping) -> dict:
    """POST /v1/disputes/{id}: evidence, and `submit`. In test mode evidence[uncategorized_text] "winning_evidence"
    wins the dispute and "losing_evidence" loses it (docs.stripe.com/testing#disputes). Won: the disputed amount comes
    back as a second balance transaction (reporting category dispute_reversal) with charge.dispute.funds_reinstated."""
    _known(params, {"evidence", "metadata", "submit"})
    dispute = object_get(account, "dispute", dispute_id, lock=True)
    if dispute["status"] in ("won", "lost"):
        raise StripeApiError(400, f"This dispute is already closed ({dispute['status']}).")
    evidence = params.get("evidence") if isinstance(params.get("evidence"), Mapping) else {}
    text = str(evidence.get("uncategorized_text") or "")
    previous = {"status": dispute["status"]}
    dispute["metadata"] = _metadata(params, dispute.get("metadata"))
    if text or _bool(params, "submit", True):
        dispute["evidence_details"]["has_evidence"] = True
        dispute["evidence_details"]["submission_count"] += 1
        dispute["status"] = "under_review"
    if text in (WINNING_EVIDENCE, LOSING_EVIDENCE):
        dispute["status"] = "won" if text == WINNING_EVIDENCE else "lost"
    if dispute["status"] == "won":
        fee = dispute["balance_transactions"][0]["fee"]
        reinstated = _balance_transaction(account, amount=dispute["amount"], fee=-fee if _fees_returned() else 0,
                                          currency=dispute["currency"], source=dispute["id"], type_="adjustment",
                                          category="dispute_reversal", fee_description="Dispute fee returned")
        dispute["balance_transactions"].append(reinstated)
    _save(account, dispute)
    if dispute["status"] in ("won", "lost"):
        event_emit(account, "charge.dispute.closed", dispute, previous=previous)
        if dispute["status"] == "won":
            event_emit(account, "charge.dispute.funds_reinstated", dispute)
    else:
        event_emit(account, "charge.dispute.updated", dispute, previous=previous)
    return dispute


def dispute_close(account: StripeAccount, dispute_id: str, params: Mapping) -> dict:
    """POST /v1/disputes/{id}/close: the merchant accepts the dispute (it is lost)."""
    _known(params, set())
    dispute = object_get(account, "dispute", dispute_id, lock=True)
    if dispute["status"] in ("won", "lost"):
        raise StripeApiError(400, f"This dispute is already closed ({dispute['status']}).")
    previous = {"status": dispute["status"]}
    dispute["status"] = "lost"
    _save(account, dispute)
    event_emit(account, "charge.dispute.closed", dispute, previous=previous)
    return dispute


def refund_create(account: StripeAccount, params: Mapping) -> dict:
    _known(params, {"charge", "amount", "reason", "metadata"})
    charge_id = str(params.get("charge") or "")
    if not charge_id:
        raise StripeApiError(400, "Missing required param: charge.", param="charge", code="parameter_missing")
    charge = object_get(account, "charge", charge_id, param="charge", lock=True)
    remaining = charge["amount_captured"] - charge["amount_refunded"]
    amount = _int(params, "amount", default=remaining)
    if amount <= 0 or amount > remaining:
        raise StripeApiError(400, f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                                  f"({remaining})", param="amount", code="amount_too_large")
    refund = {"id": new_id("refund"), "object": "refund", "created": now(), "amount": amount,
              "currency": charge["currency"], "charge": charge_id, "status": "succeeded",
              "reason": params.get("reason") or None, "metadata": _metadata(params), "balance_transaction": None}
    # The money going back (spec3.yaml `refund.balance_transaction`; type refund): the fee part returned, when
    # returned at all, in proportion to the refunded share of the charge.
    charged = object_get(account, "balance_transaction", charge["balance_transaction"])
    returned = int((Decimal(charged["fee"]) * amount / charge["amount_captured"]).quantize(
        Decimal(1), rounding=ROUND_HALF_UP)) if _fees_returned() else 0
    refund["balance_transaction"] = _balance_transaction(
        account, amount=-amount, fee=-returned, currency=charge["currency"], source=refund["id"], type_="refund",
        category="refund", fee_description="Stripe processing fees returned")["id"]
    _store(account, refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
    charge["refunds"]["data"].insert(0, refund)
    charge["refunds"]["total_count"] = len(charge["refunds"]["data"])
    _save(account, charge)
    event_emit(account, "charge.refunded", charge, previous={"amount_refunded": charge["amount_refunded"] - amount})
    return refund


def balance(account: StripeAccount) -> dict:
    """What the account holds per currency: the net of its charges (pending until available_on)."""
    totals: dict[str, int] = {}
    for row in StripeObject.objects.filter(account=account, object_type="balance_transaction"):
        totals[row.body["currency"]] = totals.get(row.body["currency"], 0) + row.body["net"]
    currencies = sorted(totals) or [account.default_currency]
    return {"object": "balance", "livemode": False,
            "available": [{"amount": 0, "currency": currency, "source_types": {"card": 0}} for currency in currencies],
            "pending": [{"amount": totals.get(currency, 0), "currency": currency, "source_types": {"card": 0}}
                        for currency in currencies]}


def events_since_kept() -> int:
    """Stripe lists events of the last 30 days only."""
    return now() - EVENTS_KEPT_SECONDS
