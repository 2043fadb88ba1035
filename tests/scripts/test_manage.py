"""scripts/manage runs manage.py in the demo's environment, from wherever the operator is."""
import json
import os
import subprocess
from pathlib import Path

from django.conf import settings

SHOW_SETTINGS = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps([s.DEBUG, s.SANDBOX_ENABLED, str(s.VAR_DIR), str(s.DATABASES['default']['NAME'])]))"
)


def _shell_environment(**extra) -> dict:
    """What a user's shell would have: none of the test settings' variables."""
    return {**{name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}, **extra}


def test_manage_sees_the_demos_settings_and_reads_paths_from_where_it_is_run(tmp_path):
    # given
    script = Path(settings.BASE_DIR) / "scripts" / "manage"
    (tmp_path / "elsewhere").mkdir()

    # when
    shown = subprocess.run(
        [str(script), "shell", "--no-imports", "-c", SHOW_SETTINGS], cwd=tmp_path / "elsewhere",
        env=_shell_environment(ML_VAR_DIR=str(tmp_path / "var")), capture_output=True, text=True, check=True,
    )

    # then
    assert json.loads(shown.stdout) == [True, True, str(tmp_path / "var"), str(tmp_path / "var/ml-connector.sqlite3")]
    assert sorted(path.name for path in (tmp_path / "var").iterdir()) == ["dev-fernet-key", "dev-secret-key"]
