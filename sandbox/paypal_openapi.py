"""PayPal's published OpenAPI files (vendor_specs/paypal), loaded once, and the request checks the emulator makes."""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from openapi_schema_validator import OAS30Validator

from .openapi_index import (
    FORMAT_CHECKER,
    OpenApiIndex,
    openapi_index_cached,
    pointer_resolve,
    schema_objects_close,
    vendor_spec_path,
)

PAYPAL_SPECS = {
    "payments": ("paypal/payments_payment_v2.json", "PayPal Payments v2", "/v2/payments/"),
    "orders": ("paypal/checkout_orders_v2.json", "PayPal Orders v2", "/v2/checkout/"),
    "reporting": ("paypal/reporting_transactions_v1.json", "PayPal Transaction Search v1", "/v1/reporting/"),
    "invoicing": ("paypal/invoicing_v2.json", "PayPal Invoicing v2", "/v2/invoicing/"),
}


def _flatten(document: dict, schema: Any, memo: dict[int, dict], seen: set[int]) -> Any:
    """Replace every allOf by one schema with the parts' properties merged, so that the closed objects below do not
    refuse a property declared in a sibling part (PayPal uses allOf for inheritance only)."""
    if isinstance(schema, list):
        return [_flatten(document, item, memo, seen) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if id(schema) in memo:
        return memo[id(schema)]
    if "allOf" in schema:
        merged: dict[str, Any] = {key: value for key, value in schema.items() if key != "allOf"}
        properties: dict[str, Any] = {}
        required: list[str] = list(schema.get("required", []))
        for part in schema["allOf"]:
            if isinstance(part, dict) and "$ref" in part:
                target = pointer_resolve(document, part["$ref"])
                if id(target) in seen:
                    continue
                seen.add(id(target))
                part = _flatten(document, target, memo, seen)
                seen.discard(id(target))
            else:
                part = _flatten(document, part, memo, seen)
            if not isinstance(part, dict):
                continue
            properties.update(part.get("properties", {}))
            required.extend(name for name in part.get("required", []) if name not in required)
            for key in ("type", "title"):
                if key in part and key not in merged:
                    merged[key] = part[key]
        if "properties" in schema:
            properties.update(schema["properties"])
        merged["properties"] = {name: _flatten(document, value, memo, seen) for name, value in properties.items()}
        if required:
            merged["required"] = required
        memo[id(schema)] = merged
        return merged
    flattened = {key: _flatten(document, value, memo, seen) for key, value in schema.items()}
    memo[id(schema)] = flattened
    return flattened


class PayPalOpenApiDocument(OpenApiIndex):
    """A PayPal OpenAPI 3.0 document: allOf flattened, objects closed, query parameters checked by their schema."""

    problems_deduplicated = True

    def document_prepare(self, document: dict) -> dict:
        components = document.get("components", {})
        memo: dict[int, dict] = {}
        flattened = copy.copy(document)
        flattened["components"] = {
            **components, "schemas": {name: _flatten(document, schema, memo, set())
                                      for name, schema in components.get("schemas", {}).items()}
        }
        flattened["paths"] = _flatten(document, document.get("paths", {}), memo, set())
        schema_objects_close(flattened["components"]["schemas"])
        schema_objects_close(flattened["paths"])
        return flattened

    def query_value_problems(self, name: str, schema: dict, value: Any) -> list[str]:
        """Values their schema refuses (type, pattern, range)."""
        coerced = _coerce(str(value), schema.get("type"))
        if coerced is None:
            return [f"{name}: '{value}' is not of type {schema.get('type')}"]
        validator = OAS30Validator(schema, format_checker=FORMAT_CHECKER)
        return [
            f"{name}: '{value}' {error.message.split(' ', 1)[-1]}" if error.validator == "pattern"
            else f"{name}: {error.message}"
            for error in validator.iter_errors(coerced)
        ]

    def query_combination_problems(self, declared: Mapping[str, dict], query: Mapping[str, Any]) -> list[str]:
        return [f"{name}: required query parameter is missing"
                for name, parameter in declared.items() if parameter.get("required") and name not in query]


def _coerce(text: str, kind: str | None):
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            return None
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return None
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower())
    return text


def paypal_openapi(name: str) -> PayPalOpenApiDocument:
    """One of PayPal's documents (payments, orders, reporting, invoicing), loaded on first use."""
    relative, title, _prefix = PAYPAL_SPECS[name]
    return openapi_index_cached(
        f"paypal:{name}", lambda: PayPalOpenApiDocument(vendor_spec_path(relative), title=title)
    )


def paypal_document_for(api_path: str) -> PayPalOpenApiDocument | None:
    for name, (_relative, _title, prefix) in PAYPAL_SPECS.items():
        if api_path.startswith(prefix):
            return paypal_openapi(name)
    return None


def paypal_request_problems(method: str, api_path: str, body: Any, query: Mapping[str, Any]) -> list[str]:
    """What PayPal's published OpenAPI file says is wrong with this request (path, query, JSON body)."""
    document = paypal_document_for(api_path)
    if document is None:
        return [f"{method.upper()} {api_path} is not in any PayPal OpenAPI file the emulator knows"]
    return document.request_problems(method, api_path, body, query)


def paypal_response_problems(method: str, api_path: str, status: int, body: Any) -> list[str]:
    """Where a response body disagrees with the declared schema (types, shapes, enums); unknown fields are allowed."""
    document = paypal_document_for(api_path)
    if document is None:
        return [f"{api_path} is not in any PayPal OpenAPI file the emulator knows"]
    return document.response_problems_at(method, api_path, status, body)
