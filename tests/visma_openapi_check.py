"""Pytest plugin: every request the suite sends to a Visma connection must validate against Visma's OpenAPI file."""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

# Visma Connect's token endpoint when a connection names none (connectors.visma.client.DEFAULT_TOKEN_URL).
VISMA_CONNECT_TOKEN_URL = "https://connect.visma.com/connect/token"


@dataclass(frozen=True)
class VismaRequest:
    """One request as the checker sees it: the path under the connection's base URL, the JSON body, the query."""

    method: str
    path: str
    body: Any
    query: dict[str, list[str]]

    def __str__(self) -> str:
        query = "&".join(f"{name}={value}" for name, values in self.query.items() for value in values)
        return f"{self.method} {self.path}{'?' + query if query else ''}"


def visma_request_of(session, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                     json_body: Any = None, data: Any = None,
                     headers: Mapping[str, str] | None = None) -> VismaRequest | None:
    """The API request an ApiSession.request call makes, or None when it is not one (another system, a token)."""
    connection = session.connection
    if getattr(connection, "system", None) != "visma":
        return None
    base = (connection.base_url or "").rstrip("/")
    bare_url = url.split("?", 1)[0]
    if bare_url in {connection.token_url, VISMA_CONNECT_TOKEN_URL} or bare_url.endswith("/connect/token"):
        return None
    path = bare_url[len(base):] if base and bare_url.startswith(base) else urlsplit(bare_url).path
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        query.setdefault(name, []).append(value)
    for name, value in (params or {}).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        query.setdefault(name, []).extend(_query_text(item) for item in values if item is not None)
    return VismaRequest(method=method.upper(), path=path or "/", body=_body(json_body, data, headers), query=query)


def _query_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _body(json_body: Any, data: Any, headers: Mapping[str, str] | None) -> Any:
    if json_body is not None:
        from connectors.http import json_dumps

        return json.loads(json_dumps(json_body))  # the body as it goes on the wire
    content_type = {key.lower(): value for key, value in (headers or {}).items()}.get("content-type", "")
    if data in (None, b"", "") or "json" not in content_type:
        return None
    return json.loads(data)


def visma_request_problems_of(requests: list[VismaRequest]) -> list[str]:
    """One line per problem: the request, then what the published OpenAPI file says is wrong with it."""
    from sandbox.openapi import visma_request_problems

    lines = []
    for request in requests:
        for problem in visma_request_problems(request.method, request.path, request.body, request.query):
            lines.append(f"{request}: {problem}")
    return lines


# The recorders installed now, innermost last: a request goes to the innermost only.
_recorders: list[VismaRequestRecorder] = []
_unpatched: list = []


def _recording_request(session, method, url, *, params=None, json=None, data=None, headers=None, **options):
    recorded = visma_request_of(session, method, url, params=params, json_body=json, data=data, headers=headers)
    if recorded is not None and _recorders:
        _recorders[-1].requests.append(recorded)
    return _unpatched[0](session, method, url, params=params, json=json, data=data, headers=headers, **options)


@dataclass
class VismaRequestRecorder:
    """Records the Visma API requests sent through any ApiSession while installed (and innermost)."""

    requests: list[VismaRequest] = field(default_factory=list)
    checked: int = 0

    @contextmanager
    def installed(self) -> Iterator[VismaRequestRecorder]:
        # Imported here: the plugin loads before Django is set up.
        from connectors.http import ApiSession

        if not _recorders:
            _unpatched[:] = [ApiSession.request]
            ApiSession.request = _recording_request
        _recorders.append(self)
        try:
            yield self
        finally:
            _recorders.remove(self)
            if not _recorders:
                ApiSession.request = _unpatched.pop()

    def problems(self) -> list[str]:
        """Problems of the requests recorded since the last call."""
        unchecked, self.checked = self.requests[self.checked:], len(self.requests)
        return visma_request_problems_of(unchecked)


@contextmanager
def visma_requests_recorded() -> Iterator[VismaRequestRecorder]:
    """Record the Visma API requests sent inside the block for the test to judge itself (a test that sends a bad
    request on purpose): the plugin's own recorder does not see them."""
    with VismaRequestRecorder().installed() as recorder:
        yield recorder


def _failure(problems: list[str]) -> str:
    return "requests not valid against the Visma.net ERP OpenAPI file:\n  " + "\n  ".join(problems)


@pytest.fixture(autouse=True)
def visma_openapi_requests(request) -> Iterator[VismaRequestRecorder]:
    """Records every ApiSession request to a "visma" connection (not the token request to Visma Connect, which is
    no API request); after the call phase, and again after teardown, checks each (method, path under the base
    URL, JSON body, query) with sandbox.openapi.visma_request_problems and fails the test naming the request and
    the problem. A test that sends a bad request on purpose does so inside `visma_requests_recorded()`."""
    with VismaRequestRecorder().installed() as recorder:
        request.node.visma_openapi_recorder = recorder
        yield recorder
    problems = recorder.problems()
    if problems:
        pytest.fail(_failure(problems), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    outcome = yield
    recorder = getattr(item, "visma_openapi_recorder", None)
    problems = recorder.problems() if recorder is not None else []
    if problems:
        pytest.fail(_failure(problems), pytrace=False)
    return outcome
