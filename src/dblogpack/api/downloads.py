"""The download route of the file-system store: `GET /download/<token>/<Name>.tar.gz` streams a
finished package behind a signed, expiring link, with HTTP Range, ETag and Content-Disposition.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from dblogpack.errors import NotFound
from dblogpack.links import LinkError, RangeNotSatisfiableError, parse_range
from dblogpack.service import PackageDownload, Service

READ_SIZE = 256 * 1024


def download_routes(service: Service) -> list[BaseRoute]:
    """`/download/<token>` and `/download/<token>/<file name>` (the name is for the user agent)."""
    endpoint = DownloadEndpoint(service)
    return [
        Route("/download/{token}", endpoint.handle, methods=["GET", "HEAD"]),
        Route("/download/{token}/{filename}", endpoint.handle, methods=["GET", "HEAD"]),
    ]


class DownloadEndpoint:
    def __init__(self, service: Service) -> None:
        self._service = service

    async def handle(self, request: Request) -> Response:
        try:
            download = await run_in_threadpool(self._service.download, request.path_params["token"])
            return await self._respond(request, download)
        except LinkError as exc:
            return PlainTextResponse(exc.message + "\n", status_code=403)
        except (NotFound, FileNotFoundError):
            # The package was deleted (or expired and swept) after the link was made.
            return PlainTextResponse("this package no longer exists\n", status_code=404)

    async def _respond(self, request: Request, download: PackageDownload) -> Response:
        headers = {
            "ETag": f'"{download.checksum}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'attachment; filename="{download.filename}"',
            "Content-Type": "application/gzip",
            "Cache-Control": "private, max-age=0",
        }
        try:
            wanted = _requested_range(request, download)
        except RangeNotSatisfiableError as exc:
            headers["Content-Range"] = f"bytes */{exc.size}"
            return PlainTextResponse(exc.message + "\n", status_code=416, headers=headers)
        first, last = wanted if wanted is not None else (0, download.size - 1)
        length = max(0, last - first + 1)
        headers["Content-Length"] = str(length)
        status = 200
        if wanted is not None:
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{download.size}"
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        stream = await run_in_threadpool(_opened_at, download, first)
        return StreamingResponse(_chunks(stream, length), status_code=status, headers=headers)


def _requested_range(request: Request, download: PackageDownload) -> tuple[int, int] | None:
    """The Range asked for; ignored when `If-Range` names another version of the package."""
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != f'"{download.checksum}"':
        return None
    return parse_range(request.headers.get("range"), download.size)


def _opened_at(download: PackageDownload, offset: int) -> BinaryIO:
    stream = download.open()
    stream.seek(offset)
    return stream


def _chunks(stream: BinaryIO, length: int) -> Iterator[bytes]:
    """`length` bytes of `stream` in bounded reads (starlette runs this in a thread)."""
    try:
        remaining = length
        while remaining > 0:
            data = stream.read(min(READ_SIZE, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data
    finally:
        stream.close()
