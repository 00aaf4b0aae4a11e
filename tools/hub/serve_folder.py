#!/usr/bin/env python3
"""Serve a local model folder as a HuggingFace-hub look-alike, for trying `flexserve download`
(and HF tools) without the internet.

    python3 tools/hub/serve_folder.py --repo org/name --port 8765 Tests/Fixtures/tiny-llama
    HF_ENDPOINT=http://127.0.0.1:8765 flexserve download org/name --cache-folder /tmp/hub

Endpoints: GET /api/models/{id}/revision/{rev}; HEAD/GET /{id}/resolve/{rev}/{file}
(files of at least --lfs-min bytes are "LFS": a 302 with X-Linked-Etag = sha256 and
X-Linked-Size to /cdn-lfs/{sha256}/{file}, which honours Range); --token requires
"Authorization: Bearer TOKEN"; --throttle KB/s slows transfers so progress bars show.
Standard library only.
"""
import argparse
import hashlib
import http.server
import json
import os
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--repo", required=True)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--token")
    ap.add_argument("--lfs-min", type=int, default=10_000)
    ap.add_argument("--throttle", type=float, default=0, help="KB/s for file bodies (0: unlimited)")
    a = ap.parse_args()

    files = {}
    for root, _, names in os.walk(a.folder):
        for n in names:
            p = os.path.join(root, n)
            files[os.path.relpath(p, a.folder)] = p
    sha = {f: hashlib.sha256(open(p, "rb").read()).hexdigest() for f, p in files.items()}
    commit = hashlib.sha1("".join(sorted(sha.values())).encode()).hexdigest()
    by_sha = {v: k for k, v in sha.items()}

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def send(self, code, headers=(), body=b""):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and body:
                step = max(1, int(a.throttle * 1024 / 10)) if a.throttle else len(body)
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    if a.throttle:
                        time.sleep(0.1)

        def err(self, code, error_code, msg):
            self.send(code, [("Content-Type", "application/json"), ("X-Error-Code", error_code), ("X-Error-Message", msg)],
                      json.dumps({"error": msg}).encode())

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
            parts = [p for p in path.split("/") if p]
            if parts[:1] == ["cdn-lfs"] and len(parts) >= 3:
                f = by_sha.get(parts[1])
                if f is None:
                    return self.send(404)
                data = open(files[f], "rb").read()
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        return self.send(416, [("Content-Range", f"bytes */{len(data)}")])
                    return self.send(206, [("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}"), ("ETag", f'"{sha[f]}"')], data[start:])
                return self.send(200, [("ETag", f'"{sha[f]}"'), ("Accept-Ranges", "bytes")], data)
            if a.token and self.headers.get("Authorization") != f"Bearer {a.token}":
                return self.err(401, "", "Invalid credentials in Authorization header")
            repo = "/".join(parts[2:4]) if parts[:2] == ["api", "models"] else "/".join(parts[0:2])
            if repo != a.repo:
                return self.err(404, "RepoNotFound", "Repository not found")
            if parts[:2] == ["api", "models"] and len(parts) == 6 and parts[4] == "revision":
                if parts[5] not in ("main", commit):
                    return self.err(404, "RevisionNotFound", f"Invalid rev id: {parts[5]}")
                body = {"id": a.repo, "sha": commit, "siblings": [{"rfilename": f} for f in sorted(files)]}
                return self.send(200, [("Content-Type", "application/json")], json.dumps(body).encode())
            if len(parts) >= 5 and parts[2] == "resolve":
                if parts[3] not in ("main", commit):
                    return self.err(404, "RevisionNotFound", "Invalid rev id")
                f = "/".join(parts[4:])
                if f not in files:
                    return self.err(404, "EntryNotFound", "Entry not found")
                size = os.path.getsize(files[f])
                if size >= a.lfs_min:
                    host = self.headers.get("Host", f"127.0.0.1:{a.port}").replace("127.0.0.1", "localhost")
                    return self.send(302, [("Location", f"http://{host}/cdn-lfs/{sha[f]}/{f}"), ("X-Repo-Commit", commit),
                                           ("X-Linked-Etag", f'"{sha[f]}"'), ("X-Linked-Size", str(size))])
                git = hashlib.sha1(b"blob %d\0" % size + open(files[f], "rb").read()).hexdigest()
                return self.send(200, [("X-Repo-Commit", commit), ("ETag", f'"{git}"')], open(files[f], "rb").read())
            self.send(404)

    print(f"serving {a.folder} as {a.repo} at http://127.0.0.1:{a.port} (commit {commit})", flush=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H).serve_forever()


if __name__ == "__main__":
    main()
