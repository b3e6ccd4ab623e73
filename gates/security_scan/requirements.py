"""A model's pinned requirements (pip's requirements-file format), parsed without pip and without the network.

What a line may be, as pip reads it:

- ``name==version`` (``===`` too), with extras ``name[extra]==v`` and an environment marker
  ``name==v; python_version < "3.12"``. Names are normalised as PEP 503 says (``Foo_Bar`` → ``foo-bar``).
  A marker is evaluated with :mod:`packaging.markers` against the *target environment*: by default
  the running interpreter's (:func:`packaging.markers.default_environment`); pass ``environment``
  (keys as in PEP 508, e.g. ``{"python_version": "3.12", "sys_platform": "linux"}``, merged over
  the defaults) to judge another one. A requirement whose marker is false is kept with
  ``applies=False`` and not checked against advisories.
- comments (``#`` at the start or after whitespace), blank lines, and a backslash at the end of a
  line continuing it on the next one (the requirement keeps the number of its first line).
- per-requirement options: ``--hash=algo:hex`` (sha256, sha384, sha512; kept),
  ``--config-settings``, ``--global-option``.
- ``-r FILE`` / ``--requirement FILE`` and ``-c FILE`` / ``--constraint FILE``: resolved relative to
  the file naming them and read only when they stay inside ``root`` (the bundle: by default the
  folder of the first file). Absolute paths, ``..`` escapes, symlinks out of ``root``, URLs and
  cycles are refused with an ``include`` finding (the scan cannot decide what would be installed).
  A constraint (``-c``) installs nothing: it pins a requirement that is otherwise unpinned.
- index options (``-i``/``--index-url``, ``--extra-index-url``, ``-f``/``--find-links``,
  ``--trusted-host``, ``--no-index``): accepted and reported as an ``index`` finding (a model that
  installs from another index is worth a look); other global options pip knows are accepted.
- unpinned lines — ``name>=1``, ``name``, ``name==1.*``, ``name @ URL``, a bare URL or path, ``-e`` —
  become ``unpinned`` findings (the tier decides warn or fail) and are not checked against advisories.
- anything else is an ``invalid`` finding naming file and line.

Bounds: ``max_bytes`` (default 1 MiB) and ``max_lines`` (default 10 000) over all files read
together, and at most ``max_files`` files: beyond them parsing stops with a ``limit`` finding.
Credentials in URLs (``https://user:token@host``, ``?token=…``) are replaced by ``***`` in everything
reported.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName, default_environment
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PackagingRequirement
from packaging.version import InvalidVersion, Version

from gates.security_scan.findings import Severity

MAX_BYTES = 1024 * 1024
MAX_LINES = 10_000
MAX_FILES = 50

_COMMENT = re.compile(r"(^|\s+)#.*$")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_QUERY_SECRET = re.compile(r"([?&][^=&#\s]*(?:token|key|secret|passw|auth|sig)[^=&#\s]*=)[^&#\s]+", re.IGNORECASE)
_HASH = re.compile(r"^(sha256|sha384|sha512):([0-9a-fA-F]+)$")
_HASH_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_URLISH = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|\.{0,2}/|[A-Za-z]:[\\/])")
_NAMED_URL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@")
_ARCHIVE = re.compile(r"\.(whl|zip|tar\.gz|tgz|tar\.bz2|tar\.xz|tar)$", re.I)

_INCLUDE = {"-r": "requirement", "--requirement": "requirement", "-c": "constraint", "--constraint": "constraint"}
_EDITABLE = {"-e", "--editable"}
_INDEX = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host", "--no-index"}
_GLOBAL_WITH_VALUE = {"--only-binary", "--no-binary", "--use-feature", "--progress-bar"}
_GLOBAL_FLAGS = {"--pre", "--prefer-binary", "--require-hashes"}
_PER_REQUIREMENT = {"--hash", "--config-settings", "--global-option", "--install-option"}


def normalize_name(name: str) -> str:
    """A project name as PEP 503 compares it: lower case, runs of ``-``, ``_``, ``.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def redact(text: str) -> str:
    """``text`` with the user-info of any URL in it (``user:token@``) replaced by ``***@``, and the value of
    any query parameter named like a credential (``?token=…``, ``&api_key=…``) by ``***``."""
    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub("***@", text))


