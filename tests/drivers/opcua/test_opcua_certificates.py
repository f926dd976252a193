"""The client's application certificate: made on first use, then kept, one per application URI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography import x509

from drivers.opcua.security import (
    certificate_application_uri,
    fingerprint,
    generate_client_certificate,
)


def test_client_certificate_is_generated_once_and_reused(tmp_path: Path):
    cert, key = generate_client_certificate(tmp_path, "urn:edgecell:client")
    first = (cert.read_bytes(), key.read_bytes())
    again = generate_client_certificate(tmp_path, "urn:edgecell:client")
    assert again == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == first
    assert key.stat().st_mode & 0o077 == 0


def test_another_application_uri_gets_its_own_certificate(tmp_path: Path):
    default = generate_client_certificate(tmp_path, "urn:edgecell:client")
    other = generate_client_certificate(tmp_path, "urn:plant:line-2:edgecell")
    assert other[0] != default[0]
    assert other[0].read_bytes() != default[0].read_bytes()


def test_generated_certificate_names_the_application_uri(tmp_path: Path):
    cert, _key = generate_client_certificate(tmp_path, "urn:plant:line-2:edgecell")
    assert certificate_application_uri(cert.read_bytes()) == "urn:plant:line-2:edgecell"
    usage = x509.load_der_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    )
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usage.value


def test_certs_command_creates_and_shows_the_certificate(tmp_path: Path):
    repo = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-m", "controller", "certs", "--state-dir", str(tmp_path)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cert = tmp_path / "opcua" / "client-cert.der"
    assert f"certificate:      {cert}" in done.stdout
    assert f"SHA-256:          {fingerprint(cert.read_bytes())}" in done.stdout
    assert "application URI:  urn:edgecell:client" in done.stdout
