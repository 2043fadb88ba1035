"""Key rotation: re-encrypt every encrypted column with the newest key in FERNET_KEYS."""
from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models import ExpressionWrapper, F
from fernet_fields import EncryptedField
from fernet_fields.hkdf import derive_fernet_key

BATCH_SIZE = 500


class KeyRotationError(Exception):
    """A stored value no key in FERNET_KEYS can decrypt; nothing was re-encrypted."""


@dataclass
class KeyRotationResult:
    rows: int = 0
    values: int = 0
    by_model: dict[str, int] = field(default_factory=dict)


def encrypted_fields() -> dict[type[models.Model], list[EncryptedField]]:
    """Every encrypted column of every installed model (including ones added after this was written)."""
    found: dict[type[models.Model], list[EncryptedField]] = {}
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, EncryptedField):
                found.setdefault(model, []).append(model_field)
    return found


def fernet_for_settings() -> MultiFernet:
    """All keys of FERNET_KEYS, newest first, derived the way fernet_fields derives them."""
    keys = getattr(settings, "FERNET_KEYS", None) or [settings.SECRET_KEY]
    if getattr(settings, "FERNET_USE_HKDF", True):
        keys = [derive_fernet_key(key) for key in keys]
    return MultiFernet([Fernet(key) for key in keys])


def _raw(model_field: EncryptedField) -> ExpressionWrapper:
    # Read the column as bytes: the field's own converter would decrypt it.
    return ExpressionWrapper(F(model_field.attname), output_field=models.BinaryField())


def _raw_update(model: type[models.Model], pk, columns: dict[str, bytes]) -> None:
    # Plain SQL: an EncryptedField encrypts whatever .update() hands it, expressions included.
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column)} = %s" for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s",
            [connection.Database.Binary(token) for token in columns.values()] + [pk],
        )


def encryption_keys_rotate() -> KeyRotationResult:
    """Re-encrypt every stored encrypted value with the newest key, all in one transaction.

    Values are decrypted with any key in FERNET_KEYS and written back unchanged in meaning; afterwards the
    older keys can be dropped from FERNET_KEYS.
    """
    fernet = fernet_for_settings()
    result = KeyRotationResult()
    with transaction.atomic():
        for model, model_fields in encrypted_fields().items():
            label = model._meta.label
            names = {f"raw_{model_field.attname}": model_field for model_field in model_fields}
            rows = model._base_manager.order_by("pk").select_for_update().annotate(
                **{name: _raw(model_field) for name, model_field in names.items()}
            )
            last_pk = None
            while True:
                batch = rows.filter(pk__gt=last_pk) if last_pk is not None else rows
                batch = list(batch.values_list("pk", *names)[:BATCH_SIZE])
                if not batch:
                    break
                for pk, *raw_values in batch:
                    last_pk = pk
                    changes = {}
                    for (name, model_field), token in zip(names.items(), raw_values):
                        if token is None:
                            continue
                        try:
                            rotated = fernet.rotate(bytes(token))
                        except InvalidToken:
                            raise KeyRotationError(
                                f"{label} {pk} {model_field.name}: no key in FERNET_KEYS decrypts it; "
                                "add the key it was encrypted with (nothing was re-encrypted)"
                            ) from None
                        changes[model_field.column] = rotated
                    if changes:
                        _raw_update(model, pk, changes)
                        result.rows += 1
                        result.values += len(changes)
                        result.by_model[label] = result.by_model.get(label, 0) + 1
    return result
