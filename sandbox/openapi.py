"""Visma.net ERP's published OpenAPI file, loaded once per process, and the request checks built on it."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .openapi_index import OpenApiIndex, openapi_index_cached, vendor_spec_path

VISMA_SPEC = "visma-net-erp/swagger.json"

# The date formats Visma lists for every *DateTime query parameter (spec parameter descriptions).
VISMA_DATETIME_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
)
VISMA_DATETIME_CONDITIONS = (">", "<", ">=", "<=")


def visma_datetime_parse(text: str) -> datetime | None:
    """A query date in one of Visma's accepted formats (naive: the caller decides the zone), or None."""
    for pattern in VISMA_DATETIME_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def _schema_tighten(schema: Any, seen: set[int]) -> None:
    """Make the document say what the server enforces: objects are objects, and no undeclared properties.

    Visma's schemas often omit `type: object` (a bare string then passes where `{"value": ...}` is required) and
    never close their objects; Visma drops an unknown property silently, which hides a misspelt field, so the
    check reports it. Strings and DtoValueOfNullableOf* values accept null, as the .NET server does.
    """
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen.add(id(schema))
    properties = schema.get("properties")
    if isinstance(properties, dict):
        schema.setdefault("type", "object")
        schema.setdefault("additionalProperties", False)
        for property_schema in properties.values():
            if isinstance(property_schema, dict) and property_schema.get("type") == "string":
                property_schema["nullable"] = True
            _schema_tighten(property_schema, seen)
    for key in ("items", "additionalProperties", "not"):
        _schema_tighten(schema.get(key), seen)
    for key in ("allOf", "oneOf", "anyOf"):
        for part in schema.get(key, []) or []:
            _schema_tighten(part, seen)


class VismaOpenApiIndex(OpenApiIndex):
    """Visma's document: DtoValueOfNullableOf* values nullable, objects tightened, date filters checked in pairs."""

    def document_prepare(self, document: dict) -> dict:
        schemas = document.get("components", {}).get("schemas", {})
        seen: set[int] = set()
        for name, schema in schemas.items():
            if name.startswith("DtoValueOfNullableOf"):
                schema.get("properties", {}).get("value", {})["nullable"] = True
            _schema_tighten(schema, seen)
        return document

    @property
    def name_in_problems(self) -> str:
        return f"the {self.title}"

    def query_name_hint(self, name: str, declared: Mapping[str, dict]) -> str:
        hint = next((known for known in declared if known.lower() == name.lower()), None)
        return f" (did you mean '{hint}'?)" if hint else ""

    def query_value_problems(self, name: str, schema: dict, value: Any) -> list[str]:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        kind = schema.get("type")
        if kind == "integer":
            try:
                int(text)
            except ValueError:
                return [f"{name}: '{text}' is not an integer"]
        elif kind == "number":
            try:
                float(text)
            except ValueError:
                return [f"{name}: '{text}' is not a number"]
        elif kind == "boolean" and text.lower() not in ("true", "false"):
            return [f"{name}: '{text}' is not true or false"]
        if "enum" in schema and text not in schema["enum"]:
            return [f"{name}: '{text}' is not one of {', '.join(map(str, schema['enum']))}"]
        return []

    def query_combination_problems(self, declared: Mapping[str, dict], query: Mapping[str, Any]) -> list[str]:
        problems = []
        for name in declared:
            if not name.endswith("Condition") or name[: -len("Condition")] not in declared:
                continue
            # Visma documents each date filter and its condition as "mutually inclusive".
            base = name[: -len("Condition")]
            if (base in query) != (name in query):
                present, missing = (base, name) if base in query else (name, base)
                problems.append(f"{missing}: required together with {present}")
            if base in query and visma_datetime_parse(_first(query[base])) is None:
                problems.append(
                    f"{base}: '{_first(query[base])}' is not in an accepted format "
                    "(yyyy-MM-dd, yyyy-MM-dd HH:mm:ss[.FFF], yyyy-MM-ddTHH:mm:ss[.FFF])"
                )
            if name in query and _first(query[name]) not in VISMA_DATETIME_CONDITIONS:
                problems.append(f"{name}: '{_first(query[name])}' is not one of >, <, >=, <=")
        return problems


def _first(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return str(value)


def visma_openapi() -> VismaOpenApiIndex:
    """The Visma.net ERP document, loaded on first use and kept for the life of the process."""
    return openapi_index_cached(
        "visma",
        lambda: VismaOpenApiIndex(vendor_spec_path(VISMA_SPEC), title="Visma.net ERP API"),
    )


def visma_api_path(path_or_url: str) -> tuple[str, dict[str, list[str]]]:
    """The API path (from /v1 or /v2 on) and query of a URL or path under any base, e.g. /sandbox/visma/v1/customer."""
    parts = urlsplit(path_or_url)
    segments = parts.path.split("/")
    for index, segment in enumerate(segments):
        if len(segment) >= 2 and segment[0] in "vV" and segment[1:].isdigit():
            api_path = "/" + "/".join(segments[index:])
            break
    else:
        api_path = parts.path
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(name, []).append(value)
    return api_path, query


def visma_request_problems(
    method: str, path: str, body: dict | list | None, query: Mapping[str, Any] | None = None
) -> list[str]:
    """What the published Visma.net ERP OpenAPI file says is wrong with this request; empty when nothing is.

    `path` may be a bare API path (/v1/customer/10001) or a full URL under any base; a query string in it is checked
    together with `query`. The body is checked against the operation's application/json requestBody schema,
    the query parameter names and simple values against the operation's declared parameters.
    """
    api_path, url_query = visma_api_path(path)
    return visma_openapi().request_problems(method, api_path, body, {**url_query, **dict(query or {})})


def visma_response_problems(method: str, path: str, status: int, body: Any) -> list[str]:
    """What the published Visma.net ERP OpenAPI file says is wrong with a response body (types, shapes, enums);
    used to keep the sandbox's read DTOs, and recorded payloads, shaped like Visma's."""
    api_path, _ = visma_api_path(path)
    return visma_openapi().response_problems_at(method, api_path, status, body)
