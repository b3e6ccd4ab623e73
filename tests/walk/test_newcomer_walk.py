"""A newcomer's first hour, scripted: the README's "Your first hour" block run as written, in one fresh shell.

Why: the README is the first thing a newcomer trusts, and nothing else checks that its commands still run in
that order on a fresh checkout and say what their comments promise (issue 17). The test copies the working tree
(what ``git ls-files -co --exclude-standard`` lists, mtimes kept so make sees the venv as up to date) to a temp
dir, links the copy's ``.venv`` to this checkout's (installing the venv is what ``make test`` on a fresh clone
exercises; a ``pip install -e`` from the copy would repoint this checkout's editable install, so the test first
makes sure make would not run pip), then runs the block in ``env -i … bash -e -c`` with the copy as cwd: the
demo starts its own SeaweedFS, Prefect server and worker with their state in the copy's ``.local/``. Each
command's output is checked for what the README says the reader sees, and for tracebacks; ``make down`` runs
in the copy at the end whatever happened.

Code location: ``make …`` and ``python -m clearance…`` in the copy import the copy's packages (the cwd comes
first on ``sys.path``; the editable install's finder comes after it), so ``.local/``, the worker's cwd and the
deployments' working directory are the copy's. The ``clearance`` console script of the shared venv imports this
checkout's packages (same code, read from here): its state comes from the environment ``make -s env`` prints,
which names the copy's servers and files.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MARK = "<!-- newcomer-walk -->"
#: What separates the commands' outputs in the shell's output (``echo`` before each command).
SEPARATOR = "### newcomer-walk step "
#: The whole walk: the demo takes ~4 min on 2 cores and demo-fail ~2 min; more when other work shares them.
WALK_TIMEOUT = 2400.0
TRACEBACK = "Traceback (most recent call last)"
MODEL = "churn-classifier"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(WALK_TIMEOUT + 600)]


# --------------------------------------------------------------------------- the README's block


def walk_commands(readme: str) -> list[str]:
    """The commands of the fenced bash block after :data:`MARK`, each as written (continuation lines kept),
    comment and blank lines dropped."""
    assert readme.count(MARK) == 1, f"README.md must hold the newcomer walk once, marked {MARK}"
    block = re.match(r"\s*```bash\n(.*?)\n```", readme.split(MARK, 1)[1], flags=re.S)
    assert block, f"the line after {MARK} in README.md must open a ```bash block"
    commands: list[str] = []
    current: list[str] = []
    for line in block.group(1).splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current.append(line)
        if not line.endswith("\\"):
            commands.append("\n".join(current))
            current = []
    assert not current, f"the walk's last command ends in a continuation: {current}"
    return commands


# --------------------------------------------------------------------------- what each command must show


@dataclass(frozen=True)
class Step:
    """A README command (recognised by how it starts) and the patterns its output must match."""

    starts: str
    patterns: tuple[str, ...]
    #: Extra checks that need the copy's path; each returns a problem or None.
    extra: tuple[Callable[[str, Path], str | None], ...] = ()


def _state_is_the_copys(output: str, copy: Path) -> str | None:
    """The demo pinned its configs under the copy's .local/, not this checkout's."""
    wanted = f"{copy}/.local/demo/configs"
    if wanted not in output:
        return f"the demo's configs are not under the copy's .local/ ({wanted} is not in its output)"
    if f"{REPO}/.local" in output:
        return f"the demo wrote under this checkout's .local/ ({REPO}/.local is in its output)"
    return None


def _nothing(output: str, copy: Path) -> str | None:
    return None if not output.strip() else "expected no output"


#: How demo-fail and status show the run that data_check stopped: the gate, then its failing drift checks.
STOPPED_AT_DATA_CHECK = r"stopped by:\s+-\s+\S+\s+Gate data_check v[\d.]+: FAIL"
STEPS = (
    Step("make demo", (r"artifact_integrity: pass", r"data_check: pass", r"compliance_review: (pass|warn)",
                       r"run finished: COMPLETED", r"\bpromoted\b", r"audit verify:\s+OK",
                       r"Prefect UI:\s+http://127\.0\.0\.1:\d+/runs/flow-run/", r"stop everything: make down"),
         (_state_is_the_copys,)),
    Step('eval "$(make -s env)"', (), (_nothing,)),
    Step(f"clearance status --model {MODEL}", (rf"^live: {MODEL} 1\.0\.0 \(run ", rf"{MODEL} 1\.0\.0: certified until",
                                               r"^artifact_integrity\s+blocking\s+pass",
                                               r"^compliance_review\s+blocking\s+(pass|warn)",
                                               r"Sign-off: approved", r"approve by sam \(verified, security\)",
                                               r"approve by bea \(verified, business\)")),
    Step(f"clearance history {MODEL}", (r"\bstarted\b", r"\bapproved\b", r"\bpromoted\b", r"\brecertified\b",
                                        rf"^live: {MODEL} 1\.0\.0 ", rf"{MODEL} 1\.0\.0: certified until")),
    Step(f"clearance audit verify {MODEL}", (rf"^OK: \d+ ledger entries of {MODEL}, chain intact",)),
    Step("clearance gate list", (r"^artifact_integrity\b", r"^data_check\b", r"^security_scan\b",
                                 r"^load_test\b", r"^cost\b", r"^compliance_review\b")),
    Step("python -m clearance.dev.demo --files .local/preflight",
         tuple(rf"^\.local/preflight/{re.escape(name)}$" for name in (
             "model.joblib", "train.parquet", "eval.parquet", "predictions.parquet", "requirements.txt",
             "contract.yaml", "MODEL_CARD.md"))),
    Step("clearance gate run data_check", (r"Gate data_check v[\d.]+: PASS", r"\b0 failed or undecided",
                                           r"^range:eval:tenure_months\s+pass", r"^psi:eval:tenure_months\s+pass")),
    Step("make demo-fail", (r"data_check must stop it", r"The run ended FAILED", STOPPED_AT_DATA_CHECK,
                            r"psi:eval:tenure_months fail", r"nothing was copied to production")),
    Step(f"clearance status --model {MODEL}", (rf"^live: {MODEL} 1\.0\.0 ", rf"run \S+: {MODEL} 1\.0\.1",
                                               STOPPED_AT_DATA_CHECK, r"psi:eval:tenure_months fail",
                                               r"gate-failed")),
    Step(f"clearance history {MODEL}", (r"1\.0\.0\s.*\bpromoted\b", r"1\.0\.1\s.*\bgate-failed\b",
                                        r"gate data_check", rf"^live: {MODEL} 1\.0\.0 ")),
    Step("make down", (r"^Prefect worker \(pid \d+\) stopped", r"^Prefect server \(pid \d+\) stopped",
                       r"^SeaweedFS \(pid \d+\) stopped")),
)


def problems_of(step: Step, output: str, copy: Path) -> list[str]:
    """What ``output`` lacks of what ``step`` promises, and any traceback in it."""
    found = [f"no match for {pattern!r}" for pattern in step.patterns
             if not re.search(pattern, output, flags=re.M | re.I)]
    found += [p for check in step.extra if (p := check(output, copy))]
    if TRACEBACK in output:
        found.append("it printed a Python traceback")
    return found


# --------------------------------------------------------------------------- a fresh copy, a fresh shell


def fresh_copy(target: Path) -> Path:
    """The working tree as git sees it (tracked and untracked, not ignored) copied to ``target``, mtimes kept,
    with ``.venv`` a link to this checkout's venv."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if not source.is_file():  # deleted in the working tree, or a submodule
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name, follow_symlinks=False)
    (target / ".venv").symlink_to(REPO / ".venv", target_is_directory=True)
    return target


