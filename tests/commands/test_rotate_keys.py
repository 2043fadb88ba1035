import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection as db
from django.test import override_settings
from fernet_fields.hkdf import derive_fernet_key

from connectors.fields import encryption_keys_reload
from connectors.models import Connection
from tests.factories import ConnectionFactory

from .helpers import run, run_refused

pytestmark = pytest.mark.django_db

KEY_B = "test-fernet-key-2"


@pytest.fixture
def fernet_keys():
    """Switch FERNET_KEYS for the rest of a test; the fields' cached keys follow, and are reset afterwards."""
    overrides = []

    def switch(keys: list[str]) -> None:
        override = override_settings(FERNET_KEYS=keys)
        override.enable()
        overrides.append(override)
        encryption_keys_reload()

    yield switch
    for override in reversed(overrides):
        override.disable()
    encryption_keys_reload()


def _raw(connection_id: int) -> tuple[bytes, bytes | None]:
    with db.cursor() as cursor:
        cursor.execute("SELECT credentials, access_token FROM connectors_connection WHERE id = %s", [connection_id])
        credentials, access_token = cursor.fetchone()
    return bytes(credentials), bytes(access_token) if access_token is not None else None


def test_rotation_re_encrypts_every_value_with_the_newest_key(fernet_keys):
    # given: two connections encrypted with key A, one with a cached token
    key_a = settings.FERNET_KEYS[0]
    visma = ConnectionFactory(system="visma")
    paypal = ConnectionFactory(tenant=visma.tenant, system="paypal")
    Connection.objects.filter(pk=visma.pk).update(access_token="eyJhbGciOi-visma-token")
    before = {pk: _raw(pk) for pk in (visma.pk, paypal.pk)}
    fernet_keys([KEY_B, key_a])

    # when
    stdout, _ = run("rotate_keys")

    # then
    assert stdout == "Re-encrypted 2 row(s) (3 value(s)) with the newest key: connectors.Connection 2.\n"
    after = {pk: _raw(pk) for pk in (visma.pk, paypal.pk)}
    assert after[visma.pk][0] != before[visma.pk][0]
    assert after[visma.pk][1] != before[visma.pk][1]
    assert after[paypal.pk][0] != before[paypal.pk][0]
    assert after[paypal.pk][1] is None
    only_b = Fernet(derive_fernet_key(KEY_B))
    assert only_b.decrypt(after[visma.pk][1]) == b"eyJhbGciOi-visma-token"
    fernet_keys([KEY_B])
    assert Connection.objects.get(pk=visma.pk).credentials == {
        "client_id": "visma-client", "client_secret": "visma-secret-s3cr3t", "tenant_id": "t-1",
        "company_id": "1234567",
    }
    assert Connection.objects.get(pk=visma.pk).access_token == "eyJhbGciOi-visma-token"
    assert Connection.objects.get(pk=paypal.pk).credentials == {
        "client_id": "pp-client", "client_secret": "pp-secret-s3cr3t", "webhook_id": "WH-1",
    }


def test_a_value_no_key_decrypts_stops_the_rotation_before_anything_changes(fernet_keys):
    # given: one connection under key A, another under a key that is no longer configured
    key_a = settings.FERNET_KEYS[0]
    first = ConnectionFactory(system="visma")
    fernet_keys(["a-forgotten-key"])
    lost = ConnectionFactory(tenant=first.tenant, system="paypal")
    fernet_keys([KEY_B, key_a])
    before = {pk: _raw(pk) for pk in (first.pk, lost.pk)}

    # when
    error, stdout, _ = run_refused("rotate_keys")

    # then
    assert str(error) == (
        f"connectors.Connection {lost.pk} credentials: no key in FERNET_KEYS decrypts it; add the key it was "
        "encrypted with (nothing was re-encrypted)"
    )
    assert stdout == ""
    assert {pk: _raw(pk) for pk in (first.pk, lost.pk)} == before


def test_nothing_to_rotate_says_so():
    # when
    stdout, _ = run("rotate_keys")

    # then
    assert stdout == "Re-encrypted 0 row(s) (0 value(s)) with the newest key.\n"
