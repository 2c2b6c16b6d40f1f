"""The console's layout and accessibility in a real Chromium: a phone's width without sideways
scrolling, and on every main screen, text at WCAG AA contrast and every control labelled."""

from __future__ import annotations

from console_harness import CONSOLE_LOOP, PHONE, ConsolePage, OpenConsole, Server, seed
from playwright.async_api import expect

pytestmark = CONSOLE_LOOP

VALUE = {
    "llm_model": "gpt-4o",
    "api_key": "sk-layout",
    "tools": ["search", "calculator"],
    "endpoint": "https://models.internal/" + "x" * 300,  # one unbreakable line
}


async def seed_layout(server: Server, tenant: str) -> None:
    await seed(server, tenant, [("agent", "layout-bot", "llm_settings", VALUE)])
    changed = {**VALUE, "llm_model": "gpt-4o-mini", "max_tokens": 512}
    await seed(
        server,
        tenant,
        [("agent", "layout-bot", "llm_settings", changed)],
        updated_by="dana",
        comment="a longer comment that has to wrap on a narrow screen without pushing it wider",
    )


async def test_every_main_screen_meets_contrast_and_labels(
    console: ConsolePage, server: Server
) -> None:
    await seed_layout(server, "layout-co")
    page = console.page
    await console.open("#/t/layout-co")
    screens = [await console.accessibility_problems()]
    await console.sign_in("ops")
    await expect(page.locator("#config-tree").get_by_role("link")).to_have_count(1)
    screens.append(await console.accessibility_problems())
    await console.go("#/")
    await expect(page.get_by_role("heading", name="Tenants")).to_be_visible()
    screens.append(await console.accessibility_problems())
    assert screens == [[], [], []]
    await console.go("#/t/layout-co")
    await page.get_by_role("link", name="llm_settings v2").first.click()
    await expect(page.locator("pre.json")).to_be_visible()
    assert await console.accessibility_problems() == []
    for tab in ("History (2)", "Compare"):
        await page.get_by_role("tab", name=tab).click()
        await expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
        await expect(page.locator("#tab-panel .muted", has_text="Loading")).to_have_count(0)
        assert await console.accessibility_problems() == [], tab
    await page.get_by_role("button", name="Delete…").click()
    await expect(page.get_by_role("dialog")).to_be_visible()
    assert await console.accessibility_problems("#dialog") == []


async def test_the_console_fits_a_phone(open_console: OpenConsole, server: Server) -> None:
    await seed_layout(server, "phone-co")
    console = await open_console(viewport=PHONE)
    page = console.page
    await console.open()
    assert await console.overflow() == 0
    await console.sign_in("ops")
    await console.go("#/t/phone-co")
    await expect(page.locator("#config-tree").get_by_role("link")).to_have_count(1)
    assert await console.overflow() == 0
    await console.screenshot("16-phone-tenant")
    await page.get_by_role("link", name="llm_settings v2").first.click()
    await expect(page.locator("pre.json")).to_be_visible()
    await expect(page.get_by_role("heading", level=1)).to_be_in_viewport()
    assert await console.overflow() == 0
    await console.screenshot("17-phone-value")
    await page.get_by_role("tab", name="Compare").click()
    await expect(page.locator("table.diff")).to_be_visible()
    assert await console.overflow() == 0
    await console.screenshot("18-phone-diff")
    await page.get_by_role("tab", name="History (2)").click()
    await page.get_by_role("button", name="Roll back to v1…").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("button", name="Roll back to v1")).to_be_in_viewport()
    assert await console.overflow() == 0
    await console.screenshot("19-phone-rollback")
