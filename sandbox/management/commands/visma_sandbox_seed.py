"""manage.py visma_sandbox_seed: create (or with --reset, recreate) the Visma emulator's seed company."""
from django.core.management.base import BaseCommand

from sandbox.services import (
    VISMA_SANDBOX_CLIENT_ID,
    VISMA_SANDBOX_CLIENT_SECRET,
    VISMA_SANDBOX_COMPANY_ID,
    VISMA_SANDBOX_TENANT_ID,
    visma_sandbox_reset,
    visma_sandbox_seed,
)


class Command(BaseCommand):
    help = "Seed the Visma.net ERP emulator (idempotent); --reset forgets everything first."

    def add_arguments(self, parser):
        parser.add_argument("--company-id", default=VISMA_SANDBOX_COMPANY_ID)
        parser.add_argument("--tenant-id", default=VISMA_SANDBOX_TENANT_ID)
        parser.add_argument("--client-id", default=VISMA_SANDBOX_CLIENT_ID)
        parser.add_argument("--client-secret", default=VISMA_SANDBOX_CLIENT_SECRET)
        parser.add_argument("--reset", action="store_true", help="Delete all emulator state before seeding.")

    def handle(self, *args, **options):
        seed = visma_sandbox_reset if options["reset"] else visma_sandbox_seed
        client = seed(
            company_id=options["company_id"],
            tenant_id=options["tenant_id"],
            client_id=options["client_id"],
            client_secret=options["client_secret"],
        )
        self.stdout.write(
            f"Visma sandbox: company {client.company_id}, tenant {client.tenant_id}, client {client.client_id}"
        )
