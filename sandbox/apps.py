"""The sandbox app: local emulators of the vendor APIs, installed only when SANDBOX_ENABLED is on."""
from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandbox"
    verbose_name = "Sandbox (vendor emulators)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  (registers the vendor documents check)
