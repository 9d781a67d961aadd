"""The newcomer's path through the Makefile: `make run` installs the runtime only and stops when told to."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = str(Path(sys.executable).parent)  # this environment stands in for .venv: nothing is installed
# Treat the install stamps as up to date, so make runs only the recipe under test.
NO_INSTALL = ["-o", ".venv/.runtime-stamp", "-o", ".venv/.dev-stamp"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_run_installs_the_runtime_only() -> None:
    done = subprocess.run(
        ["make", "-n", "-B", "run", f"BIN={BIN}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "pip install -q -e ." in done.stdout
    assert "[dev]" not in done.stdout
    done = subprocess.run(["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "pip install -q -e '.[dev]'" in done.stdout


def test_kill_of_make_run_stops_the_server_and_frees_the_port(tmp_path: Path) -> None:
    port = _free_port()
    cmd = ["make", "run", f"BIN={BIN}", f"PORT={port}", f"STORE=sqlite:///{tmp_path / 'run.db'}", *NO_INSTALL]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    make = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as ready:
                    if ready.status == 200:
                        break
            except OSError:
                pass
            assert make.poll() is None, make.stdout.read() if make.stdout else ""
            assert time.monotonic() < deadline, "the sidecar did not come up"
            time.sleep(0.2)
        make.send_signal(signal.SIGTERM)  # `kill <pid of make run>`
        make.wait(timeout=60)
        deadline = time.monotonic() + 30
        while not _port_free(port):
            assert time.monotonic() < deadline, "the server outlived make: the port is still taken"
            time.sleep(0.2)
    finally:
        if make.poll() is None:
            make.kill()
