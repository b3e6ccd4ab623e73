"""What the benchmarks that time a tool in a child process share: its peak memory, and reading its result."""

from __future__ import annotations

import json
import resource
import subprocess
from pathlib import Path
from typing import Any


def vm_hwm_mb() -> float:
    """Peak RSS of this process since exec, in MB (ru_maxrss would include the parent's pre-exec peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(tool: str, command: list[str], env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Run one timed child; the JSON object on its last line of output, or None (its error printed)."""
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode:
        print(f"  {tool}: FAILED\n{out.stderr[-3000:]}", flush=True)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])
