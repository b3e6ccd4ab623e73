"""What the security_scan gate's scanners report: findings about files, judged later by the gate.

Every scanner in this package (pickle streams, containers and model formats, dependencies,
secrets, storage posture) returns these plain records; the gate turns them into checks with
the tier's rules. A finding always names where it was found: the file (nested members as
``outer.zip!inner/data.pkl``), and a byte offset or line when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(str, Enum):
    """How a callable a pickle can import or call is judged."""

    ALLOWED = "allowed"  # on the allowlist of a framework the tier accepts
    UNKNOWN = "unknown"  # on no list: a human should look (warn)
    DENIED = "denied"  # on the denylist: code execution, file or network access (fail)


class Severity(str, Enum):
    """What a problem does to the verdict: ``error`` means the scan could not decide (never a pass)."""

    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"


@dataclass(frozen=True)
class CallableFinding:
    """One callable a pickle stream imports or calls (``GLOBAL``, ``STACK_GLOBAL``, ``INST``, …)."""

    file: str
    offset: int  # byte offset of the opcode in that file's (or member's) stream
    callable: str  # full dotted name, e.g. "os.system", "builtins.getattr", "numpy.core.multiarray._reconstruct"
    opcode: str
    verdict: Verdict
    reason: str = ""


@dataclass(frozen=True)
class Problem:
    """Something wrong with a file that is not a callable: truncated, corrupt, over a limit, unsafe layout."""

    file: str
    kind: str  # stable short id: truncated, corrupt, limit, format, path, header, …
    message: str
    severity: Severity
    offset: int | None = None


@dataclass
class FileReport:
    """Everything the scan saw in one file (or archive member)."""

    file: str
    format: str  # pickle, joblib, pytorch, zip, tar, gzip, safetensors, onnx, text, unknown, …
    size: int
    sha256: str | None = None
    callables: list[CallableFinding] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # for containers: the member names scanned
