"""``python -m asgi_sse.demo [--host 127.0.0.1] [--port 8000] [--server uvicorn|hypercorn]
[--redis URL [--workers N]]``

``--redis`` puts the demo's hub (the chat, the answers' runs) on Redis Streams
(``pip install -e '.[demo,redis]'``), so that ``--workers 2`` (uvicorn) share it.
"""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m asgi_sse.demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--server", choices=("uvicorn", "hypercorn"), default="uvicorn")
    parser.add_argument("--redis", metavar="URL", help="the chat's hub on Redis Streams")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args(argv)
    if args.workers > 1 and not (args.redis and args.server == "uvicorn"):
        parser.error("--workers needs --redis (the workers share the hub there) and uvicorn")
    if args.redis:
        # Read when asgi_sse.demo is imported: here, and in every worker process.
        os.environ["ASGI_SSE_DEMO_REDIS"] = args.redis
    if args.server == "uvicorn":
        import uvicorn

        uvicorn.run("asgi_sse.demo:app", host=args.host, port=args.port, workers=args.workers)
    else:
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
        config.bind = [f"{args.host}:{args.port}"]
        config.graceful_timeout = 5.0
        print(f"serving on http://{args.host}:{args.port}", flush=True)
        asyncio.run(serve(app, config, shutdown_trigger=shutdown_trigger))


if __name__ == "__main__":
    main()
