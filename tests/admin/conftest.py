"""Fixtures for the admin tests: one user per group, a tenant with its Visma mirror, a flagged record."""
import pytest

from tests.admin.factories import books_create, flagged_record_create
from tests.factories import IntegrationFactory, UserFactory


@pytest.fixture
def accountant(db):
    return UserFactory(username="anna.accountant", groups=["Accountant"])


@pytest.fixture
def finance(db):
    return UserFactory(username="frank.finance", groups=["Finance"])


@pytest.fixture
def operator(db):
    return UserFactory(username="olga.operator", groups=["Operator"])


@pytest.fixture
def superuser(db):
    user = UserFactory(username="root", is_superuser=True)
    user.save()  # UserFactory saves the password only when it adds groups
    return user


@pytest.fixture
def users(accountant, finance, operator, superuser):
    return {"Accountant": accountant, "Finance": finance, "Operator": operator, "superuser": superuser}


@pytest.fixture
def integration(db):
    integration = IntegrationFactory(tenant__slug="nordlys", tenant__name="Nordlys AS")
    books_create(integration.tenant)
    return integration


@pytest.fixture
def flagged(integration):
    return flagged_record_create(integration)
