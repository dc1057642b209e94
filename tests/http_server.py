"""A real HTTP server on 127.0.0.1 for the remote-source tests: static files with range
requests (as object stores and the PGC's servers answer them), counting the bytes sent."""

from __future__ import annotations

import functools
import os
import re
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def send_head(self):
        """Answer ``Range: bytes=a-b`` with 206 and the part; whole files otherwise."""
        path = self.translate_path(self.path)
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match is None or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        first, last = match.groups()
        if first == "":  # the last n bytes
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(size - 1, int(last) if last else size - 1)
        if start >= size:
            self.send_error(416)
            return None
        f = open(path, "rb")  # noqa: SIM115 - closed by copyfile's caller
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        return f

    def end_headers(self):
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def copyfile(self, source, outputfile):
        n = getattr(self, "_remaining", None)
        data = source.read() if n is None else source.read(n)
        self._remaining = None
        outputfile.write(data)
        self.server.sent[self.path.split("?")[0]] += len(data)


class StaticServer:
    """``with StaticServer(root) as srv``: ``srv.url`` serves ``root``; ``srv.sent`` maps
    each path to the bytes sent."""

    def __init__(self, root):
        self.root = str(root)

    def __enter__(self):
        handler = functools.partial(_Handler, directory=self.root)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.sent = Counter()
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    @property
    def sent(self) -> Counter:
        return self.httpd.sent

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
