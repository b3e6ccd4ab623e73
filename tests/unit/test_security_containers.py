"""security_scan model files: containers, compressed streams, safetensors and ONNX layouts, read as bytes.

Every artifact is built here by hand (``zipfile``, ``tarfile``, ``gzip``, a tiny protobuf writer,
``joblib.dump``); nothing is ever loaded. torch and onnx are not installed: a torch-style zip is a
zip laid out as ``torch.save`` lays it out, with a ``data.pkl`` that references
``torch._utils._rebuild_tensor_v2`` and a ``BINPERSID`` storage key.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest

from gates.security_scan.callables import DEFAULT_FRAMEWORKS, CallablePolicy
from gates.security_scan.findings import FileReport, Severity, Verdict
from gates.security_scan.model_files import ScanLimits, scan_path, sniff_format
from gates.security_scan.onnx_check import check_onnx
from gates.security_scan.safetensors_check import check_safetensors

POLICY = CallablePolicy(DEFAULT_FRAMEWORKS)

# GLOBAL 'os system' at byte 2, then ("id",), REDUCE, STOP: what a poisoned model runs on load.
EVIL = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
EVIL_GLOBAL_AT = 2


class Evil:
    """Pickles as a call of os.system (pickling it runs nothing)."""

    def __reduce__(self) -> tuple:
        return os.system, ("echo pwned",)


def torch_data_pkl() -> bytes:
    """The ``data.pkl`` of ``torch.save({"weight": tensor([4 floats])})``, opcode by opcode."""
    return (
        b"\x80\x02"
        b"ccollections\nOrderedDict\nq\x00)Rq\x01"
        b"X\x06\x00\x00\x00weightq\x02"
        b"ctorch._utils\n_rebuild_tensor_v2\nq\x03"
        b"("
        b"(X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07"
        b"K\x04tq\x08Q"  # persistent id ('storage', FloatStorage, '0', 'cpu', 4) → BINPERSID
        b"K\x00K\x04\x85q\tK\x01\x85q\n\x89ccollections\nOrderedDict\nq\x0b)Rq\x0c"
        b"tq\rRq\x0e"
        b"s."
    )


def torch_zip(extra: dict[str, bytes] | None = None, *, prefix: str = "archive") -> bytes:
    """A zip laid out as ``torch.save`` writes it (stored members)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", torch_data_pkl())
        z.writestr(f"{prefix}/.format_version", b"1")
        z.writestr(f"{prefix}/.storage_alignment", b"64")
        z.writestr(f"{prefix}/byteorder", b"little")
        # A storage that happens to start like a pickle: raw bytes, never unpickled by torch.load.
        z.writestr(f"{prefix}/data/0", b"\x80\x02" + struct.pack("<3f", 1.0, 2.0, 3.0)[2:] + b"\x00" * 4)
        z.writestr(f"{prefix}/version", b"3\n")
        z.writestr(f"{prefix}/.data/serialization_id", b"1234567890")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return out.getvalue()


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def tar_of(members: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            t.addfile(info)
    return out.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def scan(tmp_path: Path, name: str, data: bytes, limits: ScanLimits = ScanLimits()) -> dict[str, FileReport]:
    reports = scan_path(write(tmp_path, name, data), name, POLICY, limits)
    assert reports[0].file == name  # the top-level report comes first
    return {r.file: r for r in reports}


def denied(report: FileReport) -> list[str]:
    """The denied callables of a report, each once (the engine reports an import and its call)."""
    return sorted({c.callable for c in report.callables if c.verdict is Verdict.DENIED})


def problems(reports: dict[str, FileReport], kind: str | None = None,
             severity: Severity | None = None) -> list[tuple[str, str, str]]:
    return [(p.file, p.kind, p.message) for r in reports.values() for p in r.problems
            if (kind is None or p.kind == kind) and (severity is None or p.severity is severity)]


def worst_is_clean(reports: dict[str, FileReport]) -> bool:
    return not problems(reports, severity=Severity.FAIL) and not problems(reports, severity=Severity.ERROR)


# --------------------------------------------------------------------------- PyTorch zips


def test_torch_zip_benign_scans_data_pkl_and_skips_storages(tmp_path: Path) -> None:
    reports = scan(tmp_path, "model.pt", torch_zip())
    top = reports["model.pt"]
    assert top.format == "pytorch"
    pkl = reports["model.pt!archive/data.pkl"]
    assert pkl.format == "pickle"
    called = {c.callable for c in pkl.callables}
    assert "torch._utils._rebuild_tensor_v2" in called and "collections.OrderedDict" in called
    assert not denied(pkl)
    assert "model.pt!archive/data/0" not in reports  # a storage: raw bytes, not a pickle
    assert "archive/data.pkl" in top.members and "archive/data/0" not in top.members
    assert worst_is_clean(reports)


def test_torch_zip_malicious_second_pickle_found_with_member_and_offset(tmp_path: Path) -> None:
    data = torch_zip({"archive/extra.pkl": EVIL, "archive/hidden/blob": EVIL})
    reports = scan(tmp_path, "model.pt", data)
    for member in ("model.pt!archive/extra.pkl", "model.pt!archive/hidden/blob"):  # by name, and by its PROTO
        report = reports[member]
        system = [c for c in report.callables if c.callable == "os.system"]
        assert system and all(c.verdict is Verdict.DENIED and c.file == member for c in system)
        assert EVIL_GLOBAL_AT in {c.offset for c in system}
    assert not denied(reports["model.pt!archive/data.pkl"])


def test_torch_zip_compressed_members_are_scanned_too(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("m/data.pkl", EVIL)
        z.writestr("m/data/0", b"\x00" * 64)
    reports = scan(tmp_path, "m.pth", out.getvalue())
    assert reports["m.pth"].format == "pytorch"
    assert denied(reports["m.pth!m/data.pkl"]) == ["os.system"]


def torch_legacy(data_pkl: bytes) -> bytes:
    """A non-zip ``torch.save`` file: magic, protocol, sys info, the object, the storage keys, raw storages."""
    head = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    storage = struct.pack("<q", 4) + b"\x80\x02" + bytes(14)  # numel, then raw bytes (that look like a PROTO)
    return head + data_pkl + pickle.dumps(["0"], protocol=2) + storage


def test_torch_legacy_file_scans_its_five_pickles_only(tmp_path: Path) -> None:
    reports = scan(tmp_path, "old.pt", torch_legacy(torch_data_pkl()))
    report = reports["old.pt"]
    assert report.format == "pytorch"
    assert "torch._utils._rebuild_tensor_v2" in {c.callable for c in report.callables} and not denied(report)
    assert worst_is_clean(reports)
    assert denied(scan(tmp_path, "old.pt", torch_legacy(EVIL))["old.pt"]) == ["os.system"]


def test_stored_member_with_bad_crc_is_an_error(tmp_path: Path) -> None:
    data = bytearray(torch_zip())
    at = bytes(data).index(b"little")
    data[at:at + 6] = b"LITTLE"
    reports = scan(tmp_path, "model.pt", bytes(data))
    assert any("CRC" in message for _, _, message in problems(reports, "corrupt", Severity.ERROR))


# --------------------------------------------------------------------------- nesting and limits


def test_nested_zip_in_tar_in_gzip_finds_the_pickle(tmp_path: Path) -> None:
    inner_zip = zip_of({"model/evil.pkl": EVIL, "model/readme.txt": b"hello"})
    bundle = gzip.compress(tar_of({"bundle/inner.zip": inner_zip}))
    reports = scan(tmp_path, "bundle.tar.gz", bundle)
    assert reports["bundle.tar.gz"].format == "tar"  # compression is transparent
    assert reports["bundle.tar.gz"].sha256 == hashlib.sha256(bundle).hexdigest()
    assert reports["bundle.tar.gz!bundle/inner.zip"].format == "zip"
    evil = reports["bundle.tar.gz!bundle/inner.zip!model/evil.pkl"]
    assert denied(evil) == ["os.system"]
    assert evil.sha256 == hashlib.sha256(EVIL).hexdigest() and evil.size == len(EVIL)


def nested_zips(levels: int) -> bytes:
    data, name = EVIL, "evil.pkl"
    for level in range(levels):
        data, name = zip_of({name: data}), f"level{level}.zip"
    return data


def test_depth_limit_stops_at_max_depth(tmp_path: Path) -> None:
    data = nested_zips(4)  # zip in zip in zip in zip
    reports = scan(tmp_path, "deep.zip", data)
    assert not any(denied(r) for r in reports.values())
    limit = problems(reports, "limit", Severity.ERROR)
    assert limit and "max_depth" in limit[0][2]
    assert limit[0][0] == "deep.zip!level2.zip!level1.zip!level0.zip"
    reports = scan(tmp_path, "deep.zip", data, ScanLimits(max_depth=4))
    assert any(denied(r) for r in reports.values()) and not problems(reports, "limit")


def test_three_levels_is_within_the_default_depth(tmp_path: Path) -> None:
    reports = scan(tmp_path, "three.zip", nested_zips(3))
    assert denied(reports["three.zip!level1.zip!level0.zip!evil.pkl"]) == ["os.system"]


def test_zip_bomb_member_stopped_by_ratio(tmp_path: Path) -> None:
    bomb = zip_of({"weights.pkl": b"\x00" * (40 << 20)})
    assert len(bomb) < 100_000
    reports = scan(tmp_path, "bomb.zip", bomb)
    limit = problems(reports, "limit", Severity.ERROR)
    assert limit and limit[0][0] == "bomb.zip!weights.pkl" and "max_ratio" in limit[0][2]
    assert "bomb.zip!weights.pkl" not in reports


def test_zip_member_with_lying_size_is_read_no_further_than_declared(tmp_path: Path) -> None:
    data = bytearray(zip_of({"a.bin": b"\x00" * (8 << 20)}))
    # Patch the declared uncompressed size (central directory and local header) down to 1 MiB.
    central = bytes(data).index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 1 << 20)
    struct.pack_into("<I", data, 22, 1 << 20)
    reports = scan(tmp_path, "liar.zip", bytes(data))
    corrupt = problems(reports, "corrupt", Severity.ERROR)
    assert [f for f, _, _ in corrupt] == ["liar.zip!a.bin"] and "CRC" in corrupt[0][2]


def test_total_decompressed_bytes_limit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    members = {f"part{i}.bin": rng.bytes(300_000) for i in range(3)}
    reports = scan(tmp_path, "parts.zip", zip_of(members), ScanLimits(max_total_bytes=700_000))
    limit = problems(reports, "limit", Severity.ERROR)
    assert [f for f, _, _ in limit] == ["parts.zip!part2.bin"] and "max_total_bytes" in limit[0][2]


def test_gzip_bomb_stopped(tmp_path: Path) -> None:
    reports = scan(tmp_path, "model.pkl.gz", gzip.compress(b"\x00" * (8 << 20)))
    assert any("max_ratio" in m for _, _, m in problems(reports, "limit", Severity.ERROR))


def test_member_count_limit(tmp_path: Path) -> None:
    reports = scan(tmp_path, "many.zip", zip_of({f"f{i}.txt": b"x" for i in range(20)}), ScanLimits(max_members=5))
    assert len(reports["many.zip"].members) == 5
    assert any("max_members" in m for _, _, m in problems(reports, "limit", Severity.ERROR))


# --------------------------------------------------------------------------- entry names, links, encryption


@pytest.mark.parametrize("name", ["../evil.pkl", "a/../../evil.pkl", "/etc/cron.d/evil", "C:/evil.pkl",
                                  "..\\evil.pkl"])
def test_zip_traversal_names_fail(tmp_path: Path, name: str) -> None:
    reports = scan(tmp_path, "t.zip", zip_of({name: b"data", "ok/fine.txt": b"fine"}))
    path = problems(reports, "path", Severity.FAIL)
    assert len(path) == 1 and path[0][0] == f"t.zip!{name}"


def test_tar_traversal_and_links_fail(tmp_path: Path) -> None:
    data = tar_of({"../../etc/evil": b"x", "model/ok.txt": b"ok"},
                  links={"model/link": (tarfile.SYMTYPE, "/etc/passwd"), "model/hard": (tarfile.LNKTYPE, "x"),
                         "model/dev": (tarfile.CHRTYPE, "")})
    reports = scan(tmp_path, "t.tar", data)
    path = {file: message for file, _, message in problems(reports, "path", Severity.FAIL)}
    assert set(path) == {"t.tar!../../etc/evil", "t.tar!model/link", "t.tar!model/hard", "t.tar!model/dev"}
    assert "symbolic link" in path["t.tar!model/link"] and "hard link" in path["t.tar!model/hard"]
    assert "t.tar!model/ok.txt" in reports and "t.tar!model/link" not in reports


def test_zip_symlink_entry_fails(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        info = zipfile.ZipInfo("model/link")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    reports = scan(tmp_path, "l.zip", out.getvalue())
    assert [f for f, _, _ in problems(reports, "path", Severity.FAIL)] == ["l.zip!model/link"]


def test_encrypted_zip_member_is_an_error(tmp_path: Path) -> None:
    data = bytearray(zip_of({"secret.pkl": EVIL}, zipfile.ZIP_STORED))
    struct.pack_into("<H", data, 6, 1)  # local header: general purpose flag bit 0 (encrypted)
    central = bytes(data).index(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 8, 1)
    reports = scan(tmp_path, "enc.zip", bytes(data))
    encrypted = problems(reports, "encrypted", Severity.ERROR)
    assert [f for f, _, _ in encrypted] == ["enc.zip!secret.pkl"]
    assert "enc.zip!secret.pkl" not in reports


def test_local_header_name_differing_from_the_central_directory_is_an_error(tmp_path: Path) -> None:
    data = bytearray(zip_of({"model/a.pkl": EVIL}, zipfile.ZIP_STORED))
    data[30:41] = b"model/b.pkl"  # the local header's name; the central directory still says a.pkl
    reports = scan(tmp_path, "n.zip", bytes(data))
    corrupt = problems(reports, "corrupt", Severity.ERROR)
    assert [f for f, _, _ in corrupt] == ["n.zip!model/a.pkl"] and "local header" in corrupt[0][2]


def test_overlapping_zip_entries_fail(tmp_path: Path) -> None:
    data = bytearray(zip_of({"a.txt": b"A" * 100, "b.txt": b"B" * 100}, zipfile.ZIP_STORED))
    centrals = [i for i in range(len(data)) if data[i:i + 4] == b"PK\x01\x02"]
    struct.pack_into("<I", data, centrals[1] + 42, 0)  # b.txt's central entry points at a.txt's header
    reports = scan(tmp_path, "o.zip", bytes(data))
    assert problems(reports, severity=Severity.FAIL) or problems(reports, severity=Severity.ERROR)


# --------------------------------------------------------------------------- compressed joblib and pickles


def benign_model() -> dict:
    return {"coef": np.arange(1000, dtype=np.float64), "classes": np.array([0, 1]), "n": 3}


@pytest.mark.parametrize("compress", [0, 3, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)])
def test_joblib_benign_passes_and_malicious_fails(tmp_path: Path, compress: object) -> None:
    good, bad = tmp_path / "good.joblib", tmp_path / "bad.joblib"
    joblib.dump(benign_model(), good, compress=compress)
    joblib.dump({"coef": np.zeros(10), "hook": Evil()}, bad, compress=compress)
    reports = {r.file: r for r in scan_path(good, "good.joblib", POLICY)}
    assert list(reports) == ["good.joblib"]
    top = reports["good.joblib"]
    assert top.format == "joblib" and top.sha256 == hashlib.sha256(good.read_bytes()).hexdigest()
    assert top.callables and all(c.verdict is Verdict.ALLOWED for c in top.callables), top.callables
    assert worst_is_clean(reports)
    bad_report = scan_path(bad, "bad.joblib", POLICY)[0]
    assert bad_report.format == "joblib"
    assert [c for c in bad_report.callables if c.verdict is Verdict.DENIED and "system" in c.callable]


def test_legacy_joblib_zfile(tmp_path: Path) -> None:
    payload = pickle.dumps(Evil(), protocol=2)
    data = b"ZF" + hex(len(payload)).encode().ljust(19) + zlib.compress(payload, 3)
    assert sniff_format("old.pkl", data[:512], len(data)) == "joblib-zf"
    report = scan(tmp_path, "old.pkl", data)["old.pkl"]
    assert report.format == "pickle" and denied(report)
    lying = b"ZF" + hex(len(payload) + 5).encode().ljust(19) + zlib.compress(payload, 3)
    assert problems(scan(tmp_path, "old.pkl", lying), "corrupt", Severity.ERROR)


def test_compressed_streams_concatenated_and_truncated(tmp_path: Path) -> None:
    two = bz2.compress(pickle.dumps([1, 2], protocol=2)) + bz2.compress(EVIL)
    assert denied(scan(tmp_path, "two.pkl.bz2", two)["two.pkl.bz2"]) == ["os.system"]
    cut = gzip.compress(EVIL * 50)[:-20]
    assert problems(scan(tmp_path, "cut.pkl.gz", cut), "corrupt", Severity.ERROR)
    padded = gzip.compress(EVIL) + b"\x00" * 512
    assert worst_is_clean(scan(tmp_path, "pad.pkl.gz", padded)) is True


def test_lz4_without_the_package_is_an_error(tmp_path: Path) -> None:
    reports = scan(tmp_path, "m.joblib", b"\x04\x22\x4d\x18" + b"\x00" * 32)
    assert problems(reports, severity=Severity.ERROR)


def test_plain_pickle_is_mapped_and_scanned(tmp_path: Path) -> None:
    reports = scan(tmp_path, "model.pkl", EVIL)
    assert reports["model.pkl"].format == "pickle" and denied(reports["model.pkl"]) == ["os.system"]


def test_npy_object_array_payload_is_scanned(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([Evil(), 1], dtype=object), allow_pickle=True)
    assert denied(scan(tmp_path, "a.npy", buf.getvalue())["a.npy"])
    buf = io.BytesIO()
    np.save(buf, np.arange(10))
    reports = scan(tmp_path, "b.npy", buf.getvalue())
    assert reports["b.npy"].format == "npy" and not reports["b.npy"].callables and worst_is_clean(reports)


def test_known_sha256_is_trusted_for_the_top_level_file(tmp_path: Path) -> None:
    path = write(tmp_path, "model.pkl", EVIL)
    assert scan_path(path, "model.pkl", POLICY)[0].sha256 == hashlib.sha256(EVIL).hexdigest()
    assert scan_path(path, "model.pkl", POLICY, known_sha256="ab" * 32)[0].sha256 == "ab" * 32


def test_every_mapping_is_closed(tmp_path: Path) -> None:
    from gates.security_scan import containers

    storage = np.random.default_rng(1).bytes(containers.MEMORY_SPOOL + 1000)
    big = zip_of({"m/data.pkl": EVIL, "m/data/0": storage}, zipfile.ZIP_STORED)
    assert denied(scan(tmp_path, "big.pt", big)["big.pt!m/data.pkl"])
    # Through gzip: the decompressed tar is larger than MEMORY_SPOOL, so it is spooled to a temp file and mapped.
    reports = scan(tmp_path, "big.tar.gz", gzip.compress(tar_of({"a/big.zip": big, "a/x.pkl": EVIL}), 1))
    assert denied(reports["big.tar.gz!a/big.zip!m/data.pkl"]) and denied(reports["big.tar.gz!a/x.pkl"])
    assert worst_is_clean(reports)
    assert containers._LEAKED == []


def test_missing_file_is_an_error_report(tmp_path: Path) -> None:
    reports = scan_path(tmp_path / "absent.pkl", "absent.pkl", POLICY)
    assert [p.kind for p in reports[0].problems] == ["unreadable"]
    assert reports[0].problems[0].severity is Severity.ERROR


def test_empty_file(tmp_path: Path) -> None:
    reports = scan_path(write(tmp_path, "empty.bin", b""), "empty.bin", POLICY)
    assert reports[0].size == 0 and reports[0].sha256 == hashlib.sha256(b"").hexdigest()


# --------------------------------------------------------------------------- safetensors


def safetensors_bytes(tensors: dict[str, dict], data: bytes, *, metadata: dict | None = None,
                      raw_header: bytes | None = None, length: int | None = None) -> bytes:
    header_obj: dict = {}
    if metadata is not None:
        header_obj["__metadata__"] = metadata
    header_obj.update(tensors)
    header = raw_header if raw_header is not None else json.dumps(header_obj).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header) if length is None else length) + header + data


