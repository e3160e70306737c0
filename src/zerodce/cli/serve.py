"""``zerodce serve``: an HTTP service and a web page for enhancing photos.

The model is loaded once; requests are enhanced on ``--workers`` threads (one
torch thread each) with at most ``--queue`` more waiting, beyond which clients
get 503 and ``Retry-After``. SIGTERM (or Ctrl-C) stops accepting connections,
finishes the requests in flight, then exits 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys

import numpy as np
from PIL import Image

from zerodce._extras import MissingExtraError, import_extra
from zerodce.cli import CommandError
from zerodce.cli._options import add_enhancer_options, enhancer_from_args, int_range
from zerodce.serve.limits import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB, DEFAULT_QUEUE, WorkPool

EXAMPLES = """\
examples:
  zerodce serve                                  page and API on http://127.0.0.1:8000
  curl -F file=@dark.jpg -o bright.jpg http://127.0.0.1:8000/api/enhance
  zerodce serve --host 0.0.0.0 --token "$(openssl rand -hex 16)" --workers 2 --queue 4
"""


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand."""
    parser = subparsers.add_parser(
        "serve", help="HTTP service and web page",
        description="Serve the enhancer over HTTP: POST /api/enhance, GET /healthz, GET /api/models, "
                    "and a web page at /. Needs: pip install \"zerodce[serve]\".",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; other than loopback, give --token (default: %(default)s)")
    parser.add_argument("--port", type=int_range(1, 65535), default=8000, help="port (default: %(default)s)")
    add_enhancer_options(parser)
    parser.add_argument("--workers", type=int_range(1), default=_default_workers(), metavar="N",
                        help="images enhanced at once, one torch thread each (default: one per core, %(default)s)")
    parser.add_argument("--queue", type=int_range(0), default=DEFAULT_QUEUE, metavar="N",
                        help="requests held beyond the running ones; more get 503 and Retry-After "
                             "(default: %(default)s)")
    parser.add_argument("--max-upload-mb", type=_positive_float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help="largest upload; larger ones get 413 before they are read (default: %(default)s)")
    parser.add_argument("--max-pixels", type=int_range(1), default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="largest image, width x height; larger ones get 413 before decoding "
                             "(default: %(default)s)")
    parser.add_argument("--token", default=os.environ.get("ZERODCE_TOKEN"), metavar="T",
                        help="require 'Authorization: Bearer T' on /api/* (default: $ZERODCE_TOKEN, else none)")
    parser.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                        help="let pages from ORIGIN (e.g. https://photos.example) call the API; repeatable "
                             "(default: none)")
    parser.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Run ``zerodce serve`` until SIGTERM or Ctrl-C; returns the exit code."""
    try:
        import_extra("fastapi", "serve")
        import_extra("python_multipart", "serve")
        uvicorn = import_extra("uvicorn", "serve")
    except MissingExtraError as exc:
        raise CommandError(str(exc)) from None
    import torch

    from zerodce.serve.app import ServerConfig, create_app

    # Our --max-pixels is the limit; Pillow's own would refuse (or warn about) images it allows.
    Image.MAX_IMAGE_PIXELS = None
    if not _is_loopback(args.host) and not args.token:
        print(f"zerodce serve: warning: listening on {args.host} without --token: anyone who can reach this "
              "machine can use it", file=sys.stderr)
    enhancer = enhancer_from_args(args)
    torch.set_num_threads(1)
    enhancer.enhance_array(np.zeros((16, 16, 3), np.uint8))  # builds the compiled kernels before the first request
    pool = WorkPool(args.workers, args.queue)
    config = ServerConfig(model_name=args.model, max_upload_bytes=int(args.max_upload_mb * 2**20),
                          max_pixels=args.max_pixels, token=args.token or None, cors_origins=tuple(args.cors))
    server = uvicorn.Server(uvicorn.Config(create_app(enhancer, pool, config), host=args.host, port=args.port,
                                           log_level="info", server_header=False))
    print(f"zerodce serve: {args.model} on {enhancer.device}, {args.workers} worker(s), queue {args.queue}: "
          f"http://{args.host}:{args.port}/", file=sys.stderr)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler it found:
    # with this one the process ends with 0 instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    except SystemExit:  # uvicorn exits this way when it cannot listen, after logging why
        server.started = False
    if not server.started:
        raise CommandError(f"could not listen on {args.host}:{args.port} (see the message above)")
    return 0
