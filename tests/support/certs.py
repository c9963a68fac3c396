"""TLS for the HTTP/2 tests (not a test module): a self-signed certificate, the demo
served with it, and a Chromium that accepts it.

Browsers speak HTTP/2 only over TLS (h2 by ALPN; no browser speaks cleartext h2c), so
the tests that want one connection for many streams need a certificate. `tls_certificate`
makes one for 127.0.0.1 (and localhost) with Debian's ``openssl`` command, once per
session, in a temporary directory; without ``openssl`` the tests that use it skip,
unless ``ASGI_SSE_REQUIRE_BROWSER=1`` (CI), where they fail instead. The `cryptography`
package is not needed.

`running_tls_demo` runs ``python -m asgi_sse.demo --certfile CERT --keyfile KEY`` (the
command a user types: hypercorn, h2 and http/1.1 by ALPN); the `Server` it yields has
an ``https://`` base URL. `client_ssl_context` trusts the certificate, for httpx;
a browser context accepts it with ``browser.new_context(ignore_https_errors=True)``.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.support.browser import _unavailable
from tests.support.servers import DEMO_APP, RECORDED_DEMO_APP, Server, launched

__all__ = (
    "Certificate",
    "client_ssl_context",
    "make_certificate",
    "require_command",
    "running_tls_demo",
    "tls_certificate",
    "tls_demo_command",
)

OPENSSL_TIMEOUT = 30.0


class Certificate(NamedTuple):
    """A certificate and its private key, PEM files: ``cert, key = certificate``."""

    cert: Path
    key: Path


def make_certificate(directory: Path, openssl: str = "openssl") -> Certificate:
    """A self-signed certificate for IP 127.0.0.1 and DNS localhost (P-256, two days),
    written to ``directory`` as ``cert.pem`` and ``key.pem``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    argv = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",  # the key unencrypted: a server reads it without a passphrase
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return Certificate(cert, key)


def require_command(name: str) -> str:
    """The path of the command ``name`` (openssl, curl); without it the test skips,
    unless ``ASGI_SSE_REQUIRE_BROWSER=1`` (CI), where it fails."""
    path = shutil.which(name)
    if path is None:
        _unavailable(f"no {name} command: install Debian's {name}")
        raise AssertionError("unreachable")  # _unavailable skips or fails
    return path


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made once per test session."""
    return make_certificate(tmp_path_factory.mktemp("tls"), require_command("openssl"))


def client_ssl_context(certificate: Certificate) -> ssl.SSLContext:
    """A client's TLS context that trusts ``certificate`` (and verifies host names)."""
    return ssl.create_default_context(cafile=str(certificate.cert))


def tls_demo_command(certificate: Certificate, port: int, app: str = DEMO_APP) -> list[str]:
    """``python -m asgi_sse.demo --port N --certfile CERT --keyfile KEY`` (for
    `RECORDED_DEMO_APP`: through tests.support.sse_app, which records the stats)."""
    modules = {DEMO_APP: "asgi_sse.demo", RECORDED_DEMO_APP: "tests.support.sse_app"}
    assert app in modules, "python -m asgi_sse.demo serves the demo app only"
    return [
        sys.executable,
        "-m",
        modules[app],
        "--port",
        str(port),
        "--certfile",
        str(certificate.cert),
        "--keyfile",
        str(certificate.key),
    ]


@contextlib.contextmanager
def running_tls_demo(
    certificate: Certificate, app: str = DEMO_APP, *, env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """The demo over TLS on a free port (hypercorn: h2, or http/1.1, by ALPN); stopped
    by its PID when the block ends. Its ``base_url`` is ``https://127.0.0.1:N``."""
    with launched(
        "demo-tls", lambda port: tls_demo_command(certificate, port, app), env=env
    ) as server:
        yield server
