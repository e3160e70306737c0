"""The HTTP service: a FastAPI app around one loaded :class:`~zerodce.enhance.Enhancer`.

Routes (every error is JSON ``{"error": "..."}``):

* ``GET /healthz``: liveness, the loaded model and how busy the workers are; answered on
  the event loop, never behind enhancement work.
* ``GET /api/models``: the registered models and the loaded one.
* ``POST /api/enhance``: an image (multipart field ``file``, or the raw body with an
  ``image/*`` Content-Type) in, the enhanced image out, through the same
  :func:`~zerodce.io.read_image`, :meth:`~zerodce.enhance.Enhancer.enhance` and
  :func:`~zerodce.io.write_image` as ``zerodce enhance`` (bit depth, alpha, EXIF and ICC kept).
* ``GET /``: the web page (``static/``), which loads nothing from elsewhere.

Clients send image bytes and a few options, never paths or URLs: the server reads
no file and fetches nothing on a client's behalf. Uploads are held in memory,
bounded by ``max_upload_bytes`` times the pool's places (a multipart file above
1 MB passes through Starlette's spool, an anonymous temporary file that is gone
when the request ends); results are encoded in memory.

Example:
    >>> from zerodce.models import create_model
    >>> from zerodce.serve.limits import WorkPool
    >>> app = create_app(Enhancer(create_model("zero_dce_pp"), device="cpu"), WorkPool(1, 0), ServerConfig("zero_dce_pp"))
    >>> sorted(r.path for r in app.routes if r.path.startswith("/api"))
    ['/api/enhance', '/api/models', '/api/openapi.json']
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import torch
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import MutableHeaders, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zerodce import __version__
from zerodce.enhance import Enhancer, parse_denoise, parse_strength
from zerodce._extras import MissingExtraError
from zerodce.io import EXTENSIONS, FORMATS, ImageError, open_pil, output_format, read_image, write_image
from zerodce.models import DEFAULT_MODEL, list_models
from zerodce.serve.limits import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB, Busy, WorkPool

log = logging.getLogger("zerodce.serve")

STATIC = Path(__file__).resolve().parent / "static"
#: Seconds a client may take to send its body; a stalled upload would hold a place forever.
UPLOAD_TIMEOUT = 120.0
#: Formats the server decodes. Pillow knows more, some through outside programs (EPS runs
#: Ghostscript): untrusted bytes only reach the decoders photos need.
INPUT_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF", "PPM", "HEIF", "AVIF")
#: Request options, as query parameters or multipart fields.
OPTIONS = ("strength", "denoise", "format", "quality")
_RAW_TYPES = ("image/", "application/octet-stream")
#: Headers on every response. The page's scripts, styles and images come from this server only.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                               "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
}


@dataclass(frozen=True)
class ServerConfig:
    """What the app needs besides the enhancer and the pool.

    Attributes:
        model_name: the loaded model's registered name (reported by ``/healthz`` and ``/api/models``).
        max_upload_bytes: largest request body; larger ones get 413 while streaming.
        max_pixels: largest image (width x height); larger ones get 413 before decoding.
        token: when set, ``/api/*`` needs ``Authorization: Bearer <token>``.
        cors_origins: origins allowed to call the API from a browser; none by default.
    """

    model_name: str = DEFAULT_MODEL
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 2**20)
    max_pixels: int = DEFAULT_MAX_PIXELS
    token: str | None = None
    cors_origins: tuple[str, ...] = ()


class ApiError(Exception):
    """An answer to the client: HTTP ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def parse_options(values: dict[str, Any]) -> dict[str, Any]:
    """Validate request options; raises :class:`ApiError` 422 naming the bad one.

    Returns ``settings`` (for :meth:`~zerodce.enhance.Enhancer.with_settings`, only those given),
    ``format`` (Pillow's name or ``None``) and ``quality`` (or ``None``).

    Example:
        >>> parse_options({"format": "jpg", "quality": "80"})
        {'settings': {}, 'format': 'JPEG', 'quality': 80}
    """
    unknown = sorted(set(values) - set(OPTIONS))
    if unknown:
        raise ApiError(422, f"unknown option {unknown[0]!r}; the options are {', '.join(OPTIONS)}")
    settings: dict[str, Any] = {}
    for name, parse in (("strength", parse_strength), ("denoise", parse_denoise)):
        if values.get(name) not in (None, ""):
            try:
                settings[name] = parse(values[name])
            except ValueError as exc:
                raise ApiError(422, str(exc)) from None
    fmt = values.get("format") or None
    if fmt is not None:
        fmt = FORMATS.get(f".{fmt.lower().lstrip('.')}")
        if fmt is None:
            raise ApiError(422, f"format must be one of {', '.join(sorted(e[1:] for e in FORMATS))}, "
                                f"got {values['format']!r}")
    quality = values.get("quality") or None
    if quality is not None:
        try:
            quality = int(quality)
        except ValueError:
            quality = 0
        if not 1 <= quality <= 100:
            raise ApiError(422, f"quality must be an integer in 1..100, got {values['quality']!r}")
    return {"settings": settings, "format": fmt, "quality": quality}


def client_name(filename: str | None) -> str:
    """A client's file name reduced to a safe bare name (no folders, quotes or control characters).

    Example:
        >>> client_name("C:\\\\photos\\\\night shot.JPG")
        'night shot.JPG'
        >>> client_name('../"x"\\n.png'), client_name(None)
        ('x.png', 'upload')
    """
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C" and c not in '"<>:|?*').strip(" .")[-120:]
    return name or "upload"


def output_name(filename: str | None, fmt: str) -> str:
    """``<stem>_enhanced.<ext>`` for the result of a client's file.

    Example:
        >>> output_name("night shot.JPG", "PNG"), output_name(None, "JPEG")
        ('night shot_enhanced.png', 'upload_enhanced.jpg')
    """
    name = client_name(filename)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{stem or 'upload'}_enhanced{EXTENSIONS[fmt]}"


def _content_disposition(name: str) -> str:
    fallback = name.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"


def _probe(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse what should not reach the decoder: empty (400), unknown format (415), too many pixels (413)."""
    if not data:
        raise ApiError(400, f"cannot read {name}: empty upload (0 bytes)")
    try:
        with open_pil(io.BytesIO(data), formats=INPUT_FORMATS) as im:
            width, height = im.size
    except MissingExtraError as exc:
        raise ApiError(415, f"cannot read {name}: {exc}") from None
    except UnidentifiedImageError:
        raise ApiError(415, f"cannot read {name}: not an image, or a format we cannot read "
                            f"(we read {', '.join(INPUT_FORMATS)})") from None
    except Exception:  # a damaged header: read_image gives the reason (400)
        return
    if width * height > max_pixels:
        raise ApiError(413, f"{name}: {width}x{height} = {width * height:,} pixels exceeds this server's limit "
                            f"of {max_pixels:,}")


def enhance_upload(enhancer: Enhancer, data: bytes, name: str, options: dict[str, Any], max_pixels: int) -> tuple[bytes, str]:
    """Enhance an uploaded file's bytes as ``zerodce enhance`` would; returns ``(encoded bytes, format)``.

    Runs on a worker thread. Raises :class:`ApiError` for what the client must fix.
    """
    _probe(data, name, max_pixels)
    source = io.BytesIO(data)
    source.name = name  # read_image names the file in its messages
    try:
        image = read_image(source, max_pixels=max_pixels)
    except ImageError as exc:
        raise ApiError(400, str(exc)) from None
    if options["settings"]:
        enhancer = enhancer.with_settings(**options["settings"])
    try:
        enhanced = enhancer.enhance(image)
    except (MemoryError, torch.OutOfMemoryError):
        raise ApiError(503, f"out of memory enhancing {name}; try again later or send a smaller image",
                       {"Retry-After": "10"}) from None
    fmt = options["format"] or output_format(image.format)
    out = io.BytesIO()
    write_image(out, enhanced, format=fmt, quality=options["quality"])
    return out.getvalue(), fmt


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (before it is all read)."""
    too_large = ApiError(413, f"upload exceeds this server's limit of {limit / 2**20:g} MB")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload(request: Request, limit: int) -> tuple[bytes, str | None, dict[str, Any]]:
    """``(image bytes, client file name, multipart option fields)`` from a multipart or raw-body request."""
    content_type = request.headers.get("content-type", "").lower()
    multipart = content_type.startswith("multipart/form-data")
    if not multipart and not content_type.startswith(_RAW_TYPES):
        raise ApiError(415, "send the image as the multipart field 'file', or as the request body with an image/* "
                            f"Content-Type (got {content_type or 'none'!r})")
    try:
        body = await asyncio.wait_for(_read_body(request, limit), UPLOAD_TIMEOUT)
    except asyncio.TimeoutError:
        raise ApiError(408, f"upload not received within {UPLOAD_TIMEOUT:g} s") from None
    if not multipart:
        return body, None, {}

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async with Request(request.scope, replay).form(max_files=1, max_fields=len(OPTIONS)) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "multipart field 'file' (the image) is missing")
        data = await upload.read()
        # max_files=1: with the image under "file", every other field is text.
        fields = {key: value for key, value in form.multi_items() if key != "file"}
    return data, upload.filename, fields


def _security_headers(app: ASGIApp) -> ASGIApp:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def create_app(enhancer: Enhancer, pool: WorkPool, config: ServerConfig) -> FastAPI:
    """The FastAPI app serving ``enhancer`` through ``pool`` under ``config``'s limits.

    The pool is closed (its running jobs finished) when the app shuts down.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        pool.close()

    # No /docs or /redoc: their pages load scripts from a CDN. The schema stays at /api/openapi.json.
    app = FastAPI(title="zerodce", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")

    def authorized(request: Request) -> None:
        if config.token is None:
            return
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), config.token.encode()):
            raise ApiError(401, "missing or wrong token: send the header 'Authorization: Bearer <token>'",
                           {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(Busy)
    async def busy(_request: Request, exc: Busy) -> JSONResponse:
        return _error(503, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "; ".join(e.get("msg", "invalid request") for e in exc.errors()) or "invalid request")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error (logged on the server)")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": config.model_name, "version": __version__, "workers": pool.workers,
                "running": pool.running, "held": pool.held, "capacity": pool.capacity,
                "max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels}

    @app.get("/api/models", dependencies=[Depends(authorized)])
    async def models() -> dict[str, Any]:
        return {"models": list_models(), "loaded": config.model_name, "default": DEFAULT_MODEL}

    @app.post("/api/enhance", dependencies=[Depends(authorized)],
              responses={200: {"content": {"image/*": {}}, "description": "the enhanced image"}})
    async def enhance(request: Request) -> Response:
        query = dict(request.query_params)
        parse_options(query)  # a bad query option is refused before the upload is read
        with pool.admit() as place:
            data, filename, fields = await _upload(request, config.max_upload_bytes)
            options = parse_options({**query, **fields})
            encoded, fmt = await place.run(enhance_upload, enhancer, data, client_name(filename), options,
                                           config.max_pixels)
        return Response(encoded, media_type=Image.MIME.get(fmt, "application/octet-stream"),
                        headers={"Content-Disposition": _content_disposition(output_name(filename, fmt)),
                                 "Cache-Control": "no-store"})

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], expose_headers=["Content-Disposition"])
    app.add_middleware(_security_headers)
    return app