GOOD_TENSORS = {
    "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
    "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]},
    "c": {"dtype": "I64", "shape": [], "data_offsets": [22, 30]},
    "empty": {"dtype": "U8", "shape": [0, 4], "data_offsets": [30, 30]},
}


def check(data: bytes) -> list[tuple[str, str]]:
    return [(p.kind, p.message) for p in check_safetensors(data, "m.safetensors").problems
            if p.severity is Severity.FAIL]


def test_safetensors_good_passes(tmp_path: Path) -> None:
    data = safetensors_bytes(GOOD_TENSORS, bytes(30), metadata={"format": "pt"})
    result = check_safetensors(data, "m.safetensors")
    assert result.problems == [] and result.tensors == 4 and result.metadata == {"format": "pt"}
    reports = scan(tmp_path, "m.safetensors", data)
    assert reports["m.safetensors"].format == "safetensors" and worst_is_clean(reports)
    assert sniff_format("weights.bin", data[:512], len(data)) == "safetensors"  # by content alone


def bad(change: dict) -> dict:
    tensors = json.loads(json.dumps(GOOD_TENSORS))
    for name, info in change.items():
        if info is None:
            del tensors[name]
        else:
            tensors[name] = info
    return tensors


@pytest.mark.parametrize(("tensors", "size", "kind", "needle"), [
    (bad({"b": {"dtype": "BF16", "shape": [3], "data_offsets": [14, 20]}}), 30, "format", "overlaps"),
    (bad({"b": {"dtype": "BF16", "shape": [3], "data_offsets": [18, 24]}}), 30, "format", "gap"),
    (bad({"c": {"dtype": "I64", "shape": [], "data_offsets": [22, 38]}}), 30, "format", "past the data section"),
    (bad({"c": {"dtype": "Q7", "shape": [], "data_offsets": [22, 30]}}), 30, "format", "unknown dtype"),
    (bad({"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}}), 30, "format", "expected 24"),
    (bad({"a": {"dtype": "F32", "shape": [2, -2], "data_offsets": [0, 16]}}), 30, "format", "non-negative"),
    (bad({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 0]}}), 30, "format", "begin <= end"),
    (bad({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16], "x": 1}}), 30, "format", "unexpected x"),
    (GOOD_TENSORS, 34, "format", "trailing bytes"),
])
def test_safetensors_corruptions_fail(tensors: dict, size: int, kind: str, needle: str) -> None:
    found = check(safetensors_bytes(tensors, bytes(size)))
    assert any(k == kind and needle in m for k, m in found), found