def fresh_shell(home: Path) -> list[str]:
    """``env -i`` and a bash that reads no profile: only what a newcomer's login would surely have."""
    return ["env", "-i", f"HOME={home}", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
            "bash", "--noprofile", "--norc", "-e", "-c"]


def run_in(copy: Path, home: Path, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*fresh_shell(home), script], cwd=copy, capture_output=True, text=True, timeout=timeout,
                          check=False)


def assert_make_would_not_install(copy: Path, home: Path) -> None:
    """pip in the copy would repoint the shared editable install at the copy: make must see the venv's stamp
    (.venv/.installed) as newer than the copy's pyproject.toml and constraints.txt."""
    stamp = run_in(copy, home, "make -q .venv/.installed")
    assert stamp.returncode == 0, (
        f"make would reinstall the venv from the copy (`make -q .venv/.installed`: exit {stamp.returncode}): "
        f"run `make install` in {REPO} first\n{stamp.stdout}{stamp.stderr}")
    for target in ("demo", "demo-fail", "env", "down"):
        dry = run_in(copy, home, f"make -n {target}")
        assert dry.returncode == 0 and "pip" not in dry.stdout, f"`make -n {target}` in the copy:\n{dry.stdout}"


def assert_the_copy_keeps_its_own_state(copy: Path, home: Path) -> None:
    """``python -m`` in the copy imports the copy's modules, so their state dir and the deployments' working
    directory are the copy's (the editable install points at this checkout)."""
    probe = run_in(copy, home, ".venv/bin/python -c 'from clearance.dev import demo, devservers; "
                               "from clearance.app import deployments; "
                               "print(devservers.DEFAULT_STATE, demo.STATE, deployments.REPO_ROOT, sep=chr(10))'")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(copy / ".local"), str(copy / ".local"), str(copy)], probe.stdout


