"""HTTP face of the Square emulator: Square-Version, bearer tokens, the api.json check, Square's error shape, and the
request log every call leaves."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from urllib.parse import parse_qsl

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import square_api as api
from .models import SquareRequest
from .square_api import SquareApiError
from .square_openapi import square_request_problems

MOUNT = "/sandbox/square"
VERSION_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}")
# ObtainToken and RevokeToken take no bearer token (spec `security: []` and `Authorization: Client …`).
NO_BEARER = frozenset({"/oauth2/token", "/oauth2/revoke"})


def _json(status: int, body: dict, version: str = "") -> JsonResponse:
    response = JsonResponse(body, status=status)
    if version:
        # Answers carry the Square-Version used (docs/square.md §2).
        response["Square-Version"] = version
    return response


def _version_checked(request: HttpRequest) -> str:
    """The request's Square-Version. Square falls back to the application's pinned version when it is absent
    (docs/square.md §2); the emulator refuses it, stricter, so a client that forgets it is caught."""
    version = request.headers.get("Square-Version", "")
    if not version:
        raise SquareApiError(400, "INVALID_SQUARE_VERSION_FORMAT", "The Square-Version header is required by the "
                                                                   "sandbox (YYYY-MM-DD).", field="Square-Version")
    try:
        valid = bool(VERSION_FORMAT.fullmatch(version)) and date.fromisoformat(version) is not None
    except ValueError:
        valid = False
    if not valid:
        raise SquareApiError(400, "INVALID_SQUARE_VERSION_FORMAT", f"Square-Version `{version}` is not a date in "
                                                                   "the form YYYY-MM-DD.", field="Square-Version")
    return version


def _problem_error(problem: str) -> SquareApiError:
    """A request api.json does not allow, as Square's error (codes from spec ErrorCode)."""
    field = problem.partition(":")[0].strip() if ":" in problem else None
    if "is not an operation" in problem:
        return SquareApiError(404, "NOT_FOUND", problem)
    if "query parameter not declared" in problem:
        code = "UNKNOWN_QUERY_PARAMETER"
    elif "unknown property" in problem:
        code = "UNKNOWN_BODY_PARAMETER"
    elif "is not one of" in problem:
        code = "INVALID_ENUM_VALUE"
    elif "is not of type integer" in problem:
        code = "EXPECTED_INTEGER"
    elif "is not of type boolean" in problem:
        code = "EXPECTED_BOOLEAN"
    elif "is a required property" in problem:
        code = "MISSING_REQUIRED_PARAMETER"
    elif "less than the minimum" in problem:
        code = "VALUE_TOO_LOW"
    elif "greater than the maximum" in problem:
        code = "VALUE_TOO_HIGH"
    elif "is too long" in problem:
        code = "VALUE_TOO_LONG"
    elif "is too short" in problem:
        code = "VALUE_TOO_SHORT"
    elif "request body is required" in problem:
        code = "EXPECTED_JSON_BODY"
    else:
        code = "INVALID_VALUE"
    return SquareApiError(400, code, problem, field=field)


@method_decorator(csrf_exempt, name="dispatch")
class SquareApiView(View):
    """One route: `handlers` maps a method to a function of (merchant, token, query, body, **url kwargs) → JSON."""

    handlers: dict[str, Callable] = {}

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        api_path = request.path[len(MOUNT):] if request.path.startswith(MOUNT) else request.path
        query = dict(parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True))
        version = request.headers.get("Square-Version", "")
        # OAuth bodies carry secrets and refresh tokens: not kept.
        kept_body = "" if api_path.startswith("/oauth2/") else request.body.decode("utf-8", "replace")[:20000]
        record = SquareRequest(method=request.method, path=api_path, query=request.META.get("QUERY_STRING", ""),
                               body=kept_body, square_version=version)
        status, answer = self._answer(request, api_path, query, record, kwargs)
        record.status = status
        record.save()
        return _json(status, answer, version)

    def _answer(self, request, api_path, query, record, kwargs) -> tuple[int, dict]:
        try:
            body = json.loads(request.body) if request.body else None
        except (ValueError, UnicodeDecodeError):
            body = request.body.decode("utf-8", "replace")
        problems = square_request_problems(request.method, api_path, body, query) if not isinstance(body, str) \
            else ["(body): not JSON"]
        if body == {} and any("takes no JSON request body" in problem for problem in problems):
            # `{}` on a call without a body (RetrieveTokenStatus) says nothing: read as no body.
            body = None
            problems = square_request_problems(request.method, api_path, None, query)
        record.spec_problems = "\n".join(problems)
        try:
            fault = api.square_fault_take(request.method, api_path)
            if fault == 401:
                api.square_token_expire(request.headers.get("Authorization"))
            elif fault:
                raise api.square_fault_error(fault)
            _version_checked(request)
            handler = self.handlers.get(request.method)
            if handler is None:
                raise SquareApiError(404, "NOT_FOUND", f"The sandbox does not emulate {request.method} {api_path}.")
            merchant = token = None
            if api_path == "/oauth2/revoke":
                merchant, answer = api.square_token_revoke(request.headers.get("Authorization"), body or {})
                record.merchant = merchant
                return 200, answer
            if api_path not in NO_BEARER:
                try:
                    merchant, token = api.square_token_authenticate(request.headers.get("Authorization"))
                except SquareApiError as error:
                    if api_path == "/oauth2/token/status":
                        # "If the access token is expired or not a valid access token, the endpoint returns an
                        # UNAUTHORIZED error" (spec RetrieveTokenStatus).
                        raise SquareApiError(401, "UNAUTHORIZED", error.body["errors"][0]["detail"]) from None
                    raise
                record.merchant = merchant
            if isinstance(body, str):
                raise SquareApiError(400, "EXPECTED_JSON_BODY", "The request body is not valid JSON.")
            if problems:
                raise _problem_error(problems[0])
            return 200, handler(merchant, token, query, body or {}, **kwargs)
        except SquareApiError as error:
            return error.status, error.body


def view(**handlers: Callable) -> Callable:
    """A route answering the given methods: view(GET=function, POST=function)."""
    return SquareApiView.as_view(handlers=handlers)


@method_decorator(csrf_exempt, name="dispatch")
class SquareDeliverView(View):
    """POST /_control/deliver_events (the emulator's own, not Square's; not in the request log): send the merchant's
    undelivered events to its notification URL now. Bearer: any of the merchant's access tokens."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        from .square_webhooks import square_events_deliver

        try:
            merchant, _ = api.square_token_authenticate(request.headers.get("Authorization"))
        except SquareApiError as error:
            return _json(error.status, error.body)
        return JsonResponse({"delivered": square_events_deliver(merchant)})
