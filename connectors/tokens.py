"""The access token cached (encrypted) on a connection, shared by every worker and renewed before it expires."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from .errors import ConnectorError
from .models import Connection

TOKEN_RENEW_MARGIN = timedelta(minutes=5)

TokenFetch = Callable[[], tuple[str, datetime]]


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
    if db_connection.features.has_select_for_update:
        failure = None
        with transaction.atomic():
            row = _token_row(connection, lock=True)
            if token_fresh(row, refused):
                token, expires_at = row.access_token, row.token_expires_at
            else:
                try:
                    token, expires_at = fetch()
                except ConnectorError as exc:
                    # Raised after the block, so the logged exchange of the failed fetch is kept.
                    failure = exc
                else:
                    Connection.objects.filter(pk=row.pk).update(access_token=token, token_expires_at=expires_at)
        if failure is not None:
            raise failure
    else:
        row = _token_row(connection, lock=False)
        if token_fresh(row, refused):
            token, expires_at = row.access_token, row.token_expires_at
        else:
            token, expires_at = fetch()
            Connection.objects.filter(pk=row.pk).update(access_token=token, token_expires_at=expires_at)
    connection.access_token, connection.token_expires_at = token, expires_at
    return token


def _token_row(connection: Connection, *, lock: bool) -> Connection:
    rows = Connection.objects.select_for_update() if lock else Connection.objects
    return rows.only("pk", "access_token", "token_expires_at").get(pk=connection.pk)
