"""A loopback HTTP server for the remote-read tests: serves a folder with
byte ranges (RFC 9110: `bytes=a-b`, `bytes=a-`, `bytes=-n`), ETags and
`If-Match`, and counts what it serves.

    python range_server.py DIR

prints `port <n>` once listening on 127.0.0.1. Besides the files:

- `GET /__stats` gives `{"requests": n, "heads": n, "bytes": n, "log": [...],
  "most_at_once": n}` since the last reset, `log` holding each request's
  method, path and range, `most_at_once` the most requests served at once;
- `GET /__reset` zeroes them;
- `GET /__corrupt?file=F&offset=N` makes every later response that covers
  byte N of F carry it with its low bit flipped (damage in transit; the file
  on disk is untouched); `GET /__corrupt` with no query ends that;
- `GET /__lie?mode=M` makes every later range response lie: `short` sends
  one byte less than asked (headers agreeing with the body), `range` sends
  the bytes asked for under a `Content-Range` naming the next byte on;
  `GET /__lie` with no query ends that;
- `GET /__delay?ms=N` holds every later file response N ms before it is
  sent (a distant store), so that requests made at once overlap.

Only the standard library: the tests need nothing else to run it.
"""

import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse

ROOT = os.path.realpath(sys.argv[1])
LOCK = threading.Lock()
STATS = {"requests": 0, "heads": 0, "bytes": 0, "log": [], "most_at_once": 0}
IN_FLIGHT = [0]
DELAY = [0.0]
CORRUPT = {}
LIE = {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle's algorithm
    # holds the body until the client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def control(self, url):
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/__stats":
            with LOCK:
                return self.reply(200, json.dumps(STATS).encode(), [("Content-Type", "application/json")])
        if url.path == "/__reset":
            with LOCK:
                STATS.update(requests=0, heads=0, bytes=0, log=[], most_at_once=0)
            return self.reply(200, b"{}")
        if url.path == "/__corrupt":
            with LOCK:
                CORRUPT.clear()
                if "file" in query:
                    CORRUPT[query["file"][0]] = int(query["offset"][0])
            return self.reply(200, b"{}")
        if url.path == "/__delay":
            DELAY[0] = int(query.get("ms", ["0"])[0]) / 1000
            return self.reply(200, b"{}")
        if url.path == "/__lie":
            with LOCK:
                LIE.clear()
                LIE.update(mode=query["mode"][0]) if "mode" in query else None
            return self.reply(200, b"{}")
        return self.reply(404)

    def serve(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/__"):
            return self.control(url)
        with LOCK:
            IN_FLIGHT[0] += 1
            STATS["most_at_once"] = max(STATS["most_at_once"], IN_FLIGHT[0])
        try:
            time.sleep(DELAY[0])
            self.serve_file(url)
        finally:
            with LOCK:
                IN_FLIGHT[0] -= 1

    def serve_file(self, url):
        name = urllib.parse.unquote(url.path).lstrip("/")
        path = os.path.realpath(os.path.join(ROOT, name))
        wanted = self.headers.get("Range")
        with LOCK:
            STATS["requests"] += 1
            STATS["heads"] += self.command == "HEAD"
            STATS["log"].append([self.command, name, wanted])
        if not path.startswith(ROOT + os.sep) or not os.path.isfile(path):
            return self.reply(404)
        stat = os.stat(path)
        size = stat.st_size
        etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
        common = [("ETag", etag), ("Accept-Ranges", "bytes"), ("Last-Modified", self.date_time_string(int(stat.st_mtime)))]
        if self.headers.get("If-Match") not in (None, "*", etag):
            return self.reply(412, b"", common)
        start, end, status = 0, size, 200
        if wanted:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
            if not m or (m[1] == "" and m[2] == ""):
                return self.reply(416, b"", common + [("Content-Range", f"bytes */{size}")])
            if m[1] == "":
                start, end = max(0, size - int(m[2])), size
            else:
                start = int(m[1])
                end = size if m[2] == "" else min(size, int(m[2]) + 1)
            if start >= size or start >= end:
                return self.reply(416, b"", common + [("Content-Range", f"bytes */{size}")])
            status = 206
        with LOCK:
            lie = LIE.get("mode") if wanted else None
        if lie == "short" and end - start > 1:
            end -= 1
        shown = (start + 1, end + 1) if lie == "range" else (start, end)
        if status == 206:
            common.append(("Content-Range", f"bytes {shown[0]}-{shown[1] - 1}/{size}"))
        with open(path, "rb") as f:
            f.seek(start)
            body = bytearray(f.read(end - start))
        with LOCK:
            offset = CORRUPT.get(name)
            if offset is not None and start <= offset < end:
                body[offset - start] ^= 1
            if self.command == "GET":
                STATS["bytes"] += len(body)
        self.reply(status, bytes(body), common + [("Content-Type", "application/octet-stream")])

    do_GET = serve
    do_HEAD = serve


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
