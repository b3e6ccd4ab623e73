"""The check modules of ``security_scan``, one per concern (as Checkov keeps one check per file).

Each module has ``CHECKS`` (stable check id or id pattern → what it checks, in words) and
``run(scan) -> list[CheckResult]``; :data:`MODULES` is the order they run in, and
:data:`CATALOGUE` every check id the gate can report (docs/security_scan.md lists them).
A new concern is a new module here, added to :data:`MODULES`.
"""

from __future__ import annotations

from gates.security_scan.checks import dependencies, model_files, storage
from gates.security_scan.checks import secrets as secrets_check

MODULES = (model_files, dependencies, secrets_check, storage)
CATALOGUE: dict[str, str] = {check: name for module in MODULES for check, name in module.CHECKS.items()}

__all__ = ["CATALOGUE", "MODULES"]
