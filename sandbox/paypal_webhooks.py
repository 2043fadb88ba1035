"""The PayPal emulator's webhook sender: a self-signed certificate, deliveries signed the way PayPal signs them."""
from __future__ import annotations

import base64
import json
import logging
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from django.db.models import F
from django.utils import timezone

from .models import PayPalApp, PayPalCertificate, PayPalWebhook, PayPalWebhookEvent
from .paypal import paypal_new_id, paypal_render, paypal_time_format

log = logging.getLogger(__name__)

# Shaped like PayPal's "messageverificationcerts.sandbox.paypal.com", without claiming to be PayPal.
SANDBOX_CERT_SUBJECT = "messageverificationcerts.sandbox.ml-connector.local"
CERT_VALIDITY = timedelta(days=365)
DEFAULT_BASE_URL = "http://127.0.0.1:8000/sandbox/paypal"
DELIVERY_TIMEOUT = (3.05, 30)


def paypal_certificate_ensure(*, now: datetime | None = None) -> PayPalCertificate:
    """The signing certificate: the newest one still valid for a day, else a new self-signed RSA-2048 one."""
    now = now or timezone.now()
    for stored in PayPalCertificate.objects.all()[:3]:
        certificate = x509.load_pem_x509_certificate(stored.certificate_pem.encode())
        if certificate.not_valid_before_utc <= now and certificate.not_valid_after_utc > now + timedelta(days=1):
            return stored
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ml-connector sandbox"),
        x509.NameAttribute(NameOID.COMMON_NAME, SANDBOX_CERT_SUBJECT),
    ])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SANDBOX_CERT_SUBJECT)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_id = f"CERT-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}"
    return PayPalCertificate.objects.create(
        cert_id=cert_id,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def paypal_sandbox_base_url() -> str:
    """Where the emulator answers, as its apps were told at seed time."""
    base = PayPalApp.objects.order_by("id").values_list("base_url", flat=True).first()
    return (base or DEFAULT_BASE_URL).rstrip("/")


def paypal_webhook_subscribe(url: str, *, webhook_id: str | None = None,
                             event_types: list[str] | None = None) -> PayPalWebhook:
    """Subscribe a listener (POST /v1/notifications/webhooks in PayPal); the id is what deliveries are signed for."""
    subscription, _ = PayPalWebhook.objects.update_or_create(
        webhook_id=webhook_id or paypal_new_id(24), defaults={"url": url, "event_types": event_types or ["*"]}
    )
    return subscription


def paypal_sign(message: bytes, certificate: PayPalCertificate) -> str:
    key = serialization.load_pem_private_key(certificate.private_key_pem.encode(), password=None)
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


@dataclass
class Delivery:
    """One signed POST of an event to a listener: the exact bytes and PayPal's five headers."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def paypal_delivery_build(event: PayPalWebhookEvent, *, webhook_id: str, transmission_time: datetime | None = None,
                          transmission_id: str | None = None, cert_url: str | None = None,
                          certificate: PayPalCertificate | None = None, base_url: str | None = None) -> Delivery:
    """Sign "transmission_id|transmission_time|webhook_id|crc32(body)" with the sandbox key (RSA, SHA-256).

    Each delivery (and each retry) has its own transmission id and time; the event id stays the same.
    """
    base_url = (base_url or paypal_sandbox_base_url()).rstrip("/")
    certificate = certificate or paypal_certificate_ensure()
    body = json.dumps(paypal_render(event.body, base_url), separators=(",", ":")).encode()
    transmission_id = transmission_id or str(uuid.uuid1())
    sent = paypal_time_format(transmission_time or timezone.now())
    message = f"{transmission_id}|{sent}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}".encode()
    return Delivery(body=body, headers={
        "Content-Type": "application/json",
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": sent,
        "PAYPAL-TRANSMISSION-SIG": paypal_sign(message, certificate),
        "PAYPAL-CERT-URL": cert_url or f"{base_url}/certs/{certificate.cert_id}",
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        "User-Agent": "PayPal/AUHD-214.0-58443437",
    })


def paypal_delivery_send(delivery: Delivery, url: str) -> requests.Response:
    return requests.post(url, data=delivery.body, headers=delivery.headers, timeout=DELIVERY_TIMEOUT)


def paypal_event_deliver(event: PayPalWebhookEvent, subscription: PayPalWebhook, **build_options) -> int | None:
    """Send the event to one subscription now; the status code, or None when the listener could not be reached."""
    delivery = paypal_delivery_build(event, webhook_id=subscription.webhook_id, **build_options)
    PayPalWebhookEvent.objects.filter(pk=event.pk).update(deliveries=F("deliveries") + 1)
    try:
        return paypal_delivery_send(delivery, subscription.url).status_code
    except requests.RequestException as exc:
        # PayPal retries later; the connector's poller finds what a lost delivery carried.
        log.warning("PayPal sandbox: delivery of %s to %s failed: %s", event.event_id, subscription.url, exc)
        return None


def paypal_event_deliver_to_subscribers(event: PayPalWebhookEvent) -> list[int | None]:
    """Deliver to every subscription that wants this event type."""
    statuses = []
    for subscription in PayPalWebhook.objects.all():
        if "*" in subscription.event_types or event.event_type in subscription.event_types:
            statuses.append(paypal_event_deliver(event, subscription))
    return statuses


__all__ = [
    "Delivery", "SANDBOX_CERT_SUBJECT", "paypal_certificate_ensure", "paypal_delivery_build", "paypal_delivery_send",
    "paypal_event_deliver", "paypal_event_deliver_to_subscribers", "paypal_sandbox_base_url", "paypal_sign",
    "paypal_webhook_subscribe",
]
