"""Vendor emulators, mounted under /sandbox/ when SANDBOX_ENABLED is on."""
urlpatterns: list = []
