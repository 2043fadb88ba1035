"""HTTP face of the Visma.net ERP emulator: Visma Connect's token endpoint, the API paths, control and state."""
from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import services
from .openapi import visma_request_problems
from .visma_company import TWINS_MODES, visma_base_currency_set, visma_twins_mode_set
from .visma_fields import MODES, visma_field_lengths_apply, visma_field_lengths_mode_set
from .visma_erp import (
    LISTS,
    currencies,
    customer_create,
    customer_invoice_create,
    customer_credit_note_release,
    customer_invoice_release,
    customer_invoice_update,
    customer_credit_note_create,
    customer_payment_create,
    customer_payment_release,
    customer_update,
    journal_create,
    journal_page,
    journal_release,
    supplier_create,
    supplier_invoice_create,
    supplier_invoice_release,
    supplier_payment_create,
    supplier_payment_release,
    supplier_update,
)
from .visma_periods import (
    CalendarShape,
    financial_period_close,
    financial_periods_list,
    financial_periods_set,
)
from .visma_store import (
    VismaError,
    visma_document_get,
    visma_document_render,
    visma_documents_all,
    visma_documents_page,
    visma_query_datetime,
)

JSON_MEDIA_TYPES = ("application/json", "text/json")


def _error_response(error: VismaError) -> JsonResponse:
    response = JsonResponse(error.body, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _request_json(request: HttpRequest):
    if not request.body:
        return None
    media_type = (request.content_type or "").lower()
    if media_type not in JSON_MEDIA_TYPES:
        raise VismaError(415, {"message": f"The sandbox reads JSON bodies only, not '{media_type}'."})
    try:
        return json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VismaError.invalid(f"The request body is not valid JSON: {error}.") from None


def _single(document) -> JsonResponse:
    response = JsonResponse(visma_document_render(document))
    response["ETag"] = f'"{document.etag}"'
    return response


def _created(request: HttpRequest, url_name: str, document, **url_kwargs) -> HttpResponse:
    response = HttpResponse(status=201)
    response["Location"] = request.build_absolute_uri(reverse(f"sandbox:{url_name}", kwargs=url_kwargs))
    response["ETag"] = f'"{document.etag}"'
    return response


def _updated(document) -> HttpResponse:
    response = HttpResponse(status=204)
    response["ETag"] = f'"{document.etag}"'
    return response


@method_decorator(csrf_exempt, name="dispatch")
class VismaApiView(View):
    """One Visma API call: bearer token, company header, call budget, faults, the OpenAPI check, the field lengths of a
    write, then the handler; a write's answer may then be lost (the lose-answer fault)."""

    http_method_names = ["get", "post", "put", "delete"]
    # The document kind whose field lengths a POST or PUT here is held to (sandbox.visma_fields).
    field_kind = ""

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        handler = getattr(self, request.method.lower(), None)
        if request.method.lower() not in self.http_method_names or handler is None:
            return self.http_method_not_allowed(request, *args, **kwargs)
        budget = None
        try:
            caller = services.visma_caller_authenticate(
                authorization=request.headers.get("Authorization"),
                company_header=request.headers.get("ipp-company-id"),
                method=request.method,
            )
            budget = services.visma_call_budget_spend(caller)
            services.visma_faults_apply()
            body = _request_json(request)
            problems = visma_request_problems(
                request.method, request.path, body, {name: request.GET.getlist(name) for name in request.GET}
            )
            if problems:
                raise VismaError.invalid(
                    "The request does not match the Visma.net ERP API: " + "; ".join(problems), "\n".join(problems)
                )
            query = {name: request.GET[name] for name in request.GET}
            if self.field_kind and request.method in ("POST", "PUT"):
                body = visma_field_lengths_apply(self.field_kind, body)
            services.visma_write_begin(request.method)
            response = handler(request, caller, body, query, **kwargs)
            services.visma_write_answer(request.method)
        except VismaError as error:
            response = _error_response(error)
        if budget is not None:
            for name, value in budget.headers().items():
                response[name] = value
        return response


class DocumentListView(VismaApiView):
    """GET a paged, filtered list; POST creates one (201, Location, ETag)."""

    http_method_names = ["get"]
    list_name = ""
    url_name = ""
    create: Callable | None = None

    def get(self, request, caller, body, query):
        page = visma_documents_page(caller.company_id, LISTS[self.list_name], query)
        return JsonResponse(
            [visma_document_render(document, metadata=page.metadata) for document in page.documents], safe=False
        )

    def post(self, request, caller, body, query):
        document = self.create(caller.company_id, body)
        return _created(request, self.url_name, document, **self.location_kwargs(document))

    def location_kwargs(self, document) -> dict:
        return {"key": document.key}


class DocumentView(VismaApiView):
    """GET one resource (ETag header, timeStamp in the body); PUT changes it (204, new ETag; stale If-Match: 412)."""

    http_method_names = ["get"]
    collection = ""
    label = ""
    update: Callable | None = None

    def document_key(self, **kwargs) -> str:
        return kwargs["key"]

    def get(self, request, caller, body, query, **kwargs):
        key = self.document_key(**kwargs)
        return _single(visma_document_get(caller.company_id, self.collection, key, label=self.label))

    def put(self, request, caller, body, query, **kwargs):
        document = self.update(
            caller.company_id, self.document_key(**kwargs), body, if_match=request.headers.get("If-Match")
        )
        return _updated(document)


class AccountListView(DocumentListView):
    list_name = "account"


class AccountView(DocumentView):
    collection, label = "account", "Account"


class VatListView(DocumentListView):
    list_name = "vat"


class VatView(DocumentView):
    collection, label = "vat", "VAT"


class CurrencyListView(VismaApiView):
    """GET /v1/currency: CurrencyDto per currency, the company's base currency with isBaseCurrency true."""

    http_method_names = ["get"]

    def get(self, request, caller, body, query):
        return JsonResponse(currencies(), safe=False)


class CurrencyView(VismaApiView):
    http_method_names = ["get"]

    def get(self, request, caller, body, query, key):
        found = next((currency for currency in currencies() if currency["id"] == key), None)
        if found is None:
            raise VismaError.not_found(f"Currency '{key}' cannot be found in the system.")
        return JsonResponse(found)


class SubaccountListView(DocumentListView):
    list_name = "subaccount"


class DimensionListView(VismaApiView):
    http_method_names = ["get"]

    def get(self, request, caller, body, query):
        keys = visma_documents_all(caller.company_id, "dimension").order_by("key").values_list("key", flat=True)
        return JsonResponse(list(keys), safe=False)


class CurrencyRateListView(VismaApiView):
    """GET /v2/currencyrate (swagger CurrencyRateParameters → [CurrencyRateDto]): the sandbox's fixed rates to the base
    currency (visma_erp.CURRENCY_RATES), one row per currency, filtered by fromCurrency and toCurrency."""

    http_method_names = ["get"]

    def get(self, request, caller, body, query):
        from .visma_erp import visma_currency_rates

        return JsonResponse(visma_currency_rates(from_currency=query.get("fromCurrency"),
                                                 to_currency=query.get("toCurrency")), safe=False)


class DimensionView(VismaApiView):
    """GET /v1/dimension/{id}: segments with their values; a date filter narrows the values, expandSegmentsValues
    =false leaves them out."""

    http_method_names = ["get"]

    def get(self, request, caller, body, query, key):
        document = visma_document_get(caller.company_id, "dimension", key, label="Dimension")
        dimension = copy.deepcopy(document.body)
        since = query.get("lastModifiedDateTime")
        condition = query.get("lastModifiedDateTimeCondition", ">=")
        for segment in dimension["segments"]:
            if query.get("expandSegmentsValues", "true").lower() == "false":
                segment["segmentValues"] = []
            elif since:
                threshold = visma_query_datetime(since)
                segment["segmentValues"] = [
                    value
                    for value in segment["segmentValues"]
                    if _compare(datetime.fromisoformat(value["lastModified"]).replace(tzinfo=UTC), condition, threshold)
                ]
        response = JsonResponse(dimension)
        response["ETag"] = f'"{document.etag}"'
        return response


def _compare(left, condition: str, right) -> bool:
    return {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[condition]


class CustomerListView(DocumentListView):
    http_method_names = ["get", "post"]
    field_kind = "customer"
    list_name, url_name, create = "customer", "visma-customer", staticmethod(customer_create)


class CustomerView(DocumentView):
    http_method_names = ["get", "put"]
    field_kind = "customer"
    collection, label, update = "customer", "Customer", staticmethod(customer_update)


class SupplierListView(DocumentListView):
    http_method_names = ["get", "post"]
    field_kind = "supplier"
    list_name, url_name, create = "supplier", "visma-supplier", staticmethod(supplier_create)


class SupplierView(DocumentView):
    http_method_names = ["get", "put"]
    field_kind = "supplier"
    collection, label, update = "supplier", "Supplier", staticmethod(supplier_update)


class CustomerInvoiceListView(DocumentListView):
    list_name = "customer_invoice"


class CustomerInvoiceCreateView(DocumentListView):
    """POST /v2/customerinvoice (the v1 create is retired); the new invoice is read at /v1/customerinvoice/{n}."""

    url_name, create = "visma-customer-invoice", staticmethod(customer_invoice_create)
    http_method_names = ["post"]
    field_kind = "customer_invoice"


class CustomerInvoiceView(DocumentView):
    http_method_names = ["get", "put"]
    field_kind = "customer_invoice"
    collection, label, update = "customer_invoice", "Invoice", staticmethod(customer_invoice_update)


class CustomerCreditNoteListView(DocumentListView):
    list_name = "customer_credit_note"


class CustomerCreditNoteCreateView(DocumentListView):
    """POST /v2/customerCreditNote (POST /v1/customerCreditNote is deprecated, swagger); read at /v1/.../{n}."""

    url_name, create = "visma-customer-credit-note", staticmethod(customer_credit_note_create)
    http_method_names = ["post"]
    field_kind = "customer_credit_note"


class CustomerCreditNoteView(DocumentView):
    collection, label = "customer_credit_note", "Credit note"


class CustomerPaymentListView(DocumentListView):
    http_method_names = ["get", "post"]
    field_kind = "customer_payment"
    list_name, url_name, create = "customer_payment", "visma-customer-payment", staticmethod(customer_payment_create)


class CustomerPaymentView(DocumentView):
    collection, label = "customer_payment", "Payment"


class SupplierInvoiceListView(DocumentListView):
    http_method_names = ["get", "post"]
    field_kind = "supplier_invoice"
    list_name, url_name, create = "supplier_invoice", "visma-supplier-invoice", staticmethod(supplier_invoice_create)

    def location_kwargs(self, document) -> dict:
        document_type, number = document.key.split("/", 1)
        return {"document_type": document_type, "key": number}


class SupplierInvoiceView(DocumentView):
    collection, label = "supplier_invoice", "Supplier invoice"

    def document_key(self, **kwargs) -> str:
        return f"{kwargs['document_type']}/{kwargs['key']}"


class SupplierPaymentListView(DocumentListView):
    http_method_names = ["get", "post"]
    field_kind = "supplier_payment"
    list_name, url_name, create = "supplier_payment", "visma-supplier-payment", staticmethod(supplier_payment_create)

    def location_kwargs(self, document) -> dict:
        return {"payment_type": document.body["type"], "key": document.key}


class SupplierPaymentView(DocumentView):
    collection, label = "supplier_payment", "Supplier payment"

    def get(self, request, caller, body, query, payment_type, key):
        document = visma_document_get(caller.company_id, self.collection, key, label=self.label)
        if document.body["type"] != payment_type:
            raise VismaError.not_found(f"{self.label} '{payment_type}/{key}' was not found.")
        return _single(document)


class JournalListView(VismaApiView):
    """GET /v2/journaltransaction pages lines, not batches; POST posts a balanced batch."""

    http_method_names = ["get", "post"]
    field_kind = "journal"

    def get(self, request, caller, body, query):
        return JsonResponse(journal_page(caller.company_id, query).batches, safe=False)

    def post(self, request, caller, body, query):
        document = journal_create(caller.company_id, body)
        return _created(request, "visma-journal", document, key=document.key)


class JournalView(DocumentView):
    collection, label = "journal", "Journal transaction"


class JournalReleaseView(VismaApiView):
    http_method_names = ["post"]

    def post(self, request, caller, body, query, key):
        return JsonResponse(journal_release(caller.company_id, key))


class CustomerInvoiceReleaseView(VismaApiView):
    """POST /v1/customerinvoice/{invoiceNumber}/action/release → 200 ReleaseInvoiceActionResultDto."""

    http_method_names = ["post"]

    def post(self, request, caller, body, query, key):
        return JsonResponse(customer_invoice_release(caller.company_id, key))


class CustomerCreditNoteReleaseView(VismaApiView):
    """POST /v1/customerCreditNote/{creditNoteNumber}/action/release → 200 (swagger)."""

    http_method_names = ["post"]

    def post(self, request, caller, body, query, key):
        return JsonResponse(customer_credit_note_release(caller.company_id, key))


class CustomerPaymentReleaseView(VismaApiView):
    """POST /v1/customerPayment/{paymentNumber}/action/release (ReleasePaymentActionDto) → 200."""

    http_method_names = ["post"]

    def post(self, request, caller, body, query, key):
        return JsonResponse(customer_payment_release(caller.company_id, key, body))


class SupplierInvoiceReleaseView(VismaApiView):
    """POST /v1/supplierInvoice/{documentType}/{invoiceNumber}/action/release: the swagger lists 202 (and 412)."""

    http_method_names = ["post"]

    def post(self, request, caller, body, query, document_type, key):
        return JsonResponse(supplier_invoice_release(caller.company_id, f"{document_type}/{key}"), status=202)


class SupplierPaymentReleaseView(VismaApiView):
    """POST /v1/supplierPayment/{paymentNumber}/action/release (ReleaseSupplierPaymentActionDto): 202 per swagger."""

    http_method_names = ["post"]

    def post(self, request, caller, body, query, key):
        return JsonResponse(supplier_payment_release(caller.company_id, key, body), status=202)


class FinancialPeriodListView(VismaApiView):
    """GET /v1/financialPeriod (FinancialPeriod_GetAll): FinancialPeriodDto rows, after greaterThanValue."""

    def get(self, request, caller, body, query):
        return JsonResponse(financial_periods_list(caller.company_id, query.get("greaterThanValue")), safe=False)


class FinancialPeriodView(VismaApiView):
    """GET /v1/financialPeriod/{financialPeriodId} (YYYYPP)."""

    def get(self, request, caller, body, query, key):
        rows = [row for row in financial_periods_list(caller.company_id, None) if row["period"] == key]
        if not rows:
            raise VismaError.not_found(f"Financial period '{key}' was not found.")
        return JsonResponse(rows[0])


# Visma Connect ------------------------------------------------------------------------------------------------


@method_decorator(csrf_exempt, name="dispatch")
class VismaTokenView(View):
    """POST /connect/token, client credentials in the form body or as HTTP Basic."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        if request.content_type != "application/x-www-form-urlencoded":
            return JsonResponse(
                {"error": "invalid_request", "error_description": "Send application/x-www-form-urlencoded."},
                status=400,
            )
        client_id = request.POST.get("client_id")
        client_secret = request.POST.get("client_secret")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic" and credentials:
            try:
                client_id, _, client_secret = base64.b64decode(credentials).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return JsonResponse({"error": "invalid_client"}, status=401)
        try:
            token = services.visma_token_issue(
                grant_type=request.POST.get("grant_type"),
                client_id=client_id,
                client_secret=client_secret,
                scope=request.POST.get("scope"),
                tenant_id=request.POST.get("tenant_id"),
            )
        except services.VismaOAuthError as error:
            return JsonResponse(error.body, status=error.status)
        return JsonResponse(token, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


# Control and state (sandbox only) -----------------------------------------------------------------------------


def _control_input(request: HttpRequest) -> dict:
    if request.content_type in JSON_MEDIA_TYPES and request.body:
        return json.loads(request.body)
    return request.POST.dict()


@method_decorator(csrf_exempt, name="dispatch")
class VismaControlView(View):
    """POST /_control/<switch>: flip a fault switch, reconfigure a client, or reset to the seed state."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, switch: str) -> JsonResponse:
        try:
            data = _control_input(request)
            result = self.switch(switch, data)
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as error:
            return JsonResponse({"error": f"{type(error).__name__}: {error}"}, status=400)
        except VismaError as error:
            return _error_response(error)
        if result is None:
            return JsonResponse({"error": f"Unknown control switch '{switch}'."}, status=404)
        return JsonResponse({"ok": True, **result})

    @staticmethod
    def switch(switch: str, data: dict) -> dict | None:
        if switch == "fail":
            fault = services.visma_fault_fail(int(data["calls"]), status_code=int(data.get("status_code", 500)))
            return {"fault": fault.kind, "calls": fault.remaining, "status_code": fault.status_code}
        if switch == "throttle":
            fault = services.visma_fault_throttle(int(data["calls"]))
            return {"fault": fault.kind, "calls": fault.remaining, "status_code": fault.status_code}
        if switch == "delay":
            fault = services.visma_fault_delay(int(data["calls"]), seconds=float(data["seconds"]))
            return {"fault": fault.kind, "calls": fault.remaining, "seconds": fault.seconds}
        if switch == "lose-answer":
            seconds = float(data["seconds"]) if data.get("mode") == "timeout" else 0.0
            if data.get("mode") not in (None, "status", "timeout"):
                raise ValueError("mode must be status or timeout")
            if data.get("mode") == "timeout" and seconds <= 0:
                raise ValueError("a timeout needs seconds > 0")
            fault = services.visma_fault_lose_answer(
                int(data["calls"]), status_code=int(data.get("status_code", services.LOST_ANSWER_STATUS)),
                seconds=seconds,
            )
            return {"fault": fault.kind, "calls": fault.remaining, "status_code": fault.status_code,
                    "seconds": fault.seconds}
        if switch == "slow-commit":
            fault = services.visma_fault_slow_commit(int(data["calls"]), seconds=float(data["seconds"]))
            return {"fault": fault.kind, "calls": fault.remaining, "seconds": fault.seconds}
        if switch == "field-lengths":
            if data.get("mode") not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}")
            return {"mode": visma_field_lengths_mode_set(data["mode"])}
        if switch == "amount-twins":
            if data.get("mode") not in TWINS_MODES:
                raise ValueError(f"mode must be one of {', '.join(TWINS_MODES)}")
            return {"mode": visma_twins_mode_set(data["mode"])}
        if switch == "base-currency":
            return {"currency": visma_base_currency_set(data["currency"])}
        if switch == "stale-puts":
            fault = services.visma_fault_stale_puts(int(data["calls"]))
            return {"fault": fault.kind, "calls": fault.remaining}
        if switch == "concurrent-edit":
            document = services.visma_fault_concurrent_edit(
                data["collection"], data["key"], company_id=data.get("company_id", services.VISMA_SANDBOX_COMPANY_ID)
            )
            return {"collection": document.collection, "key": document.key, "etag": document.etag}
        if switch == "clear":
            return {"cleared": services.visma_faults_clear()}
        if switch == "financial-periods":
            # The company's calendar: {"first_month": 7, "periods": 13, "year_named_by": "end"|"start",
            # "end_date": "inclusive"|"exclusive", "years": [2025, 2026], "closed": ["202601"], "inactive": [...]}
            shape = CalendarShape(first_month=int(data.get("first_month", 1)), periods=int(data.get("periods", 12)),
                                  year_named_by=data.get("year_named_by", "end"),
                                  end_date=data.get("end_date", "inclusive"))
            years = [int(year) for year in data.get("years") or range(2024, 2029)]
            count = financial_periods_set(data.get("company_id", services.VISMA_SANDBOX_COMPANY_ID), shape, years,
                                          closed=data.get("closed") or (), inactive=data.get("inactive") or ())
            return {"periods": count}
        if switch == "close-period":
            body = financial_period_close(data.get("company_id", services.VISMA_SANDBOX_COMPANY_ID),
                                          data["period"], ledgers=data.get("ledgers") or ("GL", "AR", "AP", "CA"))
            return {"period": body["period"]}
        if switch == "client":
            budget, lifetime = data.get("hourly_call_budget"), data.get("token_lifetime_seconds")
            client = services.visma_client_configure(
                data.get("client_id", services.VISMA_SANDBOX_CLIENT_ID),
                hourly_call_budget=int(budget) if budget is not None else None,
                token_lifetime_seconds=int(lifetime) if lifetime is not None else None,
            )
            return {"client_id": client.client_id, "hourly_call_budget": client.hourly_call_budget,
                    "token_lifetime_seconds": client.token_lifetime_seconds}
        if switch == "reset":
            names = ("company_id", "client_id", "client_secret", "tenant_id")
            options = {name: data[name] for name in names if name in data}
            client = services.visma_sandbox_reset(**options)
            return {"client_id": client.client_id, "company_id": client.company_id, "tenant_id": client.tenant_id}
        return None


class VismaBalancesView(View):
    """GET /_state/balances: the GL balance per account, from posted journals."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> JsonResponse:
        company_id = request.GET.get("company_id", services.VISMA_SANDBOX_COMPANY_ID)
        return JsonResponse({"companyId": company_id, "balances": services.visma_gl_balances(company_id)})
