"""The console in a real Chromium: sign in, browse tenants and configs, filter, read values
with secrets masked, the history, diffs, rollback, delete and effective values."""

from __future__ import annotations

import asyncio
import json
import re

from console_harness import CONSOLE_LOOP, ConsolePage, OpenConsole, Server, seed
from playwright.async_api import Route, expect

pytestmark = CONSOLE_LOOP

V1 = {"llm_model": "gpt-4o", "temperature": 0.2, "api_key": "sk-live-first"}
V2 = {
    "llm_model": "gpt-4o-mini",
    "temperature": 0.3,
    "api_key": "sk-live-second",
    "max_tokens": 2048,
}


async def seed_bot(server: Server, tenant: str) -> None:
    for value, author, comment in ((V1, "alice", "first model"), (V2, "bob", "cheaper model")):
        write = ("agent", "support-bot", "llm_settings", value)
        await seed(server, tenant, [write], updated_by=author, comment=comment)
    await seed(
        server,
        tenant,
        [
            ("agent", "support-bot", "prompts", {"greeting": "Hello!"}),
            ("agent", "triage-bot", "llm_settings", {"llm_model": "gpt-4o"}),
            (
                "routing",
                "router",
                "routing_rules",
                {"rules": [{"match": "billing", "to": "billing-bot"}]},
            ),
            ("telemetry", "telemetry", "telemetry_config", {"enabled": True}),
        ],
    )


def config_route(tenant: str, scope: str, service: str, key: str) -> str:
    return f"#/t/{tenant}/{scope}/{service}/{key}"


async def test_sign_in_browse_filter_diff_and_roll_back(
    console: ConsolePage, server: Server
) -> None:
    await seed_bot(server, "browse-co")
    page = console.page
    await console.open()
    await console.screenshot("01-sign-in")
    await console.sign_in("ops")
    await expect(page.get_by_role("heading", name="Tenants")).to_be_visible()
    await console.screenshot("02-tenants")

    await page.get_by_role("link", name="browse-co").click()
    tree = page.locator("#config-tree")
    await expect(tree.get_by_role("link")).to_have_count(5)
    await expect(tree.get_by_role("heading", level=3)).to_have_text(
        ["agent", "routing", "telemetry"]
    )
    await expect(tree.get_by_role("heading", level=4)).to_have_text(
        ["support-bot", "triage-bot", "router", "telemetry"]
    )
    await console.screenshot("03-tenant")

    await page.get_by_label("Filter configs").fill("support llm")
    await expect(tree.get_by_role("link")).to_have_count(1)
    await expect(page.locator("#filter-count")).to_have_text("1 of 5 configs match")
    await page.get_by_label("Filter configs").fill("nothing-like-this")
    await expect(tree).to_contain_text("Nothing matches the filter.")
    await page.get_by_label("Filter configs").fill("llm")
    await expect(tree.get_by_role("link")).to_have_count(2)
    await console.screenshot("04-filtered")

    await tree.get_by_role("link", name="llm_settings v2").first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("llm_settings")
    await expect(page.locator("#version-badge")).to_have_text("v2")
    value = page.locator("pre.json")
    shown = json.loads(await value.inner_text())
    assert shown == {**V2, "api_key": "***"}
    assert "sk-live" not in await page.content()
    await expect(page.locator(".meta")).to_contain_text("by bob")
    await console.screenshot("05-value")

    await page.get_by_role("tab", name="History (2)").click()
    events = page.locator(".timeline > li")
    await expect(events).to_have_count(2)
    await expect(events.nth(0)).to_contain_text("Version 2")
    await expect(events.nth(0)).to_contain_text("bob")
    await expect(events.nth(0)).to_contain_text("cheaper model")
    await expect(events.nth(1)).to_contain_text("alice")
    await console.screenshot("06-history")

    await page.get_by_role("button", name="Compare v1 with current").click()
    await expect(page.get_by_label("From version")).to_have_value("1")
    await expect(page.get_by_label("To version")).to_have_value("2")
    rows = page.locator("table.diff tbody tr")
    await expect(rows).to_have_count(4)
    await expect(page.locator("table.diff thead th")).to_have_text(
        ["Field", "Version 1", "Version 2"]
    )
    await expect(rows.filter(has_text="llm_model")).to_contain_text('"gpt-4o"')
    await expect(rows.filter(has_text="llm_model")).to_contain_text('"gpt-4o-mini"')
    await expect(rows.filter(has_text="max_tokens")).to_contain_text("added")
    await expect(rows.filter(has_text="api_key")).to_contain_text("***")
    await console.screenshot("07-diff")

    await page.get_by_role("tab", name="History (2)").click()
    await page.get_by_role("button", name="Roll back to v1…").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("This writes version 3 with the value of version 1.")
    await expect(dialog.locator("table.diff thead th")).to_have_text(
        ["Field", "Now (v2)", "After (= v1)"]
    )
    await expect(dialog.locator("table.diff tbody tr")).to_have_count(4)
    await console.screenshot("08-rollback-confirm")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    async with server.store() as store:
        assert (
            await store.get_config("browse-co", "agent", "support-bot", "llm_settings")
        ).version == 2

    await page.get_by_role("button", name="Roll back to v1…").click()
    await dialog.get_by_label("Comment (optional)").fill("v2 broke the bot")
    await dialog.get_by_role("button", name="Roll back to v1").click()
    await expect(page.locator("#toast")).to_contain_text("version 3 has the value of version 1")
    await expect(page.locator("#version-badge")).to_have_text("v3")
    await expect(events).to_have_count(3)
    await expect(events.nth(0)).to_contain_text("v2 broke the bot")
    await expect(events.nth(0)).to_contain_text("ops")
    await console.screenshot("09-rolled-back")
    async with server.store() as store:
        entry = await store.get_config("browse-co", "agent", "support-bot", "llm_settings")
    assert (entry.version, entry.config_value, entry.updated_by) == (3, V1, "ops")
    assert entry.comment == "v2 broke the bot"


