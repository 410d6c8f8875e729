"""A real eventdocs server in a child process, for the reliability scripts.

``python -m eventdocs.http.serve TARGET --store FILE --port N`` on a free
loopback port (never another address), its output appended to a log file,
stopped by its own PID: SIGKILL for a crash, SIGTERM for a graceful stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BLOG_JSON = str(ROOT / "examples" / "blog.json")
HOST = "127.0.0.1"


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerFailed(RuntimeError):
    """The server did not start, or did not stop in time; the log tells why."""


class Server:
    """One server process on ``store``; start, crash and restart it at will."""

    def __init__(
        self,
        store: Path | str,
        log: Path,
        *,
        target: str = BLOG_JSON,
        args: Sequence[str] = (),
        start_timeout: float = 60.0,
        script: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.log = log
        self.target = target
        self.args = list(args)
        self.script = script  # a wrapper of ``eventdocs.http.serve``'s main, if given
        self.env = env
        self.start_timeout = start_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server is not running"
        return self.proc.pid

    def start(self) -> None:
        """Start on a fresh free port and wait until ``/healthz`` answers 200."""
        for _ in range(3):  # another process may take the port between probe and bind
            self.port = free_port()
            program = [self.script] if self.script else ["-m", "eventdocs.http.serve"]
            command = [
                sys.executable,
                *program,
                self.target,
                "--store",
                str(self.store),
                "--host",
                HOST,
                "--port",
                str(self.port),
                *self.args,
            ]
            with self.log.open("ab") as out:
                out.write(f"\n--- start {' '.join(command[1:])}\n".encode())
                out.flush()
                env = None if self.env is None else {**os.environ, **self.env}
                self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
            if self._wait_healthy():
                return
        raise ServerFailed(f"the server did not start; see {self.log}")

    def _wait_healthy(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                try:
                    if client.get("/healthz").status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.kill()
        return False

    def kill(self) -> int:
        """SIGKILL, as a crash or an OOM killer would; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait()
        self.proc = None
        return code

    def terminate(self, timeout: float = 30.0) -> tuple[int, float]:
        """SIGTERM and wait: the exit status and the seconds it took to exit.

        Raises:
            ServerFailed: it did not exit within ``timeout`` (it is killed then).
        """
        if self.proc is None:
            return 0, 0.0
        started = time.monotonic()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerFailed(f"no exit {timeout:.0f} s after SIGTERM; see {self.log}") from None
        self.proc = None
        return code, time.monotonic() - started

    def rss(self) -> int:
        """The server's resident set size in bytes, from ``/proc``."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise ServerFailed("no VmRSS in /proc")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
