"""The Stripe client over the emulator: one StripeClient per connection, errors sorted for the pipeline, retries of a
create with the same idempotency key never making a second object, the events poll, the ping."""
import time
from datetime import UTC, datetime

import pytest

from connectors.errors import AuthenticationError, PermanentError
from connectors.stripe.client import StripeApi, stripe_idempotency_key, stripe_ping
from sandbox.models import StripeObject
from tests.factories import ConnectionFactory
from tests.stripe.conftest import SECRET_KEY


@pytest.fixture
def api(live_server, stripe_account):
    connection = ConnectionFactory(system="stripe", base_url=f"{live_server.url}/sandbox/stripe",
                                   credentials={"secret_key": SECRET_KEY})
    api = StripeApi(connection)
    yield api
    api.close()


def test_the_idempotency_key_is_stable_per_business_object():
    # then
    assert stripe_idempotency_key("invoice", "tenant-1", "100042") == stripe_idempotency_key("invoice", "tenant-1",
                                                                                          "100042")
    assert stripe_idempotency_key("invoice", "tenant-1", "100042") != stripe_idempotency_key("invoice", "tenant-1",
                                                                                          "100043")
    assert len(stripe_idempotency_key("x")) == 51


def test_a_retried_create_with_the_same_key_makes_one_invoice(api):
    # given
    customer = api.customer_create({"name": "Fjordkraft AS", "metadata": {"visma_customer": "10001"}},
                                   idempotency_key=stripe_idempotency_key("customer", "10001"))
    key = stripe_idempotency_key("invoice", "100042")

    # when
    first = api.invoice_create({"customer": customer.id, "collection_method": "send_invoice", "days_until_due": 14},
                               idempotency_key=key)
    retried = api.invoice_create({"customer": customer.id, "collection_method": "send_invoice",
                                  "days_until_due": 14}, idempotency_key=key)

    # then
    assert first.id == retried.id
    assert StripeObject.objects.filter(object_type="invoice").count() == 1


def test_a_customer_is_found_by_its_visma_number(api):
    # given
    created = api.customer_create({"name": "O'Neill AS", "metadata": {"visma_customer": "10'01"}},
                                  idempotency_key="k-1")

    # when
    found = api.customer_find(metadata_key="visma_customer", value="10'01")
    missing = api.customer_find(metadata_key="visma_customer", value="99999")

    # then
    assert found.id == created.id
    assert missing is None


def test_an_unknown_object_is_a_permanent_error_naming_it(api):
    # when
    with pytest.raises(PermanentError) as raised:
        api.charge("ch_missing")

    # then
    assert raised.value.status_code == 404
    assert str(raised.value) == "Stripe 404: No such charge: 'ch_missing'"


def test_a_refused_key_is_an_authentication_error(live_server, stripe_account):
    # given
    connection = ConnectionFactory(system="stripe", base_url=f"{live_server.url}/sandbox/stripe",
                                   credentials={"secret_key": "sk_test_revoked00000"})

    # when
    with pytest.raises(AuthenticationError) as raised:
        StripeApi(connection).charge("ch_1")

    # then
    assert raised.value.status_code == 401


def test_events_are_read_since_a_time_across_pages(api, stripe_account):
    # given
    from sandbox import stripe_api

    for amount in (1000, 2000, 3000):
        stripe_api.charge_create(stripe_account, {"amount": str(amount), "currency": "nok", "source": "tok_visa"})
    since = datetime.fromtimestamp(int(time.time()) - 60, tz=UTC)

    # when
    events = list(api.events(since=since, types=["charge.succeeded"]))

    # then
    assert [event.data.object.amount for event in events] == [3000, 2000, 1000]


def test_the_charge_is_read_with_its_balance_transaction(api, stripe_account):
    # given
    from sandbox import stripe_api

    charge = stripe_api.charge_create(stripe_account, {"amount": "10000", "currency": "nok", "source": "tok_visa"})

    # when
    read = api.charge(charge["id"])

    # then: 2.9 % of kr 100.00 = 2.90, plus kr 2.00
    assert (read.balance_transaction.fee, read.balance_transaction.net) == (490, 9510)


def test_the_ping_reads_the_balance(api, live_server, stripe_account):
    # given
    connection = ConnectionFactory(system="stripe", base_url=f"{live_server.url}/sandbox/stripe",
                                   credentials={"secret_key": SECRET_KEY})

    # when
    answer = stripe_ping(connection)

    # then
    assert answer == f"key OK, balance readable (currencies: NOK) ({live_server.url}/sandbox/stripe)"
