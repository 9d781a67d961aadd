"""The README's embedded example is code people paste: run it as written, in a scratch directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_embedded_example_runs_as_written(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has an embedded example"
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "routing.yaml", tmp_path / "config" / "routing.yaml")
    (tmp_path / "example.py").write_text(blocks[0])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    first, amount, *attempts, as_json = done.stdout.splitlines()
    assert re.fullmatch(r"osp_test_\w+ succeeded", first)
    assert amount == "1999 usd"
    assert attempts and attempts[-1].endswith(" approved")
    assert as_json.startswith('{"id": "osp_test_')
    assert (tmp_path / "embedded.db").exists(), "its own database"
    assert not (tmp_path / "payroute.db").exists(), "not the one make run keeps"


def test_a_card_held_at_two_processors_as_written(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    held = next(b for b in blocks if "create_payment_method" in b)
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "routing.yaml", tmp_path / "config" / "routing.yaml")
    (tmp_path / "held.py").write_text(held)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "held.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    stored, status, *attempts = done.stdout.splitlines()
    assert re.fullmatch(r"pm_\w+ \['sim_a', 'sim_b'\]", stored)
    assert status == "succeeded"
    # Each processor asked with its own token: sim_a's errors (nothing charged), sim_b's approves.
    assert attempts == ["sim_a processor_error", "sim_b approved"]


async def test_the_sidecar_card_held_at_two_processors_as_written(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from router import Router
    from router.http import ApiKeys, PageTokens, Sidecar, create_app

    text = (ROOT / "README.md").read_text()
    [body] = re.findall(r"curl -s http://127\.0\.0\.1:8080/v1/payment_methods .*?-d '(\{.*?\})'", text, flags=re.S)
    key = re.search(r"Bearer (sk_test_\w+)", text)
    assert key is not None
    router = await Router.open(ROOT / "config" / "routing.yaml", f"sqlite:///{tmp_path / 'pm.db'}")
    keys = ApiKeys.parse(key.group(1))
    client = TestClient(TestServer(create_app(Sidecar(keys, PageTokens(keys.derive_secret("p")), router))))
    await client.start_server()
    try:
        auth = {"Authorization": f"Bearer {key.group(1)}", "Content-Type": "application/json"}
        resp = await client.post("/v1/payment_methods", data=body, headers=auth)
        pm = await resp.json()
        assert resp.status == 200, pm
        assert sorted(pm["processors"]) == ["sim_a", "sim_b"]
        paid = {"amount": {"value": 1999, "currency": "usd"}, "cadence": "recurring", "customer": "cus_demo"}
        resp = await client.post(
            "/v2/payments/off_session_payments",
            json={**paid, "payment_method": pm["id"]},
            headers={**auth, "Idempotency-Key": "readme-pm"},
        )
        made = await resp.json()
        assert made["status"] == "succeeded", made
        attempts = await router.attempts_for(made["id"])
        assert [(a.processor, a.outcome) for a in attempts] == [("sim_a", "processor_error"), ("sim_b", "approved")]
    finally:
        await client.close()
        await router.close()
