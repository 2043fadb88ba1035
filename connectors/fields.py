"""Encrypted model fields on top of django-fernet-fields-v2, and a way to re-read FERNET_KEYS."""
import json

from django.db import models
from fernet_fields import EncryptedTextField


class EncryptedJSONField(EncryptedTextField):
    """A JSON document (a connection's credentials) stored Fernet-encrypted, never as plain text."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", dict)
        super().__init__(*args, **kwargs)

    def get_prep_value(self, value):
        if value is None:
            return None
        return json.dumps(value, sort_keys=True)

    def to_python(self, value):
        if value is None or isinstance(value, dict):
            return value
        return json.loads(value)

    def value_to_string(self, obj):
        # Serialisation (dumpdata) never writes the clear value.
        return "***"


def encryption_keys_reload() -> None:
    """Drop the keys every encrypted field cached, so a changed FERNET_KEYS takes effect in this process."""
    from django.apps import apps

    from fernet_fields import EncryptedField

    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, EncryptedField):
                for cached in ("keys", "fernet_keys", "fernet"):
                    field.__dict__.pop(cached, None)


__all__ = ["EncryptedJSONField", "EncryptedTextField", "encryption_keys_reload", "models"]
