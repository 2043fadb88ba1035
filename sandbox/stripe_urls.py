"""The Stripe emulator's paths, mounted at /sandbox/stripe/ (same paths below it as api.stripe.com)."""
from django.urls import path

from . import stripe_api as api
from . import stripe_views as views


def _dispute_update(account, *, params, object_id):
    return api.dispute_update(account, object_id, params)


def _customer_update(account, *, params, object_id):
    return api.customer_update(account, object_id, params)


urlpatterns = [
    path("v1/customers", views.view(get_handler=views._listing("customer", ("email",)),
                                    post_handler=api.customer_create), name="stripe-customers"),
    path("v1/customers/search", views.view(get_handler=views._customers_search), name="stripe-customer-search"),
    path("v1/customers/<str:object_id>", views.view(get_handler=views._retrieve("customer"),
                                                    post_handler=_customer_update), name="stripe-customer"),
    path("v1/tax_rates", views.view(get_handler=api.tax_rate_list, post_handler=api.tax_rate_create),
         name="stripe-tax-rates"),
    path("v1/tax_rates/<str:object_id>", views.view(get_handler=views._retrieve("tax_rate")), name="stripe-tax-rate"),
    path("v1/invoiceitems", views.view(get_handler=views._listing("invoiceitem", ("customer", "invoice")),
                                       post_handler=api.invoice_item_create), name="stripe-invoice-items"),
    path("v1/invoiceitems/<str:object_id>", views.view(get_handler=views._retrieve("invoiceitem")),
         name="stripe-invoice-item"),
    path("v1/invoices", views.view(get_handler=views._listing("invoice", ("customer", "status")),
                                   post_handler=api.invoice_create), name="stripe-invoices"),
    path("v1/invoices/<str:object_id>", views.view(get_handler=views._retrieve("invoice")), name="stripe-invoice"),
    path("v1/invoices/<str:invoice_id>/finalize", views.view(post_handler=api.invoice_finalize),
         name="stripe-invoice-finalize"),
    path("v1/invoices/<str:invoice_id>/send", views.view(post_handler=api.invoice_send), name="stripe-invoice-send"),
    path("v1/invoices/<str:invoice_id>/pay", views.view(post_handler=api.invoice_pay), name="stripe-invoice-pay"),
    path("v1/invoice_payments", views.view(get_handler=views._invoice_payments), name="stripe-invoice-payments"),
    path("v1/invoice_payments/<str:object_id>", views.view(get_handler=views._retrieve("invoice_payment")),
         name="stripe-invoice-payment"),
    path("v1/payment_intents/<str:object_id>", views.view(get_handler=views._retrieve("payment_intent")),
         name="stripe-payment-intent"),
    path("v1/charges", views.view(get_handler=views._listing("charge", ("customer",)),
                                  post_handler=api.charge_create), name="stripe-charges"),
    path("v1/charges/<str:object_id>", views.view(get_handler=views._retrieve("charge")), name="stripe-charge"),
    path("v1/refunds", views.view(get_handler=views._listing("refund", ("charge",)), post_handler=api.refund_create),
         name="stripe-refunds"),
    path("v1/refunds/<str:object_id>", views.view(get_handler=views._retrieve("refund")), name="stripe-refund"),
    path("v1/disputes", views.view(get_handler=views._listing("dispute", ("charge",))), name="stripe-disputes"),
    path("v1/disputes/<str:object_id>", views.view(get_handler=views._retrieve("dispute"),
                                                   post_handler=_dispute_update), name="stripe-dispute"),
    path("v1/disputes/<str:dispute_id>/close", views.view(post_handler=api.dispute_close),
         name="stripe-dispute-close"),
    path("v1/balance_transactions/<str:object_id>", views.view(get_handler=views._retrieve("balance_transaction")),
         name="stripe-balance-transaction"),
    path("v1/balance", views.view(get_handler=views._balance), name="stripe-balance"),
    path("v1/events", views.view(get_handler=views._events), name="stripe-events"),
    path("v1/events/<str:object_id>", views.view(get_handler=views._event), name="stripe-event"),
    path("_control/deliver_events", views.StripeDeliverView.as_view(), name="stripe-deliver-events"),
]
