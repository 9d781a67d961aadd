"""Stored payment methods: create, retrieve, update (add or remove one processor's credentials), list, detach.

Each processor's credentials are checked, at create and update, against the model its adapter declares
(`ProcessorAdapter.credentials_model`): a wrong or missing field is a 400 naming `processors.<name>.<field>`, and a
processor the config does not know is a 400 naming `processors.<name>`. They are never returned whole.
`StoreMethods` is what the engine resolves a payment's `payment_method` through (`router.payments.methods`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from adapters.base import CardCredentials, CardInfo
from router.errors import PayrouteError, invalid, not_found
from router.model.inputs import check_params
from router.model.params import param_error
from router.model.payment_methods import (
    PaymentMethod,
    PaymentMethodCreateParams,
    PaymentMethodUpdateParams,
    render_payment_method,
)
from router.model.records import DEFAULT_ACCOUNT
from router.payments.context import Context
from router.payments.methods import ResolvedMethod
from router.state.store.sql import Store

MAX_LIST = 100


def _parse(model: type[Any], body: Any) -> Any:
    if not isinstance(body, dict):
        raise PayrouteError("The request body must be a JSON object.", code="parameter_invalid")
    check_params(body)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise param_error(exc) from None


class PaymentMethodsApi:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _credentials(self, name: str, fields: Mapping[str, str]) -> CardCredentials:
        table = self.ctx.live.current
        adapter = table.adapters.get(name)
        if adapter is None:
            raise invalid(f"No processor named '{name}' is configured.", f"processors.{name}")
        try:
            return adapter.credentials_model.model_validate(dict(fields))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(str(x) for x in err["loc"])
            param = f"processors.{name}.{field}" if field else f"processors.{name}"
            message = str(err["msg"]).removeprefix("Value error, ")
            adapter_name = table.config.processors[name].adapter
            raise invalid(f"Invalid {param} for a {adapter_name} card: {message}", param) from None

    def _shown(self, pm: PaymentMethod) -> dict[str, dict[str, str]]:
        adapters = self.ctx.live.current.adapters
        shown: dict[str, dict[str, str]] = {}
        for name, fields in pm.processors.items():
            adapter = adapters.get(name)
            try:
                shown[name] = adapter.credentials_model.model_validate(fields).shown() if adapter else {}
            except ValidationError:
                shown[name] = {}
            if adapter is None or not shown[name]:
                shown[name] = {k: "…" for k in fields}  # not checkable now: show nothing of it
        return shown

    def render(self, pm: PaymentMethod) -> dict[str, Any]:
        return render_payment_method(pm, self._shown(pm))

    async def _load(self, pm_id: str, livemode: bool, account: str) -> PaymentMethod:
        pm = await self.ctx.store.get_payment_method(pm_id)
        if pm is None or pm.livemode != livemode or pm.account != account:
            raise not_found("payment_method", pm_id)
        return pm

    async def create(self, body: Any, livemode: bool, account: str = DEFAULT_ACCOUNT) -> dict[str, Any]:
        p: PaymentMethodCreateParams = _parse(PaymentMethodCreateParams, body)
        for name, fields in p.processors.items():
            self._credentials(name, fields)
        pm = PaymentMethod(
            id=p.id or self.ctx.ids.new("payment_method"),
            livemode=livemode,
            account=account,
            created=self.ctx.clock.now(),
            customer=p.customer,
            card=p.card,
            network_transaction_id=p.network_transaction_id,
            processors={name: dict(fields) for name, fields in p.processors.items()},
            metadata=dict(p.metadata or {}),
        )
        if not await self.ctx.store.insert_payment_method(pm):
            raise invalid(f"A payment method with id '{pm.id}' already exists.", "id", code="resource_already_exists")
        return self.render(pm)

    async def retrieve(self, pm_id: str, livemode: bool, account: str = DEFAULT_ACCOUNT) -> dict[str, Any]:
        return self.render(await self._load(pm_id, livemode, account))

    async def update(self, pm_id: str, body: Any, livemode: bool, account: str = DEFAULT_ACCOUNT) -> dict[str, Any]:
        p: PaymentMethodUpdateParams = _parse(PaymentMethodUpdateParams, body)
        pm = await self._load(pm_id, livemode, account)
        if pm.detached:
            raise invalid("A detached payment method cannot be updated.", "id", code="payment_method_detached")
        processors = dict(pm.processors)
        for name, fields in (p.processors or {}).items():
            if fields == "":
                processors.pop(name, None)
            else:
                self._credentials(name, fields)
                processors[name] = dict(fields)
        metadata = {**pm.metadata, **(p.metadata or {})}
        updated = pm.model_copy(
            update={
                "processors": processors,
                "metadata": {k: v for k, v in metadata.items() if v != ""},
                "card": p.card or pm.card,
                "network_transaction_id": p.network_transaction_id or pm.network_transaction_id,
            }
        )
        await self.ctx.store.save_payment_method(updated)
        return self.render(updated)

    async def detach(self, pm_id: str, livemode: bool, account: str = DEFAULT_ACCOUNT) -> dict[str, Any]:
        """Detached, a payment method can no longer be charged: its credentials are dropped, the card facts kept."""
        pm = await self._load(pm_id, livemode, account)
        detached = pm.model_copy(update={"detached": True, "processors": {}})
        await self.ctx.store.save_payment_method(detached)
        return self.render(detached)

    async def list(
        self,
        livemode: bool,
        customer: str | None = None,
        limit: int = 10,
        starting_after: str | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> dict[str, Any]:
        if not 1 <= limit <= MAX_LIST:
            raise invalid(f"limit must be between 1 and {MAX_LIST}.", "limit")
        found = await self.ctx.store.list_payment_methods(livemode, customer, limit + 1, starting_after, account)
        return {
            "object": "list",
            "data": [self.render(pm) for pm in found[:limit]],
            "has_more": len(found) > limit,
            "url": "/v1/payment_methods",
        }


class StoreMethods:
    """The engine's view of stored payment methods (`router.payments.methods.StoredMethods`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def resolve_payment_method(self, payment_method: str, livemode: bool, account: str) -> ResolvedMethod | None:
        pm = await self.store.get_payment_method(payment_method)
        if pm is None or pm.livemode != livemode or pm.account != account:
            return None
        card = CardInfo(pm.card.brand, pm.card.country, pm.card.funding, pm.card.fingerprint or pm.id)
        return ResolvedMethod(
            card=card,
            credentials={} if pm.detached else pm.processors,
            network_transaction_id=pm.network_transaction_id,
            stored_id=pm.id,
        )

    async def chain_payment_method(self, payment_method_id: str, network_transaction_id: str) -> None:
        pm = await self.store.get_payment_method(payment_method_id)
        if pm is not None and not pm.network_transaction_id:
            await self.store.save_payment_method(
                pm.model_copy(update={"network_transaction_id": network_transaction_id})
            )
