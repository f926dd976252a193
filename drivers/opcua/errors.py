"""Why an OPC UA connect failed, as types: the driver shows a configuration problem (wrong
password, untrusted certificate, policy not offered) as `failed`, a network fault as
`reconnecting`."""

from __future__ import annotations


class OpcUaSetupError(Exception):
    """A connect failed for a reason that retrying will not fix until someone changes the
    server or the config; the message says what to change."""


class PolicyNotOfferedError(OpcUaSetupError):
    """The server has no endpoint with the configured security policy and mode."""


class UntrustedServerCertificateError(OpcUaSetupError):
    """The server's certificate is not the pinned one (or changed since first use)."""


class AuthenticationError(OpcUaSetupError):
    """The server refused the user (wrong name or password, or the token type is not allowed)."""


class ClientCertificateError(OpcUaSetupError):
    """The client's own certificate or key cannot be loaded or generated."""
