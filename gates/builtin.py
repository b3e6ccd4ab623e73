"""Imports the gates shipped with clearance so that they register themselves.

A new built-in gate is one file in ``gates/`` plus one import line here;
third-party gates register through the ``clearance.gates`` entry-point group instead.
"""

from gates import (
    artifact_integrity,  # noqa: F401
    compliance_review,  # noqa: F401
    cost,  # noqa: F401
    data_check,  # noqa: F401
    load_test,  # noqa: F401
    security_scan,  # noqa: F401
)
