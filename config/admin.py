"""The admin site: ml-connector's titles and a front page that shows the work waiting for each user."""
from django.contrib import admin


class BackOfficeSite(admin.AdminSite):
    site_header = "ml-connector"
    site_title = "ml-connector"
    index_title = "Visma.net ERP back office"

    def index(self, request, extra_context=None):
        from audit.selectors import dashboard_for

        return super().index(request, extra_context={"dashboard": dashboard_for(request.user), **(extra_context or {})})
