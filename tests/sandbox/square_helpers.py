"""A caller for the Square emulator: the Django test client with a bearer token and Square-Version, as the client
sends them."""
from dataclasses import dataclass

from django.test import Client

BASE = "/sandbox/square"
VERSION = "2025-08-20"
_UNSET = object()


@dataclass
class SquareSession:
    client: Client
    token: str
    version: str = VERSION

    def headers(self, version=_UNSET, authorization=_UNSET) -> dict:
        headers = {}
        version = self.version if version is _UNSET else version
        if version:
            headers["Square-Version"] = version
        authorization = f"Bearer {self.token}" if authorization is _UNSET else authorization
        if authorization:
            headers["Authorization"] = authorization
        return headers

    def get(self, path: str, query: dict | None = None, **headers):
        return self.client.get(f"{BASE}{path}", query or {}, headers=self.headers(**headers))

    def post(self, path: str, body=None, **headers):
        if body is None:
            return self.client.post(f"{BASE}{path}", "", content_type="application/json",
                                    headers=self.headers(**headers))
        return self.client.post(f"{BASE}{path}", body, content_type="application/json",
                                headers=self.headers(**headers))
