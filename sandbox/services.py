"""The Visma.net ERP emulator's gateway: tokens, who is calling, the hourly call budget, fault switches, reset."""
from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import (
    VismaCallWindow,
    VismaClient,
    VismaCounter,
    VismaDocument,
    VismaFault,
    VismaGLBalance,
    VismaSetting,
    VismaToken,
)
from .visma_seed import (
    VISMA_SANDBOX_CLIENT_ID,
    VISMA_SANDBOX_CLIENT_SECRET,
    VISMA_SANDBOX_COMPANY_ID,
    VISMA_SANDBOX_TENANT_ID,
    visma_sandbox_seed,
)
from .visma_store import FAULT_COMPANY, VismaError, visma_document_get, visma_document_touch, visma_fault_take

__all__ = [
    "VISMA_SANDBOX_CLIENT_ID",
    "VISMA_SANDBOX_CLIENT_SECRET",
    "VISMA_SANDBOX_COMPANY_ID",
    "VISMA_SANDBOX_TENANT_ID",
    "VISMA_SERVICE_SCOPES",
    "VismaBudget",
    "VismaCaller",
    "VismaOAuthError",
    "visma_call_budget_spend",
    "visma_caller_authenticate",
    "visma_client_configure",
    "visma_fault_concurrent_edit",
    "visma_fault_delay",
    "visma_fault_fail",
    "visma_fault_lose_answer",
    "visma_fault_slow_commit",
    "visma_write_answer",
    "visma_write_begin",
    "visma_fault_stale_puts",
    "visma_fault_throttle",
    "visma_faults_apply",
    "visma_faults_clear",
    "visma_gl_balances",
    "visma_sandbox_reset",
    "visma_sandbox_seed",
    "visma_token_issue",
]

VISMA_SERVICE_SCOPES = (
    "vismanet_erp_service_api:read",
    "vismanet_erp_service_api:create",
    "vismanet_erp_service_api:update",
    "vismanet_erp_service_api:delete",
)
METHOD_SCOPES = {
    "GET": "vismanet_erp_service_api:read",
    "HEAD": "vismanet_erp_service_api:read",
    "POST": "vismanet_erp_service_api:create",
    "PUT": "vismanet_erp_service_api:update",
    "DELETE": "vismanet_erp_service_api:delete",
}
RATE_LIMIT_POLICY = "4-fixed-window"


class VismaOAuthError(Exception):
    """A refusal of the token endpoint, in the OAuth 2.0 error shape (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def visma_token_issue(
    *, grant_type: str | None, client_id: str | None, client_secret: str | None, scope: str | None,
    tenant_id: str | None,
) -> dict:
    """Visma Connect's client-credentials grant: a bearer token for the client's company, no refresh token."""
    if grant_type != "client_credentials":
        raise VismaOAuthError("unsupported_grant_type", f"grant_type '{grant_type}' is not supported.")
    client = VismaClient.objects.filter(client_id=client_id or "").first()
    if client is None or not secrets.compare_digest(client.client_secret.encode(), (client_secret or "").encode()):
        raise VismaOAuthError("invalid_client", "Unknown client or wrong client secret.")
    requested = (scope or "").split()
    unknown = [name for name in requested if name not in VISMA_SERVICE_SCOPES]
    if unknown:
        raise VismaOAuthError("invalid_scope", f"Scope not allowed for this client: {' '.join(unknown)}.")
    granted = requested or list(VISMA_SERVICE_SCOPES)
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    # A token for another tenant is issued (as Visma Connect does) and refused by the API with 401.
    VismaToken.objects.create(
        token_digest=_digest(token),
        client=client,
        tenant_id=tenant_id or "",
        scope=" ".join(granted),
        issued_at=now,
        expires_at=now + timedelta(seconds=client.token_lifetime_seconds),
    )
    return {
        "access_token": token,
        "expires_in": client.token_lifetime_seconds,
        "token_type": "Bearer",
        "scope": " ".join(granted),
    }


@dataclass(frozen=True)
class VismaCaller:
    """The client behind a request and the company it works in."""

    client: VismaClient
    company_id: str
    scopes: frozenset[str]


def _unauthorized(description: str) -> VismaError:
    return VismaError(
        401,
        {"message": "Authorization has been denied for this request."},
        {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'},
    )


def visma_caller_authenticate(*, authorization: str | None, company_header: str | None, method: str) -> VismaCaller:
    """Check the bearer token (401), the ipp-company-id header (400, fault 12002) and the token's scope (403)."""
    scheme, _, token_text = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token_text.strip():
        raise _unauthorized("No bearer token")
    token = VismaToken.objects.select_related("client").filter(token_digest=_digest(token_text.strip())).first()
    if token is None:
        raise _unauthorized("Unknown token")
    if token.expires_at <= timezone.now():
        raise _unauthorized("The token expired")
    if token.tenant_id != token.client.tenant_id:
        raise _unauthorized("The token was issued for another tenant")
    company_id = token.client.company_id
    if not company_header:
        raise VismaError.ipp(400, "Company is not set: send the ipp-company-id header.", FAULT_COMPANY)
    if company_header.strip() != company_id:
        raise VismaError.ipp(
            400, f"The client is not authorised for company '{company_header.strip()}'.", FAULT_COMPANY
        )
    scopes = frozenset(token.scope.split())
    required = METHOD_SCOPES.get(method.upper())
    if required and required not in scopes:
        raise VismaError(403, {"message": f"The token's scope does not include {required}."})
    return VismaCaller(client=token.client, company_id=company_id, scopes=scopes)


