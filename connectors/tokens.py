"""The access token cached (encrypted) on a connection, shared by every worker and renewed before it expires."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta

from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from .errors import ConnectorError
from .models import Connection

TOKEN_RENEW_MARGIN = timedelta(minutes=5)

TokenFetch = Callable[[], tuple[str, datetime]]
# Square-style renewal: the fetch reads the (locked) row and returns further columns to store with the token.
RowTokenFetch = Callable[[Connection], tuple[str, datetime, dict]]
TokenUsable = Callable[[Connection, "str | None"], "tuple[str, datetime] | None"]


def token_fresh(connection: Connection, refused: str | None = None) -> bool:
    """A token that is there, not the one just refused, and good for longer than the renewal margin."""
    if not connection.access_token or not connection.token_expires_at or connection.access_token == refused:
        return False
    return connection.token_expires_at - TOKEN_RENEW_MARGIN > timezone.now()


def connection_token(connection: Connection, fetch: TokenFetch) -> str:
    """The connection's token; a new one only when it is missing or close to expiry."""
    if token_fresh(connection):
        return connection.access_token
    return connection_token_renew(connection, fetch)


def connection_token_renew(connection: Connection, fetch: TokenFetch, *, refused: str | None = None) -> str:
    """A new token, unless another worker stored a fresh one meanwhile; `refused` is the one the API just refused.

    With row locks (PostgreSQL) workers share one fetch under a lock on the connection row. SQLite has one writer
    and no row locks: holding it across the HTTP call would stall every other writer (the sandbox's token endpoint
    too), so there the token is fetched outside any transaction; two workers may both fetch, either token is valid.
    """
    return connection_token_replace(connection, lambda row: (*fetch(), {}), refused=refused)


def _usable_when_fresh(row: Connection, refused: str | None) -> tuple[str, datetime] | None:
    return (row.access_token, row.token_expires_at) if token_fresh(row, refused) else None


# One lock per connection for the refreshes that must never run twice at once (Square PKCE: a refresh token is
# single use) where the database has no row locks: SQLite, whose installations run one worker process.
_replace_locks: dict[int, threading.Lock] = {}
_replace_locks_guard = threading.Lock()


@contextmanager
def _one_at_a_time(connection_pk: int) -> Iterator[None]:
    with _replace_locks_guard:
        lock = _replace_locks.setdefault(connection_pk, threading.Lock())
    with lock:
        yield


def connection_token_replace(connection: Connection, fetch: RowTokenFetch, *, refused: str | None = None,
                             usable: TokenUsable = _usable_when_fresh, one_at_a_time: bool = False) -> str:
    """The general form of `connection_token_renew`, for tokens with more to them (Square's OAuth).

    `usable(row, refused)` says which stored token may still be used ((token, expires_at), or None: fetch);
    `fetch(row)` gets a new one from the connection row as read (under its lock on PostgreSQL) and returns
    (token, expires_at, further column values), stored in the same UPDATE as the token: a new single-use refresh
    token is never stored apart from its access token. `one_at_a_time`: on SQLite too, never two fetches of one
    connection at once (a process lock, since the write lock cannot be held across the HTTP call, see above).
    """
    further: dict = {}
    if db_connection.features.has_select_for_update:
        failure = None
        with transaction.atomic():
            row = _token_row(connection, lock=True)
            found = usable(row, refused)
            if found is not None:
                token, expires_at = found
            else:
                try:
                    token, expires_at, further = fetch(row)
                except ConnectorError as exc:
                    # Raised after the block, so the logged exchange of the failed fetch is kept.
                    failure = exc
                else:
                    Connection.objects.filter(pk=row.pk).update(
                        access_token=token, token_expires_at=expires_at, **further)
        if failure is not None:
            raise failure
    else:
        with _one_at_a_time(connection.pk) if one_at_a_time else nullcontext():
            row = _token_row(connection, lock=False)
            found = usable(row, refused)
            if found is not None:
                token, expires_at = found
            else:
                token, expires_at, further = fetch(row)
                Connection.objects.filter(pk=row.pk).update(
                    access_token=token, token_expires_at=expires_at, **further)
    connection.access_token, connection.token_expires_at = token, expires_at
    for name, value in further.items():
        setattr(connection, name, value)
    return token


def _token_row(connection: Connection, *, lock: bool) -> Connection:
    rows = Connection.objects.select_for_update() if lock else Connection.objects
    return rows.only("pk", "system", "access_token", "token_expires_at", "credentials").get(pk=connection.pk)
