"""OPC UA security: the client's application certificate (from files or generated once), the
endpoint matching the configured policy and mode, and trust in the server's certificate
(pinned, or trusted on first use and refused if it ever changes)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import cert_gen, security_policies
from asyncua.crypto.uacrypto import CertProperties
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from drivers.opcua.config import (
    DEFAULT_APPLICATION_URI,
    OpcUaSecurity,
    SecurityMode,
    SecurityPolicy,
)
from drivers.opcua.errors import (
    ClientCertificateError,
    PolicyNotOfferedError,
    UntrustedServerCertificateError,
)

log = structlog.get_logger(__name__)

CLIENT_CERT_FILE = "client-cert.der"
CLIENT_KEY_FILE = "client-key.pem"
TRUSTED_SERVER_CERT_FILE = "server-cert.der"
# Long enough that a box in a cabinet does not lose its trust relationships every year; the
# certificate is regenerated when it expires (the servers must then trust the new one).
CLIENT_CERT_DAYS = 5 * 365

_POLICY_URIS: dict[SecurityPolicy, str] = {
    SecurityPolicy.NONE: security_policies.SecurityPolicyNone.URI,
    SecurityPolicy.BASIC256SHA256: security_policies.SecurityPolicyBasic256Sha256.URI,
}
_MODES: dict[SecurityMode, ua.MessageSecurityMode] = {
    SecurityMode.NONE: ua.MessageSecurityMode.None_,
    SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
    SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}


@dataclass(frozen=True, slots=True)
class OfferedEndpoint:
    policy: str  # the short name: None, Basic256Sha256, Aes128_Sha256_RsaOaep, ...
    mode: str  # None, Sign, SignAndEncrypt
    certificate: bytes  # DER, empty when the server sent none


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as operators compare it with the server's own display."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


# --- the client's application instance certificate --------------------------------------------


def generate_client_certificate(state_dir: Path, app_uri: str) -> tuple[Path, Path]:
    """The client certificate and key under `state_dir/opcua/`, made on first use.

    An existing pair is kept while its certificate names `app_uri` and has not expired, so the
    servers that trusted it keep trusting it; otherwise a new self-signed certificate (the key
    is kept if there is one) is written. Returns `(cert_path, key_path)`.
    """
    directory = state_dir / "opcua"
    cert_path, key_path = client_certificate_paths(state_dir, app_uri)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        key = _load_or_make_key(key_path)
        if cert_path.is_file() and _certificate_fits(cert_path.read_bytes(), app_uri, key):
            return cert_path, key_path
        hostname = socket.gethostname()
        certificate = cert_gen.generate_self_signed_app_certificate(
            key,
            "edgecell",
            {},
            [x509.UniformResourceIdentifier(app_uri), x509.DNSName(hostname)],
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            days=CLIENT_CERT_DAYS,
        )
        der = certificate.public_bytes(serialization.Encoding.DER)
        _write_atomically(cert_path, der, mode=0o644)
    except OSError as exc:
        raise ClientCertificateError(
            f"cannot write the client certificate under {directory}: {exc.strerror}"
        ) from exc
    log.info(
        "opcua_client_certificate_generated",
        path=str(cert_path),
        application_uri=app_uri,
        sha256=fingerprint(der),
    )
    return cert_path, key_path


def client_certificate_paths(state_dir: Path, app_uri: str) -> tuple[Path, Path]:
    """Where the certificate for `app_uri` lives: one certificate per application URI, so that
    devices configured with different URIs do not regenerate each other's."""
    directory = state_dir / "opcua"
    if app_uri == DEFAULT_APPLICATION_URI:
        return directory / CLIENT_CERT_FILE, directory / CLIENT_KEY_FILE
    slug = re.sub(r"[^A-Za-z0-9]+", "-", app_uri).strip("-")[:40]
    digest = hashlib.sha256(app_uri.encode()).hexdigest()[:8]
    stem = f"client-{slug}-{digest}"
    return directory / f"{stem}-cert.der", directory / f"{stem}-key.pem"


def certificate_summary(data: bytes) -> dict[str, str]:
    """What an operator compares on the server's trust list."""
    certificate = _load_certificate(data)
    return {
        "subject": certificate.subject.rfc4514_string(),
        "application_uri": certificate_application_uri(data) or "",
        "sha256": fingerprint(to_der(data)),
        "valid_until": certificate.not_valid_after_utc.isoformat(),
    }


def _load_or_make_key(key_path: Path) -> rsa.RSAPrivateKey:
    if key_path.is_file():
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if isinstance(loaded, rsa.RSAPrivateKey):
            return loaded
        raise ClientCertificateError(f"{key_path} is not an RSA key; remove it to generate one")
    key = cert_gen.generate_private_key()
    _write_atomically(key_path, cert_gen.dump_private_key_as_pem(key), mode=0o600)
    return key


def _certificate_fits(data: bytes, app_uri: str, key: rsa.RSAPrivateKey) -> bool:
    try:
        certificate = x509.load_der_x509_certificate(data)
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, x509.ExtensionNotFound):
        return False
    now = dt.datetime.now(dt.UTC)
    public = certificate.public_key()
    return (
        app_uri in san.value.get_values_for_type(x509.UniformResourceIdentifier)
        and certificate.not_valid_after_utc > now + dt.timedelta(days=1)
        and isinstance(public, rsa.RSAPublicKey)
        and public.public_numbers() == key.public_key().public_numbers()
    )


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def certificate_application_uri(data: bytes) -> str | None:
    """The application URI a certificate names (its first URI SubjectAltName)."""
    certificate = _load_certificate(data)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def certificate_subject(data: bytes) -> str:
    names = _load_certificate(data).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _load_certificate(data: bytes) -> x509.Certificate:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def to_der(data: bytes) -> bytes:
    """A certificate file's content (PEM or DER) as DER."""
    return _load_certificate(data).public_bytes(serialization.Encoding.DER)


