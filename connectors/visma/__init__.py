"""Visma.net ERP: the client, reference reads and webhooks; registers its ping and webhook verifier on import."""
from connectors import registry

from .client import visma_ping
from .webhooks import VismaWebhookVerifier

registry.KINDS["visma"].ping = visma_ping
registry.KINDS["visma"].verifier = VismaWebhookVerifier()
