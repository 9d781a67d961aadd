"""What the payments modules share: the services' context (the table in force, a payment's time and record are
`router.payments.current`'s).

`Router` (router/api.py) builds one `Context` and hands it to each payments module; nothing here reaches back up
into the facade.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from adapters.base import CardInfo
from router.clock import Clock
from router.ids import IdGenerator
from router.model.records import Payment
from router.payments.current import LiveTable, payment_now
from router.payments.engine import Engine
from router.state.store.sql import Store

if TYPE_CHECKING:
    from router.payments.methods import PaymentMethods


@dataclass(slots=True)
class Context:
    store: Store
    clock: Clock
    ids: IdGenerator
    live: LiveTable
    engine: Engine
    owner: str
    card_info: Callable[[str], CardInfo]
    methods: PaymentMethods

    async def now_for(self, payment: Payment) -> datetime:
        return await payment_now(self.store, self.clock, payment)
