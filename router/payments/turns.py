"""A card's turn: one attempt of a card at a time between reading its network caps and writing that attempt down.

A cap is checked by reading the card's recent attempts and kept by the attempt's first write (`processing`, which
every later read counts as a possible decline), before anything is sent. Two attempts of one card checked
together both read the card as it was before either was written, and both went out: a decline over the cap
(Mastercard charges for it). Each attempt holds its card's turn from that read to its first write, and lets it go
before the processor is called, so a slow processor holds no other payment of the card.

In this process the turn is a lock per card. Where other processes write to the same store (replicas on
PostgreSQL, `--workers N` on one SQLite file) the holder of the process's lock also holds the card in the store
(`CardLeases`, a lease row), so the attempts of one card take turns across processes too.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Protocol

log = logging.getLogger("payroute.engine")


class CardLeases(Protocol):
    """The store's side of a turn (router.state.store.sql.Store.take_card)."""

    async def take_card(self, card: str) -> str | None: ...

    async def release_card(self, card: str, claim: str) -> None: ...


class _Card:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # attempts holding or awaiting the turn; the card is forgotten when none is left


class CardTurns:
    def __init__(self, leases: CardLeases | None = None) -> None:
        self._cards: dict[str, _Card] = {}
        self._leases = leases

    def turn(self, fingerprint: str | None) -> Turn:
        """The card's turn, to hold in `async with`; `Turn.release()` gives it up early. No fingerprint, no turn."""
        return Turn(self, fingerprint)


class Turn:
    __slots__ = ("_card", "_claim", "_held", "_turns")

    def __init__(self, turns: CardTurns, card: str | None) -> None:
        self._turns = turns
        self._card = card
        self._held = False
        self._claim: str | None = None

    async def __aenter__(self) -> Turn:
        await self.take()
        return self

    async def take(self) -> None:
        """Wait for the card's turn and hold it (until `release()`)."""
        card = self._card
        if card is None or self._held:
            return
        cards = self._turns._cards
        entry = cards.get(card)
        if entry is None:
            entry = cards[card] = _Card()
        entry.users += 1
        try:
            await entry.lock.acquire()
        except BaseException:
            self._leave(entry)
            raise
        leases = self._turns._leases
        if leases is not None:
            try:
                self._claim = await leases.take_card(card)
            except BaseException:
                entry.lock.release()
                self._leave(entry)
                raise
        self._held = True

    async def release(self) -> None:
        """Give the turn up (once; again is nothing): the attempt is written down."""
        if not self._held or self._card is None:
            return
        self._held = False
        card, claim = self._card, self._claim
        self._claim = None
        try:
            if claim is not None and self._turns._leases is not None:
                await self._turns._leases.release_card(card, claim)
        except Exception:
            # The attempt is written, which is what the turn was for; the lease lapses on its own.
            log.warning("card turn not released in the store; it lapses", exc_info=True)
        finally:
            entry = self._turns._cards[card]
            entry.lock.release()
            self._leave(entry)

    def _leave(self, entry: _Card) -> None:
        entry.users -= 1
        if entry.users == 0 and self._card is not None:
            del self._turns._cards[self._card]

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()
