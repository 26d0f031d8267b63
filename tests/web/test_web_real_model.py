"""The web app with the real default model: chat and the movies knowledge base answered by
``smollm2-135m-instruct`` (SmolLM2-135M-Instruct), with the real embedder over 150 films, in Chromium.
These screenshots (``chat-real-model.png``, ``knowledge-real-model.png``) are the ones the README shows
for what a user sees; the scripted-model browser tests beside this file test the app's logic."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import live_server
from playwright.sync_api import expect, sync_playwright
from web_support import build_movies_kb

from plinth.config import Settings
from plinth.control import LOCAL_TENANT, Tenant, get_or_create_tenant, open_control_plane
from plinth.llm.loading import load_models
from plinth.server import create_app

pytestmark = pytest.mark.slow

SHOTS = Path(os.environ.get("PLINTH_SCREENSHOTS", "test-artifacts/screenshots"))


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("web-real")
    settings = Settings(data_dir=root / "data", no_auth=True, kv_cache_memory_gb=0.25)
    [model] = load_models(settings)
    cp = open_control_plane(f"sqlite:///{root / 'plinth.db'}")
    app = create_app(settings, [model], cp)
    row = get_or_create_tenant(cp, LOCAL_TENANT)
    build_movies_kb(app.state.knowledge, Tenant(row.id, row.name, is_admin=True), root)  # real embedder
    try:
        with live_server(app) as base:
            yield base
    finally:
        model.shutdown()
        app.state.sql.close()
        cp.close()


@pytest.fixture(scope="module")
def page(url):
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is not installed: run `make install-test`"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        yield page
        browser.close()


def test_chat_answers_with_the_real_model(page, url):
    page.goto(f"{url}/#/chat")
    chat = page.locator("#page-chat")
    chat.get_by_label("Model").select_option("smollm2-135m-instruct")
    expect(chat.locator(".badge", has_text="random weights")).to_be_hidden()
    chat.get_by_label("Message").fill("What is the capital of France?")
    chat.get_by_label("Message").press("Enter")
    expect(page.locator(".message.assistant .content").last).to_contain_text("Paris", timeout=120_000)
    page.screenshot(path=str(SHOTS / "chat-real-model.png"), full_page=True)


def test_the_movies_knowledge_base_answers_with_a_citation(page, url):
    page.goto(f"{url}/#/knowledge")
    expect(page.get_by_label("Knowledge base")).to_have_value("movies")
    page.locator("#page-knowledge").get_by_label("Model").select_option("smollm2-135m-instruct")
    page.get_by_label("Question").fill("Which animated movie is about a lion cub who becomes king?")
    page.get_by_role("button", name="Ask").click()
    answer = page.locator(".turn .answer").first
    expect(answer).to_contain_text("Lion King", timeout=180_000)
    expect(answer.get_by_role("button", name="Source 1: The Lion King")).to_have_count(1)
    page.screenshot(path=str(SHOTS / "knowledge-real-model.png"), full_page=True)
