"""The evidence ledger, pure: entries, their hash chain and signatures, witnessed heads, and their
verification (storage is ``tasks/ledger.py``, the witnesses ``tasks/witness.py``)."""

from clearance.core.keys import ledger_key, ledger_prefix
from clearance.ledger.chain import (
    GENESIS_HASH,
    ChainProblem,
    LedgerEntry,
    entry_message,
    parse_entries,
    signature_problem,
    verify_chain,
)
from clearance.ledger.heads import WitnessHead, WitnessReading, check_heads

__all__ = ["GENESIS_HASH", "ChainProblem", "LedgerEntry", "WitnessHead", "WitnessReading", "check_heads",
           "entry_message", "ledger_key", "ledger_prefix", "parse_entries", "signature_problem", "verify_chain"]
