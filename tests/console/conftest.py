"""Fixtures of the console tests: ``server`` (one ``confstore serve`` process for the session;
each test writes its own tenants), one Chromium for the whole session, and ``open_console`` (a fresh
browser context per page, checked at the end of the test for page errors and unexpected console
errors). Tests run on the session's event loop, the browser's: mark each module with
``pytestmark = CONSOLE_LOOP``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from console_harness import LAPTOP, ConsolePage, OpenConsole, Server, install_chromium, serve
from playwright.async_api import Browser, async_playwright, expect

expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
def chromium() -> Path:
    return install_chromium()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("console")) as served:
        yield served


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium))
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def open_console(browser: Browser, server: Server) -> AsyncIterator[OpenConsole]:
    pages: list[ConsolePage] = []

    async def open_page(viewport: dict[str, int] = LAPTOP) -> ConsolePage:
        context = await browser.new_context(viewport=viewport)
        context.set_default_timeout(10_000)
        page = ConsolePage(await context.new_page(), server)
        page.watch()
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        await page.page.context.close()
    problems = [error for page in pages for error in page.unexpected_errors()]
    assert problems == [], "the browser reported errors"


@pytest_asyncio.fixture(loop_scope="session")
async def console(open_console: OpenConsole) -> ConsolePage:
    return await open_console()
