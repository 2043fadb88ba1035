"""PayPal's published OpenAPI files (shared/specs/paypal), loaded once, and the request checks the emulator makes."""
from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from .openapi import FORMAT_CHECKER, HTTP_METHODS, OpenApiDocument, Operation, _error_describe

PAYPAL_SPECS = {
    "payments": ("specs/paypal/payments_payment_v2.json", "PayPal Payments v2", "/v2/payments/"),
    "orders": ("specs/paypal/checkout_orders_v2.json", "PayPal Orders v2", "/v2/checkout/"),
    "reporting": ("specs/paypal/reporting_transactions_v1.json", "PayPal Transaction Search v1", "/v1/reporting/"),
    "invoicing": ("specs/paypal/invoicing_v2.json", "PayPal Invoicing v2", "/v2/invoicing/"),
}


def _resolve(document: dict, reference: str) -> dict:
    node: Any = document
    for part in reference.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


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
                target = _resolve(document, part["$ref"])
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


def _close(schema: Any, seen: set[int]) -> None:
    """Objects are objects and declare all their properties: a misspelt field is reported, not ignored."""
    if isinstance(schema, list):
        for item in schema:
            _close(item, seen)
        return
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen.add(id(schema))
    if isinstance(schema.get("properties"), dict):
        schema.setdefault("type", "object")
        schema.setdefault("additionalProperties", False)
    for value in schema.values():
        _close(value, seen)


class PayPalOpenApiDocument(OpenApiDocument):
    """A PayPal OpenAPI 3.0 document: allOf flattened, objects closed, query parameters checked by their schema."""

    def __init__(self, path: Path, *, title: str):
        started = time.perf_counter()
        self.path = path
        self.title = title
        with path.open("rb") as spec_file:
            original = json.load(spec_file)
        components = original.get("components", {})
        memo: dict[int, dict] = {}
        flattened = copy.copy(original)
        flattened["components"] = {
            **components, "schemas": {name: _flatten(original, schema, memo, set())
                                      for name, schema in components.get("schemas", {}).items()}
        }
        flattened["paths"] = _flatten(original, original.get("paths", {}), memo, set())
        _close(flattened["components"]["schemas"], set())
        _close(flattened["paths"], set())
        self.document = flattened
        self.base_uri = f"urn:openapi:{path.name}"
        self.registry = Registry().with_resource(
            self.base_uri, Resource.from_contents(self.document, default_specification=DRAFT4)
        )
        self.operations: dict[str, dict[int, list[Operation]]] = {}
        for template, path_item in self.document.get("paths", {}).items():
            shared_parameters = path_item.get("parameters", [])
            for method in HTTP_METHODS:
                if method not in path_item:
                    continue
                operation = self._operation_build(method, template, path_item[method], shared_parameters)
                self.operations.setdefault(method, {}).setdefault(len(operation.segments), []).append(operation)
        self._validators: dict[str, Any] = {}
        self.load_seconds = time.perf_counter() - started

    def query_problems(self, operation: Operation, query: Mapping[str, Any]) -> list[str]:
        """Unknown names, missing required parameters, and values their schema refuses (type, pattern, range)."""
        problems = []
        declared = operation.query_parameters
        for name, raw in query.items():
            parameter = declared.get(name)
            if parameter is None:
                problems.append(f"{name}: query parameter not declared for {operation.method.upper()} "
                                f"{operation.template}")
                continue
            schema = parameter.get("schema", {})
            for value in raw if isinstance(raw, (list, tuple)) else [raw]:
                coerced = _coerce(str(value), schema.get("type"))
                if coerced is None:
                    problems.append(f"{name}: '{value}' is not of type {schema.get('type')}")
                    continue
                validator = OAS30Validator(schema, format_checker=FORMAT_CHECKER)
                for error in validator.iter_errors(coerced):
                    problems.append(f"{name}: '{value}' {error.message.split(' ', 1)[-1]}"
                                    if error.validator == "pattern" else f"{name}: {error.message}")
        for name, parameter in declared.items():
            if parameter.get("required") and name not in query:
                problems.append(f"{name}: required query parameter is missing")
        return problems

    def body_problems(self, operation: Operation, body: Any) -> list[str]:
        if body is None:
            return ["request body is required"] if operation.body_required else []
        if operation.body_schema is None:
            return [f"{operation.method.upper()} {operation.template} takes no JSON request body"]
        problems = []
        errors = self.schema_validator(operation.body_schema).iter_errors(body)
        for error in sorted(errors, key=lambda error: [str(part) for part in error.absolute_path]):
            problems.extend(_error_describe(error))
        return list(dict.fromkeys(problems))


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


_documents: dict[str, PayPalOpenApiDocument] = {}
_lock = threading.Lock()


def paypal_openapi(name: str) -> PayPalOpenApiDocument:
    """One of PayPal's documents (payments, orders, reporting, invoicing), loaded on first use."""
    document = _documents.get(name)
    if document is None:
        with _lock:
            document = _documents.get(name)
            if document is None:
                relative, title, _prefix = PAYPAL_SPECS[name]
                document = PayPalOpenApiDocument(Path(settings.SHARED_DIR) / relative, title=title)
                _documents[name] = document
    return document


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
    found = document.operation_find(method, api_path)
    if found is None:
        return [f"{method.upper()} {api_path} is not an operation of {document.title}"]
    operation, _ = found
    return [*document.query_problems(operation, query), *document.body_problems(operation, body)]


def paypal_response_problems(method: str, api_path: str, status: int, body: Any) -> list[str]:
    """Where a response body disagrees with the declared schema (types, shapes, enums); unknown fields are allowed."""
    document = paypal_document_for(api_path)
    if document is None:
        return [f"{api_path} is not in any PayPal OpenAPI file the emulator knows"]
    found = document.operation_find(method, api_path)
    if found is None:
        return [f"{method.upper()} {api_path} is not an operation of {document.title}"]
    return document.response_problems(found[0], status, body)
