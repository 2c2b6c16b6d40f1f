"""The console's security in a real Chromium: tokens stay out of URLs and other tabs, a token
sees only its tenants, stored strings are text (never HTML or script), and the page is served
under a strict Content-Security-Policy with no inline script."""

from __future__ import annotations

import urllib.error
import urllib.request

from console_harness import CONSOLE_LOOP, ConsolePage, Server, seed, wait_until
from playwright.async_api import expect

from confstore.server import TokenFile

pytestmark = CONSOLE_LOOP

HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"


async def test_a_tenant_token_sees_nothing_of_another_tenant(
    console: ConsolePage, server: Server
) -> None:
    await seed(server, "acme", [("agent", "acme-bot", "llm_settings", {"llm_model": "acme-m"})])
    globex = {"llm_model": "globex-private-model", "note": "globex-only"}
    await seed(server, "globex", [("agent", "globex-bot", "llm_settings", globex)])
    page = console.page
    await console.open()
    await console.sign_in("acme-reader")
    tenants = page.get_by_role("list", name="Tenants").locator(".tenant-name")
    await expect(tenants).to_have_text(["acme"])
    await expect(page.locator("#tenant-select option")).to_have_text(["All tenants", "acme"])
    await expect(page.locator("#who")).to_contain_text("read-only")

    console.expect_error(403)
    await console.go("#/t/globex")
    await expect(page.get_by_role("alert").filter(has_text="No access")).to_have_count(2)
    await console.go("#/t/globex/agent/globex-bot/llm_settings")
    await expect(page.locator("#main .problem")).to_contain_text("No access")
    await console.screenshot("13-no-access")
    # A write to globex leaves nothing in this tab, while acme's, made after it, appears live.
    await console.go("#/t/acme")
    acme_bot = page.locator("#config-tree .service-group", has_text="acme-bot")
    await expect(acme_bot.get_by_role("link")).to_have_count(1)
    await seed(server, "globex", [("agent", "globex-bot", "prompts", {"greeting": "hi"})])
    await seed(server, "acme", [("agent", "acme-bot", "prompts", {"greeting": "hello"})])
    await expect(acme_bot.get_by_role("link", name="prompts v1")).to_be_visible()
    content = await page.content()
    for leak in ("globex-private-model", "globex-only", "globex-bot"):
        assert leak not in content
    answered = [request.url for request in console.requests if "globex" in request.url]
    assert answered, "the console asked the API about globex"
    for request in console.requests:
        if "globex" in request.url:
            response = await request.response()
            assert response is not None
            assert response.status == 403, request.url


async def test_a_read_token_gets_no_write_actions(console: ConsolePage, server: Server) -> None:
    for model in ("one", "two"):
        await seed(server, "acme", [("agent", "read-bot", "llm_settings", {"llm_model": model})])
    page = console.page
    await console.open("#/t/acme/agent/read-bot/llm_settings")
    await console.sign_in("acme-reader")
    await expect(page.locator("#version-badge")).to_have_text("v2")
    await page.get_by_role("tab", name="History (2)").click()
    await expect(page.get_by_role("button", name="Compare v1 with current")).to_be_visible()
    for name in ("Delete…", "Roll back to v1…", "Show secrets"):
        await expect(page.get_by_role("button", name=name)).to_have_count(0)