@dataclass(frozen=True)
class Requirement:
    """One requirement line (file and line of its first physical line)."""

    name: str  # normalised (PEP 503)
    file: str
    line: int
    version: str | None = None  # the pinned version (``==``/``===``, or from a constraint); None: unpinned
    specifier: str = ""  # as written, e.g. "==1.2.3" or ">=1"
    extras: tuple[str, ...] = ()
    marker: str | None = None
    applies: bool = True  # the marker holds in the target environment (or there is none)
    hashes: tuple[str, ...] = ()  # "sha256:…"
    url: str | None = None  # direct reference or bare URL/path (credentials redacted)
    editable: bool = False
    pinned_by: str | None = None  # "constraints.txt:3" when a constraint pinned it

    @property
    def pinned(self) -> bool:
        return self.version is not None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class RequirementIssue:
    """Something about a requirements file that is not a clean pin.

    ``kind``: ``unpinned`` (severity warn; the tier may make it fail), ``index`` (warn: another
    package index), ``invalid`` (error: a line that is not a requirement), ``include`` (error: a
    refused or unreadable ``-r``/``-c``), ``conflict`` (error: one package pinned to two versions),
    ``missing`` / ``unreadable`` (error), ``limit`` (error: over a size bound; parsing stopped).
    """

    file: str
    line: int | None
    kind: str
    message: str
    severity: Severity
    name: str | None = None  # the normalised package name, when there is one

    @property
    def where(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


@dataclass
class ParsedRequirements:
    """Everything parsed from a requirements file and its includes."""

    requirements: list[Requirement] = field(default_factory=list)
    issues: list[RequirementIssue] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read, the first one first
    environment: dict[str, str] = field(default_factory=dict)  # the marker environment used

    @property
    def applicable(self) -> list[Requirement]:
        """Requirements whose marker holds in the target environment."""
        return [r for r in self.requirements if r.applies]

    @property
    def pinned(self) -> list[Requirement]:
        """Applicable requirements with a version: the ones checked against advisories."""
        return [r for r in self.requirements if r.applies and r.version is not None]


class _LimitReached(Exception):
    pass


class _Parser:
    def __init__(self, root: Path | None, environment: dict[str, str], max_bytes: int, max_lines: int,
                 max_files: int) -> None:
        self.root = root.resolve() if root is not None else None
        self.environment = environment
        self.max_bytes, self.max_lines, self.max_files = max_bytes, max_lines, max_files
        self.bytes_read = 0
        self.lines_read = 0
        self.result = ParsedRequirements(environment=dict(environment))
        self.constraints: list[Requirement] = []
        self.stack: list[Path] = []

    # ------------------------------------------------------------------ files

    def display(self, path: Path) -> str:
        if self.root is not None:
            try:
                return path.resolve().relative_to(self.root).as_posix()
            except ValueError:
                pass
        return path.as_posix()

    def issue(self, file: str, line: int | None, kind: str, message: str, severity: Severity,
              name: str | None = None) -> None:
        self.result.issues.append(RequirementIssue(file, line, kind, redact(message), severity, name))

    def read_file(self, path: Path, constraint: bool, named_at: tuple[str, int] | None) -> None:
        shown = self.display(path)
        where_file, where_line = named_at if named_at else (shown, None)
        if len(self.result.files) >= self.max_files:
            self.issue(where_file, where_line, "limit", f"more than {self.max_files} requirements files",
                       Severity.ERROR)
            raise _LimitReached
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            kind = "include" if named_at else "missing"
            self.issue(where_file, where_line, kind, f"requirements file {shown} not found", Severity.ERROR)
            return
        except OSError as exc:
            self.issue(where_file, where_line, "unreadable", f"{shown}: {exc.strerror or type(exc).__name__}",
                       Severity.ERROR)
            return
        if self.bytes_read + size > self.max_bytes:
            self.issue(shown, None, "limit", f"{shown} is {size} bytes: requirements over {self.max_bytes} bytes "
                                             "in all are not read", Severity.ERROR)
            raise _LimitReached
        try:
            with path.open("rb") as fh:
                data = fh.read(self.max_bytes - self.bytes_read + 1)
        except OSError as exc:
            self.issue(where_file, where_line, "unreadable", f"{shown}: {exc.strerror or type(exc).__name__}",
                       Severity.ERROR)
            return
        self.bytes_read += len(data)
        if self.bytes_read > self.max_bytes:
            self.issue(shown, None, "limit", f"requirements over {self.max_bytes} bytes in all are not read",
                       Severity.ERROR)
            raise _LimitReached
        self.result.files.append(shown)
        self.stack.append(path.resolve())
        try:
            self.parse_text(decode(data, shown, self), shown, path, constraint)
        finally:
            self.stack.pop()

    # ------------------------------------------------------------------ lines

    def parse_text(self, text: str | None, file: str, path: Path | None, constraint: bool) -> None:
        if text is None:
            return
        for line_no, logical in logical_lines(text):
            self.lines_read += 1
            if self.lines_read > self.max_lines:
                self.issue(file, line_no, "limit", f"more than {self.max_lines} requirement lines", Severity.ERROR)
                raise _LimitReached
            line = _COMMENT.sub("", logical).strip()
            if line:
                self.parse_line(line, file, line_no, path, constraint)

    def parse_line(self, line: str, file: str, line_no: int, path: Path | None, constraint: bool) -> None:
        if line.startswith("-"):
            self.parse_option_line(line, file, line_no, path, constraint)
            return
        args, options = break_args_options(line)
        hashes = self.parse_requirement_options(options, file, line_no)
        if hashes is None:
            return
        self.add_requirement(args, file, line_no, hashes, constraint)

    def parse_requirement_options(self, options: str, file: str, line_no: int) -> tuple[str, ...] | None:
        try:
            tokens = shlex.split(options)
        except ValueError as exc:
            self.issue(file, line_no, "invalid", f"{file}:{line_no}: options: {exc}", Severity.ERROR)
            return None
        hashes: list[str] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            name, eq, value = token.partition("=")
            if name not in _PER_REQUIREMENT:
                self.issue(file, line_no, "invalid", f"{file}:{line_no}: unknown option {name!r} after a requirement",
                           Severity.ERROR)
                return None
            if not eq:
                if i + 1 >= len(tokens):
                    self.issue(file, line_no, "invalid", f"{file}:{line_no}: {name} needs a value", Severity.ERROR)
                    return None
                i += 1
                value = tokens[i]
            if name == "--hash":
                match = _HASH.match(value)
                if not match or len(match.group(2)) != _HASH_LENGTHS[match.group(1)]:
                    self.issue(file, line_no, "invalid", f"{file}:{line_no}: --hash {value!r} is not "
                               "sha256:/sha384:/sha512: and a digest of that length", Severity.ERROR)
                    return None
                hashes.append(f"{match.group(1)}:{match.group(2).lower()}")
            i += 1
        return tuple(hashes)

    def parse_option_line(self, line: str, file: str, line_no: int, path: Path | None, constraint: bool) -> None:
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            self.issue(file, line_no, "invalid", f"{file}:{line_no}: {exc}", Severity.ERROR)
            return
        option, value = split_option(tokens)
        if option in _INCLUDE:
            if not value:
                self.issue(file, line_no, "invalid", f"{file}:{line_no}: {option} needs a file", Severity.ERROR)
                return
            self.include(value, _INCLUDE[option] == "constraint" or constraint, file, line_no, path)
        elif option in _EDITABLE:
            if not value:
                self.issue(file, line_no, "invalid", f"{file}:{line_no}: {option} needs a path or URL", Severity.ERROR)
                return
            if not constraint:  # an editable constraint pins nothing
                self.result.requirements.append(Requirement(
                    name=egg_name(value) or "", file=file, line=line_no, url=redact(value), editable=True))
        elif option in _INDEX:
            self.issue(file, line_no, "index", f"{file}:{line_no}: {option}{' ' + value if value else ''}: "
                       "packages may come from somewhere other than PyPI", Severity.WARN)
        elif option in _GLOBAL_WITH_VALUE or option in _GLOBAL_FLAGS:
            if option in _GLOBAL_WITH_VALUE and not value:
                self.issue(file, line_no, "invalid", f"{file}:{line_no}: {option} needs a value", Severity.ERROR)
        else:
            self.issue(file, line_no, "invalid", f"{file}:{line_no}: unknown option {option!r}", Severity.ERROR)

    def include(self, target: str, constraint: bool, file: str, line_no: int, path: Path | None) -> None:
        what = "-c" if constraint else "-r"
        if path is None or self.root is None:
            self.issue(file, line_no, "include", f"{file}:{line_no}: {what} {target}: includes are not read from "
                       "text without a folder", Severity.ERROR)
            return
        if "://" in target or Path(target).is_absolute() or re.match(r"^[A-Za-z]:[\\/]", target):
            self.issue(file, line_no, "include", f"{file}:{line_no}: {what} {target}: only relative paths inside "
                       "the bundle are read (no URLs, no absolute paths)", Severity.ERROR)
            return
        resolved = (path.parent / target).resolve()
        try:
            resolved.relative_to(self.root)
        except ValueError:
            self.issue(file, line_no, "include", f"{file}:{line_no}: {what} {target} leaves the bundle",
                       Severity.ERROR)
            return
        if resolved in self.stack:
            self.issue(file, line_no, "include", f"{file}:{line_no}: {what} {target} includes itself (a cycle)",
                       Severity.ERROR)
            return
        self.read_file(resolved, constraint, (file, line_no))

    # ------------------------------------------------------------------ requirements

    def add_requirement(self, text: str, file: str, line_no: int, hashes: tuple[str, ...], constraint: bool) -> None:
        shown = redact(text)
        named = _NAMED_URL.match(text) is not None
        if _URLISH.match(text) or (not named and _ARCHIVE.search(text.split(";")[0].strip()) and "==" not in text):
            if not constraint:
                self.result.requirements.append(Requirement(name=egg_name(text) or "", file=file, line=line_no,
                                                            url=shown, hashes=hashes))
            return
        try:
            parsed = PackagingRequirement(text)
        except InvalidRequirement as exc:
            self.issue(file, line_no, "invalid", f"{file}:{line_no}: not a requirement: {shown!r} "
                       f"({str(exc).splitlines()[0]})", Severity.ERROR)
            return
        name = normalize_name(parsed.name)
        applies = True
        marker = str(parsed.marker) if parsed.marker is not None else None
        if parsed.marker is not None:
            try:
                applies = parsed.marker.evaluate(self.environment)
            except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as exc:
                self.issue(file, line_no, "invalid", f"{file}:{line_no}: marker {marker!r} cannot be evaluated: "
                           f"{exc}", Severity.ERROR, name=name)
                return
        version = pinned_version(parsed)
        requirement = Requirement(
            name=name, file=file, line=line_no, version=version, specifier=str(parsed.specifier),
            extras=tuple(sorted(parsed.extras)), marker=marker, applies=applies, hashes=hashes,
            url=redact(parsed.url) if parsed.url else None)
        if constraint:
            self.constraints.append(requirement)
        else:
            self.result.requirements.append(requirement)

    def finish(self) -> None:
        """Apply constraints to unpinned requirements, then report what stays unpinned and conflicts."""
        pins: dict[str, Requirement] = {}
        for c in self.constraints:
            if c.applies and c.version is not None and c.url is None:
                pins.setdefault(c.name, c)
        done: list[Requirement] = []
        for r in self.result.requirements:
            pin = pins.get(r.name)
            if r.version is None and r.url is None and not r.editable and pin is not None and r.applies:
                r = Requirement(name=r.name, file=r.file, line=r.line, version=pin.version,
                                specifier=r.specifier, extras=r.extras, marker=r.marker, applies=r.applies,
                                hashes=r.hashes, pinned_by=pin.where)
            elif r.version is None:
                self.issue(r.file, r.line, "unpinned", f"{r.where}: {unpinned_reason(r)}", Severity.WARN,
                           name=r.name or None)
            done.append(r)
        self.result.requirements = done
        seen: dict[str, Requirement] = {}
        for r in done:
            if not r.applies or r.version is None:
                continue
            first = seen.setdefault(r.name, r)
            if first is not r and not same_version(first.version, r.version):
                self.issue(r.file, r.line, "conflict", f"{r.where}: {r.name}=={r.version} but {first.where} pins "
                           f"{r.name}=={first.version}", Severity.ERROR, name=r.name)


def unpinned_reason(r: Requirement) -> str:
    """Why a requirement is not a pin, for its ``unpinned`` finding."""
    if r.editable:
        return f"editable requirement {r.url} is not a released version"
    if r.url is not None:
        label = f"{r.name} @ {r.url}" if r.name and not r.url.startswith(r.name) else r.url
        return f"{label} is a URL or path, not a pinned released version"
    return f"{r.name}{r.specifier} is not pinned with =="


def same_version(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def pinned_version(requirement: PackagingRequirement) -> str | None:
    """The exact version of ``name==v`` / ``name===v`` (no wildcard, one clause, no URL); else None."""
    if requirement.url:
        return None
    specs = list(requirement.specifier)
    if len(specs) != 1:
        return None
    spec = specs[0]
    if spec.operator == "===" or (spec.operator == "==" and not spec.version.endswith(".*")):
        return spec.version
    return None


def egg_name(text: str) -> str | None:
    """The project a URL/path requirement names, if it says (``#egg=name`` or ``name @ URL``)."""
    match = re.search(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)", text)
    if match:
        return normalize_name(match.group(1))
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*@", text)
    return normalize_name(match.group(1)) if match else None


def split_option(tokens: list[str]) -> tuple[str, str | None]:
    """``["-r", "x"]``, ``["-rx"]``, ``["--requirement=x"]`` → ("-r"/"--requirement", "x")."""
    first = tokens[0]
    if first.startswith("--"):
        name, eq, value = first.partition("=")
        if eq:
            return name, value
        return name, " ".join(tokens[1:]) or None
    if len(first) > 2:
        return first[:2], first[2:]
    return first, " ".join(tokens[1:]) or None


def break_args_options(line: str) -> tuple[str, str]:
    """Split a requirement line into the requirement and its per-requirement options (as pip does)."""
    tokens = line.split(" ")
    args: list[str] = []
    options = tokens[:]
    for token in tokens:
        if token.startswith("-"):
            break
        args.append(token)
        options.pop(0)
    return " ".join(args).strip(), " ".join(options)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Physical lines joined at a trailing backslash, each with the number of its first line."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        stripped = raw.rstrip()
        if stripped.endswith("\\") and not _COMMENT.match(stripped):
            pending.append(stripped[:-1])
            continue
        pending.append(raw)
        out.append((start, "".join(pending)))
        pending = []
    if pending:
        out.append((start, "".join(pending)))
    return out


def decode(data: bytes, file: str, parser: _Parser | None = None) -> str | None:
    """UTF-8 text (a BOM is dropped); an undecodable file is an ``unreadable`` issue."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if parser is not None:
            parser.issue(file, None, "unreadable", f"{file}: not UTF-8 text (byte {exc.start})", Severity.ERROR)
        return None


def _environment(environment: Mapping[str, str] | None) -> dict[str, str]:
    env = {key: str(value) for key, value in default_environment().items()}
    if environment:
        env.update(environment)
    return env


def parse_requirements(path: Path, *, root: Path | None = None, environment: Mapping[str, str] | None = None,
                       max_bytes: int = MAX_BYTES, max_lines: int = MAX_LINES,
                       max_files: int = MAX_FILES) -> ParsedRequirements:
    """Parse the requirements file at ``path`` and the ``-r``/``-c`` files it names inside ``root``.

    ``root`` is the bundle folder (default: the folder of ``path``); files are named relative to it.
    ``environment`` overrides marker variables of the running interpreter's environment.
    Never raises for bad content: every problem is a :class:`RequirementIssue`.
    """
    parser = _Parser(root if root is not None else path.parent, _environment(environment), max_bytes, max_lines,
                     max_files)
    try:
        parser.read_file(path, constraint=False, named_at=None)
    except _LimitReached:
        pass
    parser.finish()
    return parser.result


def parse_requirements_text(text: str, *, file: str = "requirements.txt",
                            environment: Mapping[str, str] | None = None, max_bytes: int = MAX_BYTES,
                            max_lines: int = MAX_LINES) -> ParsedRequirements:
    """Parse requirements given as text (``file`` names it in findings); ``-r``/``-c`` are refused."""
    parser = _Parser(None, _environment(environment), max_bytes, max_lines, 1)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        parser.issue(file, None, "limit", f"{file} is {size} bytes: requirements over {max_bytes} bytes are not "
                     "read", Severity.ERROR)
    else:
        parser.result.files.append(file)
        try:
            parser.parse_text(text.removeprefix("\ufeff"), file, None, constraint=False)
        except _LimitReached:
            pass
    parser.finish()
    return parser.result
