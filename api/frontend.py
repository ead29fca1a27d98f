"""Serve a built single-page app (FRONTEND_DIST_DIR) at ``/`` with no reverse proxy."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

HASHED_ASSET = re.compile(r"[.-][0-9a-zA-Z_-]{8,}\.(js|css|mjs|woff2?|png|svg|jpg|webp|ico)$")
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
# The fallback never claims the API (so unknown API paths stay 404 for every method, and the
# slash redirect can resolve them) nor the operator endpoints (``/__heartbeat__``...).
SPA_PATH = r"(?!(?:api|external-api)(?:/|$)|__).*"


def frontend_routes(dist_dir: str) -> list[web.RouteDef]:
    """Files under ``dist_dir``; ``index.html`` for unknown paths outside the API."""
    root = Path(dist_dir).resolve()
    index = root / "index.html"
    if not index.is_file():
        raise ValueError(f"FRONTEND_DIST_DIR={dist_dir!r} holds no index.html")

    async def serve(request: web.Request) -> web.StreamResponse:
        path = request.match_info.get("path", "")
        try:
            candidate = (root / path).resolve()
            found = candidate.is_relative_to(root) and candidate.is_file()
        except (OSError, ValueError):  # a NUL, a name too long...
            found = False
        if found:
            response = web.FileResponse(candidate)
            response.headers["Cache-Control"] = (
                IMMUTABLE if HASHED_ASSET.search(candidate.name) else NO_CACHE
            )
            return response
        response = web.FileResponse(index)
        response.headers["Cache-Control"] = NO_CACHE
        return response

    return [web.get("/{path:" + SPA_PATH + "}", serve, name="frontend")]
