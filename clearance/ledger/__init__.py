"""The evidence ledger, pure: entries, their hash chain and its verification (storage is ``tasks/ledger.py``)."""

from clearance.core.keys import ledger_key, ledger_prefix
from clearance.ledger.chain import GENESIS_HASH, ChainProblem, LedgerEntry, verify_chain

__all__ = ["GENESIS_HASH", "ChainProblem", "LedgerEntry", "ledger_key", "ledger_prefix", "verify_chain"]
