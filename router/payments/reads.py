"""Reads: payments, their records and attempts, events. Each object is seen only in its own mode: a test key
never sees a live object and the other way round."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from router.errors import invalid, not_found
from router.model.objects import Event, OffSessionPayment, PaymentAttemptRecord, PaymentRecord
from router.model.records import DEFAULT_ACCOUNT, AttemptRecord, Payment
from router.model.render import render_attempt_record, render_event, render_payment, render_payment_record
from router.state.store.base import Cursor, EventQuery
from router.state.store.sql import Store


class Reads:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def load(self, payment_id: str, livemode: bool, account: str = DEFAULT_ACCOUNT) -> Payment:
        p = await self.store.get_payment(payment_id)
        if p is None or p.livemode != livemode or p.account != account:
            # A test key never sees a live payment and the other way round, nor one account's key another
            # account's payment: to each it does not exist.
            raise not_found("off_session_payment", payment_id)
        return p

    async def _owns(self, payment_id: str, account: str) -> bool:
        """Records and attempts belong to the account of their payment (written with it, in one transaction)."""
        p = await self.store.get_payment(payment_id)
        return p is not None and p.account == account

    async def render(self, payment: Payment, include_details: bool = False) -> OffSessionPayment:
        attempt = None
        if include_details and payment.latest_payment_attempt_record:
            attempt = await self.store.get_attempt(payment.latest_payment_attempt_record)
        return render_payment(payment, attempt)

    async def get_payment(
        self, payment_id: str, livemode: bool, include_details: bool, account: str = DEFAULT_ACCOUNT
    ) -> OffSessionPayment:
        return await self.render(await self.load(payment_id, livemode, account), include_details)

    async def list_payments(
        self,
        livemode: bool,
        limit: int,
        cursor: Cursor | None,
        direction: Literal["next", "previous"],
        include_details: bool = False,
        account: str = DEFAULT_ACCOUNT,
    ) -> tuple[list[OffSessionPayment], bool, list[Payment]]:
        if not 1 <= limit <= 100:
            raise invalid("limit must be between 1 and 100.", "limit")
        page = await self.store.list_payments(livemode, limit, cursor, direction, account=account)
        if include_details:
            objects = [await self.render(p, include_details=True) for p in page.payments]
        else:
            objects = [render_payment(p) for p in page.payments]
        return objects, page.has_more, page.payments

    async def get_payment_record(self, record_id: str, livemode: bool, account: str = DEFAULT_ACCOUNT) -> PaymentRecord:
        r = await self.store.get_payment_record(record_id)
        if r is None or r.livemode != livemode or not await self._owns(r.payment_id, account):
            raise not_found("payment_record", record_id)
        return render_payment_record(r)

    async def list_attempt_records(
        self, payment_record: str, livemode: bool, account: str = DEFAULT_ACCOUNT
    ) -> list[PaymentAttemptRecord]:
        r = await self.store.get_payment_record(payment_record)
        if r is None or r.livemode != livemode or not await self._owns(r.payment_id, account):
            raise not_found("payment_record", payment_record, param="payment_record")
        return [render_attempt_record(a) for a in await self.store.list_attempts(payment_record)]

    async def get_attempt_record(
        self, attempt_id: str, livemode: bool, account: str = DEFAULT_ACCOUNT
    ) -> PaymentAttemptRecord:
        a = await self.store.get_attempt(attempt_id)
        if a is None or a.livemode != livemode or not await self._owns(a.payment_id, account):
            raise not_found("payment_attempt_record", attempt_id)
        return render_attempt_record(a)

    async def attempts_for(
        self, payment_id: str, livemode: bool, account: str = DEFAULT_ACCOUNT
    ) -> list[AttemptRecord]:
        p = await self.load(payment_id, livemode, account)
        return await self.store.list_attempts(p.payment_record)

    async def list_events(self, livemode: bool, object_id: str | None, limit: int) -> list[Event]:
        return [render_event(e) for _, e in await self.store.list_events(livemode, object_id, limit)]

    async def page_events(self, query: EventQuery) -> tuple[list[Event], bool, int | None]:
        """A page of one account's events, newest first: (objects, has_more, the sequence number to continue
        before)."""
        if not 1 <= query.limit <= 100:
            raise invalid("limit must be between 1 and 100.", "limit")
        asked = query.limit
        rows = await self.store.page_events(replace(query, limit=asked + 1))
        page = rows[:asked]
        return [render_event(e) for _, e in page], len(rows) > asked, page[-1][0] if page else None

    async def get_event(self, event_id: str, livemode: bool, account: str = DEFAULT_ACCOUNT) -> Event:
        e = await self.store.get_event(event_id)
        if e is None or e.livemode != livemode or e.account != account:
            raise not_found("event", event_id)
        return render_event(e)
