"""A small HTTP server for the health checks: ``/api/v1/health`` and ``/api/v1/health/detailed``.

Standard library only (``http.server.ThreadingHTTPServer``), bound to loopback by default. Every
request runs its own checks; a database that cannot be reached answers 503 with status
"unhealthy" and the server keeps serving, so it reports recovery as soon as the database is back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine

from bbperf.health import health_basic, health_detailed, http_status
from bbperf.monitor import DEFAULT_THRESHOLDS, PoolMonitor, Thresholds

LOOPBACK = "127.0.0.1"
ROUTES = ("/api/v1/health", "/api/v1/health/detailed")


class HealthServer(ThreadingHTTPServer):
    """Serves the health endpoints for one engine; the pool monitor lives as long as the server."""

    daemon_threads = True

    def __init__(
        self, engine: Engine, host: str, port: int, thresholds: Thresholds = DEFAULT_THRESHOLDS
    ) -> None:
        self.engine = engine
        self.thresholds = thresholds
        self.monitor = PoolMonitor(engine, thresholds)
        self.routes: dict[str, Callable[[], dict[str, Any]]] = {
            "/api/v1/health": lambda: health_basic(self.engine),
            "/api/v1/health/detailed": lambda: health_detailed(
                self.engine, self.monitor, self.thresholds
            ),
        }
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"

    def server_close(self) -> None:
        super().server_close()
        self.monitor.close()


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer
    server_version = "bbperf-health"

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path.split("?", 1)[0].rstrip("/") or "/")
        if route is None:
            self._send(404, {"error": f"not found: {self.path}", "routes": list(ROUTES)})
            return
        report = route()
        self._send(http_status(report), report)

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, indent=2, default=str).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default: health probes would flood the terminal."""


def make_server(
    engine: Engine,
    host: str = LOOPBACK,
    port: int = 8000,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> HealthServer:
    """A bound, not yet serving, health server (``port=0`` picks a free port)."""
    return HealthServer(engine, host, port, thresholds)


def serve_in_thread(server: HealthServer) -> threading.Thread:
    """Serve ``server`` from a daemon thread (for notebooks and tests); stop with ``shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="bbperf-health", daemon=True)
    thread.start()
    return thread
