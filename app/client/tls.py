"""The TLS context for the 2030.5 link: mutual authentication, TLS ≥ 1.2 and the CCM8 suite.

2030.5-2018 §6.11 mandates TLS 1.2 with TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 and P-256 certificates.
OpenSSL ≥ 3.2 moved the CCM8 suites to security level 0, so they are only offered with
`@SECLEVEL=0` there; modern ECDHE AEAD suites are offered beside it unless `ccm8_only` is set.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl

from app.client.errors import TlsConfigError
from app.config import ServerConfig
from app.sep.certificate import Certificate, CertificateFormatError, load_certificate

_LOGGER = logging.getLogger(__name__)

CCM8: str = "ECDHE-ECDSA-AES128-CCM8"
_MODERN = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"


def ccm8_cipher_string(extra: str = "") -> str:
    """The OpenSSL cipher string offering CCM8 (first), then `extra`, at a level that allows it."""
    suites = f"{CCM8}:{extra}" if extra else CCM8
    # OpenSSL 3.2 put CCM8 at security level 0 (openssl/openssl#16652); 3.0/3.1 accept it as is.
    return f"{suites}:@SECLEVEL=0" if ssl.OPENSSL_VERSION_INFO >= (3, 2) else suites


def client_context(server: ServerConfig) -> ssl.SSLContext:
    """An SSLContext presenting our certificate and trusting only the configured CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = server.tls.check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cafile=str(server.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"cannot load the CA file {server.ca_file}: {_why(exc)}") from None
    try:
        ctx.load_cert_chain(certfile=str(server.cert_file), keyfile=str(server.key_file))
    except (OSError, ssl.SSLError) as exc:
        # never show the key's content, only its path and the reason
        raise TlsConfigError(
            f"cannot load the client certificate {server.cert_file} with key {server.key_file}: {_why(exc)}"
        ) from None
    if server.tls.ccm8_only:
        # TLS 1.3 has no CCM8 suite a 2030.5 server would pick; pin 1.2 so the choice is ours
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ccm8_cipher_string())
    else:
        ctx.set_ciphers(ccm8_cipher_string(_MODERN))
    _warn_if_expired(server)
    return ctx


def _warn_if_expired(server: ServerConfig) -> None:
    """Say early if our certificate is outside its validity (a Pi's clock may be wrong, so only warn)."""
    problem = _expiry_problem(server)
    if problem:
        _LOGGER.warning("%s; the server will likely refuse it", problem)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


#: OpenSSL alert reasons a real server sends, in words an installer can act on
_ALERTS = {
    "CERTIFICATE_EXPIRED": "the server says our client certificate has expired",
    "CERTIFICATE_REQUIRED": "the server requires a client certificate and got none",
    "UNKNOWN_CA": "the server does not trust the CA that issued our client certificate",
    "BAD_CERTIFICATE": "the server rejected our client certificate",
    "CERTIFICATE_REVOKED": "the server says our client certificate is revoked",
    "CERTIFICATE_UNKNOWN": "the server rejected our client certificate",
    "HANDSHAKE_FAILURE": "no cipher suite or certificate acceptable to both sides",
    "NO_SHARED_CIPHER": "no cipher suite in common",
    "PROTOCOL_VERSION": "no TLS version in common (we need TLS 1.2 or later)",
}


def explain_handshake_failure(server: ServerConfig, exc: BaseException | None) -> str:
    """A one-line, actionable reason why the TLS handshake with `server` failed."""
    reason = getattr(exc, "reason", None) or ""
    for key, words in _ALERTS.items():
        if key in str(reason).upper():
            return f"TLS handshake refused: {words} ({_cert_facts(server)})"
    # Python's own TLS servers hang up without an alert; say what we can check locally.
    expired = _expiry_problem(server)
    if expired:
        return f"TLS handshake refused by the server: {expired}"
    detail = f"{reason or exc}" if exc is not None else "the server closed the connection"
    return (
        f"TLS handshake refused ({detail}): the server probably does not accept our client "
        f"certificate ({_cert_facts(server)}), or offers no cipher we accept"
        f"{' (tls.ccm8_only is on)' if server.tls.ccm8_only else ''}"
    )


def _load(server: ServerConfig) -> Certificate | None:
    try:
        return load_certificate(server.cert_file.read_bytes())
    except (OSError, CertificateFormatError):
        return None


def _expiry_problem(server: ServerConfig) -> str | None:
    cert = _load(server)
    if cert is None:
        return None
    now = dt.datetime.now(dt.UTC)
    if cert.not_after < now:
        return f"our client certificate {server.cert_file} expired on {cert.not_after.isoformat()}"
    if cert.not_before > now:
        return f"our client certificate {server.cert_file} is not valid before {cert.not_before}"
    return None


def _cert_facts(server: ServerConfig) -> str:
    cert = _load(server)
    if cert is None:
        return f"cert_file {server.cert_file} unreadable"
    return f"cert_file {server.cert_file}, issued by {cert.issuer}"
