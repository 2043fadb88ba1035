"""Stripe's published OpenAPI file (vendor_specs/stripe/spec3.yaml), loaded once, and the check the emulator makes of
each request: the path and method exist, and every top-level parameter is one Stripe documents for it."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import BinaryIO

import yaml

from .openapi_index import OpenApiIndex, Operation, openapi_index_cached, vendor_spec_path

STRIPE_SPEC = "stripe/spec3.yaml"


class StripeOpenApiIndex(OpenApiIndex):
    """Stripe's document: YAML, paths matched as spelt, parameters in the query or in a form-encoded body."""

    literals_case_sensitive = True

    def document_read(self, spec_file: BinaryIO) -> dict:
        return yaml.load(spec_file, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))

    def parameter_names(self, operation: Operation) -> frozenset[str]:
        """The query parameters and form-encoded body fields Stripe documents for `operation`."""
        spec = self.document["paths"][operation.template][operation.method]
        form = ((spec.get("requestBody") or {}).get("content") or {}).get("application/x-www-form-urlencoded") or {}
        return frozenset(operation.query_parameters) | frozenset((form.get("schema") or {}).get("properties") or {})


def stripe_openapi() -> StripeOpenApiIndex:
    """Stripe's document, loaded on first use (about 2 s) and kept for the life of the process."""
    return openapi_index_cached(
        "stripe", lambda: StripeOpenApiIndex(vendor_spec_path(STRIPE_SPEC), title="Stripe API")
    )


# Calls of the pinned API version (connectors/stripe/client.py STRIPE_API_VERSION) that the 2023 spec3.yaml predates,
# with the parameters stripe==16.1.0 types for them (stripe/params/_invoice_payment_list_params.py and
# _invoice_payment_retrieve_params.py).
PINNED_ADDITIONS: dict[tuple[str, re.Pattern], frozenset[str]] = {
    ("GET", re.compile(r"/v1/invoice_payments")): frozenset(
        {"created", "ending_before", "expand", "invoice", "limit", "payment", "starting_after", "status"}),
    ("GET", re.compile(r"/v1/invoice_payments/[^/]+")): frozenset({"expand"}),
}


def stripe_request_problems(method: str, path: str, params: Mapping[str, object]) -> list[str]:
    """What in this request Stripe's OpenAPI file does not allow; empty when it is a documented call."""
    unrecognized = [f"Unrecognized request URL ({method.upper()}: {path})."]
    # The index reads /v1/customers/ as /v1/customers; Stripe knows no path with an empty segment.
    if not path.startswith("/") or "" in path.split("/")[1:]:
        return unrecognized
    for (added_method, pattern), names in PINNED_ADDITIONS.items():
        if method.upper() == added_method and pattern.fullmatch(path):
            return [f"Received unknown parameter: {name}" for name in params if name not in names]
    document = stripe_openapi()
    found = document.operation_find(method, path)
    if found is None:
        return unrecognized
    names = document.parameter_names(found[0])
    return [f"Received unknown parameter: {name}" for name in params if name not in names]
