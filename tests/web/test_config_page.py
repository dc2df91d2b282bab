"""The configuration page: an authenticated user sees the called AEs, sources and destinations and edits them."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Browser

from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.web.api import create_app
from dicom_node.web.context import WebContext
from dicom_node.web.server import HttpServer
from tests.web.conftest import free_port, make_config


def test_the_page_asks_for_the_token_shows_the_configuration_and_adds_a_source(browser: Browser, tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    config = make_config(data_dir, http={"tokens": {"admin": "p4ge-admin"}}, dicom={"allowed_sources": [{"ae_title": "CT1"}]},
                         destinations=[{"name": "PACS", "ae_title": "ORTHANC", "host": "127.0.0.1", "port": 4242}])
    upgrade(config.database_url)
    context = WebContext(config, make_sessionmaker(make_engine(config.database_url)), data_dir)
    assert context.config_store is not None
    context.config_store.seed(config, "configuration file")
    server = HttpServer(create_app(context), "127.0.0.1", free_port())
    host, port = server.start()
    try:
        page = browser.new_page()
        page.goto(f"http://{host}:{port}/config")
        form = page.locator("#token-form")
        form.wait_for()
        form.locator("input[name=token]").fill("p4ge-admin")
        form.locator("button").click()
        page.locator('section[data-kind="destination"] tr[data-name="PACS"]').wait_for()
        assert "ORTHANC" in page.locator('section[data-kind="destination"] tr[data-name="PACS"]').inner_text()

        edit = page.locator("#edit-form")
        edit.locator("select[name=kind]").select_option("source")
        edit.locator("textarea[name=body]").fill('{"ae_title": "CT\\\\2"}')
        edit.locator("button").click()
        page.locator("#message", has_text="ae_title: an AE title").wait_for()  # the rule, as the API names it
        edit.locator("textarea[name=body]").fill('{"ae_title": "CT2", "host": "10.1.0.0/16"}')
        edit.locator("button").click()
        page.locator('section[data-kind="source"] tr[data-name="CT2@10.1.0.0/16"]').wait_for()
        page.close()
    finally:
        server.stop()
    changes = [json.loads(line) for line in (data_dir / "access.log").read_text().splitlines()]
    assert [(c["identity"], c["action"], c["name"]) for c in changes if c.get("event") == "config"][-1] == ("token:admin", "add", "CT2@10.1.0.0/16")
