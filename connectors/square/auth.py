"""How the Square client authenticates: a personal access token, or OAuth tokens renewed long before they expire.

- Personal access token (credentials `access_token` without `refresh_token`): sent as is, never renewed by us; a
  401 → "the access token was refused: replace it" (docs/square.md §3).
- OAuth (`access_token`, `expires_at`, `refresh_token`, `client_id`, and `client_secret` for the code flow): the
  token in use is the one cached on the connection (`Connection.access_token`, `token_expires_at`) or the
  credentials', whichever expires later (so new credentials saved after a re-authorization win). Access tokens live
  30 days (spec ObtainTokenResponse.access_token); Square recommends renewing "every 7 days or less"
  (refresh-revoke-limit-scope page): we renew before use once the token is `token_renew_after_days` old (issued =
  expires_at − 30 days), never later than 28 days (a day before the issue's 29), and on a 401 once.
- ObtainToken `POST /oauth2/token` {client_id, client_secret (code flow), grant_type: refresh_token,
  refresh_token}; its answer has `expires_at` (ISO 8601), not `expires_in`. The code flow gets "the same refresh
  token" back; PKCE (no client secret) "a new single-use refresh token", stored encrypted in the credentials in the
  same UPDATE as the new access token, before the token is used (connectors.tokens.connection_token_replace). Two
  PKCE refreshes of one connection never run at once: a row lock on PostgreSQL, a process lock on SQLite. A PKCE
  refresh is never repeated after a timeout (the token may have been consumed).
- Square refuses the refresh (a 4xx other than 429: the 15-day grace after expiry passed, or the seller revoked
  access) → the connection is marked "the seller must re-authorize in Square" (`Connection.authorization_problem`),
  shown in the admin and by `ping`; every call then stops with SquareReauthorizationRequired (a PermanentError: the
  poll fails, its cursor stays, nothing is marked done) until new credentials are saved and a call works again.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from connectors.errors import PermanentError
from connectors.http import ApiSession
from connectors.models import Connection
from connectors.tokens import connection_token_replace

from .client import (
    SquareAuthenticationError,
    SquareReauthorizationRequired,
    square_time,
)

TOKEN_PATH = "/oauth2/token"
# "OAuth access tokens expire in 30 days" (spec ObtainTokenResponse.access_token): its issue time is expires_at − 30.
ACCESS_TOKEN_LIFETIME = timedelta(days=30)
# The issue: never let a token pass 29 days; renew a day before, whatever token_renew_after_days says.
RENEW_AT_THE_LATEST = timedelta(days=28)
DEFAULT_RENEW_AFTER_DAYS = 7

REAUTHORIZE = "the seller must re-authorize in Square"
PERSONAL_TOKEN_REFUSED = "the access token was refused: replace it"


def square_expires_at(value) -> datetime | None:
    """Square's `expires_at`: an ISO 8601 string ("2026-04-01T10:00:00Z" or with an offset) as aware UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return square_time(value) if isinstance(value, str) else None


def square_is_oauth(credentials: Mapping) -> bool:
    """OAuth tokens come with a refresh token and the application's client id; anything else is a personal token."""
    return bool(credentials.get("refresh_token") and credentials.get("client_id"))


def square_is_pkce(credentials: Mapping) -> bool:
    """PKCE has no client secret: each refresh answers a new single-use refresh token."""
    return square_is_oauth(credentials) and not credentials.get("client_secret")


def square_authorization_problem(connection: Connection) -> str:
    """Why calls of this connection stop ("" when they do not): the mark, unless the connection was saved after it
    (new credentials: the next call tries them)."""
    if not connection.authorization_problem:
        return ""
    marked_at, saved_at = connection.authorization_problem_at, connection.updated_at
    if marked_at is not None and saved_at is not None and saved_at > marked_at:
        return ""
    return connection.authorization_problem


def square_authorization_mark(connection: Connection, problem: str) -> None:
    """Mark the connection: calls stop and the admin and ping say why (a queryset update: updated_at stays, so only a
    later save of new credentials lifts it)."""
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(authorization_problem=problem, authorization_problem_at=now)
    connection.authorization_problem, connection.authorization_problem_at = problem, now


def square_authorization_clear(connection: Connection) -> None:
    Connection.objects.filter(pk=connection.pk).update(authorization_problem="", authorization_problem_at=None)
    connection.authorization_problem, connection.authorization_problem_at = "", None


def _renew_after(settings: Mapping) -> timedelta:
    days = settings.get("token_renew_after_days")
    days = DEFAULT_RENEW_AFTER_DAYS if days is None else int(days)
    return min(timedelta(days=max(days, 0)), RENEW_AT_THE_LATEST)


