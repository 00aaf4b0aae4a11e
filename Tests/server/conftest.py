"""Fixtures that start the real `flexserve serve` binary on a free loopback port.

The binary comes from $FLEXSERVE_BIN (run.sh sets it). Servers are started with --port 0 and the
bound port is read from the first line the server prints.
"""
import http.client
import json
import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from openai import AsyncOpenAI, OpenAI

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "Tests" / "Fixtures" / "tiny-llama"
SMOL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def binary() -> str:
    path = os.environ.get("FLEXSERVE_BIN") or str(ROOT / ".build" / "release" / "flexserve")
    if not os.access(path, os.X_OK):
        pytest.exit(f"flexserve binary not found at {path}: set FLEXSERVE_BIN", returncode=2)
    return path


class Server:
    """A running `flexserve serve` process."""

    def __init__(self, model, *args, startup_timeout=120):
        self.model_path = str(model)
        cmd = [binary(), "serve", "--model", self.model_path, "--port", "0", *map(str, args)]
        self.log = tempfile.NamedTemporaryFile(prefix="flexserve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)
        deadline = time.time() + startup_timeout
        line = ""
        while time.time() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if "http://" in line:
                    break
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {Path(self.log.name).read_text()[-4000:]}")
        else:
            self.proc.kill()
            raise RuntimeError(f"server did not start in {startup_timeout} s")
        self.url = line.split("http://", 1)[1].split()[0]
        self.host, port = self.url.rsplit(":", 1)
        self.port = int(port)
        self.base_url = f"http://{self.url}/v1"
        self.name = json.loads(self.get("/v1/models")[1])["data"][0]["id"]

    def client(self, **kw) -> OpenAI:
        return OpenAI(**{"base_url": self.base_url, "api_key": "test", "max_retries": 0, "timeout": 120, **kw})

    def async_client(self, **kw) -> AsyncOpenAI:
        return AsyncOpenAI(**{"base_url": self.base_url, "api_key": "test", "max_retries": 0, "timeout": 120, **kw})

    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            chunked = body is not None and not isinstance(body, (bytes, str))
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace"), dict(r.getheaders())
        finally:
            conn.close()

    def get(self, path):
        status, body, _ = self.request("GET", path)
        return status, body

    def post_json(self, path, obj):
        status, body, _ = self.request("POST", path, json.dumps(obj), {"Content-Type": "application/json"})
        return status, json.loads(body)

    def metrics(self) -> dict:
        """Unlabelled samples of /metrics, plus labelled ones under their full name."""
        status, text = self.get("/metrics")
        assert status == 200
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def wait_idle(self, timeout=30):
        """Waits until no request is in flight and every KV block is free; returns the metrics."""
        deadline = time.time() + timeout
        while True:
            m = self.metrics()
            idle = (m["flexserve_in_flight_requests"] == 0 and m["flexserve_running_requests"] == 0
                    and m["flexserve_queue_depth"] == 0 and m["flexserve_kv_blocks_free"] == m["flexserve_kv_blocks_total"])
            if idle or time.time() > deadline:
                return m
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def tiny():
    server = Server(TINY, "--max-requests-per-batch", 8, "--max-tokens-per-batch", 128, "--max-queue", 64)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smol():
    if not SMOL.exists():
        pytest.skip(f"{SMOL} missing: run scripts/setup.sh")
    # Two batch slots and one queue place: the overload test fills them.
    server = Server(SMOL, "--max-requests-per-batch", 2, "--max-queue", 1, "--max-sequence-length", 1024)
    yield server
    server.stop()
