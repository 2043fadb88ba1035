"""HTTP face of the Stripe emulator: form-encoded requests, bearer secret key, Idempotency-Key, Stripe's errors."""
from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import stripe_api as api
from .stripe_api import StripeApiError
from .stripe_openapi import stripe_request_problems
from .stripe_webhooks import stripe_events_deliver


def _json(status: int, body: dict, *, replayed: bool = False) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Request-Id"] = "req_" + api.new_id("event")[4:18]
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _params(request: HttpRequest) -> dict:
    if request.method == "GET":
        return api.form_decode(parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True))
    content_type = (request.content_type or "").lower()
    if request.body and content_type not in ("application/x-www-form-urlencoded", ""):
        raise StripeApiError(400, f"Invalid request: Stripe takes form-encoded bodies, not {content_type}.")
    return api.form_decode(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))


@method_decorator(csrf_exempt, name="dispatch")
class StripeApiView(View):
    """One route: `get` and `post` map to functions of (account, params, **url kwargs) → Stripe JSON."""

    get_handler: Callable | None = None
    post_handler: Callable | None = None

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        handler = {"GET": self.get_handler, "POST": self.post_handler}.get(request.method)
        if handler is None:
            return _json(405, StripeApiError(405, f"Unrecognized request URL ({request.method}: "
                                                  f"{request.path}).").body)
        try:
            account = api.account_authenticate(request.headers.get("Authorization"))
            params = _params(request)
        except StripeApiError as error:
            return _json(error.status, error.body)
        url = request.path[request.path.index("/v1/"):]
        problems = stripe_request_problems(request.method, url, params)
        if problems:
            return _json(404 if problems[0].startswith("Unrecognized") else 400,
                         StripeApiError(400, problems[0], param=problems[0].rpartition(": ")[2]).body)
        if request.method == "GET":
            try:
                return _json(200, handler(account, params, url=url, **kwargs))
            except StripeApiError as error:
                return _json(error.status, error.body)
        try:
            status, body, replayed = api.idempotent(account, request.headers.get("Idempotency-Key"), url, params,
                                                    lambda: handler(account, params=params, **kwargs))
        except StripeApiError as error:
            return _json(error.status, error.body)
        if status == 200 and params.get("expand"):
            body = api.expanded(account, body, params["expand"])
        return _json(status, body, replayed=replayed)


def _retrieve(object_type: str):
    def handler(account, params, *, url, object_id):
        return api.expanded(account, api.object_get(account, object_type, object_id), params.get("expand"))
    return handler


def _listing(object_type: str, filters: tuple[str, ...] = ()):
    def handler(account, params, *, url):
        where = {field: params[field] for field in filters if params.get(field)}
        return api.object_list(account, object_type, params, url=url, where=where)
    return handler


def _events(account, params, *, url):
    where = {}
    if params.get("type"):
        where["type"] = params["type"]
    listing = params.get("types")
    if isinstance(listing, list) and listing:
        where["type__in"] = listing
    return api.object_list(account, "event", params, url=url, where=where, created_since=api.events_since_kept())


def _event(account, params, *, url, object_id):
    row = api.StripeObject.objects.filter(account=account, object_type="event", stripe_id=object_id,
                                          created__gte=api.events_since_kept()).first()
    if row is None:
        raise StripeApiError.missing("event", object_id)
    return row.body


def _invoice_payments(account, params, *, url):
    return api.invoice_payments_list(account, params, url=url)


def _balance(account, params, *, url):
    return api.balance(account)


def _customers_search(account, params, *, url):
    return api.customer_search(account, params)


def view(**handlers) -> Callable:
    return StripeApiView.as_view(**handlers)


@method_decorator(csrf_exempt, name="dispatch")
class StripeDeliverView(View):
    """POST /_control/deliver_events: send the account's undelivered events to its webhook endpoint now."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            account = api.account_authenticate(request.headers.get("Authorization"))
        except StripeApiError as error:
            return _json(error.status, error.body)
        return JsonResponse({"delivered": stripe_events_deliver(account)})
