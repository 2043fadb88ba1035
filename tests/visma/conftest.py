"""Fixtures for the Visma client tests: a Visma connection, recorded payloads, a token endpoint."""
import json
from pathlib import Path

import pytest
import responses

from tests.factories import ConnectionFactory, TenantFactory

PAYLOADS = Path(__file__).parent / "payloads"
API = "https://api.finance.visma.net"
TOKEN_URL = "https://connect.visma.com/connect/token"


def payload(name: str):
    return json.loads((PAYLOADS / name).read_text())


def token_reply(mocked, access_token: str = "visma-token-1", expires_in: int = 3600):
    body = {**payload("token.json"), "access_token": access_token, "expires_in": expires_in}
    return mocked.add(responses.POST, TOKEN_URL, json=body)


def calendar_year_period(day) -> str:
    """A calendar-year company's period of a date (period = month), as the sandbox seeds one."""
    return f"{day.year:04d}{day.month:02d}"


@pytest.fixture(autouse=True)
def calendar_year_company():
    """The document builders here are called outside VismaTarget: bind a calendar-year company's periods."""
    from connectors.visma.postings import visma_financial_calendar

    with visma_financial_calendar(calendar_year_period):
        yield


@pytest.fixture
def visma_connection(db):
    # Its tenant's mirror is empty, financial periods too: what a refresh brings is all there is.
    return ConnectionFactory(system="visma", tenant=TenantFactory(financial_periods=False))


@pytest.fixture
def mocked():
    with responses.RequestsMock() as mock:
        yield mock
