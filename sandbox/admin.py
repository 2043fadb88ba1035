"""Read-only views of the emulators' state: Visma documents, GL balances, clients, tokens, budgets, faults; Square
merchants, objects, faults and the request log."""
import json

from django.contrib import admin
from django.utils.html import format_html

from .models import (
    SquareFault,
    SquareMerchant,
    SquareObject,
    SquareRequest,
    VismaCallWindow,
    VismaClient,
    VismaCounter,
    VismaDocument,
    VismaFault,
    VismaGLBalance,
    VismaToken,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Inspection only: the emulator changes through its API and its control endpoints."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(VismaDocument)
class VismaDocumentAdmin(ReadOnlyAdmin):
    list_display = ["collection", "key", "company_id", "last_modified", "etag"]
    list_filter = ["collection", "company_id"]
    search_fields = ["key"]
    fields = ["company_id", "collection", "key", "etag", "last_modified", "created", "pretty_body"]
    readonly_fields = fields

    @admin.display(description="Body (read DTO)")
    def pretty_body(self, document):
        return format_html("<pre>{}</pre>", json.dumps(document.body, indent=2, ensure_ascii=False))


@admin.register(VismaGLBalance)
class VismaGLBalanceAdmin(ReadOnlyAdmin):
    list_display = ["account_cd", "account_description", "debit_total", "credit_total", "balance_amount", "company_id"]
    list_filter = ["company_id"]
    search_fields = ["account_cd"]

    @admin.display(description="Account")
    def account_description(self, balance):
        account = VismaDocument.objects.filter(
            company_id=balance.company_id, collection="account", key=balance.account_cd
        ).first()
        return account.body.get("description") if account else "—"

    @admin.display(description="Balance (debit − credit)")
    def balance_amount(self, balance):
        return balance.balance


@admin.register(VismaClient)
class VismaClientAdmin(ReadOnlyAdmin):
    list_display = ["client_id", "company_id", "tenant_id", "token_lifetime_seconds", "hourly_call_budget"]
    exclude = ["client_secret"]


@admin.register(VismaToken)
class VismaTokenAdmin(ReadOnlyAdmin):
    list_display = ["client", "scope", "issued_at", "expires_at"]
    exclude = ["token_digest"]


@admin.register(VismaCallWindow)
class VismaCallWindowAdmin(ReadOnlyAdmin):
    list_display = ["client", "window_start", "calls"]


@admin.register(VismaFault)
class VismaFaultAdmin(ReadOnlyAdmin):
    list_display = ["kind", "remaining", "status_code", "seconds", "created_at"]


@admin.register(VismaCounter)
class VismaCounterAdmin(ReadOnlyAdmin):
    list_display = ["series", "last_number", "company_id"]


@admin.register(SquareMerchant)
class SquareMerchantAdmin(ReadOnlyAdmin):
    list_display = ["merchant_id", "name", "main_location_id", "notification_url", "fee_later", "list_delay_seconds",
                    "clock_offset_seconds"]
    exclude = ["application_secret", "signature_key"]


@admin.register(SquareObject)
class SquareObjectAdmin(ReadOnlyAdmin):
    list_display = ["object_type", "square_id", "merchant", "created_at", "updated_at", "delivered_at"]
    list_filter = ["object_type", "merchant"]
    search_fields = ["square_id"]
    fields = ["merchant", "object_type", "square_id", "created_at", "updated_at", "listed_from", "delivered_at",
              "pretty_body"]
    readonly_fields = fields

    @admin.display(description="Body (as Square answers it)")
    def pretty_body(self, row):
        return format_html("<pre>{}</pre>", json.dumps(row.body, indent=2, ensure_ascii=False))


@admin.register(SquareFault)
class SquareFaultAdmin(ReadOnlyAdmin):
    list_display = ["path_prefix", "method", "status", "remaining"]


@admin.register(SquareRequest)
class SquareRequestAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "method", "path", "status", "square_version", "fits_spec", "merchant"]
    list_filter = ["status", "method"]
    search_fields = ["path"]
