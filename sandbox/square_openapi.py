"""Square's published OpenAPI file (vendor_specs/square/api.json, Square-Version 2025-08-20), loaded once, and the
checks the emulator makes of each request (path, query parameters, JSON body) and tests make of its answers."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .openapi_index import OpenApiIndex, openapi_index_cached, pointer_resolve, schema_objects_close, vendor_spec_path

SQUARE_SPEC = "square/api.json"
# The version api.json describes (its x-fern-global-headers literal; docs/square.md §2).
SQUARE_SPEC_VERSION = "2025-08-20"


class SquareOpenApiIndex(OpenApiIndex):
    """Square's document: objects closed, query values checked by their declared type and enum."""

    literals_case_sensitive = True
    problems_deduplicated = True

    def document_prepare(self, document: dict) -> dict:
        schema_objects_close(document.get("components", {}).get("schemas", {}))
        return document

    def query_value_problems(self, name: str, schema: dict, value: Any) -> list[str]:
        if "$ref" in schema:
            schema = pointer_resolve(self.document, schema["$ref"])
        text = str(value)
        kind = schema.get("type")
        if kind == "integer":
            try:
                int(text)
            except ValueError:
                return [f"{name}: '{text}' is not of type integer"]
        elif kind == "boolean" and text not in ("true", "false"):
            return [f"{name}: '{text}' is not of type boolean"]
        if "enum" in schema and text not in schema["enum"]:
            return [f"{name}: '{text}' is not one of {', '.join(map(str, schema['enum']))}"]
        return []


def square_openapi() -> SquareOpenApiIndex:
    """Square's document, loaded on first use (a few seconds: 3 MB) and kept for the life of the process."""
    return openapi_index_cached("square", lambda: SquareOpenApiIndex(vendor_spec_path(SQUARE_SPEC),
                                                                     title="Square API"))


def square_request_problems(method: str, path: str, body: Any, query: Mapping[str, Any]) -> list[str]:
    """What api.json says is wrong with this request (`path` from /v2 or /oauth2 on); empty when nothing is."""
    return square_openapi().request_problems(method, path, body, query)


def square_response_problems(method: str, path: str, status: int, body: Any) -> list[str]:
    """What api.json says is wrong with an answer of the emulator (types, shapes, enums)."""
    return square_openapi().response_problems_at(method, path, status, body)


def square_schema_problems(schema_name: str, body: Any) -> list[str]:
    """What api.json says is wrong with `body` as the named schema (e.g. PaymentCreatedEvent for a webhook)."""
    from .openapi_index import _error_describe, _nulls_dropped

    validator = square_openapi().schema_validator(f"#/components/schemas/{schema_name}")
    problems = []
    for error in validator.iter_errors(_nulls_dropped(body)):
        problems.extend(_error_describe(error))
    return problems
