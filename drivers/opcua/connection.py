"""Opening an OPC UA session with the configured security and user, for the driver and for
`edgecell browse` alike; a refusal becomes an error that says what to change."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua import uaerrors
from asyncua.ua.status_codes import StatusCodes

from drivers.opcua.config import OpcUaAuth, OpcUaSecurity
from drivers.opcua.errors import AuthenticationError, OpcUaSetupError
from drivers.opcua.security import apply_security, fingerprint, select_endpoint

_AUTH_CODES = frozenset(
    {
        StatusCodes.BadUserAccessDenied,
        StatusCodes.BadIdentityTokenRejected,
        StatusCodes.BadIdentityTokenInvalid,
    }
)
_CLIENT_CERT_CODES = frozenset(
    {
        StatusCodes.BadCertificateUntrusted,
        StatusCodes.BadCertificateInvalid,
        StatusCodes.BadSecurityChecksFailed,
        StatusCodes.BadCertificateUriInvalid,
        StatusCodes.BadCertificateTimeInvalid,
        StatusCodes.BadSecurityPolicyRejected,
    }
)


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    endpoint: str
    security: OpcUaSecurity
    auth: OpcUaAuth
    session_name: str = "edgecell"
    timeout: float = 5.0
    keepalive_interval: float = 5.0
    session_timeout: float = 60.0


def new_client(options: ConnectOptions) -> Client:
    """An unconnected asyncua client; its own watchdog reads ServerStatus every
    keepalive_interval and reports a failure through `connection_lost_callback`."""
    client = Client(
        options.endpoint,
        timeout=options.timeout,
        watchdog_intervall=options.keepalive_interval,
    )
    client.name = client.description = options.session_name
    client.application_uri = options.security.application_uri
    client.product_uri = "urn:edgecell"
    client.session_timeout = int(options.session_timeout * 1000)
    return client


async def connect_client(
    client: Client, options: ConnectOptions, *, state_root: Path, device_dir: Path | None
) -> None:
    """Pick the endpoint with the configured policy and mode (PolicyNotOfferedError if there
    is none), trust the server's certificate (UntrustedServerCertificateError), then open the
    channel and activate a session (AuthenticationError when the user is refused).
    `device_dir` None trusts an unpinned server certificate for this connection only."""
    endpoints = await client.connect_and_get_server_endpoints()
    endpoint = select_endpoint(endpoints, options.security)
    await apply_security(
        client, options.security, endpoint, state_root=state_root, device_dir=device_dir
    )
    if not options.auth.anonymous:
        client.set_user(str(options.auth.username))
        password = options.auth.resolve_password()
        if password is not None:
            client.set_password(password)
    try:
        await client.connect()
    except uaerrors.UaStatusCodeError as exc:
        raise setup_error(exc, client, options.auth.username) from exc


def setup_error(
    exc: uaerrors.UaStatusCodeError, client: Client, username: str | None
) -> Exception:
    """Name the fix for refusals a retry will not cure; other faults are returned as they are."""
    status = ua.StatusCode(ua.UInt32(exc.code))
    if status.value in _AUTH_CODES:
        who = f"user {username!r}" if username is not None else "an anonymous session"
        hint = (
            "wrong user name or password?"
            if username is not None
            else "the server wants a user: set auth.username and auth.password"
        )
        return AuthenticationError(f"the server refused {who}: {status.name} ({hint})")
    if status.value in _CLIENT_CERT_CODES:
        cert = client.security_policy.host_certificate
        sha = f" (SHA-256 {fingerprint(cert)})" if cert else ""
        return OpcUaSetupError(
            f"the server refused this client's certificate{sha}: {status.name}; trust it on "
            "the server (most servers keep rejected certificates for an administrator to accept)"
        )
    return exc
