"""security_scan secrets: each kind found on its line, placeholders and binaries left alone, values never shown.

Every secret here is made at run time from a seeded random source (no token-shaped literal sits in
the repository for a scanner to trip over, and none of them is real).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import string
from pathlib import Path

import pytest

from gates.security_scan.secrets import (
    PRIVATE_KEY_MASK,
    SecretFinding,
    mask,
    scan_bytes,
    scan_files,
    scan_text,
    shannon_entropy,
)

RNG = random.Random(13)
UPPER_DIGITS = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"


def rand(alphabet: str, n: int) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pem_body(lines: int = 6) -> str:
    return "\n".join(rand(B64, 64) for _ in range(lines))


AWS_KEY_ID = "AK" + "IA" + rand(UPPER_DIGITS, 16)
AWS_STS_KEY_ID = "AS" + "IA" + rand(UPPER_DIGITS, 16)
AWS_SECRET = rand(B64, 40)
AZURE_KEY = rand(B64, 86) + "=="
SLACK_BOT = "xo" + "xb-" + rand(string.digits, 12) + "-" + rand(string.digits, 13) + "-" + rand(ALNUM, 24)
SLACK_APP = "xa" + "pp-1-" + rand(UPPER_DIGITS, 11) + "-" + rand(string.digits, 13) + "-" + rand("abcdef0123456789", 64)
SLACK_HOOK = ("https://hooks.sl" + "ack.com/services/T" + rand(UPPER_DIGITS, 8) + "/B" + rand(UPPER_DIGITS, 8) + "/"
              + rand(ALNUM, 24))
GITHUB_PAT = "gh" + "p_" + rand(ALNUM, 36)
GITHUB_FINE = "github" + "_pat_" + rand(ALNUM, 22) + "_" + rand(ALNUM, 59)
GITLAB = "gl" + "pat-" + rand(ALNUM + "_-", 20)
JWT = (b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "."
       + b64url(json.dumps({"sub": "1234567890", "name": "model-bot", "iat": 1516239022}).encode()) + "."
       + b64url(RNG.randbytes(32)))
GENERIC = rand(ALNUM, 32)
HEX_SECRET = rand("0123456789abcdef", 40)
RSA_BODY = pem_body()
BEGIN_RSA = "-----BEGIN " + "RSA PRIVATE KEY-----"
END_RSA = "-----END " + "RSA PRIVATE KEY-----"
OPENSSH_BODY = pem_body(4)
GCP_BODY = pem_body(5)


def gcp_service_account() -> str:
    key = "-----BEGIN " + "PRIVATE KEY-----\\n" + GCP_BODY.replace("\n", "\\n") + "\\n-----END " + "PRIVATE KEY-----\\n"
    return "\n".join([
        "{",
        '  "type": "service_account",',
        '  "project_id": "ml-platform",',
        '  "private_key_id": "' + rand("0123456789abcdef", 8) + '",',
        '  "private_key": "' + key + '",',
        '  "client_email": "scanner@ml-platform.iam.gserviceaccount.com"',
        "}",
    ])


# (kind, file text, line of the finding, the raw value that must never be shown)
CASES: list[tuple[str, str, int, str]] = [
    ("aws-access-key-id", f"# aws\n\naws_access_key_id = {AWS_KEY_ID}\n", 3, AWS_KEY_ID),
    ("aws-access-key-id", f"creds:\n  id: {AWS_STS_KEY_ID}\n", 2, AWS_STS_KEY_ID),
    ("aws-secret-access-key", f"[default]\nregion = eu-west-1\naws_secret_access_key = {AWS_SECRET}\n", 3, AWS_SECRET),
    ("aws-secret-access-key", f'{{"SecretAccessKey": "{AWS_SECRET}"}}\n', 1, AWS_SECRET),
    ("gcp-service-account-key", gcp_service_account(), 5, GCP_BODY.splitlines()[0]),
    ("azure-storage-key", "conn = DefaultEndpointsProtocol=https;AccountName=models;AccountKey="
     f"{AZURE_KEY};EndpointSuffix=core.windows.net\n", 1, AZURE_KEY),
    ("slack-token", f"\n\n\nSLACK_BOT_TOKEN={SLACK_BOT}\n", 4, SLACK_BOT),
    ("slack-token", f"app_token: {SLACK_APP}\n", 1, SLACK_APP),
    ("slack-webhook", f"notify:\n  url: {SLACK_HOOK}\n", 2, SLACK_HOOK),
    ("github-token", f"line one\nGH={GITHUB_PAT}\n", 2, GITHUB_PAT),
    ("github-token", f"x\ny\nz\ntoken {GITHUB_FINE}\n", 4, GITHUB_FINE),
    ("gitlab-token", f"registry:\n  login: {GITLAB}\n", 2, GITLAB),
    ("private-key", f"notes\n{BEGIN_RSA}\n{RSA_BODY}\n{END_RSA}\n", 2, RSA_BODY.splitlines()[0]),
    ("private-key", "a\nb\n-----BEGIN " + f"OPENSSH PRIVATE KEY-----\n{OPENSSH_BODY}\n-----END " + "OPENSSH PRIVATE "
     "KEY-----\n", 3, OPENSSH_BODY.splitlines()[1]),
    ("jwt", f"headers:\n  Authorization: Bearer {JWT}\n", 2, JWT),
    ("high-entropy", f"model: churn\nservice:\n  api_key: {GENERIC}\n", 3, GENERIC),
    ("high-entropy", f'{{"name": "x",\n "client_secret": "{HEX_SECRET}"}}\n', 2, HEX_SECRET),
    ("high-entropy", f"export DB_PASSWORD='{GENERIC}'\n", 1, GENERIC),
]


@pytest.mark.parametrize(("kind", "text", "line", "raw"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_kind_is_found_on_its_line_and_masked(kind: str, text: str, line: int, raw: str) -> None:
    findings = scan_text(text, "bundle/config.txt")
    assert [(f.kind, f.line) for f in findings] == [(kind, line)], findings
    finding = findings[0]
    assert finding.file == "bundle/config.txt"
    assert raw not in finding.masked and raw not in str(finding) and raw not in repr(finding)
    if kind in ("private-key", "gcp-service-account-key"):
        assert finding.masked == PRIVATE_KEY_MASK
    else:
        assert finding.masked == f"{raw[:4]}…{raw[-2:]}"


def test_several_secrets_keep_their_own_lines() -> None:
    text = "\n".join(["# deploy", f"id={AWS_KEY_ID}", "", f"slack={SLACK_BOT}", "plain=value", f"gh={GITHUB_PAT}"])
    assert [(f.kind, f.line) for f in scan_text(text, "f")] == [
        ("aws-access-key-id", 2), ("slack-token", 4), ("github-token", 6)]


@pytest.mark.parametrize("text", [
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "api_key: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "password = changeme-changeme-changeme",
    "token: ${SLACK_BOT_TOKEN_FROM_THE_ENVIRONMENT}",
    "secret: <your-secret-goes-here-please>",
    "api_key = {{ vault_api_key_for_the_model }}",
    "SLACK_BOT_TOKEN=xoxb-your-token-here-xxxxxxxxxxxx",
    "client_secret: REDACTED_REDACTED_REDACTED",
    "auth_token: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "github_token: ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    # a private-key header with no key material (documentation) is no key
    "Put your key here:\n-----BEGIN " + "PRIVATE KEY-----\n...\n-----END " + "PRIVATE KEY-----",
    # low entropy with context, high entropy without context
    "password = this_is_my_password_value",
    f"checksum = {GENERIC}",
    f"model_id: {HEX_SECRET}",
    # names, paths and model ids next to a keyword are not secrets
    "tokenizer_name: sentence-transformers/all-MiniLM-L6-v2",
    "hub_token_model: sentence-transformers/all-MiniLM-L6-v2",
    "password_file: /run/secrets/db_password_file_v1",
    "author: Jane-Doe-and-Colleagues-2024",
    "primary_key: customer_id_hash_bucket_v2",
])
def test_placeholders_and_context_free_values_are_not_flagged(text: str) -> None:
    assert scan_text(text, "f") == []


def test_entropy_thresholds() -> None:
    assert shannon_entropy("aaaa") == 0
    assert shannon_entropy("abcd") == 2
    assert shannon_entropy(GENERIC) >= 4.0
    assert shannon_entropy("this_is_my_password_value") < 4.0


def test_mask_hides_short_values_entirely() -> None:
    assert mask("short-secret") == "[masked 12 chars]"
    assert mask("0123456789abcdefXY") == "0123…XY"
    assert mask("0123456789abcdefXY", full=True) == "[masked 18 chars]"


def test_binary_and_undecodable_files_are_skipped(tmp_path: Path) -> None:
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x80\x04\x95" + b"\0" * 10 + f"token={GITHUB_PAT}".encode())
    latin = tmp_path / "notes.txt"
    latin.write_bytes(f"caf\xe9 {GITHUB_PAT}\n".encode("latin-1") + b"more text" * 10)
    text = tmp_path / "config.yaml"
    text.write_text(f"gh: {GITHUB_PAT}\n")
    scan = scan_files([binary, latin, text], root=tmp_path)
    assert [(s.file, s.reason) for s in scan.skipped] == [("model.bin", "binary"), ("notes.txt", "undecodable")]
    assert scan.scanned == ["config.yaml"]
    assert [(f.file, f.line, f.kind) for f in scan.findings] == [("config.yaml", 1, "github-token")]
    assert scan_bytes(b"\0abc", "x")[1] is not None


def test_byte_bounds_per_file_and_in_total(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("filler line\n" * 200 + f"gh={GITHUB_PAT}\n")
    small = tmp_path / "small.txt"
    small.write_text(f"gh={GITHUB_PAT}\n")
    later = tmp_path / "later.txt"
    later.write_text(f"gh={GITHUB_PAT}\n")
    scan = scan_files([big, small], root=tmp_path, max_file_bytes=1000)
    assert [f.file for f in scan.findings] == ["small.txt"]  # the secret past byte 1000 of big.txt is unseen
    assert ("big.txt", "truncated") in [(s.file, s.reason) for s in scan.skipped]
    scan = scan_files([small, big, later], root=tmp_path, max_total_bytes=100)
    assert [f.file for f in scan.findings] == ["small.txt"]
    assert [(s.file, s.reason) for s in scan.skipped] == [("big.txt", "budget"), ("later.txt", "budget")]
    assert scan.bytes_scanned == 100


def test_missing_file_is_listed_unreadable(tmp_path: Path) -> None:
    scan = scan_files([tmp_path / "gone.txt"], root=tmp_path)
    assert [(s.file, s.reason) for s in scan.skipped] == [("gone.txt", "unreadable")]


def test_no_raw_value_appears_anywhere_in_what_a_scan_returns(tmp_path: Path) -> None:
    raws = [raw for _, _, _, raw in CASES] + [AWS_KEY_ID, AWS_SECRET, RSA_BODY, GCP_BODY, OPENSSH_BODY]
    everything = "\n".join(text for _, text, _, _ in CASES)
    path = tmp_path / "secrets.env"
    path.write_text(everything)
    scan = scan_files([path], root=tmp_path)
    assert {f.kind for f in scan.findings} == {kind for kind, _, _, _ in CASES}
    assert len(scan.findings) == len(CASES)
    outputs = [
        str(scan.findings), repr(scan.findings), repr(scan), str(scan),
        "\n".join(str(f) for f in scan.findings),
        json.dumps([dataclasses.asdict(f) for f in scan.findings]),
        json.dumps(dataclasses.asdict(scan)),
    ]
    for raw in raws:
        for piece in [raw] + [line for line in raw.splitlines() if len(line) >= 8]:
            for output in outputs:
                assert piece not in output, f"a raw secret leaked into {output[:80]}…"
        # and no long run of it either (masking shows at most 4 + 2 characters)
        for output in outputs:
            assert raw[:8] not in output and raw[-8:] not in output


def test_finding_is_frozen_and_holds_no_value_field() -> None:
    fields = {f.name for f in dataclasses.fields(SecretFinding)}
    assert fields == {"file", "line", "kind", "masked"}
    finding = scan_text(f"gh={GITHUB_PAT}", "f")[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.masked = GITHUB_PAT  # type: ignore[misc]
