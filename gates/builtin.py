"""Imports the gates shipped with clearance so that they register themselves.

A new built-in gate is one file in ``gates/`` (or a package whose ``gate`` module registers it) plus one import
line here; third-party gates register through the ``clearance.gates`` entry-point group instead. The gate
packages import nothing themselves: what registers a gate is its ``gate`` module, so that a module that only
reads a gate's config (the config schema, ``clearance approve``) does not load every gate.
"""

from gates import artifact_integrity  # noqa: F401
from gates.compliance_review import gate as compliance_review_gate  # noqa: F401
from gates.cost import gate as cost_gate  # noqa: F401
from gates.data_check import gate as data_check_gate  # noqa: F401
from gates.load_test import gate as load_test_gate  # noqa: F401
from gates.security_scan import gate as security_scan_gate  # noqa: F401
