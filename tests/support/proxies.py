"""Run nginx and Caddy in front of a test server (not a test module).

The configurations are the documentation's own files, docs/examples/deploying/nginx.conf
and docs/examples/deploying/Caddyfile, read afresh and changed only where a test must:
the addresses (a free port on 127.0.0.1 for the proxy, the upstream's port) and, for
nginx, the ``proxy_read_timeout`` value. Each change must find its text exactly once,
so a config edited out from under the tests fails them instead of silently testing
something else.

Each proxy is a process of our own - never the system's service, never /etc, never
port 80 - started through `tests.support.servers.launched` (its own session, stopped by
its PID's process group) with its configuration, pid file, temporary files and logs in
a temporary directory. nginx runs in the foreground (``daemon off``) with its master
and one worker; Caddy with its admin endpoint off and its data and config folders in
the temporary directory.

Missing nginx or caddy: the tests skip, unless ``ASGI_SSE_REQUIRE_PROXIES=1`` (CI), where
they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import HOST, ROOT, Server, launched

__all__ = ("CADDYFILE", "NGINX_CONF", "caddy", "caddyfile", "nginx", "nginx_site", "require")

DEPLOYING = ROOT / "docs" / "examples" / "deploying"
NGINX_CONF = DEPLOYING / "nginx.conf"
CADDYFILE = DEPLOYING / "Caddyfile"
# Where Debian puts them; a root shell has /usr/sbin on its PATH, a user's may not.
_PLACES = {"nginx": "/usr/sbin/nginx", "caddy": "/usr/bin/caddy"}


def require(tool: str) -> str:
    """The path of ``tool`` (nginx or caddy); skip the test without it (fail under
    ``ASGI_SSE_REQUIRE_PROXIES=1``)."""
    found = shutil.which(tool) or (_PLACES[tool] if os.access(_PLACES[tool], os.X_OK) else None)
    if found is not None:
        return found
    reason = f"{tool} is not installed (Debian: apt-get install {tool}-light)"
    if tool == "caddy":
        reason = "caddy is not installed (Debian: apt-get install caddy)"
    if os.environ.get("ASGI_SSE_REQUIRE_PROXIES") == "1":
        pytest.fail(f"{reason} (ASGI_SSE_REQUIRE_PROXIES=1: proxy tests must run)")
    pytest.skip(reason)


def _replace_once(text: str, old: str, new: str, source: Path) -> str:
    count = text.count(old)
    if count != 1:
        raise AssertionError(f"{source.name} must hold {old!r} exactly once, found {count}")
    return text.replace(old, new)


def nginx_site(
    port: int,
    upstream: int,
    *,
    read_timeout: str = "60s",
    buffering_off: bool = False,
    location: str = "/events/",
) -> str:
    """docs/examples/deploying/nginx.conf listening on ``port``, in front of the app on
    ``upstream``, with ``proxy_read_timeout`` set to ``read_timeout`` (and ``proxy_buffering
    off`` added after it, what the docs tell apps without ``X-Accel-Buffering: no``);
    ``location``: the path its block proxies (``/``: the whole app, as for the demo)."""
    site = NGINX_CONF.read_text(encoding="utf-8")
    site = _replace_once(site, "listen 80;", f"listen {HOST}:{port};", NGINX_CONF)
    site = _replace_once(site, "location /events/ {", f"location {location} {{", NGINX_CONF)
    site = _replace_once(site, "server 127.0.0.1:8000;", f"server {HOST}:{upstream};", NGINX_CONF)
    timeout = f"proxy_read_timeout {read_timeout};"
    if buffering_off:
        timeout += " proxy_buffering off;"
    return _replace_once(site, "proxy_read_timeout 60s;", timeout, NGINX_CONF)


def _nginx_main(site: str, tmp: Path, *, gzip: bool = False) -> str:
    # The parts of nginx.conf that belong to the machine, not to the site: all under tmp.
    # ``gzip``: compress event streams too, as a site-wide `gzip_types *` would.
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach tmp's files
    temp_paths = "".join(
        f"    {kind}_temp_path {tmp / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    compress = "    gzip on;\n    gzip_types text/event-stream;\n" if gzip else ""
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {tmp / 'nginx.pid'};\n"
        f"error_log stderr notice;\nevents {{ worker_connections 256; }}\n"
        f"http {{\n    access_log off;\n{temp_paths}{compress}\n{site}\n}}\n"
    )


@contextlib.contextmanager
def nginx(
    upstream: int,
    *,
    read_timeout: str = "60s",
    buffering_off: bool = False,
    gzip: bool = False,
    location: str = "/events/",
) -> Iterator[Server]:
    """nginx with the docs' config in front of the app on port ``upstream`` (see
    `nginx_site`; ``gzip``: with ``gzip on`` for text/event-stream in its http block)."""
    binary = require("nginx")
    with tempfile.TemporaryDirectory(prefix="asgi-sse-nginx-") as name:
        tmp = Path(name)

        def argv(port: int) -> list[str]:
            site = nginx_site(
                port,
                upstream,
                read_timeout=read_timeout,
                buffering_off=buffering_off,
                location=location,
            )
            conf = tmp / "nginx.conf"
            conf.write_text(_nginx_main(site, tmp, gzip=gzip), encoding="utf-8")
            return [binary, "-p", str(tmp), "-e", "stderr", "-c", str(conf)]

        with launched("nginx", argv, prefix="asgi-sse-nginx-log-") as server:
            yield server


def caddyfile(port: int, upstream: int) -> str:
    """docs/examples/deploying/Caddyfile serving plain HTTP on ``port``, in front of the
    app on ``upstream``, after global options that keep Caddy to itself (no admin
    endpoint: it would take port 2019, which a system Caddy may hold)."""
    site = CADDYFILE.read_text(encoding="utf-8")
    site = _replace_once(site, "example.com {", f"http://{HOST}:{port} {{", CADDYFILE)
    site = _replace_once(site, "127.0.0.1:8000", f"{HOST}:{upstream}", CADDYFILE)
    return "{\n\tadmin off\n}\n\n" + site


@contextlib.contextmanager
def caddy(upstream: int) -> Iterator[Server]:
    """Caddy with the docs' Caddyfile in front of the app on port ``upstream``."""
    binary = require("caddy")
    with tempfile.TemporaryDirectory(prefix="asgi-sse-caddy-") as name:
        tmp = Path(name)
        env = {
            "HOME": str(tmp),
            "XDG_DATA_HOME": str(tmp / "data"),
            "XDG_CONFIG_HOME": str(tmp / "config"),
        }

        def argv(port: int) -> list[str]:
            conf = tmp / "Caddyfile"
            conf.write_text(caddyfile(port, upstream), encoding="utf-8")
            return [binary, "run", "--config", str(conf), "--adapter", "caddyfile"]

        with launched("caddy", argv, env=env, prefix="asgi-sse-caddy-log-") as server:
            yield server