# --- endpoints and the server's certificate ---------------------------------------------------


def describe_endpoints(endpoints: Sequence[ua.EndpointDescription]) -> list[OfferedEndpoint]:
    offered: list[OfferedEndpoint] = []
    for endpoint in endpoints:
        uri = str(endpoint.SecurityPolicyUri or "")
        offered.append(
            OfferedEndpoint(
                policy=uri.rsplit("#", 1)[-1] or "None",
                mode=_mode_name(endpoint.SecurityMode),
                certificate=bytes(endpoint.ServerCertificate or b""),
            )
        )
    return offered


def _mode_name(mode: ua.MessageSecurityMode) -> str:
    return {
        ua.MessageSecurityMode.None_: "None",
        ua.MessageSecurityMode.Sign: "Sign",
        ua.MessageSecurityMode.SignAndEncrypt: "SignAndEncrypt",
    }.get(mode, str(mode))


def select_endpoint(
    endpoints: Sequence[ua.EndpointDescription], security: OpcUaSecurity
) -> ua.EndpointDescription:
    """The server's endpoint for the configured policy and mode, or PolicyNotOfferedError
    listing what the server does offer."""
    uri = _POLICY_URIS[security.policy]
    mode = _MODES[security.mode]
    for endpoint in endpoints:
        if endpoint.SecurityPolicyUri == uri and endpoint.SecurityMode == mode:
            return endpoint
    offered = sorted({f"{e.policy}/{e.mode}" for e in describe_endpoints(endpoints)})
    raise PolicyNotOfferedError(
        f"the server does not offer security {security.policy.value}/{security.mode.value}; "
        f"it offers {', '.join(offered) or 'no endpoints'}"
    )


def trust_server_certificate(
    security: OpcUaSecurity, device_dir: Path | None, presented: bytes
) -> bytes:
    """Check the certificate the server presents against the pinned one, or against the one
    trusted on first use (saving it the first time). Returns it as DER. With `device_dir`
    None an unpinned certificate is trusted for this connection only (`edgecell browse`)."""
    if not presented:
        raise UntrustedServerCertificateError("the server presented no certificate")
    # Servers may send a chain; the first certificate is the server's own.
    presented_der = _load_certificate(presented).public_bytes(serialization.Encoding.DER)
    if security.server_cert is not None:
        pinned = to_der(security.server_cert.read_bytes())
        if pinned != presented_der:
            raise UntrustedServerCertificateError(
                f"the server's certificate (SHA-256 {fingerprint(presented_der)}) is not the "
                f"pinned {security.server_cert} (SHA-256 {fingerprint(pinned)})"
            )
        return presented_der
    if device_dir is None:
        log.warning(
            "opcua_server_certificate_not_verified",
            sha256=fingerprint(presented_der),
            subject=certificate_subject(presented_der),
        )
        return presented_der
    trusted_path = device_dir / TRUSTED_SERVER_CERT_FILE
    if trusted_path.is_file():
        trusted = to_der(trusted_path.read_bytes())
        if trusted != presented_der:
            raise UntrustedServerCertificateError(
                f"the server's certificate changed since it was first trusted: now SHA-256 "
                f"{fingerprint(presented_der)}, trusted {fingerprint(trusted)} in {trusted_path}; "
                "if the change is expected, delete that file to trust the new certificate"
            )
        return presented_der
    try:
        device_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(trusted_path, presented_der, mode=0o644)
    except OSError as exc:
        raise UntrustedServerCertificateError(
            f"cannot save the server's certificate for trust on first use in {device_dir}: "
            f"{exc.strerror}"
        ) from exc
    log.warning(
        "opcua_server_certificate_trusted_on_first_use",
        path=str(trusted_path),
        sha256=fingerprint(presented_der),
        subject=certificate_subject(presented_der),
    )
    return presented_der


async def apply_security(
    client: Client,
    security: OpcUaSecurity,
    endpoint: ua.EndpointDescription,
    *,
    state_root: Path,
    device_dir: Path | None,
) -> None:
    """Configure `client` for the chosen endpoint: nothing for policy None; otherwise the
    client certificate and the trusted server certificate."""
    if not security.secure:
        return
    if security.client_cert is not None and security.client_key is not None:
        cert_path, key_path = security.client_cert, security.client_key
    else:
        cert_path, key_path = generate_client_certificate(state_root, security.application_uri)
    try:
        cert_der = to_der(cert_path.read_bytes())
        key_bytes = key_path.read_bytes()
    except (OSError, ValueError) as exc:
        raise ClientCertificateError(
            f"cannot load the client certificate {cert_path}: {exc}"
        ) from exc
    cert_uri = certificate_application_uri(cert_der)
    # Servers check that the certificate names the application URI the session claims.
    client.application_uri = cert_uri or security.application_uri
    presented = bytes(endpoint.ServerCertificate or b"")
    server_der = trust_server_certificate(security, device_dir, presented)
    key_format = "pem" if key_bytes.lstrip().startswith(b"-----BEGIN") else "der"
    try:
        await client.set_security(
            security_policies.SecurityPolicyBasic256Sha256,
            certificate=CertProperties(cert_der, extension="der"),
            private_key=CertProperties(key_bytes, extension=key_format),
            server_certificate=CertProperties(server_der, extension="der"),
            mode=_MODES[security.mode],
        )
    except ValueError as exc:
        raise ClientCertificateError(f"cannot load the client key {key_path}: {exc}") from exc
