"""Fixtures for the Visma client tests: a Visma connection, recorded payloads, a token endpoint."""
import json
from pathlib import Path

import pytest
import responses

from tests.factories import ConnectionFactory

PAYLOADS = Path(__file__).parent / "payloads"
API = "https://api.finance.visma.net"
TOKEN_URL = "https://connect.visma.com/connect/token"


def payload(name: str):
    return json.loads((PAYLOADS / name).read_text())


def token_reply(mocked, access_token: str = "visma-token-1", expires_in: int = 3600):
    body = {**payload("token.json"), "access_token": access_token, "expires_in": expires_in}
    return mocked.add(responses.POST, TOKEN_URL, json=body)


@pytest.fixture
def visma_connection(db):
    return ConnectionFactory(system="visma")


@pytest.fixture
def mocked():
    with responses.RequestsMock() as mock:
        yield mock