@dataclass(frozen=True)
class VismaBudget:
    """Where a client stands in its hourly call budget after a call."""

    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
            "X-RateLimit-Policy": RATE_LIMIT_POLICY,
        }


def visma_call_budget_spend(caller: VismaCaller) -> VismaBudget:
    """Count one call in the client's clock-hour window, shared by all processes; past the budget: 429."""
    now = timezone.now()
    window_start = now.replace(minute=0, second=0, microsecond=0)
    reset_seconds = max(math.ceil((window_start + timedelta(hours=1) - now).total_seconds()), 1)
    limit = caller.client.hourly_call_budget
    with transaction.atomic():
        window, _ = VismaCallWindow.objects.select_for_update().get_or_create(
            client=caller.client, window_start=window_start
        )
        if window.calls >= limit:
            budget = VismaBudget(limit=limit, remaining=0, reset_seconds=reset_seconds)
            raise VismaError(
                429,
                {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {reset_seconds} seconds."},
                {**budget.headers(), "Retry-After": str(reset_seconds)},
            )
        window.calls += 1
        window.save(update_fields=["calls"])
    return VismaBudget(limit=limit, remaining=limit - window.calls, reset_seconds=reset_seconds)


def visma_faults_apply() -> None:
    """Play the switched-on faults on this call: answer late, then fail."""
    delay = visma_fault_take(VismaFault.Kind.DELAY)
    if delay is not None:
        time.sleep(delay.seconds)
    failure = visma_fault_take(VismaFault.Kind.FAIL)
    if failure is not None and failure.status_code == 429:
        # A throttle beside the hourly budget names no wait: no Retry-After (see visma_fault_throttle).
        raise VismaError(429, {"statusCode": 429, "message": "Rate limit is exceeded."})
    if failure is not None:
        raise VismaError(failure.status_code, {"message": "An error has occurred."})


WRITE_METHODS = frozenset({"POST", "PUT"})
LOST_ANSWER_STATUS = 502


def visma_write_begin(method: str) -> None:
    """Before a write is done: a slow-commit fault holds it back `seconds`. It stands for a server that takes its
    time to commit (a busy database, a long posting): a client that timed out and looks the document up meanwhile
    finds nothing, and the write still lands afterwards."""
    if method.upper() not in WRITE_METHODS:
        return
    slow = visma_fault_take(VismaFault.Kind.SLOW_COMMIT)
    if slow is not None:
        time.sleep(slow.seconds)


def visma_write_answer(method: str) -> None:
    """After a write was done and committed: a lose-answer fault loses its answer. With a status code it answers that
    instead (a 502 from a gateway whose backend did the work); with seconds it answers only after them, when the
    client's read timeout has fired (a slow response over a slow network)."""
    if method.upper() not in WRITE_METHODS:
        return
    lost = visma_fault_take(VismaFault.Kind.LOSE_ANSWER)
    if lost is None:
        return
    if lost.seconds:
        time.sleep(lost.seconds)
        return
    raise VismaError(lost.status_code, {"message": "Bad Gateway"})


def visma_fault_lose_answer(calls: int, *, status_code: int = LOST_ANSWER_STATUS,
                            seconds: float = 0) -> VismaFault:
    """Do the next `calls` writes (POST/PUT), then lose each answer: answer `status_code` (502 by default) or, with
    `seconds`, answer that much later (after the client gave up)."""
    return VismaFault.objects.create(kind=VismaFault.Kind.LOSE_ANSWER, remaining=calls,
                                     status_code=0 if seconds else status_code, seconds=seconds)


def visma_fault_slow_commit(calls: int, *, seconds: float) -> VismaFault:
    """Hold each of the next `calls` writes back `seconds` before it is done."""
    return VismaFault.objects.create(kind=VismaFault.Kind.SLOW_COMMIT, remaining=calls, seconds=seconds)


def visma_fault_fail(calls: int, *, status_code: int = 500) -> VismaFault:
    """Answer the next `calls` API calls with `status_code` (500 by default) after counting them in the budget."""
    return VismaFault.objects.create(kind=VismaFault.Kind.FAIL, remaining=calls, status_code=status_code)


def visma_fault_throttle(calls: int) -> VismaFault:
    """Throttle the next `calls` API calls with 429 and no Retry-After while the hourly budget still has calls left
    (the X-RateLimit-* headers say so).

    Visma's rate-limit page promises Retry-After on a 429 (docs.vismasoftware.no/vismanetapi/api-reference/
    rate-limits/); its earlier knowledge base also throttled identical or repeatedly failing requests (SameRequestLimit,
    ClientErrorLimit) with 429s that carried only X-RateLimit-Limit/-Policy/-Reset (reference visma-net-erp.md §9).
    The switch plays that stricter case: a 429 that asks for no wait while the hour's budget is far from spent.
    """
    return visma_fault_fail(calls, status_code=429)


def visma_fault_delay(calls: int, *, seconds: float) -> VismaFault:
    """Make the next `calls` API calls wait `seconds` before they are served (a write still happens afterwards)."""
    return VismaFault.objects.create(kind=VismaFault.Kind.DELAY, remaining=calls, seconds=seconds)


def visma_fault_stale_puts(calls: int) -> VismaFault:
    """Let "another user" save the resource just before each of the next `calls` PUTs: an If-Match is stale."""
    return VismaFault.objects.create(kind=VismaFault.Kind.STALE_PUT, remaining=calls)


def visma_fault_concurrent_edit(
    collection: str, key: str, *, company_id: str = VISMA_SANDBOX_COMPANY_ID
) -> VismaDocument:
    """Another user saves this resource now: new ETag/timeStamp and lastModifiedDateTime, same content."""
    document = visma_document_get(company_id, collection, key, label=collection)
    return visma_document_touch(document)


def visma_faults_clear() -> int:
    deleted, _ = VismaFault.objects.all().delete()
    return deleted


def visma_client_configure(
    client_id: str = VISMA_SANDBOX_CLIENT_ID,
    *,
    hourly_call_budget: int | None = None,
    token_lifetime_seconds: int | None = None,
) -> VismaClient:
    """Change a client's hourly budget or token lifetime (tests make them small)."""
    client = VismaClient.objects.get(client_id=client_id)
    if hourly_call_budget is not None:
        client.hourly_call_budget = hourly_call_budget
    if token_lifetime_seconds is not None:
        client.token_lifetime_seconds = token_lifetime_seconds
    client.save(update_fields=["hourly_call_budget", "token_lifetime_seconds"])
    return client


def visma_sandbox_reset(**seed_options) -> VismaClient:
    """Forget everything (documents, balances, tokens, budgets, faults, clients, settings) and seed again."""
    with transaction.atomic():
        for model in (VismaDocument, VismaCounter, VismaGLBalance, VismaFault, VismaCallWindow, VismaToken,
                      VismaClient, VismaSetting):
            model.objects.all().delete()
        return visma_sandbox_seed(**seed_options)


def visma_gl_balances(company_id: str = VISMA_SANDBOX_COMPANY_ID) -> list[dict]:
    """Debit, credit and balance per account posted so far, with the account's description."""
    descriptions = dict(
        VismaDocument.objects.filter(company_id=company_id, collection="account").values_list(
            "key", "body__description"
        )
    )
    return [
        {
            "account": balance.account_cd,
            "description": descriptions.get(balance.account_cd),
            "debit": f"{balance.debit_total:.2f}",
            "credit": f"{balance.credit_total:.2f}",
            "balance": f"{balance.balance:.2f}",
        }
        for balance in VismaGLBalance.objects.filter(company_id=company_id).order_by("account_cd")
    ]
