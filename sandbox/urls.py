"""Vendor emulators, mounted under /sandbox/ when SANDBOX_ENABLED is on; Visma.net ERP lives under /sandbox/visma/."""
from django.urls import include, path

from . import views

app_name = "sandbox"

urlpatterns = [
    path("visma/connect/token", views.VismaTokenView.as_view(), name="visma-token"),
    path("visma/v1/account", views.AccountListView.as_view(), name="visma-accounts"),
    path("visma/v1/account/<str:key>", views.AccountView.as_view(), name="visma-account"),
    path("visma/v1/subaccount", views.SubaccountListView.as_view(), name="visma-subaccounts"),
    path("visma/v1/dimension", views.DimensionListView.as_view(), name="visma-dimensions"),
    path("visma/v1/dimension/<str:key>", views.DimensionView.as_view(), name="visma-dimension"),
    path("visma/v1/customer", views.CustomerListView.as_view(), name="visma-customers"),
    path("visma/v1/customer/<str:key>", views.CustomerView.as_view(), name="visma-customer"),
    path("visma/v1/supplier", views.SupplierListView.as_view(), name="visma-suppliers"),
    path("visma/v1/supplier/<str:key>", views.SupplierView.as_view(), name="visma-supplier"),
    path("visma/v2/journaltransaction", views.JournalListView.as_view(), name="visma-journals"),
    path("visma/v2/journaltransaction/<str:key>", views.JournalView.as_view(), name="visma-journal"),
    path(
        "visma/v2/journaltransaction/<str:key>/action/release",
        views.JournalReleaseView.as_view(),
        name="visma-journal-release",
    ),
    path("visma/v1/customerinvoice", views.CustomerInvoiceListView.as_view(), name="visma-customer-invoices"),
    path("visma/v1/customerinvoice/<str:key>", views.CustomerInvoiceView.as_view(), name="visma-customer-invoice"),
    path("visma/v2/customerinvoice", views.CustomerInvoiceCreateView.as_view(), name="visma-customer-invoice-create"),
    path("visma/v1/customerCreditNote", views.CustomerCreditNoteListView.as_view(),
         name="visma-customer-credit-notes"),
    path("visma/v1/customerCreditNote/<str:key>", views.CustomerCreditNoteView.as_view(),
         name="visma-customer-credit-note"),
    path("visma/v2/customerCreditNote", views.CustomerCreditNoteCreateView.as_view(),
         name="visma-customer-credit-note-create"),
    path("visma/v1/customerPayment", views.CustomerPaymentListView.as_view(), name="visma-customer-payments"),
    path("visma/v1/customerPayment/<str:key>", views.CustomerPaymentView.as_view(), name="visma-customer-payment"),
    path("visma/v1/supplierInvoice", views.SupplierInvoiceListView.as_view(), name="visma-supplier-invoices"),
    path(
        "visma/v1/supplierInvoice/<str:document_type>/<str:key>",
        views.SupplierInvoiceView.as_view(),
        name="visma-supplier-invoice",
    ),
    path("visma/v1/supplierPayment", views.SupplierPaymentListView.as_view(), name="visma-supplier-payments"),
    path(
        "visma/v1/supplierPayment/<str:payment_type>/<str:key>",
        views.SupplierPaymentView.as_view(),
        name="visma-supplier-payment",
    ),
    path("visma/_control/<str:switch>", views.VismaControlView.as_view(), name="visma-control"),
    path("visma/_state/balances", views.VismaBalancesView.as_view(), name="visma-balances"),
    path("paypal/", include("sandbox.paypal_urls")),
    path("stripe/", include("sandbox.stripe_urls")),
]