async def test_show_secrets_reveals_them_to_a_write_token_only_when_asked(
    console: ConsolePage, server: Server
) -> None:
    await seed_bot(server, "secret-co")
    await console.open(config_route("secret-co", "agent", "support-bot", "llm_settings"))
    await console.sign_in("ops")
    page = console.page
    await expect(page.locator("pre.json")).to_contain_text('"api_key": "***"')
    toggle = page.get_by_role("button", name="Show secrets")
    await toggle.click()
    await expect(page.locator("pre.json")).to_contain_text('"api_key": "sk-live-second"')
    await expect(page.get_by_role("button", name="Hide secrets")).to_have_attribute(
        "aria-pressed", "true"
    )
    await page.get_by_role("button", name="Hide secrets").click()
    await expect(page.locator("pre.json")).to_contain_text('"api_key": "***"')


async def test_delete_needs_the_key_typed_and_keeps_the_history(
    console: ConsolePage, server: Server
) -> None:
    await seed_bot(server, "delete-co")
    page = console.page
    await console.open(config_route("delete-co", "agent", "support-bot", "prompts"))
    await console.sign_in("ops")
    await page.get_by_role("button", name="Delete…").click()
    dialog = page.get_by_role("dialog")
    confirm = dialog.get_by_role("button", name="Delete config")
    await expect(confirm).to_be_disabled()
    typed = dialog.get_by_label("Type the config key to confirm")
    await typed.fill("prompt")
    await expect(confirm).to_be_disabled()
    await typed.press("Enter")  # submitting the form early deletes nothing
    await typed.fill("prompts")
    await expect(confirm).to_be_enabled()
    await console.screenshot("10-delete-confirm")
    async with server.store() as store:
        assert await store.get_config("delete-co", "agent", "support-bot", "prompts") is not None
    await confirm.click()
    await expect(page.locator("#toast")).to_contain_text("Deleted prompts")
    await expect(page.locator("#version-badge")).to_have_text("v2 (deleted)")
    await expect(page.locator("#tab-panel")).to_contain_text("This config is deleted")
    await expect(page.locator("#config-tree").get_by_role("link", name="prompts v1")).to_have_count(
        0
    )
    async with server.store() as store:
        assert await store.get_config("delete-co", "agent", "support-bot", "prompts") is None
        history = await store.get_config_history("delete-co", "agent", "support-bot", "prompts")
    assert [(entry.version, entry.deleted) for entry in history] == [(2, True), (1, False)]

    await page.get_by_role("tab", name="History (2)").click()
    await page.get_by_role("button", name="Roll back to v1…").click()
    await page.get_by_role("dialog").get_by_role("button", name="Roll back to v1").click()
    await expect(page.locator("#version-badge")).to_have_text("v3")
    await expect(
        page.locator("#config-tree").get_by_role("link", name="prompts v3")
    ).to_be_visible()


