"""Logging filters: credentials masked wherever a message would carry one; refused webhooks counted, not logged."""
import logging
import re

_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]+"),
    re.compile(
        r"(?i)((?:client_secret|secret|password|access_token|refresh_token|api_key|token)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+"
    ),
]


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class CountedWebhookRefusalsFilter(logging.Filter):
    """Drops django.request's line for a webhook answered 4xx: connectors.refusals counts those, so a flood of bad
    requests does not become a flood of log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        status_code = getattr(record, "status_code", None) or 0
        path = getattr(request, "path", "") or ""
        return not (400 <= status_code < 500 and path.startswith("/webhooks/"))