class SquareAuth:
    """The access token of one connection for the client: which one, when to renew it, what a refusal means."""

    def __init__(self, connection: Connection, *, settings: Mapping, identity: ApiSession, base_url: str):
        self.connection = connection
        self.identity = identity
        self.token_url = connection.token_url or f"{base_url}{TOKEN_PATH}"
        self.renew_after = _renew_after(settings)
        # The connection as loaded may predate a mark set by another worker (a revocation webhook): read it now.
        marked = (Connection.objects.filter(pk=connection.pk)
                  .values("authorization_problem", "authorization_problem_at", "updated_at").first())
        if marked is not None:
            for name, value in marked.items():
                setattr(connection, name, value)

    @property
    def oauth(self) -> bool:
        return square_is_oauth(self.connection.credentials or {})

    # -- the token -------------------------------------------------------------------------------------------

    def authorized_check(self) -> None:
        """Raise SquareReauthorizationRequired while the connection is marked and no new credentials were saved."""
        problem = square_authorization_problem(self.connection)
        if problem:
            raise SquareReauthorizationRequired(f"Square connection {self.connection}: {problem}")

    def token(self) -> str:
        """The access token to send now; an OAuth token due for renewal is renewed first."""
        self.authorized_check()
        if not self.oauth:
            return str((self.connection.credentials or {}).get("access_token") or "")
        found = self._usable(self.connection, None)
        if found is not None:
            return found[0]
        return self._renew(refused=None)

    def refused(self) -> None:
        """Square answered 401 (ACCESS_TOKEN_EXPIRED, UNAUTHORIZED...): renew once, or stop for a personal token."""
        if not self.oauth:
            square_authorization_mark(self.connection, PERSONAL_TOKEN_REFUSED)
            raise SquareAuthenticationError(f"Square connection {self.connection}: {PERSONAL_TOKEN_REFUSED}",
                                            status_code=401)
        current = self._current(self.connection)[0]
        self._renew(refused=current)

    def worked(self) -> None:
        """A call went through: a mark left from before new credentials were saved is lifted."""
        if self.connection.authorization_problem:
            square_authorization_clear(self.connection)

    def _current(self, row: Connection) -> tuple[str, datetime | None]:
        """The cached token or the credentials', whichever expires later (the cached one on a tie)."""
        credentials = row.credentials or {}
        stored = str(credentials.get("access_token") or "")
        stored_expiry = square_expires_at(credentials.get("expires_at"))
        if row.access_token and row.token_expires_at and (
                stored_expiry is None or row.token_expires_at >= stored_expiry or not stored):
            return row.access_token, row.token_expires_at
        return stored, stored_expiry

    def renewal_due(self, expires_at: datetime | None, *, now: datetime | None = None) -> bool:
        """Renew when the token is `token_renew_after_days` old (never past 28), expired, or of unknown age."""
        if expires_at is None:
            return True
        now = now or timezone.now()
        issued = expires_at - ACCESS_TOKEN_LIFETIME
        return now - issued >= self.renew_after or now >= expires_at

    def _usable(self, row: Connection, refused: str | None) -> tuple[str, datetime] | None:
        token, expires_at = self._current(row)
        if not token or token == refused or self.renewal_due(expires_at):
            return None
        return token, expires_at

    def _renew(self, *, refused: str | None) -> str:
        pkce = square_is_pkce(self.connection.credentials or {})
        try:
            return connection_token_replace(self.connection, self._obtain, refused=refused, usable=self._usable,
                                             one_at_a_time=pkce)
        except SquareReauthorizationRequired:
            raise
        except PermanentError as exc:
            if exc.status_code is not None and 400 <= exc.status_code < 500 and exc.status_code != 429:
                problem = f"Square refused the refresh token ({exc.system_message}): {REAUTHORIZE}"
                square_authorization_mark(self.connection, problem)
                raise SquareReauthorizationRequired(f"Square connection {self.connection}: {problem}",
                                                    status_code=exc.status_code,
                                                    system_message=exc.system_message) from exc
            raise

    def _obtain(self, row: Connection) -> tuple[str, datetime, dict]:
        """ObtainToken with the refresh token as stored now (the row is locked on PostgreSQL)."""
        credentials = dict(row.credentials or {})
        pkce = square_is_pkce(credentials)
        body = {"client_id": credentials["client_id"], "grant_type": "refresh_token",
                "refresh_token": credentials["refresh_token"]}
        if not pkce:
            body["client_secret"] = credentials["client_secret"]
        # A PKCE refresh token is single use: a repeat after a timeout could present a consumed one and be refused.
        response = self.identity.request("POST", self.token_url, json=body, replay_safe=not pkce)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        answer = answer if isinstance(answer, dict) else {}
        token = answer.get("access_token")
        expires_at = square_expires_at(answer.get("expires_at"))
        if not isinstance(token, str) or not token or expires_at is None:
            missing = "access_token" if not isinstance(token, str) or not token else "expires_at (ISO 8601)"
            raise SquareAuthenticationError(f"Square's token answer has no {missing}",
                                            status_code=response.status_code)
        further: dict = {}
        new_refresh = answer.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh and new_refresh != credentials["refresh_token"]:
            # PKCE: the old refresh token is spent; the new one goes in with the access token, in one UPDATE.
            further["credentials"] = {**credentials, "refresh_token": new_refresh}
        return token, expires_at, further


__all__ = [
    "REAUTHORIZE", "SquareAuth", "square_authorization_clear", "square_authorization_mark",
    "square_authorization_problem", "square_expires_at", "square_is_oauth", "square_is_pkce",
]
