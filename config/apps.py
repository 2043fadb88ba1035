"""The admin app configured with ml-connector's own site."""
from django.contrib.admin.apps import AdminConfig


class BackOfficeAdminConfig(AdminConfig):
    default_site = "config.admin.BackOfficeSite"