async def test_the_effective_value_shows_where_each_field_comes_from(
    console: ConsolePage, server: Server
) -> None:
    await seed(
        server,
        "default",
        [
            (
                "system",
                "system",
                "system_config",
                {
                    "llm_model": "gpt-4o",
                    "vespa_url": "http://vespa.internal",
                    "llm_api_key": "sk-platform",
                },
            )
        ],
    )
    await seed(
        server, "layered-co", [("system", "system", "system_config", {"llm_model": "claude-3"})]
    )
    page = console.page
    await console.open(config_route("layered-co", "system", "system", "system_config"))
    await console.sign_in("ops")
    await page.get_by_role("tab", name="Effective").click()
    rows = page.locator("table.effective tbody tr")
    llm_model = rows.filter(has=page.get_by_role("rowheader", name="llm_model", exact=True))
    await expect(llm_model).to_contain_text('"claude-3"')
    await expect(llm_model).to_contain_text("this tenant layered-co v1")
    vespa = rows.filter(has=page.get_by_role("rowheader", name="vespa_url", exact=True))
    await expect(vespa).to_contain_text("base tenant default v1")
    port = rows.filter(has=page.get_by_role("rowheader", name="vespa_port", exact=True))
    await expect(port).to_contain_text("schema default")
    secret = rows.filter(has=page.get_by_role("rowheader", name="llm_api_key", exact=True))
    await expect(secret).to_contain_text("***")
    assert "sk-platform" not in await page.content()
    await console.screenshot("11-effective")


async def test_untyped_configs_have_no_effective_tab(console: ConsolePage, server: Server) -> None:
    await seed_bot(server, "untyped-co")
    await console.open(config_route("untyped-co", "agent", "support-bot", "prompts"))
    await console.sign_in("ops")
    tabs = console.page.get_by_role("tab")
    await expect(tabs).to_have_text(["Value", "History (1)", "Compare"])


async def test_everything_works_from_the_keyboard(console: ConsolePage, server: Server) -> None:
    await seed_bot(server, "keys-co")
    page = console.page
    await console.open("#/t/keys-co")
    await page.keyboard.type(server.tokens["ops"])  # the token field has the focus
    await page.keyboard.press("Enter")
    await console.wait_until_shown()  # "/" before the config pane exists has nothing to focus
    await page.locator("body").press("/")
    await expect(page.get_by_label("Filter configs")).to_be_focused()
    await page.keyboard.type("triage")
    await page.keyboard.press("ArrowDown")
    focused = page.locator("#config-tree a:focus")
    await expect(focused).to_contain_text("llm_settings")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_be_focused()
    await expect(page.locator(".crumbs")).to_contain_text("triage-bot")
    await page.get_by_role("tab", name="Value").focus()
    await page.keyboard.press("ArrowRight")
    await expect(page.get_by_role("tab", name="History (1)")).to_be_focused()
    await expect(page.get_by_role("tab", name="History (1)")).to_have_attribute(
        "aria-selected", "true"
    )
    await page.keyboard.press("End")
    await expect(page.get_by_role("tab", name="Compare")).to_be_focused()
    delete = page.get_by_role("button", name="Delete…")
    await delete.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Type the config key to confirm")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_be_hidden()
    await expect(delete).to_be_focused()


async def test_a_second_tab_must_sign_in_again(open_console: OpenConsole, server: Server) -> None:
    first = await open_console()
    await first.sign_in("ops")
    await first.page.reload()
    await first.wait_until_shown()  # the session survives a reload
    second = await open_console()
    await second.open()
    await expect(second.page.get_by_label("API token")).to_be_visible()


async def test_an_answer_for_a_page_left_meanwhile_is_not_drawn_over_the_next(
    console: ConsolePage, server: Server
) -> None:
    """Answers may come back in any order: the history of a config the user has left, arriving
    after the next config's page is drawn, leaves that page as it is (it was drawn over it)."""
    await seed(
        server,
        "order-co",
        [
            ("agent", "order-bot", "first_key", {"n": 1}),
            ("agent", "order-bot", "second_key", {"n": 2}),
        ],
    )
    page = console.page
    await console.open("#/t/order-co")
    await console.sign_in("ops")
    held: asyncio.Future[Route] = asyncio.get_running_loop().create_future()
    await page.route(
        re.compile(r"/order-bot/first_key/history\?"), lambda route: held.set_result(route)
    )
    await console.go(config_route("order-co", "agent", "order-bot", "first_key"))
    first_history = await held  # sent, and its answer held back
    await console.go(config_route("order-co", "agent", "order-bot", "second_key"))
    title = page.get_by_role("heading", level=1)
    await expect(title).to_have_text("second_key")
    await first_history.continue_()
    # The workspace stays busy until the first route's load has ended: it has seen its answer.
    await page.locator('#workspace[aria-busy="false"]').wait_for()
    await expect(title).to_have_text("second_key")
    await expect(page.locator("pre.json")).to_contain_text('"n": 2')
    await expect(page.locator("#config-tree a[aria-current=page]")).to_have_text("second_key v1")