def test_safetensors_header_problems() -> None:
    huge = safetensors_bytes(GOOD_TENSORS, bytes(30), length=1 << 40)
    assert any("over the limit" in m for k, m in check(huge) if k == "header")
    past = safetensors_bytes(GOOD_TENSORS, bytes(30), length=10_000)
    assert any("past the end" in m for k, m in check(past) if k == "header")
    not_json = safetensors_bytes({}, b"", raw_header=b"{'a': 1}")
    assert any("not JSON" in m for k, m in check(not_json) if k == "header")
    assert any("8-byte" in m for _, m in check(b"\x01\x02"))
    dup = safetensors_bytes({}, bytes(16), raw_header=b'{"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]},'
                                                     b'"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}}')
    assert any("duplicate key" in m for _, m in check(dup))
    meta = safetensors_bytes(GOOD_TENSORS, bytes(30), metadata={"n": 1})
    assert any("__metadata__" in m for _, m in check(meta))
    nan = safetensors_bytes({}, b"", raw_header=b'{"__metadata__": {"x": NaN}}')
    assert any("NaN" in m for _, m in check(nan))
    assert check_safetensors(huge, "m", max_header=1 << 50).problems  # still past the end of the file


def test_safetensors_limit_from_scan_limits(tmp_path: Path) -> None:
    data = safetensors_bytes(GOOD_TENSORS, bytes(30))
    reports = scan(tmp_path, "m.safetensors", data, ScanLimits(max_safetensors_header=16))
    assert problems(reports, "header", Severity.FAIL)


