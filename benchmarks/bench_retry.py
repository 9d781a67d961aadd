"""Retry strategies on seeded worlds of monthly subscriptions: who recovers more, with fewer retries, against an
oracle that retries once at the right moment.

    python -m benchmarks.bench_retry                 # 4 seeds + 2 seeds of new cards, about two minutes of CPU
    python -m benchmarks.bench_retry --seeds 1 --subs 2000

The world (`benchmarks/retry_world.py`, unknown to the router) bills every subscription monthly for `--days`
and answers each attempt from hidden state: paydays (weekly, fortnightly, 1st/15th, monthly, month end,
irregular; weekend paydays shifted), money gone again within days, risk holds that lift with time, issuer
outages and incidents, Mastercard advice codes, dying cards, business cards carrying several subscriptions.

Each strategy runs the router's real `RetryPlanner` (guards, caps, strategies, card groups) with the engine's
order of calls: `decide` after a decline, `recheck` when a retry falls due. `smart` and `best_available` learn
only from the attempts the run itself writes (an in-memory history with the store's reads: attempt_stats,
card_activity, card_history); approved charges are evidence too. Metrics are over the payments billed after the
`--burn-in` days whose first charge declined. The oracle knows the hidden state and retries each payment once,
at the moment most likely to succeed (or not at all). A control run repeats `heuristic` with the caps switched
off in the planner (the world still polices them), to show the ledger would catch violations.

Targets (exit status 1 if missed, per seed): 0 violations of any network rule; smart >= 0.95 of the oracle's
recoveries; best_available >= smart (within 1% of the oracle's recoveries, a seed's noise); smart and
best_available with fewer retries per recovery than heuristic. Results: tables on stdout and
benchmarks/results/retry.json.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import random
import statistics
import sys
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.base import Outcome
from benchmarks.retry_world import START, Card, Customer, World, pick
from router.config.schema import NetworkLimits, RetryPolicyConfig
from router.model.records import CardSnapshot, Payment
from router.model.states import Status
from router.retry import RetryPlanner, SmartStrategy
from router.state.store.base import CardActivity

H = timedelta(hours=1)
D = timedelta(days=1)
RESULTS = Path(__file__).resolve().parent / "results" / "retry.json"
SEEDS = (20261123, 7, 31, 2026)

POLICIES: dict[str, RetryPolicyConfig] = {
    "none": RetryPolicyConfig(strategy="none"),
    "scheduled": RetryPolicyConfig(strategy="scheduled", schedule=[1 * D, 3 * D, 5 * D, 7 * D], max_attempts=8),
    "heuristic": RetryPolicyConfig(strategy="heuristic", max_attempts=8),
    "smart": RetryPolicyConfig(strategy="smart", max_attempts=8),
    "best_available": RetryPolicyConfig(strategy="best_available", max_attempts=8),
}
LIMITS = NetworkLimits()
NO_CAPS = NetworkLimits(visa_reattempts_30d=10**6, mastercard_declines_24h=10**6, mastercard_declines_30d=10**6)
_DECLINES = ("soft_decline", "hard_decline", "authentication_required")
# Two runs of one strategy that differ in a single early decision end this far apart (share of the oracle's
# recoveries, measured: 4-6 of about 750): closer than this, "less" is the seed's luck, not the strategy.
NOISE = 0.01


@dataclass(frozen=True, slots=True)
class Row:
    """A settled attempt as the store's reads return it (SettledAttempt's fields, with the card and customer)."""

    id: str
    payment_id: str
    created: datetime
    attempt_number: int
    outcome: str
    decline_code: str | None
    network_decline_code: str | None
    network_advice_code: str | None
    card_fingerprint: str
    customer: str
    advice_code: str | None = None
    state: str = "settled"


class MemoryHistory:
    """The store's reads for the planner, over attempts appended in time order."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.times: list[datetime] = []
        self.by_card: dict[str, list[Row]] = defaultdict(list)
        self.by_customer: dict[str, list[Row]] = defaultdict(list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self.times.append(row.created)
        self.by_card[row.card_fingerprint].append(row)
        self.by_customer[row.customer].append(row)

    async def card_activity(self, fingerprint: str, since: datetime) -> CardActivity:
        rows = [r for r in self.by_card.get(fingerprint, ()) if r.created >= since]
        return CardActivity([r.created for r in rows], [r.created for r in rows if r.outcome in _DECLINES])

    async def card_declines(self, fingerprint: str, since: datetime, limit: int) -> list[datetime]:
        rows = [r for r in self.by_card.get(fingerprint, ()) if r.created >= since][-limit:]
        return [r.created for r in rows if r.outcome in _DECLINES]

    async def attempt_stats(self, since: datetime, limit: int, until: datetime | None = None) -> list[Row]:
        end = len(self.rows) if until is None else bisect_right(self.times, until)
        return self.rows[bisect_left(self.times, since) : end][::-1][:limit]

    async def card_history(
        self, fingerprint: str | None, customer: str | None, since: datetime, limit: int
    ) -> list[Row]:
        found: dict[str, Row] = {}
        for rows in (self.by_card.get(fingerprint or "", ()), self.by_customer.get(customer or "", ())):
            for r in reversed(rows):
                if r.created < since or len(found) >= limit:
                    break
                found[r.id] = r
        return sorted(found.values(), key=lambda r: r.created, reverse=True)[:limit]


# -- the population -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    card: int  # index into the cards
    day: int  # billing day of the month
    hour: int


def population(world: World, n: int, seed: int) -> tuple[list[Card], list[Subscription]]:
    rng = random.Random(seed)
    cards: list[Card] = []
    subs: list[Subscription] = []
    customers = 0
    while len(subs) < n:
        customer: Customer = world.customer(rng, customers)
        customers += 1
        for _ in range(2 if rng.random() < 0.15 else 1):
            card = world.card(rng, len(cards), customer)
            cards.append(card)
            kind = pick(rng, (("one", 0.74), ("two", 0.14), ("three", 0.06), ("business", 0.06)))
            count = {"one": 1, "two": 2, "three": 3}.get(kind) or rng.randint(4, 8)
            day = rng.randint(1, 28)
            for _k in range(count):
                # A business's subscriptions bill the same day; a person's on days of their own.
                sub_day = day if kind == "business" or rng.random() < 0.5 else rng.randint(1, 28)
                subs.append(Subscription(len(cards) - 1, sub_day, rng.randint(0, 23)))
    return cards, subs


def billings(subs: list[Subscription], days: int) -> list[tuple[datetime, int]]:
    out = []
    end = START + days * D
    for i, sub in enumerate(subs):
        y, m = START.year, START.month
        while True:
            at = datetime(y, m, sub.day, sub.hour, (i * 7) % 60, tzinfo=START.tzinfo)
            if at >= end:
                break
            out.append((at, i))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


# -- one strategy over a world --------------------------------------------------------------------------------


@dataclass
class Pay:
    payment: Payment
    card: Card
    measured: bool
    first_class: str
    retries: int = 0
    recovered: bool = False
    last_decline: datetime | None = None
    last_mac: str | None = None


def _class(outcome: Outcome) -> str:
    code = outcome.decline_code or ""
    if code == "insufficient_funds":
        return "funds"
    if code == "issuer_not_available":
        return "technical"
    if code == "do_not_honor" and outcome.network_advice_code != "21":
        return "generic"
    return "hard"


async def run(name: str, seed: int, n: int, days: int, burn_in: int, *, caps: bool = True) -> dict[str, Any]:
    world = World(seed, days, LIMITS)
    cards, subs = population(world, n, seed)
    history = MemoryHistory()
    smart = SmartStrategy(history)
    limits = LIMITS if caps else NO_CAPS
    planner = RetryPlanner(history, limits=limits, smart=smart)
    policy = POLICIES.get(name, POLICIES["heuristic"])
    measured_from = START + burn_in * D
    pays: list[Pay] = []
    queue: list[tuple[datetime, int, int]] = [(at, 0, i) for at, i in billings(subs, days)]
    heapq.heapify(queue)
    used: dict[str, int] = defaultdict(int)
    started = time.perf_counter()
    while queue:
        now, kind, i = heapq.heappop(queue)
        if kind == 0:  # a billing: a new payment
            sub = subs[i]
            card = cards[sub.card]
            payment = Payment(
                id=f"osp_test_{len(pays):07d}",
                livemode=False,
                created=now,
                status=Status.PROCESSING,
                amount=1999,
                currency="usd",
                cadence="recurring",
                customer=card.customer.id,
                payment_method=f"pm_{card.fingerprint}",
                payment_record=f"pr_{len(pays):07d}",
                card=CardSnapshot(brand=card.brand, fingerprint=card.fingerprint),
            )
            pays.append(Pay(payment, card, now >= measured_from, ""))
            i = len(pays) - 1
        pay = pays[i]
        p = pay.payment
        if p.status == Status.PENDING_RETRY:
            held = await planner.recheck(p, policy, now, limits)
            if held is not None:
                used["held_when_due"] += 1
                if held.retry_at is not None:
                    pay.payment = p.model_copy(update={"next_attempt_at": held.retry_at})
                    heapq.heappush(queue, (held.retry_at, 1, i))
                continue
        number = p.attempts + 1
        outcome = world.answer(pay.card, p.id, now, pay.last_decline, pay.last_mac)
        if number > 1:
            pay.retries += 1
        history.add(
            Row(
                f"att_{len(history.rows)}",
                p.id,
                now,
                number,
                outcome.kind.value,
                outcome.decline_code,
                outcome.network_decline_code,
                outcome.network_advice_code,
                pay.card.fingerprint,
                p.customer,
            )
        )
        if outcome.approved:
            pay.recovered = number > 1
            pay.payment = p.model_copy(update={"attempts": number, "status": Status.SUCCEEDED})
            continue
        if number == 1:
            pay.first_class = _class(outcome)
        pay.last_decline, pay.last_mac = now, outcome.network_advice_code
        current = p.model_copy(update={"attempts": number, "first_declined_at": p.first_declined_at or now})
        if name == "oracle":
            at = world.right_moment(pay.card, now, outcome, now + policy.window) if number == 1 else None
            pay.payment = current.model_copy(update={"status": Status.FAILED})
            if at is not None:
                pay.payment = current.model_copy(update={"status": Status.PROCESSING})
                heapq.heappush(queue, (at, 1, i))
            continue
        decision = await planner.decide(current, outcome, policy, now, limits)
        used[decision.strategy] += 1
        if decision.retry_at is None:
            pay.payment = current.model_copy(update={"status": Status.FAILED})
            continue
        pay.payment = current.model_copy(
            update={
                "status": Status.PENDING_RETRY,
                "next_attempt_at": decision.retry_at,
                "retry_strategy": decision.strategy,
                "last_decline_class": decision.decline_class,
            }
        )
        heapq.heappush(queue, (decision.retry_at, 1, i))
    elapsed = time.perf_counter() - started
    return summarize(name if caps else f"{name} (no caps)", pays, world, used, elapsed)


def summarize(name: str, pays: list[Pay], world: World, used: dict[str, int], elapsed: float) -> dict[str, Any]:
    declined = [p for p in pays if p.measured and p.first_class]
    recovered = [p for p in declined if p.recovered]
    retries = sum(p.retries for p in declined)
    by_class = {}
    for cls in ("funds", "generic", "technical", "hard"):
        group = [p for p in declined if p.first_class == cls]
        by_class[cls] = {"declined": len(group), "recovered": sum(1 for p in group if p.recovered)}
    caps = sum(world.violations[k] for k in ("visa_30d", "mastercard_24h", "mastercard_30d"))
    return {
        "strategy": name,
        "declined": len(declined),
        "recovered": len(recovered),
        "recovery_rate": round(len(recovered) / max(len(declined), 1), 4),
        "retries": retries,
        "retries_per_recovery": round(retries / max(len(recovered), 1), 3),
        "cap_violations": caps,
        "advice_floor_violations": world.violations["advice_floor"],
        "never_retry_retried": world.violations["hard_retried"],
        "by_class": by_class,
        "decisions_by_strategy": dict(sorted(used.items())),
        "seconds": round(elapsed, 2),
    }


# -- report ---------------------------------------------------------------------------------------------------

ORDER = ("none", "scheduled", "heuristic", "smart", "best_available", "oracle")


def table(rows: list[dict[str, Any]], oracle: int) -> str:
    head = (
        f"{'strategy':<22}{'declined':>9}{'recovered':>10}{'rate':>7}{'vs oracle':>10}{'retries':>8}{'r/rec':>7}"
        f"{'caps':>5}{'waits':>6}{'never':>6}{'funds':>7}{'generic':>8}{'tech':>6}{'s':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        c = r["by_class"]

        def share(cls: str, c: dict[str, Any] = c) -> float:
            return float(c[cls]["recovered"] / max(c[cls]["declined"], 1))

        lines.append(
            f"{r['strategy']:<22}{r['declined']:>9}{r['recovered']:>10}{r['recovery_rate']:>7.1%}"
            f"{r['recovered'] / max(oracle, 1):>10.3f}{r['retries']:>8}{r['retries_per_recovery']:>7.2f}"
            f"{r['cap_violations']:>5}{r['advice_floor_violations']:>6}{r['never_retry_retried']:>6}"
            f"{share('funds'):>7.1%}{share('generic'):>8.1%}{share('technical'):>6.1%}{r['seconds']:>6.1f}"
        )
    return "\n".join(lines)


def check(seed: int, rows: dict[str, dict[str, Any]]) -> list[str]:
    missed = []
    for r in rows.values():
        if r["strategy"] == "oracle":
            continue  # a yardstick, not a strategy: it retries every payment once, caps or not
        if r["cap_violations"] or r["advice_floor_violations"] or r["never_retry_retried"]:
            missed.append(f"seed {seed}: {r['strategy']} broke a network rule")
    oracle = max(rows["oracle"]["recovered"], 1)
    smart, best, heuristic = rows["smart"], rows["best_available"], rows["heuristic"]
    if smart["recovered"] < 0.95 * oracle:
        missed.append(f"seed {seed}: smart recovers {smart['recovered'] / oracle:.3f} of the oracle's recoveries")
    if best["recovered"] < smart["recovered"] - NOISE * oracle:
        missed.append(f"seed {seed}: best_available recovers less than smart")
    for r in (smart, best):
        if r["retries_per_recovery"] >= heuristic["retries_per_recovery"]:
            missed.append(f"seed {seed}: {r['strategy']} needs as many retries per recovery as heuristic")
    return missed


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "stdev": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
    }


def summarize_seeds(per_seed: dict[int, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    seeds = list(per_seed)
    summary: dict[str, Any] = {}
    for name in ORDER:
        rows_n = [per_seed[s][name] for s in seeds]
        pairs = list(zip(seeds, rows_n, strict=True))
        summary[name] = {
            "vs_oracle": spread([r["recovered"] / max(per_seed[s]["oracle"]["recovered"], 1) for s, r in pairs]),
            "recovery_rate": spread([r["recovery_rate"] for r in rows_n]),
            "retries_per_recovery": spread([r["retries_per_recovery"] for r in rows_n]),
            "violations": sum(
                r["cap_violations"] + r["advice_floor_violations"] + r["never_retry_retried"] for r in rows_n
            ),
        }
    return summary


def print_summary(title: str, summary: dict[str, Any]) -> None:
    print(f"\n{title} (mean [min, max] over seeds):")
    print(f"{'strategy':<16}{'vs oracle':>24}{'retries/recovery':>26}{'violations':>12}")
    for name, s in summary.items():
        vo, rr = s["vs_oracle"], s["retries_per_recovery"]
        print(
            f"{name:<16}{vo['mean']:>9.3f} [{vo['min']:.3f}, {vo['max']:.3f}]"
            f"{rr['mean']:>11.2f} [{rr['min']:.2f}, {rr['max']:.2f}]{s['violations']:>12}"
        )


async def scenario(
    title: str, seeds: tuple[int, ...], subs: int, days: int, burn_in: int
) -> dict[int, dict[str, dict[str, Any]]]:
    per_seed: dict[int, dict[str, dict[str, Any]]] = {}
    for seed in seeds:
        rows = {name: await run(name, seed, subs, days, burn_in) for name in ORDER}
        per_seed[seed] = rows
        print(
            f"\n{title}, seed {seed}: {subs} subscriptions billed monthly over {days} days; measured: payments"
            f" billed after a {burn_in}-day burn-in whose first charge declined"
        )
        print(table(list(rows.values()), rows["oracle"]["recovered"]))
    return per_seed


async def main_async(args: argparse.Namespace) -> int:
    seeds = SEEDS[: args.seeds] if args.seed is None else (args.seed,)
    per_seed = await scenario("history", seeds, args.subs, args.days, args.burn_in)
    missed = [m for seed, rows in per_seed.items() for m in check(seed, rows)]
    # New cards: a short run where most cards are charged once or twice, so a card's own history is thin and the
    # population's learning carries smart (as in a world whose cards the router meets for the first time).
    fresh = await scenario("new cards", seeds[: args.fresh_seeds], args.fresh_subs, 40, 10) if args.fresh_seeds else {}
    control = await run("heuristic", seeds[0], args.subs, args.days, args.burn_in, caps=False)
    print(
        f"\ncontrol (seed {seeds[0]}): with the caps switched off in the planner, heuristic makes"
        f" {control['cap_violations']} retries the networks would refuse; with them on, none."
    )
    summary = summarize_seeds(per_seed)
    print_summary(f"history: {args.days} days of monthly billing", summary)
    fresh_summary = summarize_seeds(fresh) if fresh else {}
    if fresh:
        print_summary("new cards: 40 days (reported, not a target)", fresh_summary)
        missed += [m for seed, rows in fresh.items() for m in check(seed, rows) if "network rule" in m]
    for m in missed:
        print(f"TARGET MISSED: {m}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "retry",
                "subscriptions": args.subs,
                "seeds": list(seeds),
                "billing_days": args.days,
                "burn_in_days": args.burn_in,
                "baseline": "heuristic, and the oracle (one retry at the right moment)",
                "per_seed": {str(s): r for s, r in per_seed.items()},
                "summary": summary,
                "new_cards": {
                    "subscriptions": args.fresh_subs,
                    "billing_days": 40,
                    "burn_in_days": 10,
                    "per_seed": {str(s): r for s, r in fresh.items()},
                    "summary": fresh_summary,
                },
                "control_without_caps": control,
                "targets_met": not missed,
                "targets_missed": missed,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 1 if missed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="how many of the fixed seeds to run")
    parser.add_argument("--seed", type=int, default=None, help="run this one seed instead")
    parser.add_argument("--days", type=int, default=150, help="billing runs over this many days")
    parser.add_argument("--burn-in", type=int, default=60, help="days of billing that only warm the history up")
    parser.add_argument("--fresh-seeds", type=int, default=2, help="seeds of the new-cards run (0: skip it)")
    parser.add_argument("--fresh-subs", type=int, default=2000, help="subscriptions in the new-cards run")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
