"""`payroute serve` as a real process for tests: started on a free loopback port, its log read line by line from a
thread, stopped with SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.http.conftest import TEST_KEY

LISTENING = re.compile(r"listening on (http://\S+)")


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    lines: queue.Queue[str]
    deadline_s: float

    def log_since(self) -> list[str]:
        """The log lines printed since the last call."""
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=self.deadline_s)


def start_sidecar(
    config: Path,
    store: str,
    *args: str,
    env: dict[str, str] | None = None,
    ready: re.Pattern[str] = LISTENING,
    deadline_s: float = 60,
) -> Served:
    """Start `payroute serve` on `config` and `store` with `args`, and wait for the line `ready` matches (its
    first group: the URL served)."""
    command = [sys.executable, "-m", "router.cli.main", "serve", "--config", str(config), "--port", "0"]
    process = subprocess.Popen(
        [*command, "--store", store, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PAYROUTE_API_KEYS": TEST_KEY, **(env or {})},
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        if process.stderr is not None:
            for line in process.stderr:
                lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    end = time.monotonic() + deadline_s
    seen = []
    while time.monotonic() < end:
        try:
            line = lines.get(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if m := ready.search(line):
            return Served(process, m.group(1), lines, deadline_s)
    process.kill()
    raise AssertionError("payroute serve did not start:\n" + "".join(seen))
