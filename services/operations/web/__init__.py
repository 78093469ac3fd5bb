"""The operations center's live web dashboard: static HTML, CSS and ES modules, no build step.

The operations service serves ``INDEX_HTML`` at ``/`` and ``STATIC_DIR`` at ``/static``. The
page talks only to the REST and SSE endpoints under ``/api/v1`` and loads nothing from the
internet (no CDN, fonts or map tiles), so it works in an isolated control room.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["INDEX_HTML", "STATIC_DIR"]

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
"""Directory to mount at ``/static``: ``css/``, ``js/`` and ``favicon.svg``."""

INDEX_HTML: Path = STATIC_DIR / "index.html"
"""The single page served at ``/``; it references its assets by absolute ``/static/...`` URLs."""
