"""Which certificates the CLI trusts: the system's, plus the CA the config's `ca_file` names.

`beakerd serve --tls auto` makes its own CA; the Beaker config that first start writes names it
as `ca_file`, so the CLI trusts such a server with no extra variable. When verification fails
anyway, the error says how to fix it rather than print OpenSSL's words alone.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from beakerd.beaker_cli.errors import CliError

HINT = (
    "set ca_file to the server's CA certificate ('beaker config set ca_file PATH'; a"
    " `beakerd serve --tls auto` keeps it at DATA_DIR/tls/ca.crt and prints its path)"
)


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """The system's trust store, with `ca_file` added when set."""
    context = ssl.create_default_context()
    if ca_file:
        path = Path(ca_file).expanduser()
        try:
            context.load_verify_locations(cafile=str(path))
        except FileNotFoundError:
            raise CliError(f"ca_file {path} does not exist; {HINT}") from None
        except (OSError, ssl.SSLError) as e:
            raise CliError(f"ca_file {path} is not a PEM certificate: {e}") from None
    return context


def _verification_error(error: object) -> ssl.SSLCertVerificationError | None:
    """The failed certificate verification behind `error` (urllib wraps it as its reason)."""
    for _ in range(3):
        if isinstance(error, ssl.SSLCertVerificationError):
            return error
        error = getattr(error, "reason", None)
    return None


def is_untrusted(error: BaseException) -> bool:
    return _verification_error(error) is not None


def untrusted(where: str, error: BaseException) -> CliError:
    found = _verification_error(error)
    detail = (found.verify_message if found is not None else None) or str(error)
    return CliError(f"cannot verify the TLS certificate of {where} ({detail}): {HINT}")
