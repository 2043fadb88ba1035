"""PayPal webhooks: offline signature verification as PayPal's SDKs do it, the event envelope, what an event touches.

The signed string is "transmission_id|transmission_time|webhook_id|crc32(raw body)" (unsigned decimal), signed with
RSA PKCS#1 v1.5 over SHA-256 by the key of the certificate at PAYPAL-CERT-URL. The certificate is fetched only over
HTTPS from a host on the integration's allow-list (PayPal's by default; the sandbox adds its own loopback host, served
over HTTP only while the sandbox is on), cached by URL, and its validity period and subject are checked; a
transmission time outside the tolerance window is refused as a replay.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import zlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from connectors.errors import ConnectorError
from connectors.http import ApiSession
from connectors.models import InboundEvent, Integration
from connectors.webhooks import ParsedEvent, Refusal, Verdict, WebhookVerifier, webhook_document

from .client import paypal_time

# Where PayPal serves its signing certificates (live, then PayPal's sandbox); an integration may list its own.
PAYPAL_CERT_HOSTS = ("api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com")
PAYPAL_CERT_PATH = "/v1/notifications/certs/"
PAYPAL_CERT_SUBJECTS = frozenset({"messageverificationcerts.paypal.com", "messageverificationcerts.sandbox.paypal.com"})
# Our sandbox signs with a self-signed certificate whose subject starts like PayPal's.
SANDBOX_CERT_SUBJECT_PREFIX = "messageverificationcerts."
# SHA1withRSA exists in PayPal's SDKs; it is refused here (SHA-1 signatures can be forged).
SIGNATURE_HASHES = {"SHA256withRSA": hashes.SHA256}
DEFAULT_MAX_AGE_SECONDS = 300
CERT_MAX_BYTES = 64 * 1024
CERT_CACHE_SECONDS = 24 * 3600
CERT_FETCH_RETRIES = 1

H_TRANSMISSION_ID = "paypal-transmission-id"
H_TRANSMISSION_TIME = "paypal-transmission-time"
H_TRANSMISSION_SIG = "paypal-transmission-sig"
H_CERT_URL = "paypal-cert-url"
H_AUTH_ALGO = "paypal-auth-algo"

CAPTURE_COMPLETED = "PAYMENT.CAPTURE.COMPLETED"
CAPTURE_REFUNDED = "PAYMENT.CAPTURE.REFUNDED"
CAPTURE_REVERSED = "PAYMENT.CAPTURE.REVERSED"
# A customer's dispute (developer.paypal.com/docs/disputes/webhooks: created, updated, resolved); the resource is the
# dispute. Its money moves are read from Transaction Search (holds, chargebacks); the event becomes a note.
DISPUTE_EVENTS = frozenset({"CUSTOMER.DISPUTE.CREATED", "CUSTOMER.DISPUTE.UPDATED", "CUSTOMER.DISPUTE.RESOLVED"})
INVOICE_EVENTS = frozenset({
    "INVOICING.INVOICE.PAID", "INVOICING.INVOICE.CREATED", "INVOICING.INVOICE.UPDATED",
    "INVOICING.INVOICE.CANCELLED", "INVOICING.INVOICE.REFUNDED",
})


# --- the pure steps -------------------------------------------------------------------------------------------


def paypal_signed_message(*, transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> bytes:
    """What PayPal signs: the ids, the time header verbatim, and the unsigned CRC-32 of the raw body in decimal."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}".encode()


