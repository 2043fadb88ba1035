"""What can go wrong talking to a system, sorted by what the pipeline does about it."""
from datetime import datetime


class ConnectorError(Exception):
    """Base for failures talking to a system."""

    def __init__(self, message: str, *, status_code: int | None = None, system_message: str = ""):
        super().__init__(message)
        self.status_code = status_code
        self.system_message = system_message or message


class TransientError(ConnectorError):
    """Worth trying again later: timeouts, 5xx, 429, a conflict that may clear."""


class PermanentError(ConnectorError):
    """The system refused the request as it stands (4xx): a person must look, retrying will not help."""


class AuthenticationError(PermanentError):
    """The credentials were refused even after fetching a new token."""


class RetryLater(TransientError):
    """Transient, and we know when it may work again: the call budget is spent, or the system asked for a long wait."""

    def __init__(self, message: str, *, retry_at: datetime, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_at = retry_at


class ConflictError(PermanentError):
    """The resource kept changing under us (412 on every attempt): a person must look at it."""


class WaitFor(Exception):
    """The record depends on another that is not posted yet (a refund before its capture), or on the source
    finishing something (a pending capture): it waits.

    `on`: (stream, source id) of the awaited record of the same integration, so the record is woken as soon as that
    one posts and flagged when that one is flagged or rejected; None when it waits on the source system.
    """

    def __init__(self, message: str, *, on: tuple[str, str] | None = None):
        super().__init__(message)
        self.on = on
