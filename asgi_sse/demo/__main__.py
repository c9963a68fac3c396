"""``python -m asgi_sse.demo [--host 127.0.0.1] [--port 8000] [--server uvicorn|hypercorn]
[--redis URL [--workers N]] [--certfile CERT --keyfile KEY]``

``--redis`` puts the demo's hub (the chat, the answers' runs) on Redis Streams
(``pip install -e '.[demo,redis]'``), so that ``--workers 2`` (uvicorn) share it.

``--certfile`` and ``--keyfile`` (PEM files, both or neither) serve the demo over TLS
with hypercorn, which offers HTTP/2 by ALPN (HTTP/1.1 for clients without it): one
connection carries all of a page's event streams. They choose hypercorn when
``--server`` is not given; uvicorn does not speak HTTP/2, so ``--server uvicorn`` with
them is refused, and so is ``--workers``.
"""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m asgi_sse.demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--server",
        choices=("uvicorn", "hypercorn"),
        help="default: uvicorn, or hypercorn with --certfile",
    )
    parser.add_argument("--redis", metavar="URL", help="the chat's hub on Redis Streams")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--certfile", metavar="CERT", help="TLS certificate (PEM): HTTP/2")
    parser.add_argument("--keyfile", metavar="KEY", help="its private key (PEM)")
    args = parser.parse_args(argv)
    tls = _check_tls(parser, args)
    server = args.server or ("hypercorn" if tls else "uvicorn")
    if args.workers > 1 and not (args.redis and server == "uvicorn"):
        parser.error("--workers needs --redis (the workers share the hub there) and uvicorn")
    if args.redis:
        # Read when asgi_sse.demo is imported: here, and in every worker process.
        os.environ["ASGI_SSE_DEMO_REDIS"] = args.redis
    if server == "uvicorn":
        import uvicorn

        uvicorn.run("asgi_sse.demo:app", host=args.host, port=args.port, workers=args.workers)
    else:
        _serve_hypercorn(args.host, args.port, args.certfile, args.keyfile)


def _check_tls(parser: argparse.ArgumentParser, args: argparse.Namespace) -> bool:
    """Whether to serve over TLS; a parser error (exit 2) for options that cannot."""
    if (args.certfile is None) != (args.keyfile is None):
        parser.error("--certfile and --keyfile go together: give both, or neither")
    if args.certfile is None:
        return False
    if args.server == "uvicorn":
        parser.error(
            "--certfile serves HTTP/2, which uvicorn does not speak: leave out --server "
            "(hypercorn is used), or put an HTTP/2 proxy in front of uvicorn"
        )
    if args.workers > 1:
        parser.error("--workers is uvicorn's: with --certfile, hypercorn serves in one process")
    for option, path in (("--certfile", args.certfile), ("--keyfile", args.keyfile)):
        if not os.path.isfile(path):
            parser.error(f"{option} {path}: no such file")
    return True


def _serve_hypercorn(host: str, port: int, certfile: str | None, keyfile: str | None) -> None:
    import asyncio
    import signal

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from asgi_sse.demo import app

    async def shutdown_trigger() -> None:
        # Programmatic hypercorn installs no signal handlers: wait for one here,
        # end every event stream, then let hypercorn shut down.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        app.signal.trigger()

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = 5.0
    scheme = "http"
    if certfile is not None and keyfile is not None:
        # Hypercorn offers h2 and http/1.1 by ALPN (Config.alpn_protocols) once it
        # has a certificate; browsers speak HTTP/2 only over TLS.
        config.certfile, config.keyfile = certfile, keyfile
        scheme = "https"
    print(f"serving on {scheme}://{host}:{port}", flush=True)
    asyncio.run(serve(app, config, shutdown_trigger=shutdown_trigger))


if __name__ == "__main__":
    main()
