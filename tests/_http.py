"""A tiny real HTTP server on loopback for tests that fetch the marketplace list."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests._samples import SAMPLE_ROWS


class ModelsServer:
    """A real loopback HTTP server answering GET with an OpenRouter-shaped models list."""

    def __init__(self) -> None:
        self.body: bytes = json.dumps({"data": SAMPLE_ROWS}).encode()
        self.status = 200
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                outer.hits += 1
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1/models"
