"""The Square emulator's paths, mounted at /sandbox/square/ (the same paths below it as connect.squareup.com)."""
from django.urls import path, re_path

from . import square_api as api
from . import square_reads as reads
from .square_views import SquareDeliverView, view


def _obtain_token(merchant, token, query, body):
    return api.square_token_obtain(body)


def _token_status(merchant, token, query, body):
    return api.square_token_status(token)


def _revoke(merchant, token, query, body):  # answered by the view itself (Client authorization)
    raise AssertionError("RevokeToken is answered by SquareApiView")


urlpatterns = [
    path("oauth2/token", view(POST=_obtain_token), name="square-token"),
    path("oauth2/token/status", view(POST=_token_status), name="square-token-status"),
    path("oauth2/revoke", view(POST=_revoke), name="square-revoke"),
    path("v2/locations", view(GET=lambda merchant, token, query, body: reads.locations_list(merchant)),
         name="square-locations"),
    path("v2/locations/<str:location_id>",
         view(GET=lambda merchant, token, query, body, location_id: reads.location_retrieve(merchant, location_id)),
         name="square-location"),
    path("v2/payments", view(GET=lambda merchant, token, query, body: reads.payments_list(merchant, query)),
         name="square-payments"),
    path("v2/payments/<str:payment_id>",
         view(GET=lambda merchant, token, query, body, payment_id: reads.payment_retrieve(merchant, payment_id)),
         name="square-payment"),
    path("v2/refunds", view(GET=lambda merchant, token, query, body: reads.refunds_list(merchant, query)),
         name="square-refunds"),
    path("v2/refunds/<str:refund_id>",
         view(GET=lambda merchant, token, query, body, refund_id: reads.refund_retrieve(merchant, refund_id)),
         name="square-refund"),
    path("v2/orders/search", view(POST=lambda merchant, token, query, body: reads.orders_search(merchant, body)),
         name="square-orders-search"),
    path("v2/orders/batch-retrieve",
         view(POST=lambda merchant, token, query, body: reads.orders_batch_retrieve(merchant, body)),
         name="square-orders-batch-retrieve"),
    path("v2/orders/<str:order_id>",
         view(GET=lambda merchant, token, query, body, order_id: reads.order_retrieve(merchant, order_id)),
         name="square-order"),
    path("v2/invoices", view(GET=lambda merchant, token, query, body: reads.invoices_list(merchant, query)),
         name="square-invoices"),
    path("v2/invoices/search",
         view(POST=lambda merchant, token, query, body: reads.invoices_search(merchant, body)),
         name="square-invoices-search"),
    path("v2/invoices/<str:invoice_id>",
         view(GET=lambda merchant, token, query, body, invoice_id: reads.invoice_retrieve(merchant, invoice_id)),
         name="square-invoice"),
    path("v2/customers/search",
         view(POST=lambda merchant, token, query, body: reads.customers_search(merchant, body)),
         name="square-customers-search"),
    path("v2/customers/<str:customer_id>",
         view(GET=lambda merchant, token, query, body, customer_id: reads.customer_retrieve(merchant, customer_id)),
         name="square-customer"),
    path("v2/vendors/search", view(POST=lambda merchant, token, query, body: reads.vendors_search(merchant, body)),
         name="square-vendors-search"),
    path("v2/vendors/<str:vendor_id>",
         view(GET=lambda merchant, token, query, body, vendor_id: reads.vendor_retrieve(merchant, vendor_id)),
         name="square-vendor"),
    path("_control/deliver_events", SquareDeliverView.as_view(), name="square-deliver-events"),
    # Anything else: Square's 404 shape, logged, instead of Django's HTML page.
    re_path(r"^.*$", view(), name="square-not-emulated"),
]
