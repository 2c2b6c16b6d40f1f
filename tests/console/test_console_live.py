"""Live updates in a real Chromium: writes made by other processes than the server (the
``confstore`` command, or this test's own store on the served file) appear in an open console
through the /v1/watch event stream, without a reload."""

from __future__ import annotations

import json

from console_harness import CONSOLE_LOOP, ConsolePage, OpenConsole, Server, seed
from playwright.async_api import expect

pytestmark = CONSOLE_LOOP

NOT_RELOADED = "window.__not_reloaded"


async def mark_page(console: ConsolePage) -> None:
    """A flag that only survives as long as the page is not reloaded."""
    await console.page.evaluate(f"{NOT_RELOADED} = true")


async def test_a_write_from_another_process_appears_live(
    console: ConsolePage, server: Server
) -> None:
    await seed(server, "live-co", [("agent", "live-bot", "llm_settings", {"llm_model": "first"})])
    page = console.page
    await console.open("#/t/live-co/agent/live-bot/llm_settings")
    await console.sign_in("ops")
    await expect(page.locator("#version-badge")).to_have_text("v1")
    await mark_page(console)

    value = json.dumps({"llm_model": "second", "temperature": 0.5})
    server.cli(
        "set", "-t", "live-co", "agent", "live-bot", "llm_settings", value,
        "--by", "carol", "--comment", "from the CLI",
    )  # fmt: skip
    await expect(page.locator("#version-badge")).to_have_text("v2")
    await expect(page.locator("pre.json")).to_contain_text('"llm_model": "second"')
    await expect(page.locator("#live-notice")).to_have_text(
        "This config was just updated to version 2 by carol."
    )
    await expect(page.locator(".meta")).to_contain_text("from the CLI")
    tree = page.locator("#config-tree")
    await expect(tree.get_by_role("link", name="llm_settings v2")).to_be_visible()

    await seed(server, "live-co", [("routing", "router", "routing_rules", {"rules": []})])
    await expect(tree.get_by_role("heading", level=3)).to_have_text(["agent", "routing"])
    await expect(tree.get_by_role("link", name="routing_rules v1")).to_be_visible()
    await console.screenshot("12-live-update")
    assert await page.evaluate(NOT_RELOADED) is True


async def test_new_tenants_and_deletions_appear_live(
    open_console: OpenConsole, server: Server
) -> None:
    await seed(server, "gone-co", [("agent", "gone-bot", "prompts", {"greeting": "bye"})])
    tenants = await open_console()
    await tenants.sign_in("ops")
    detail = await open_console()
    await detail.open("#/t/gone-co/agent/gone-bot/prompts")
    await detail.sign_in("ops")
    await expect(detail.page.locator("#version-badge")).to_have_text("v1")
    names = tenants.page.locator(".tenant-name")
    await expect(names.filter(has_text="gone-co")).to_have_count(1)
    for console in (tenants, detail):
        await mark_page(console)

    await seed(server, "fresh-co", [("agent", "new-bot", "prompts", {"greeting": "hi"})])
    await expect(names.filter(has_text="fresh-co")).to_have_count(1)

    server.cli("delete", "-t", "gone-co", "agent", "gone-bot", "prompts")
    await expect(detail.page.locator("#version-badge")).to_have_text("v2 (deleted)")
    await expect(detail.page.locator("#live-notice")).to_have_text("This config was just deleted.")
    await expect(detail.page.locator("#config-tree")).to_contain_text("no live config")
    await expect(names.filter(has_text="gone-co")).to_have_count(0)
    for console in (tenants, detail):
        assert await console.page.evaluate(NOT_RELOADED) is True


async def test_a_live_update_keeps_the_keyboard_focus_where_it_was(
    console: ConsolePage, server: Server
) -> None:
    """A live update re-renders the config tree and the page under a keyboard user: the focus
    stays on the link, tab or button it was on (it fell to the page's body, and the next key
    went nowhere), and a dialog closed meanwhile gives it back to its opener."""
    bot = ("agent", "focus-bot")
    await seed(server, "focus-co", [(*bot, "prompts", {"greeting": "v1"})])
    page = console.page
    await console.open("#/t/focus-co")
    await console.sign_in("ops")
    await page.locator("body").press("/")
    await page.keyboard.press("ArrowDown")
    focused_link = page.locator("#config-tree a:focus")
    await expect(focused_link).to_have_text("prompts v1")

    await seed(server, "focus-co", [(*bot, "prompts", {"greeting": "v2"})])
    await expect(page.locator("#config-tree").get_by_role("link")).to_have_text("prompts v2")
    await expect(focused_link).to_have_text("prompts v2")

    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_be_focused()
    await page.get_by_role("tab", name="Value").focus()
    await page.keyboard.press("ArrowRight")
    await expect(page.get_by_role("tab", name="History (2)")).to_be_focused()
    await seed(server, "focus-co", [(*bot, "prompts", {"greeting": "v3"})])
    await expect(page.locator("#version-badge")).to_have_text("v3")
    await expect(page.get_by_role("tab", name="History (3)")).to_be_focused()

    delete = page.get_by_role("button", name="Delete…")
    await delete.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Type the config key to confirm")).to_be_focused()
    await seed(server, "focus-co", [(*bot, "prompts", {"greeting": "v4"})])
    await expect(page.locator("#version-badge")).to_have_text("v4")
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_be_hidden()
    await expect(delete).to_be_focused()
