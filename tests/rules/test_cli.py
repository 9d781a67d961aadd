"""`payroute check` and `payroute explain`: what an operator reads, and the exit codes scripts rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from router.cli.main import main

GOOD = """version: 1
processors:
  sim_a: {adapter: simulator, latency_ms: 0, cost: {percent: 2.9, fixed: 30}}
  sim_b: {adapter: simulator, latency_ms: 0, cost: {percent: 2.5, fixed: 25}}
  sim_eu: {adapter: simulator, latency_ms: 0, currencies: [eur, gbp], cost: {percent: 1.8, fixed: 20}}
routes:
  - name: eur-subscriptions
    match: {currency: [eur], cadence: recurring, amount: {gte: 100}}
    strategy: priority
    processors: [sim_eu, sim_a]
  - name: cheap
    match: {metadata: {tier: cheap}}
    strategy: least_cost
    processors: [sim_a, sim_b, sim_eu]
  - name: default
    strategy: weighted
    processors: {sim_a: 70, sim_b: 30}
"""


def write(tmp_path: Path, text: str, name: str = "routing.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_check_good_file_exits_0_with_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    assert main(["check", path]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: OK\n")
    assert "3 processors:" in out
    assert "sim_eu (simulator, currencies eur gbp, cost 1.8% + 20)" in out
    assert (
        "eur-subscriptions  currency one of [eur], cadence one of [recurring], amount >= 100 -> priority: sim_eu, sim_a"
        in out
    )
    assert "default            every payment no other route takes -> weighted: sim_a, sim_b" in out
    assert err == ""


def test_check_bad_file_exits_1_with_every_error_and_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = GOOD.replace("processors: [sim_eu, sim_a]", "processors: [sim_eu, adyen_us]").replace(
        "strategy: least_cost", "strategy: cheapest"
    )
    path = write(tmp_path, bad)
    assert main(["check", path]) == 1
    out, err = capsys.readouterr()
    lines = bad.splitlines()
    strategy_line = lines.index("    strategy: cheapest") + 1
    assert out == ""
    assert f"{path}:{strategy_line}:5: routes[1].strategy: Input should be" in err
    assert f"{path}: refused (1 error)" in err  # the schema error stops before cross-references are checked

    only_reference = GOOD.replace("processors: [sim_eu, sim_a]", "processors: [sim_eu, adyen_us]")
    path = write(tmp_path, only_reference)
    assert main(["check", path]) == 1
    err = capsys.readouterr().err
    ref_line = only_reference.splitlines().index("    processors: [sim_eu, adyen_us]") + 1
    assert f"{path}:{ref_line}:5: routes[0].processors: unknown processor 'adyen_us'" in err


def test_check_accepts_retention_and_refuses_a_bad_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = GOOD + "retention: {idempotency_keys: 48h, webhook_deliveries: 14d, events: null, interval: 5m}\n"
    assert main(["check", write(tmp_path, good)]) == 0
    capsys.readouterr()
    bad = GOOD + "retention:\n  idempotency_keys: 1h\n"
    path = write(tmp_path, bad)
    assert main(["check", path]) == 1
    line = bad.splitlines().index("  idempotency_keys: 1h") + 1
    err = capsys.readouterr().err
    assert f"{path}:{line}:" in err and "retention.idempotency_keys" in err and "at least 24h" in err


def test_check_reports_several_errors_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = GOOD.replace("currency: [eur]", "currency: [eur, xyz]").replace("tier: cheap}", "tier: cheap}, colour: red")
    path = write(tmp_path, bad)
    assert main(["check", path]) == 1
    err = capsys.readouterr().err
    assert "unknown currency 'xyz'" in err
    assert "unknown key" in err
    assert "refused (2 errors)" in err


def test_check_warns_about_routes_that_can_never_be_taken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = GOOD.replace(
        "  - name: cheap\n", "  - name: everything\n    processors: [sim_b]\n  - name: cheap\n"
    ).replace("  sim_b: {adapter", "  unused: {adapter: simulator}\n  sim_b: {adapter")
    path = write(tmp_path, text)
    assert main(["check", path]) == 0
    err = capsys.readouterr().err
    cheap_line = text.splitlines().index("  - name: cheap") + 1
    assert f"warning: {path}:{cheap_line}:5: routes[2] 'cheap' is never taken" in err
    assert "processor 'unused' is in no route" in err


def test_check_says_which_mode_each_processor_takes_and_warns_of_a_route_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD.replace("sim_a: {adapter: simulator,", "sim_a: {adapter: simulator, livemode: false,").replace(
        "sim_eu: {adapter: simulator,", "sim_eu: {adapter: simulator, livemode: false,"
    )
    path = write(tmp_path, text)
    assert main(["check", path]) == 0
    out, err = capsys.readouterr()
    assert "sim_a (simulator, test-mode payments only, cost 2.9% + 30)" in out
    assert "sim_b (simulator, cost 2.5% + 25)" in out, "the simulator cannot tell: it takes both modes"
    eur_line = text.splitlines().index("    processors: [sim_eu, sim_a]") + 1
    assert f"warning: {path}:{eur_line}:5: routes[0] 'eur-subscriptions': no processor takes live-mode payments" in err
    assert "'cheap': no processor takes" not in err, "sim_b takes live-mode payments on that route"


def test_check_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err


Capture = pytest.CaptureFixture[str]


def explain(tmp_path: Path, capsys: Capture, payment: dict[str, object], *extra: str) -> tuple[int, str, str]:
    config = write(tmp_path, GOOD)
    code = main(["explain", "--config", config, json.dumps(payment), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def pay(currency: str = "usd", amount: int = 2500, **extra: object) -> dict[str, object]:
    return {
        "amount": {"value": amount, "currency": currency},
        "cadence": "recurring",
        "customer": "cus_1",
        "payment_method": "pm_card_visa",
        **extra,
    }


def test_explain_names_route_strategy_and_candidate_order(tmp_path: Path, capsys: Capture) -> None:
    code, out, _ = explain(tmp_path, capsys, pay("eur"))
    assert code == 0
    assert "route       routes[0] eur-subscriptions" in out
    assert "strategy    priority: the order the route lists them" in out
    assert "   1. sim_eu  in   listed 1st; cost 0.65 EUR (1.8% + 0.20 EUR)" in out
    assert "   2. sim_a   in   listed 2nd; cost 1.025 EUR (2.9% + 0.30 EUR)" in out


def test_explain_shows_why_earlier_routes_did_not_take_the_payment(tmp_path: Path, capsys: Capture) -> None:
    code, out, _ = explain(tmp_path, capsys, pay("eur", amount=50))
    assert code == 0
    assert "skipped   routes[0] eur-subscriptions: amount 50, route wants >= 100" in out
    assert "skipped   routes[1] cheap: metadata {tier: (none)}, route wants {tier: cheap}" in out
    assert "route       routes[2] default" in out
    assert "weight 70 of 100 (70% first)" in out


def test_explain_marks_unsupported_currency_and_open_breaker_out(tmp_path: Path, capsys: Capture) -> None:
    code, out, _ = explain(tmp_path, capsys, pay("usd", metadata={"tier": "cheap"}), "--breaker-open", "sim_b")
    assert code == 0
    assert "strategy    least_cost" in out
    rows = out.split("failing over down the list:\n")[1].splitlines()
    assert rows == [
        "    - sim_eu  out  cost 0.65 USD (1.8% + 0.20 USD); currency usd unsupported (takes eur, gbp)",
        "    - sim_b   out  cost 0.875 USD (2.5% + 0.25 USD); breaker open (recent technical failures): "
        "skipped until it half-opens",
        "   1. sim_a   in   cost 1.025 USD (2.9% + 0.30 USD)",
    ]


def test_explain_weighted_order_follows_the_payment_id(tmp_path: Path, capsys: Capture) -> None:
    orders = set()
    for i in range(20):
        code, out, _ = explain(tmp_path, capsys, pay(id=f"osp_test_{i}"), "--json")
        assert code == 0
        report = json.loads(out)
        assert report["route"] == "default" and report["strategy"] == "weighted"
        orders.add(tuple(c["name"] for c in report["candidates"]))
        again = json.loads(explain(tmp_path, capsys, pay(id=f"osp_test_{i}"), "--json")[1])
        assert [c["name"] for c in again["candidates"]] == [c["name"] for c in report["candidates"]]
    assert orders == {("sim_a", "sim_b"), ("sim_b", "sim_a")}


def test_explain_card_details_can_be_given_for_an_opaque_token(tmp_path: Path, capsys: Capture) -> None:
    text = GOOD.replace(
        "  - name: cheap\n", "  - name: debit\n    match: {funding: debit}\n    processors: [sim_b]\n  - name: cheap\n"
    )
    config = write(tmp_path, text)
    body = json.dumps(pay(payment_method="pm_saved_123", card={"funding": "debit"}))
    assert main(["explain", "--config", config, body]) == 0
    assert "route       routes[1] debit" in capsys.readouterr()[0]


def test_explain_reads_the_payment_from_a_file(tmp_path: Path, capsys: Capture) -> None:
    payment_file = tmp_path / "payment.json"
    payment_file.write_text(json.dumps(pay("eur")))
    assert main(["explain", "--config", write(tmp_path, GOOD), str(payment_file)]) == 0
    assert "eur-subscriptions" in capsys.readouterr()[0]


def test_explain_refuses_a_bad_payment_or_config(tmp_path: Path, capsys: Capture) -> None:
    code, _, err = explain(tmp_path, capsys, {"amount": {"value": 10, "currency": "usd"}})
    assert code == 2 and "invalid payment (cadence)" in err
    bad = write(tmp_path, GOOD.replace("strategy: weighted", "strategy: random"), "bad.yaml")
    assert main(["explain", "--config", bad, json.dumps(pay())]) == 1
    assert f"{bad}:" in capsys.readouterr()[1]


def test_payroute_console_script_runs_check(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    done = subprocess.run(
        [sys.executable, "-m", "router.cli.main", "check", path], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"{path}: OK" in done.stdout


def test_check_reports_adapter_option_errors_with_the_schema_errors_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = GOOD.replace("sim_a: {adapter: simulator, latency_ms: 0,", "sim_a: {adapter: simulator, approval_rate: 7,")
    bad = bad.replace("strategy: least_cost", "strategy: cheapest")
    path = write(tmp_path, bad)
    assert main(["check", path]) == 1
    err = capsys.readouterr().err
    lines = bad.splitlines()
    sim_line = next(i for i, line in enumerate(lines, 1) if "approval_rate: 7" in line)
    strategy_line = lines.index("    strategy: cheapest") + 1
    assert f"{path}:{sim_line}:3: processors.sim_a: sim_a: approval_rate must be between 0 and 1" in err
    assert f"{path}:{strategy_line}:5: routes[1].strategy:" in err
    assert err.index("processors.sim_a") < err.index("routes[1].strategy"), "in file order"
    assert f"{path}: refused (2 errors)" in err