def processes_in(folder: Path) -> dict[int, str]:
    """Live processes whose working directory is ``folder`` or below it (pid → command line): the copy's."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            stat = (entry / "stat").read_text().rsplit(") ", 1)[1]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat.startswith(("Z", "X")):
            continue
        if cwd == folder or folder in cwd.parents:
            found[int(entry.name)] = command.strip()
    return found


@dataclass
class Walk:
    """The shell's output, split per command, with each command's wall time."""

    commands: list[str]
    outputs: dict[int, list[str]] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    ended: float = 0.0
    returncode: int | None = None
    timed_out: bool = False

    def output(self, index: int) -> str:
        return "".join(self.outputs.get(index, []))

    def seconds(self, index: int) -> float:
        following = [t for i, t in self.started.items() if i > index]
        return (min(following) if following else self.ended) - self.started[index]

    @property
    def last(self) -> int:
        return max(self.started, default=-1)


def walk(copy: Path, home: Path, commands: list[str], log: Path) -> Walk:
    """Run ``commands`` in one fresh shell (a separator echoed before each), the copy as cwd; the output goes
    to ``log`` and to this process's stdout as it comes."""
    script = "".join(f"echo {shlex.quote(SEPARATOR + str(i))}\n{command}\n" for i, command in enumerate(commands))
    result = Walk(commands)
    index = -1
    proc = subprocess.Popen([*fresh_shell(home), script], cwd=copy, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def read() -> None:
        nonlocal index
        assert proc.stdout is not None
        with log.open("w") as sink:
            for raw in proc.stdout:
                line = raw.decode(errors="replace")
                sink.write(line)
                sink.flush()
                print(line, end="", flush=True)
                if line.startswith(SEPARATOR):
                    index = int(line[len(SEPARATOR):])
                    result.started[index] = time.monotonic()
                    continue
                result.outputs.setdefault(index, []).append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        result.returncode = proc.wait(timeout=WALK_TIMEOUT)
    except subprocess.TimeoutExpired:
        result.timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    reader.join(timeout=30)
    result.ended = time.monotonic()
    return result


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def test_a_newcomer_walks_the_readme_as_written(tmp_path_factory: pytest.TempPathFactory) -> None:
    commands = walk_commands((REPO / "README.md").read_text())
    assert len(commands) == len(STEPS), (
        "the README's walk and this test's STEPS differ in length: give each README command a Step\n"
        + "\n".join(commands))
    for command, step in zip(commands, STEPS, strict=True):
        assert command.startswith(step.starts), f"README walk: expected {step.starts!r} here, found {command!r}"

    base = tmp_path_factory.mktemp("walk")
    copy = fresh_copy(base / "copy")
    home = base / "home"
    home.mkdir()
    assert_make_would_not_install(copy, home)
    assert_the_copy_keeps_its_own_state(copy, home)
    log = base / "walk.log"
    try:
        result = walk(copy, home, commands, log)
    finally:
        down = run_in(copy, home, "make down", timeout=120)
        leftovers = processes_in(copy)
        for pid in leftovers:  # only the copy's processes: their cwd is inside it
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    logs = "\n".join(str(p) for p in sorted((copy / ".local").glob("*.log"))) or "(no .local/*.log in the copy)"
    timings = "\n".join(f"{result.seconds(i):7.1f} s  {commands[i].splitlines()[0]}" for i in sorted(result.started))
    whole = result.ended - min(result.started.values(), default=result.ended)
    print(f"\nnewcomer walk, wall time per command (whole walk {whole:.0f} s):\n{timings}\nshell output: {log}")
    if result.timed_out or result.returncode != 0:
        failed = result.last
        how = f"timed out after {WALK_TIMEOUT:.0f} s" if result.timed_out else f"exit {result.returncode}"
        pytest.fail(f"the walk stopped at command {failed + 1} ({commands[failed]!r}): {how}"
                    f"\n--- its output (tail) ---\n{tail(result.output(failed))}\n--- logs ---\n{logs}\n"
                    f"whole output: {log}")
    failures = []
    for i, (command, step) in enumerate(zip(commands, STEPS, strict=True)):
        output = result.output(i)
        found = problems_of(step, output, copy)
        if found:
            failures.append(f"command {i + 1}: {command}\n  " + "\n  ".join(found)
                            + f"\n--- its output (tail) ---\n{tail(output)}")
    if TRACEBACK in result.output(-1):
        failures.append("the shell printed a traceback before the first command")
    if down.returncode != 0:
        failures.append(f"make down after the walk: exit {down.returncode}\n{down.stdout}{down.stderr}")
    if leftovers:
        failures.append(f"still running in the copy after make down (killed now): {leftovers}")
    assert not failures, "\n\n".join(failures) + f"\n--- logs ---\n{logs}\nwhole output: {log}"
