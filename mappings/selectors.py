"""Reads of the mapping tables for the streams: which Visma id an external id stands for."""
from __future__ import annotations

from .models import ExternalReference


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