def test_safetensors_sub_byte_dtypes() -> None:
    ok = safetensors_bytes({"q": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}}, bytes(2))
    assert check(ok) == []
    odd = safetensors_bytes({"q": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, bytes(2))
    assert any("whole bytes" in m for _, m in check(odd))


# --------------------------------------------------------------------------- ONNX (a tiny protobuf writer)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def f_int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def f_len(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def tensor(name: str, location: str | None = None, raw: bytes = b"") -> bytes:
    out = f_int(1, 4) + f_int(2, 1) + f_len(8, name)  # dims, data_type FLOAT, name
    if location is None:
        return out + f_len(9, raw or bytes(16))
    entries = [("location", location), ("offset", "0"), ("length", "16")]
    out += b"".join(f_len(13, f_len(1, k) + f_len(2, v)) for k, v in entries)
    return out + f_int(14, 1)  # data_location EXTERNAL


def node(op: str, domain: str = "", attributes: bytes = b"") -> bytes:
    return f_len(1, "x") + f_len(2, "y") + f_len(4, op) + (f_len(7, domain) if domain else b"") + attributes


def model(graph_parts: bytes, *, extra: bytes = b"") -> bytes:
    graph = f_len(2, "g") + graph_parts
    return (f_int(1, 9) + f_len(2, "unit-test") + f_len(3, "1.0") + f_len(8, f_len(1, "") + f_int(2, 17))
            + f_len(7, graph) + extra)


def onnx_problems(data: bytes, model_dir: Path | None = None) -> list[tuple[str, Severity, str]]:
    return [(p.kind, p.severity, p.message) for p in check_onnx(data, "m.onnx", model_dir=model_dir).problems]


def test_onnx_clean_passes(tmp_path: Path) -> None:
    data = model(f_len(1, node("Relu")) + f_len(5, tensor("w")) + f_len(5, tensor("v", "weights/v.bin")))
    result = check_onnx(data, "m.onnx", model_dir=tmp_path)
    assert result.problems == []
    assert result.info.opsets == {"": 17} and result.info.producer == "unit-test" and result.info.ir_version == 9
    assert result.info.external_locations == ["weights/v.bin"]
    reports = scan(tmp_path, "m.onnx", data)
    assert reports["m.onnx"].format == "onnx" and worst_is_clean(reports)


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "weights/../../x.bin", "C:\\data\\w.bin",
                                      "\\\\server\\share\\w.bin", "..\\w.bin", ""])
