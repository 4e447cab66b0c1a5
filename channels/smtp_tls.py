"""STARTTLS for the inbound SMTP channel: the server's TLS context from two PEM files.

What it does
    :func:`server_tls_context` reads ``[smtp] tls_cert_file`` (the certificate, then any
    intermediates: Let's Encrypt's ``fullchain.pem``) and ``tls_key_file`` (its unencrypted
    private key: ``privkey.pem``) into an ``ssl.SSLContext`` with the standard library's
    server defaults (``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)``: no client
    certificate asked for, OpenSSL's default ciphers) and TLS 1.2 as the oldest version.
    aiosmtpd then offers ``STARTTLS`` in EHLO and upgrades the session with it.

Errors
    :class:`TLSFileError` names the config key whose file is wrong (``tls_cert_file`` or
    ``tls_key_file``) and the problem, so ``spoc check-config`` and ``spoc serve`` can say it
    in one line. Files are read once: ``spoc serve`` builds the context when it checks the
    config (``Config.smtp_tls_context``) and hands it to the channel, which builds its own
    only when given none. A renewed certificate is picked up by a restart.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import NoReturn


class TLSFileError(ValueError):
    """A certificate or key file that cannot be used; ``key`` is its ``[smtp]`` key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def _read(key: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii")
    except OSError as exc:
        raise TLSFileError(key, f"cannot read {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TLSFileError(key, f"{path!r} is not a PEM file (it is not text)") from None


def _encrypted_key(*_: object) -> NoReturn:
    # Without a password callback OpenSSL would prompt on the terminal for the passphrase.
    raise TLSFileError("tls_key_file", "the private key is encrypted; give spoc an unencrypted key")


def server_tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """The STARTTLS context for ``cert_file`` and ``key_file`` (PEM), or :class:`TLSFileError`."""
    certs = _read("tls_cert_file", cert_file)
    _read("tls_key_file", key_file)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cadata=certs)
    except (ssl.SSLError, ValueError) as exc:
        raise TLSFileError(
            "tls_cert_file", f"{cert_file!r} holds no PEM certificate ({exc})"
        ) from None
    try:
        context.load_cert_chain(cert_file, key_file, password=_encrypted_key)
    except ssl.SSLError as exc:
        raise TLSFileError(
            "tls_key_file",
            f"{key_file!r} is not the PEM private key of the certificate in tls_cert_file "
            f"({exc.reason or exc})",
        ) from None
    return context
