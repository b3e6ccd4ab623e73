"""Prefect flows: the order of a promotion, a rollback, a re-certification (no HTTP, no decisions).

Importing any flow mends Prefect's flow-run heartbeat so that a run ends when its body does
(tasks/flow_heartbeats.py says why and how it stays safe across Prefect releases)."""

from tasks.flow_heartbeats import install as _mend_heartbeats

_mend_heartbeats()
