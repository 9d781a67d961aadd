"""The store's account scoping, events page and install secret, on SQLite, PostgreSQL and memory alike."""

from __future__ import annotations

from datetime import timedelta

from router.model import events as ev
from router.state.store import Store
from router.state.store.base import EventQuery, to_us
from tests.store.test_store import T0, ids, payment


async def _made(store: Store, account: str, minutes: int) -> str:
    p, r = payment(created=T0 + timedelta(minutes=minutes))
    p = p.model_copy(update={"account": account})
    paused = p.model_copy(update={"status": "paused"})
    events = [
        ev.event_for(ids, ev.CREATED, p, p.created),
        ev.event_for(ids, ev.PAUSED, paused, p.created + timedelta(seconds=1), before=p),
    ]
    await store.create_payment(p, r, events)
    return p.id


async def test_lists_and_events_are_one_accounts(store: Store) -> None:
    shop = [await _made(store, "acct_shop", m) for m in (0, 2)]
    blog = [await _made(store, "acct_blog", 1)]
    page = await store.list_payments(False, 10, account="acct_shop")
    assert [p.id for p in page.payments] == shop[::-1]
    assert [p.account for p in page.payments] == ["acct_shop", "acct_shop"]
    assert [p.id for p in (await store.list_payments(False, 10, account="acct_blog")).payments] == blog
    assert (await store.list_payments(False, 10)).payments == [], "the default account has none"

    rows = await store.page_events(EventQuery(livemode=False, limit=10, account="acct_shop"))
    assert [e.object_id for _, e in rows] == [shop[1], shop[1], shop[0], shop[0]], "newest first"
    assert [s for s, _ in rows] == sorted((s for s, _ in rows), reverse=True)
    assert all(e.account == "acct_shop" for _, e in rows)

    paused = await store.page_events(EventQuery(livemode=False, limit=10, account="acct_shop", types=(ev.PAUSED,)))
    assert [e.type for _, e in paused] == [ev.PAUSED, ev.PAUSED]
    one = await store.page_events(EventQuery(livemode=False, limit=10, account="acct_shop", object_id=shop[0]))
    assert {e.object_id for _, e in one} == {shop[0]}
    older = await store.page_events(EventQuery(livemode=False, limit=10, account="acct_shop", before_seq=rows[1][0]))
    assert [s for s, _ in older] == [s for s, _ in rows[2:]]
    at = to_us(T0 + timedelta(minutes=2))
    window = await store.page_events(
        EventQuery(livemode=False, limit=10, account="acct_shop", created_gte_us=at, created_lt_us=at + 2_000_000)
    )
    assert {e.object_id for _, e in window} == {shop[1]} and len(window) == 2
    gt = await store.page_events(EventQuery(livemode=False, limit=10, account="acct_shop", created_gt_us=at))
    assert [e.type for _, e in gt] == [ev.PAUSED]
    lte = await store.page_events(EventQuery(livemode=False, limit=10, account="acct_shop", created_lte_us=at))
    assert len(lte) == 3
    assert await store.page_events(EventQuery(livemode=True, limit=10, account="acct_shop")) == []


async def test_the_install_secret_is_made_once(store: Store) -> None:
    first = await store.install_secret()
    assert len(first) == 32
    assert await store.install_secret() == first
