"""The accountant's screens: GL mapping rules (versioned, checked on save), the Visma mirror (read-only), cross-refs."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from .models import (
    Currency, Customer, DimensionValue, ExternalReference, FinancialPeriod, GLAccount, GLMappingRule, SquareLocation,
    Supplier, VatCodeMapping,
)
from .services import mapping_rule_validate

VALIDATION_COLOURS = {
    GLMappingRule.ValidationState.VALID: "#1e7e34",
    GLMappingRule.ValidationState.INVALID: "#b91c1c",
    GLMappingRule.ValidationState.UNCHECKED: "#6b7280",
}


def square_location_label(tenant_id, location_id: str) -> str:
    """A rule's Square location as the accountant knows it: the store's name (and "inactive"), else the bare id."""
    location = SquareLocation.objects.filter(tenant_id=tenant_id, location_id=location_id).first()
    return f"{location} ({location_id})" if location else f"Square location {location_id} (not mirrored)"


class GLMappingRuleForm(forms.ModelForm):
    change_reason = forms.CharField(
        max_length=100, required=False, label="Reason for this change",
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Kept in the rule's history with your name, e.g. “fees now go to 7790 from 1 March”.",
    )

    class Meta:
        model = GLMappingRule
        fields = "__all__"

    def clean_change_reason(self):
        reason = self.cleaned_data["change_reason"].strip()
        if self.instance.pk and self.has_changed() and not reason:
            raise forms.ValidationError("Say why you change the rule: the history keeps it for the auditors.")
        return reason


@admin.register(GLMappingRule)
class GLMappingRuleAdmin(SimpleHistoryAdmin):
    """Mapping rules: every save is versioned with who and why, then checked against the Visma mirror."""

    form = GLMappingRuleForm
    list_display = ["name", "system", "priority", "conditions", "accounts", "validation", "is_active", "tenant"]
    list_display_links = ["name"]
    list_filter = ["tenant", "system", "is_active", "validation_state", "currency"]
    list_select_related = ["tenant"]
    search_fields = ["name", "transaction_type", "customer_group", "customer", "payer", "payment_method", "location",
                     "gl_account", "fee_account", "clearing_account"]
    fieldsets = [
        (None, {"fields": ["tenant", "system", "name", "priority", "is_active"]}),
        ("Matches (empty: any)", {"fields": ["transaction_type", "currency", "min_amount", "max_amount",
                                             "customer_group", "customer", "payer", "payment_method",
                                             "location", "location_name"]}),
        ("Posts to", {"fields": ["gl_account", "fee_account", "clearing_account", "exchange_difference_account",
                                 "disputes_account", "tip_account", "dimensions"]}),
        ("Check against Visma", {"fields": ["validation", "validation_problems_list", "validated_at"]}),
        ("Why", {"fields": ["change_reason"]}),
    ]
    readonly_fields = ["validation", "validation_problems_list", "validated_at", "location_name"]

    def get_fieldsets(self, request, obj=None):
        # Someone who may only look at a rule has no change to give a reason for.
        if obj is not None and not self.has_change_permission(request, obj):
            return [fieldset for fieldset in self.fieldsets if fieldset[0] != "Why"]
        return self.fieldsets

    def save_model(self, request, obj, form, change):
        obj._change_reason = form.cleaned_data.get("change_reason") or ("created" if not change else "")
        super().save_model(request, obj, form, change)
        mapping_rule_validate(obj)
        if obj.validation_state == GLMappingRule.ValidationState.INVALID:
            self.message_user(
                request, f"{obj.name} is invalid: {'; '.join(obj.validation_problems)}. "
                "Records it maps will be flagged until it is fixed.", messages.WARNING,
            )

    @admin.display(description="conditions")
    def conditions(self, rule):
        parts = [rule.transaction_type or "any type", rule.currency or "any currency"]
        if rule.min_amount is not None or rule.max_amount is not None:
            low = "" if rule.min_amount is None else f"{rule.min_amount.normalize():f}"
            high = "" if rule.max_amount is None else f"{rule.max_amount.normalize():f}"
            parts.append(f"{low}–{high}")
        if rule.customer_group:
            parts.append(f"group {rule.customer_group}")
        if rule.customer:
            parts.append(f"customer {rule.customer}")
        if rule.payer:
            parts.append(f"payer {rule.payer}")
        if rule.payment_method:
            parts.append(rule.payment_method)
        if rule.location:
            parts.append(f"at {square_location_label(rule.tenant_id, rule.location)}")
        return " · ".join(parts)

    @admin.display(description="store")
    def location_name(self, rule):
        return square_location_label(rule.tenant_id, rule.location) if rule.location else "any location"

    @admin.display(description="accounts")
    def accounts(self, rule):
        parts = [rule.gl_account]
        if rule.fee_account:
            parts.append(f"fee {rule.fee_account}")
        if rule.clearing_account:
            parts.append(f"clearing {rule.clearing_account}")
        if rule.exchange_difference_account:
            parts.append(f"exchange difference {rule.exchange_difference_account}")
        if rule.disputes_account:
            parts.append(f"disputes {rule.disputes_account}")
        if rule.tip_account:
            parts.append(f"tips {rule.tip_account}")
        if rule.dimensions:
            parts.append(", ".join(f"{segment}={value}" for segment, value in sorted(rule.dimensions.items())))
        return " · ".join(parts)

    @admin.display(description="validation", ordering="validation_state")
    def validation(self, rule):
        return format_html(
            '<span class="validation-{}" style="color:#fff;background:{};padding:1px 6px;border-radius:8px;'
            'white-space:nowrap">{}</span>',
            rule.validation_state, VALIDATION_COLOURS.get(rule.validation_state, "#6b7280"),
            rule.get_validation_state_display(),
        )

    @admin.display(description="problems")
    def validation_problems_list(self, rule):
        if not rule.validation_problems:
            return "none"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((p,) for p in rule.validation_problems)))


class ReadOnlyAdmin(admin.ModelAdmin):
    """The mirror of Visma: refreshed from Visma only, so nobody adds, changes or deletes it here."""

    list_select_related = ["tenant"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(GLAccount)
class GLAccountAdmin(ReadOnlyAdmin):
    list_display = ["number", "description", "account_type", "currency", "control_account_module", "active", "tenant",
                    "refreshed_at"]
    list_filter = ["tenant", "active", "account_type", "currency", "control_account_module"]
    search_fields = ["number", "description"]


@admin.register(FinancialPeriod)
class FinancialPeriodAdmin(ReadOnlyAdmin):
    list_display = ["period_id", "description", "start_date", "end_date", "active", "closed_in_general_ledger",
                    "closed_in_customer_ledger", "closed_in_supplier_ledger", "tenant"]
    list_filter = ["tenant", "active", "year"]
    search_fields = ["period_id", "description"]


@admin.register(DimensionValue)
class DimensionValueAdmin(ReadOnlyAdmin):
    list_display = ["dimension", "segment_id", "segment_name", "value", "description", "active", "tenant"]
    list_filter = ["tenant", "active", "dimension", "segment_id"]
    search_fields = ["value", "description", "segment_name"]


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ["number", "name", "customer_class", "currency", "active", "tenant"]
    list_filter = ["tenant", "active", "customer_class", "currency"]
    search_fields = ["number", "name"]


@admin.register(Supplier)
class SupplierAdmin(ReadOnlyAdmin):
    list_display = ["number", "name", "supplier_class", "currency", "active", "tenant"]
    list_filter = ["tenant", "active", "supplier_class", "currency"]
    search_fields = ["number", "name"]


@admin.register(ExternalReference)
class ExternalReferenceAdmin(admin.ModelAdmin):
    list_display = ["system", "external_kind", "external_id", "visma_kind", "visma_id", "tenant", "updated_at"]
    list_filter = ["tenant", "system", "external_kind", "visma_kind"]
    list_select_related = ["tenant"]
    search_fields = ["external_id", "visma_id"]


@admin.register(VatCodeMapping)
class VatCodeMappingAdmin(SimpleHistoryAdmin):
    list_display = ["system", "tax_name", "percent", "vat_code", "tenant", "updated_at"]
    list_filter = ["tenant", "system", "vat_code"]
    list_select_related = ["tenant"]
    search_fields = ["tax_name", "vat_code"]


@admin.register(Currency)
class CurrencyAdmin(ReadOnlyAdmin):
    list_display = ["code", "description", "is_base", "decimals", "active", "tenant"]
    list_filter = ["tenant", "is_base", "active"]


@admin.register(SquareLocation)
class SquareLocationAdmin(ReadOnlyAdmin):
    """The Square locations (stores) as Square lists them: refreshed from Square only; inactive ones marked."""

    list_display = ["name", "location_id", "state", "currency", "timezone", "is_main", "tenant", "refreshed_at"]
    list_filter = ["tenant", "status", "currency"]
    search_fields = ["name", "location_id"]

    @admin.display(description="status", ordering="status")
    def state(self, location):
        colour = "#1e7e34" if location.active else "#b91c1c"
        return format_html('<span style="color:{}">{}</span>', colour, location.get_status_display())