async def test_stored_markup_is_shown_as_text_and_never_runs(
    console: ConsolePage, server: Server
) -> None:
    value = {"banner": HOSTILE, HOSTILE: SCRIPT, "nested": [{"html": SCRIPT}]}
    await seed(
        server,
        "xss-co",
        [("agent", "xss-bot", "prompts", {"banner": "plain"})],
        updated_by=HOSTILE,
        comment=SCRIPT,
    )
    await seed(
        server,
        "xss-co",
        [("agent", "xss-bot", "prompts", value)],
        updated_by=SCRIPT,
        comment=HOSTILE,
    )
    page = console.page
    await page.add_init_script("window.__ran = []; window.alert = (m) => window.__ran.push(m);")
    await console.open("#/t/xss-co")
    await console.sign_in("ops")
    await expect(page.locator(".list-table")).to_contain_text(SCRIPT)
    await page.get_by_role("link", name="prompts v2").first.click()
    await expect(page.locator("pre.json")).to_contain_text(f'"banner": "{HOSTILE}"')
    await expect(page.locator(".meta")).to_contain_text(HOSTILE)
    await page.get_by_role("tab", name="History (2)").click()
    await expect(page.locator(".timeline")).to_contain_text(SCRIPT)
    await page.get_by_role("button", name="Compare v1 with current").click()
    await expect(page.locator("table.diff")).to_contain_text(HOSTILE)
    await page.get_by_role("tab", name="History (2)").click()
    await page.get_by_role("button", name="Roll back to v1…").click()
    await expect(page.get_by_role("dialog").locator("table.diff")).to_contain_text(HOSTILE)
    await console.screenshot("14-markup-as-text")

    assert await page.locator("img[src=x], main script, dialog script").count() == 0
    assert await page.evaluate("window.__ran") == []
    assert console.dialogs == []
    assert not [request.url for request in console.requests if request.url.endswith("/x")]


async def test_the_token_stays_in_this_tab_and_out_of_urls(
    console: ConsolePage, server: Server
) -> None:
    await seed(server, "url-co", [("agent", "url-bot", "prompts", {"greeting": "hi"})])
    page = console.page
    await console.open()
    await console.sign_in("ops")
    await page.get_by_role("link", name="url-co").click()
    await page.get_by_role("link", name="prompts v1").click()
    await expect(page.locator("#version-badge")).to_have_text("v1")
    token = server.tokens["ops"]
    assert token not in page.url
    assert await page.evaluate("sessionStorage.getItem('confstore.console.token')") == token
    assert await page.evaluate("localStorage.length") == 0
    assert await page.context.cookies() == []
    api_requests = [request for request in console.requests if "/v1/" in request.url]
    assert api_requests
    for request in console.requests:
        assert token not in request.url
    for request in api_requests:
        assert await request.header_value("authorization") == f"Bearer {token}"

    await page.get_by_role("button", name="Sign out").click()
    await console.expect_signed_out("You signed out.")


async def test_a_bad_token_is_refused_at_sign_in(console: ConsolePage, server: Server) -> None:
    page = console.page
    await console.open()
    await page.get_by_label("API token").fill("cs_not-a-real-token")
    console.expect_error(401)
    await page.get_by_role("button", name="Sign in").click()
    await console.expect_signed_out("That token is not valid (unknown, revoked or malformed).")
    await console.screenshot("15-bad-token")


def _token_is_refused(server: Server, token: str) -> bool:
    request = urllib.request.Request(
        server.url + "v1/token", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            return False
    except urllib.error.HTTPError as error:
        return error.code == 401


async def test_a_revoked_token_signs_the_console_out(console: ConsolePage, server: Server) -> None:
    await seed(server, "acme", [("agent", "revoke-bot", "prompts", {"greeting": "hi"})])
    tokens = TokenFile(server.tokens_path)
    token, _ = tokens.create("temp", "read", ["acme"])
    server.tokens["temp"] = token
    # The server rereads its tokens file within a second: wait until it knows the new token,
    # asking seldom, as each refusal counts towards the server's throttle of failed sign-ins.
    await wait_until(lambda: not _token_is_refused(server, token), interval=0.4)
    page = console.page
    await console.open()
    await console.sign_in("temp")
    tokens.revoke("temp")
    # The server rereads its tokens file within a second: wait until it refuses the token.
    await wait_until(lambda: _token_is_refused(server, token))
    console.expect_error(401)
    await page.get_by_role("link", name="acme").click()
    await console.expect_signed_out("Signed out: the token is not valid")
