"""The Square emulator's paths, mounted at /sandbox/square/ (the same paths below it as connect.squareup.com)."""
from django.urls import path

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
    path("_control/deliver_events", SquareDeliverView.as_view(), name="square-deliver-events"),
]
