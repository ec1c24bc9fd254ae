"""One headless Chromium (Debian's) for all the browser tests, which live in this package.

Package scope, not session: Playwright's sync API keeps an event loop running in the main thread while it is
open, and tests elsewhere call asyncio.run(); the browser closes when the run leaves this package."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        yield chromium
        chromium.close()
