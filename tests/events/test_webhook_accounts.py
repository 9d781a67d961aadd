"""Webhook endpoints and accounts: an endpoint given `accounts` receives those accounts' events only."""

from __future__ import annotations

from router import Router
from router.config.loader import parse
from router.config.schema import Config
from tests.events.eventkit import CONFIG, SECRET, OpenRouter, Receiver, params

SHOP_ONLY = CONFIG + '  - {url: "${HOOK_URL}-shop", events: ["*"], secret: "${HOOK_SECRET}", accounts: [acct_shop]}\n'


async def test_an_endpoint_for_one_account_gets_only_its_events(receiver: Receiver, open_router: OpenRouter) -> None:
    config: Config = parse(
        SHOP_ONLY, "events-test.yaml", {"HOOK_URL": receiver.url(), "HOOK_SECRET": SECRET, "HOOK_SECRET_2": SECRET}
    )
    router: Router = await open_router(config=config)
    shop = await router.create_payment(params(customer="cus_shop"), account="acct_shop")
    blog = await router.create_payment(params(customer="cus_blog"), account="acct_blog")
    await router.webhooks.run_once()
    shop_hook = {d.event["related_object"]["id"] for d in receiver.received_on("/hooks-shop")}
    every = {d.event["related_object"]["id"] for d in receiver.received_on("/hooks")}
    assert shop_hook == {shop["id"]}, "another account's events never reach it"
    assert every == {shop["id"], blog["id"]}, "an endpoint without accounts gets every account's, as before"
