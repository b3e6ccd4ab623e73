"""The bottom of the house: what every layer may import and what imports nothing of clearance.

- :mod:`clearance.core.clock` — the one clock (timezone-aware UTC).
- :mod:`clearance.core.digests` — canonical JSON and SHA-256, the form every digest is taken over.
- :mod:`clearance.core.types` — shared field types (Duration, Sha256, Identifier, StrictModel).
- :mod:`clearance.core.keys` — the object-key layout of the bucket (candidates/, production/, evidence/).
- :mod:`clearance.core.events` — the names of promotion events.
- :mod:`clearance.core.ledger_kinds` — the kinds of ledger entries.

No Prefect, no boto3, no I/O (docs/architecture.md, "Layers").
"""