def test_onnx_external_data_leaving_the_bundle_fails(tmp_path: Path, location: str) -> None:
    data = model(f_len(5, tensor("w", location)))
    found = onnx_problems(data)
    assert any(k == "path" and s is Severity.FAIL and "'w'" in m for k, s, m in found), found
    reports = scan(tmp_path, "m.onnx", data)
    assert problems(reports, "path", Severity.FAIL)


def test_onnx_external_data_symlink_escape(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc")
    data = model(f_len(5, tensor("w", "link/passwd")))
    assert onnx_problems(data) == []  # lexically fine …
    found = onnx_problems(data, model_dir=tmp_path)  # … but resolves outside the model's directory
    assert [(k, s) for k, s, _ in found] == [("path", Severity.FAIL)]
    assert problems(scan(tmp_path, "m.onnx", data), "path", Severity.FAIL)


def test_onnx_external_data_in_nested_places(tmp_path: Path) -> None:
    sparse = f_len(15, f_len(1, tensor("sv", "../sv.bin")) + f_len(2, tensor("si")) + f_int(3, 4))
    sub_graph = f_len(5, tensor("inner", "/abs/inner.bin"))
    attr = f_len(1, "then_branch") + f_int(20, 5) + f_len(6, sub_graph)
    attr_t = f_len(1, "value") + f_int(20, 4) + f_len(5, tensor("const", "../const.bin"))
    graph = sparse + f_len(1, node("If", attributes=f_len(5, attr))) + f_len(1, node("Constant",
                                                                                     attributes=f_len(5, attr_t)))
    function = f_len(1, "F") + f_len(10, "local") + f_len(7, node("Constant", attributes=f_len(5, attr_t)))
    training = f_len(20, f_len(1, f_len(5, tensor("t", "../t.bin"))))
    found = onnx_problems(model(graph, extra=f_len(25, function) + training))
    names = sorted(m.split(":")[0] for k, _, m in found if k == "path")
    assert names == ["tensor 'const'", "tensor 'const'", "tensor 'inner'", "tensor 'sv'", "tensor 't'"]


def test_onnx_external_without_location_fails() -> None:
    t = f_int(1, 4) + f_len(8, "w") + f_int(14, 1)
    assert [(k, s) for k, s, _ in onnx_problems(model(f_len(5, t)))] == [("format", Severity.FAIL)]


def test_onnx_custom_domain_warns_unless_a_local_function() -> None:
    graph = f_len(1, node("Relu")) + f_len(1, node("Fancy", "com.example")) + f_len(1, node("Fancy", "com.example"))
    graph += f_len(1, node("Mine", "local")) + f_len(1, node("Attn", "com.microsoft"))
    function = f_len(1, "Mine") + f_len(10, "local") + f_len(7, node("Relu"))
    found = onnx_problems(model(graph, extra=f_len(25, function)))
    assert [(k, s) for k, s, _ in found] == [("custom_op", Severity.WARN)] * 2
    assert "'com.example'" in found[0][2] and "2 node(s)" in found[0][2] and "'com.microsoft'" in found[1][2]


def test_onnx_corrupt_bytes_are_an_error() -> None:
    good = model(f_len(5, tensor("w")))
    for data in (good[:-3], b"\x0a\xff\xff\xff\xff\x0f", b"\x07", b""):
        found = onnx_problems(data)
        assert found and found[0][:2] == ("corrupt", Severity.ERROR), (data, found)


def test_onnx_deep_subgraphs_bounded() -> None:
    graph = f_len(5, tensor("w"))
    for _ in range(40):
        graph = f_len(1, node("If", attributes=f_len(5, f_len(1, "g") + f_len(6, graph))))
    found = onnx_problems(model(graph))
    assert found and found[0][1] is Severity.ERROR


def test_onnx_in_a_zip_is_checked_lexically(tmp_path: Path) -> None:
    data = zip_of({"bundle/m.onnx": model(f_len(5, tensor("w", "../../etc/passwd"))), "bundle/w.bin": bytes(16)})
    reports = scan(tmp_path, "bundle.zip", data)
    assert reports["bundle.zip!bundle/m.onnx"].format == "onnx"
    assert [f for f, _, _ in problems(reports, "path", Severity.FAIL)] == ["bundle.zip!bundle/m.onnx"]


# --------------------------------------------------------------------------- format detection


@pytest.mark.parametrize(("name", "head", "expected"), [
    ("m.joblib", b"\x80\x04\x95", "joblib"),
    ("m.bin", b"\x80\x02}q", "pickle"),
    ("m.pt", b"PK\x03\x04", "pytorch"),
    ("m.zip", b"PK\x03\x04", "zip"),
    ("m.joblib", zlib.compress(b"x" * 100)[:16], "zlib"),
    ("m.onnx", zlib.compress(b"x" * 100)[:16], "onnx"),
    ("m.gz", gzip.compress(b"x", mtime=0), "gzip"),
    ("m", bz2.compress(b"x"), "bz2"),
    ("m.safetensors", b"\xff" * 16, "safetensors"),
    ("m.txt", b"hello", "text"),
    ("m", b"hello", "unknown"),
])
def test_sniff_format(name: str, head: bytes, expected: str) -> None:
    assert sniff_format(name, head, 1000) == expected
