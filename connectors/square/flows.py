"""Square streams (payments, refunds...): F's part; an empty registry until then, so imports work."""
STREAMS: dict = {}
