"""Reads of the mapping tables for the streams: which Visma id an external id stands for."""
from __future__ import annotations

from decimal import Decimal

from .models import ExternalReference, VatCodeMapping


def external_reference_visma_id(tenant, *, system: str, visma_kind: str, keys: list[tuple[str, str]]) -> str:
    """The Visma id the first of `keys` ((external kind, external id), in order of preference) is mapped to; ""
    when none is."""
    for external_kind, external_id in keys:
        if not external_id:
            continue
        found = ExternalReference.objects.filter(
            tenant=tenant, system=system, external_kind=external_kind, external_id=external_id, visma_kind=visma_kind
        ).values_list("visma_id", flat=True).first()
        if found:
            return found
    return ""


def vat_code_for(tenant, *, system: str, tax_name: str, percent: Decimal) -> str | None:
    """The Visma VAT code finance mapped a partner's tax to: by its name and percent, else by its percent alone."""
    mappings = VatCodeMapping.objects.filter(tenant=tenant, system=system, percent=percent)
    named = mappings.filter(tax_name__iexact=tax_name.strip()).values_list("vat_code", flat=True).first() \
        if tax_name.strip() else None
    return named or mappings.filter(tax_name="").values_list("vat_code", flat=True).first()
