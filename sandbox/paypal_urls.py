"""The PayPal emulator's paths, mounted at /sandbox/paypal/ (same paths below it as api-m.paypal.com)."""
from django.urls import path

from . import paypal_views as views

urlpatterns = [
    path("v1/oauth2/token", views.PayPalTokenView.as_view(), name="paypal-token"),
    path("v2/payments/captures/<str:capture_id>", views.CaptureView.as_view(), name="paypal-capture"),
    path("v2/payments/captures/<str:capture_id>/refund", views.CaptureRefundView.as_view(),
         name="paypal-refund-create"),
    path("v2/payments/refunds/<str:refund_id>", views.RefundView.as_view(), name="paypal-refund"),
    path("v2/checkout/orders/<str:order_id>", views.OrderView.as_view(), name="paypal-order"),
    path("v1/reporting/transactions", views.TransactionsView.as_view(), name="paypal-transactions"),
    path("v2/invoicing/invoices", views.InvoicesView.as_view(), name="paypal-invoices"),
    path("v2/invoicing/invoices/<str:invoice_id>", views.InvoiceView.as_view(), name="paypal-invoice"),
    path("v2/invoicing/invoices/<str:invoice_id>/send", views.InvoiceSendView.as_view(), name="paypal-invoice-send"),
    path("v2/invoicing/invoices/<str:invoice_id>/cancel", views.InvoiceCancelView.as_view(),
         name="paypal-invoice-cancel"),
    path("v2/invoicing/search-invoices", views.InvoiceSearchView.as_view(), name="paypal-invoice-search"),
    path("certs/<str:cert_id>", views.CertificateView.as_view(), name="paypal-certificate"),
]
