"""Running a management command the way a shell does, with its output captured."""
import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

EXAMPLE_TENANT = Path(settings.BASE_DIR) / "examples" / "tenant.json"


def run(name: str, *args, **options) -> tuple[str, str]:
    """(stdout, stderr) of `manage.py name args`; a CommandError propagates."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=stdout, stderr=stderr, **options)
    return stdout.getvalue(), stderr.getvalue()


def example_document() -> dict:
    return json.loads(EXAMPLE_TENANT.read_text())


def write_document(path: Path, document: dict) -> str:
    path.write_text(json.dumps(document, indent=2))
    return str(path)


def run_refused(name: str, *args, **options) -> tuple[CommandError, str, str]:
    """(the CommandError, stdout, stderr) of a command that must fail; fails the test if it does not."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command(name, *args, stdout=stdout, stderr=stderr, **options)
    return raised.value, stdout.getvalue(), stderr.getvalue()
