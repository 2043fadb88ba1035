"""`manage.py load_tenant FILE`: create or update a tenant from a JSON file (see examples/tenant.json)."""
import json

from django.core.management.base import BaseCommand, CommandError

from connectors.provisioning import TenantFileError, tenant_file_load


class Command(BaseCommand):
    help = (
        "Create or update (by slug) a tenant, its Visma connection, integrations and GL mapping rules from a JSON "
        "file. All or nothing; running it again changes nothing. Prints the integrations' ids and webhook URLs."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the tenant file, shaped like examples/tenant.json")

    def handle(self, *args, file, **options):
        try:
            result = tenant_file_load(file)
        except TenantFileError as error:
            raise CommandError(f"{file} was not loaded; nothing was changed:\n" + "\n".join(error.problems)) from None
        rules = f"{result.rules_created} created, {result.rules_updated} updated, {result.rules_unchanged} unchanged"
        self.stderr.write(
            f"Tenant {result.tenant.slug} {'created' if result.tenant_created else 'updated'}; "
            f"{len(result.integrations)} integration(s); mapping rules: {rules}."
        )
        if result.rules_not_valid and not result.reference_data_mirrored:
            self.stderr.write(f"The Visma reference data of {result.tenant.slug} is not mirrored yet: its mapping "
                              "rules are checked against it when it is refreshed.")
        else:
            for rule, problems in result.rules_not_valid.items():
                self.stderr.write(f"Mapping rule {rule} is not valid against the Visma reference data: "
                                  f"{'; '.join(problems)}.")
        self.stdout.write(json.dumps(result.as_json(), indent=2))
