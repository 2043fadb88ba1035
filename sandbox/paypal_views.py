"""HTTP face of the PayPal emulator: the token endpoint, the API paths (checked against PayPal's OpenAPI files),
and the signing certificate."""
from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import paypal as service
from .models import PayPalCertificate
from .paypal import PayPalApiError, paypal_render
from .paypal_openapi import paypal_request_problems

MOUNT = "/paypal"


def _error_response(error: PayPalApiError) -> JsonResponse:
    response = JsonResponse(error.body, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _split(request: HttpRequest) -> tuple[str, str]:
    """(the emulator's absolute base URL, the API path below it), whatever the mount point."""
    path = request.path
    index = path.index(MOUNT) + len(MOUNT)
    return request.build_absolute_uri(path[:index]), path[index:]


@method_decorator(csrf_exempt, name="dispatch")
class PayPalTokenView(View):
    """POST /v1/oauth2/token with HTTP Basic client id:secret and grant_type=client_credentials."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        scheme, _, encoded = (request.headers.get("Authorization") or "").partition(" ")
        client_id = client_secret = None
        if scheme.lower() == "basic":
            try:
                client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                pass
        try:
            body = service.paypal_token_issue(
                client_id=client_id, client_secret=client_secret, grant_type=request.POST.get("grant_type")
            )
        except PayPalApiError as error:
            return _error_response(error)
        return JsonResponse(body)


@method_decorator(csrf_exempt, name="dispatch")
class PayPalApiView(View):
    """One API call: bearer token, the request checked against PayPal's OpenAPI file, then the handler."""

    http_method_names = ["get", "post"]

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        handler = getattr(self, request.method.lower(), None)
        if request.method.lower() not in self.http_method_names or handler is None:
            return self.http_method_not_allowed(request, *args, **kwargs)
        base_url, api_path = _split(request)
        try:
            app = service.paypal_caller_authenticate(request.headers.get("Authorization"))
            body = None
            if request.body:
                try:
                    body = json.loads(request.body)
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    raise PayPalApiError.invalid([f"body: not valid JSON ({error})"]) from None
            query = {name: request.GET.getlist(name) for name in request.GET}
            problems = paypal_request_problems(request.method, api_path, body, query)
            if problems:
                raise PayPalApiError.invalid(problems, location="query" if request.method == "GET" else "body")
            status, document = handler(request, app, body, {name: request.GET[name] for name in request.GET},
                                       **kwargs)
        except PayPalApiError as error:
            return _error_response(error)
        if document is None:
            return HttpResponse(status=status)
        return JsonResponse(paypal_render(document, base_url), status=status)


class CaptureView(PayPalApiView):
    http_method_names = ["get"]

    def get(self, request, app, body, query, capture_id):
        return 200, service.paypal_object("capture", capture_id).body


class CaptureRefundView(PayPalApiView):
    http_method_names = ["post"]

    def post(self, request, app, body, query, capture_id):
        return service.paypal_refund_by_request(
            capture_id, body or {}, request_id=request.headers.get("PayPal-Request-Id", "")
        )


class RefundView(PayPalApiView):
    http_method_names = ["get"]

    def get(self, request, app, body, query, refund_id):
        return 200, service.paypal_object("refund", refund_id).body


class OrderView(PayPalApiView):
    http_method_names = ["get"]

    def get(self, request, app, body, query, order_id):
        return 200, service.paypal_object("order", order_id).body


class TransactionsView(PayPalApiView):
    http_method_names = ["get"]

    def get(self, request, app, body, query):
        return 200, service.paypal_transactions_search(app, query)


class InvoicesView(PayPalApiView):
    http_method_names = ["get", "post"]

    def get(self, request, app, body, query):
        return 200, service.paypal_invoices_page(page=int(query.get("page") or 1),
                                                 page_size=int(query.get("page_size") or 20))

    def post(self, request, app, body, query):
        return 201, service.paypal_invoice_create(body or {}).body


class InvoiceView(PayPalApiView):
    http_method_names = ["get"]

    def get(self, request, app, body, query, invoice_id):
        return 200, service.paypal_object("invoice", invoice_id).body


class InvoiceSendView(PayPalApiView):
    http_method_names = ["post"]

    def post(self, request, app, body, query, invoice_id):
        invoice = service.paypal_invoice_send(invoice_id)
        return 200, {"links": [{"href": f"/v2/invoicing/invoices/{invoice.object_id}", "rel": "self",
                                "method": "GET"}]}


class InvoiceCancelView(PayPalApiView):
    http_method_names = ["post"]

    def post(self, request, app, body, query, invoice_id):
        service.paypal_invoice_cancel(invoice_id)
        return 204, None


def _range(criteria: dict, name: str) -> tuple[datetime | None, datetime | None]:
    window = criteria.get(name) or {}

    def parse(text):
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None

    return parse(window.get("start")), parse(window.get("end"))


class InvoiceSearchView(PayPalApiView):
    http_method_names = ["post"]

    def post(self, request, app, body, query):
        criteria = body or {}
        created_from, created_to = _range(criteria, "creation_date_range")
        return 200, service.paypal_invoices_page(
            page=int(query.get("page") or 1), page_size=int(query.get("page_size") or 20),
            created_from=created_from, created_to=created_to, statuses=criteria.get("status"),
            search_fields=criteria.get("fields"), search=True,
        )


class CertificateView(View):
    """GET /certs/<cert id>: the PEM the webhook sender signs with (what PAYPAL-CERT-URL points at)."""

    def get(self, request: HttpRequest, cert_id: str) -> HttpResponse:
        certificate = PayPalCertificate.objects.filter(cert_id=cert_id).first()
        if certificate is None:
            return _error_response(PayPalApiError.not_found(cert_id))
        return HttpResponse(certificate.certificate_pem, content_type="application/x-pem-file")