def paypal_signature_problem(*, certificate: x509.Certificate, message: bytes, signature: str,
                             auth_algo: str = "SHA256withRSA") -> str | None:
    """None when `signature` (base64) is the certificate key's RSA PKCS#1 v1.5 signature of `message`."""
    algorithm = SIGNATURE_HASHES.get(auth_algo)
    if algorithm is None:
        return f"{H_AUTH_ALGO.upper()} {auth_algo!r} is not accepted (only {', '.join(SIGNATURE_HASHES)})"
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return f"{H_TRANSMISSION_SIG.upper()} is not base64"
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return "the certificate's key is not an RSA key"
    try:
        key.verify(raw, message, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        return "signature does not match (body, transmission id or time, or webhook id differ from what PayPal signed)"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def paypal_cert_url_problem(url: str, *, allowed_hosts: tuple[str, ...] | list[str] = PAYPAL_CERT_HOSTS,
                            sandbox_enabled: bool | None = None) -> str | None:
    """None when the certificate may be fetched from `url`: HTTPS from a host on the allow-list.

    Checked before anything is fetched, so a forged header cannot make us call an address of its choosing. An entry
    is a host (port 443) or host:port; loopback is no exception: the sandbox puts its own host:port on the
    integration's list, and plain HTTP is accepted only from such a loopback entry while the sandbox is on.
    """
    sandbox_enabled = settings.SANDBOX_ENABLED if sandbox_enabled is None else sandbox_enabled
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return f"certificate URL {url!r} cannot be parsed"
    if not host:
        return f"certificate URL {url!r} has no host"
    if parts.username or parts.password:
        return "certificate URL carries credentials"
    allowed = {entry.strip().lower() for entry in allowed_hosts}
    host_port = parts.netloc.lower()
    default_port = port is None or (parts.scheme == "https" and port == 443)
    if host_port not in allowed and not (host in allowed and default_port):
        if host in allowed:
            return f"certificate URL port {port} is not 443"
        return f"certificate host {host_port} is not allowed (allowed: {', '.join(allowed_hosts)})"
    if parts.scheme != "https" and not (parts.scheme == "http" and sandbox_enabled and _is_loopback(host)):
        return f"certificate URL must be https, not {parts.scheme or 'schemeless'}"
    if host in PAYPAL_CERT_HOSTS and not parts.path.startswith(PAYPAL_CERT_PATH):
        return f"certificate URL path {parts.path} is not under {PAYPAL_CERT_PATH}"
    return None


def paypal_certificate_problem(certificate: x509.Certificate, *, now: datetime, loopback: bool) -> str | None:
    """None when the certificate is within its validity period and names PayPal's message-verification subject."""
    if now < certificate.not_valid_before_utc:
        return f"certificate not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    if now > certificate.not_valid_after_utc:
        return f"certificate expired {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(names[0].value).lower() if names else ""
    if loopback:
        if not subject.startswith(SANDBOX_CERT_SUBJECT_PREFIX):
            return f"certificate subject {subject!r} is not a message-verification certificate"
    elif subject not in PAYPAL_CERT_SUBJECTS:
        return f"certificate subject {subject!r} is not PayPal's ({', '.join(sorted(PAYPAL_CERT_SUBJECTS))})"
    return None


# --- the certificate, fetched once per URL ----------------------------------------------------------------------


class CertificateUnavailable(Exception):
    """The certificate could not be fetched or read."""


def _cache_key(url: str) -> str:
    return "paypal-cert:" + hashlib.sha256(url.encode()).hexdigest()


def paypal_certificate_load(url: str, *, integration: Integration) -> x509.Certificate:
    """The certificate at `url` (already allowed), from the cache or fetched: no redirects, a size cap, logged."""
    key = _cache_key(url)
    pem = cache.get(key)
    if pem is None:
        session = ApiSession(integration.partner_connection, budget=False, max_retries=CERT_FETCH_RETRIES)
        # A redirect could lead off the allowed hosts: refuse it instead of following.
        session.session.max_redirects = 0
        try:
            response = session.request("GET", url, headers={"Accept": "application/x-pem-file, */*"})
        except ConnectorError as exc:
            raise CertificateUnavailable(f"certificate could not be fetched: {exc}") from exc
        finally:
            session.close()
        if len(response.content) > CERT_MAX_BYTES:
            raise CertificateUnavailable(f"certificate larger than {CERT_MAX_BYTES} bytes")
        pem = response.content
    try:
        # PayPal may serve the chain; the first certificate is the signer's.
        certificate = x509.load_pem_x509_certificates(pem)[0]
    except ValueError as exc:
        raise CertificateUnavailable(f"certificate at {url} is not PEM: {exc}") from exc
    remaining = (certificate.not_valid_after_utc - timezone.now()).total_seconds()
    if remaining > 0:
        cache.set(key, pem, timeout=int(min(CERT_CACHE_SECONDS, remaining)))
    return certificate


# --- the verifier -----------------------------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((str(value).strip() for key, value in headers.items() if key.lower() == name), "")


def webhook_settings(integration: Integration) -> tuple[tuple[str, ...], timedelta]:
    """The integration's allowed certificate hosts and transmission-time tolerance."""
    configured = integration.settings or {}
    hosts = tuple(configured.get("cert_hosts") or PAYPAL_CERT_HOSTS)
    max_age = configured.get("webhook_max_age_seconds") or DEFAULT_MAX_AGE_SECONDS
    return hosts, timedelta(seconds=int(max_age))


class PayPalWebhookVerifier(WebhookVerifier):
    """PayPal's offline (self) verification; the postback API is not used: no extra call and token per event."""

    def verify(self, *, integration: Integration, headers: Mapping[str, str], body: bytes, url: str) -> Verdict:
        webhook_id = str((integration.partner_connection.credentials or {}).get("webhook_id") or "")
        if not webhook_id:
            return Verdict.refused("no webhook_id on the PayPal connection: deliveries cannot be verified",
                                   Refusal.NO_SECRET)
        given = {name: _header(headers, name) for name in
                 (H_TRANSMISSION_ID, H_TRANSMISSION_TIME, H_TRANSMISSION_SIG, H_CERT_URL, H_AUTH_ALGO)}
        missing = [name.upper() for name, value in given.items() if not value]
        if missing:
            return Verdict.refused(f"missing header(s) {', '.join(missing)}", Refusal.UNSIGNED)
        if given[H_AUTH_ALGO] not in SIGNATURE_HASHES:
            return Verdict.refused(f"{H_AUTH_ALGO.upper()} {given[H_AUTH_ALGO]!r} is not accepted")
        allowed_hosts, max_age = webhook_settings(integration)
        sent_at = paypal_time(given[H_TRANSMISSION_TIME])
        now = timezone.now()
        if sent_at is None:
            return Verdict.refused(f"{H_TRANSMISSION_TIME.upper()} {given[H_TRANSMISSION_TIME]!r} is not a time")
        if abs(now - sent_at) > max_age:
            return Verdict.refused(
                f"transmission time {given[H_TRANSMISSION_TIME]} is outside the {int(max_age.total_seconds())} s "
                f"tolerance (replayed or delayed delivery)", Refusal.STALE
            )
        problem = paypal_cert_url_problem(given[H_CERT_URL], allowed_hosts=allowed_hosts)
        if problem:
            return Verdict.refused(problem, Refusal.CERTIFICATE)
        try:
            certificate = paypal_certificate_load(given[H_CERT_URL], integration=integration)
        except CertificateUnavailable as exc:
            return Verdict.refused(str(exc), Refusal.CERTIFICATE)
        # The sandbox's self-signed certificate is accepted only from its own (allow-listed) loopback host.
        loopback = settings.SANDBOX_ENABLED and _is_loopback((urlsplit(given[H_CERT_URL]).hostname or "").lower())
        problem = paypal_certificate_problem(certificate, now=now, loopback=loopback)
        if problem:
            return Verdict.refused(problem, Refusal.CERTIFICATE)
        message = paypal_signed_message(
            transmission_id=given[H_TRANSMISSION_ID], transmission_time=given[H_TRANSMISSION_TIME],
            webhook_id=webhook_id, body=body,
        )
        problem = paypal_signature_problem(
            certificate=certificate, message=message, signature=given[H_TRANSMISSION_SIG], auth_algo=given[H_AUTH_ALGO]
        )
        return Verdict.refused(problem) if problem else Verdict.genuine()

    def parse(self, *, headers: Mapping[str, str], body: bytes) -> list[ParsedEvent]:
        document = webhook_document(body)
        if not isinstance(document, dict):
            raise ValueError("body is not a JSON object")
        for field in ("id", "event_type"):
            if not isinstance(document.get(field), str) or not document[field]:
                raise ValueError(f"field {field} is missing")
        return [ParsedEvent(event_id=document["id"], event_type=document["event_type"], body=body.decode("utf-8"))]

    def objects_touched(self, event: InboundEvent) -> list[tuple[str, str]]:
        return paypal_event_objects(json.loads(event.body, parse_float=Decimal))

    def event_apply(self, event: InboundEvent) -> bool:
        """A dispute event is taken from its (verified) resource: the Disputes API it could be re-read from is not
        among the vendor documents this product is built on."""
        document = json.loads(event.body)
        if str(document.get("event_type") or "") not in DISPUTE_EVENTS:
            return False
        from .flows import paypal_dispute_take

        paypal_dispute_take(event.integration, document.get("resource") or {})
        return True


def paypal_event_objects(document: Mapping) -> list[tuple[str, str]]:
    """(stream, PayPal id) of each object an event is about, in the order they should be read.

    An invoice event names the invoice first, then the PayPal payments (captures) or refunds recorded on it, so an
    invoice reaches Visma before the payment that settles it.
    """
    event_type = str(document.get("event_type") or "")
    resource = document.get("resource") if isinstance(document.get("resource"), Mapping) else {}
    resource_type = str(document.get("resource_type") or "").lower()
    if event_type == CAPTURE_COMPLETED and resource.get("id"):
        return [("captures", str(resource["id"]))]
    if event_type in (CAPTURE_REFUNDED, CAPTURE_REVERSED):
        stream = "refunds" if event_type == CAPTURE_REFUNDED else "reversals"
        if resource_type == "capture" and resource.get("id"):
            # Some deliveries carry the capture itself; its refunds are found by the poll of the refunds stream.
            return [("captures", str(resource["id"]))]
        return [(stream, str(resource["id"]))] if resource.get("id") else []
    if event_type in INVOICE_EVENTS:
        # Invoicing v2 wraps the invoice in "invoice"; older deliveries carry it bare.
        invoice = resource.get("invoice") if isinstance(resource.get("invoice"), Mapping) else resource
        if not invoice.get("id"):
            return []
        touched = [("invoices", str(invoice["id"]))]
        if event_type == "INVOICING.INVOICE.PAID":
            for payment in (invoice.get("payments") or {}).get("transactions") or []:
                if payment.get("payment_id") and str(payment.get("type") or "PAYPAL").upper() == "PAYPAL":
                    touched.append(("captures", str(payment["payment_id"])))
        if event_type == "INVOICING.INVOICE.REFUNDED":
            for refund in (invoice.get("refunds") or {}).get("transactions") or []:
                if refund.get("refund_id") and str(refund.get("type") or "PAYPAL").upper() == "PAYPAL":
                    touched.append(("refunds", str(refund["refund_id"])))
        return touched
    return []


__all__ = [
    "PAYPAL_CERT_HOSTS", "PayPalWebhookVerifier", "paypal_cert_url_problem",
    "paypal_certificate_load", "paypal_certificate_problem", "paypal_event_objects", "paypal_signature_problem",
    "paypal_signed_message",
]
