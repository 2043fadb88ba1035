"""`manage.py demo_setup --base-url URL`: demo logins and, with the sandbox on, the example tenant."""
from django.core.management.base import BaseCommand, CommandError

from connectors.provisioning import TenantFileError, demo_logins_ensure, demo_tenant_load


class Command(BaseCommand):
    help = (
        "Idempotently create the admin superuser and the accountant, finance and operator users (one generated "
        "password, kept in VAR_DIR/admin-password), then load examples/tenant.json against this installation's "
        "sandbox when SANDBOX_ENABLED is on. Prints the login."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", required=True, help="where this installation answers, e.g. http://127.0.0.1:8000")

    def handle(self, *args, base_url, **options):
        base_url = base_url.rstrip("/")
        login = demo_logins_ensure()
        try:
            result = demo_tenant_load(base_url)
        except TenantFileError as error:
            raise CommandError("The demo tenant was not loaded:\n" + "\n".join(error.problems)) from None
        if result is None:
            self.stdout.write("Sandbox is off (SANDBOX_ENABLED=false): the demo tenant was not loaded.")
        else:
            kinds = ", ".join(result.integrations) or "no integrations"
            self.stdout.write(f"Demo tenant {result.tenant.slug} ({kinds}) loaded against {base_url}/sandbox/.")
        self.stdout.write(f"Log in at {base_url}/admin/")
        self.stdout.write(f"  users: {', '.join(login.usernames)}")
        self.stdout.write(f"  password: {login.password} (kept in {login.password_file})")
