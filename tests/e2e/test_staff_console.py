"""The staff console end to end, in a real headless Chromium (Debian's, through chromedriver), against a
private line (Asterisk + `ivr serve`) that reads the prompts the console publishes:

1. log in;
2. edit a prompt text and see a validation error for a broken edit;
3. fix it and hear the new prompt;
4. try a call that reaches the changed prompt;
5. see the diff and publish;
6. a real sipp call then hears the new version, while a call started before the publish finishes on the
   old one (the server streams the old text's audio to it)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from e2e_support import running_line
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from ivr.config import PROJECT_ROOT, load_settings
from ivr.db.session import make_uow_factory
from ivr.services.staff import add_staff
from ivr.testbed.dialer import DialResult, dial
from ivr.testbed.localline import LocalLine, free_port
from ivr.web.app import create_app

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
IVAN = "79161234567"  # docs/demo-subscribers.md
PASSWORD = "a console test password"
OLD_MENU = "Баланс - один."  # the start of the live main menu
NEW_MENU = "Проверка консоли: баланс - один, тариф - два."
BROKEN_MENU = "Проверка консоли: баланс {balance:nonsense}."
DOCS_SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")  # a folder: save screenshots of the main pages


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLine]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing: scripts/setup.sh installs them")
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup.sh)")
    var = tmp_path_factory.mktemp("console-line")
    prompts = var / "prompts"
    shutil.copytree(PROJECT_ROOT / "prompts", prompts)
    # The rendered prompts, linked (not copied): publishing renders new files into this private folder.
    sounds = var / "sounds"
    subprocess.run(["cp", "-al", str(load_settings().sounds), str(sounds)], check=True)
    env = {"IVR_PROMPTS_DIR": str(prompts), "IVR_SOUNDS_DIR": str(sounds), "IVR_CALLBACKS": "false"}
    with running_line(var, log_level="DEBUG", extra_env=env) as stack:
        yield stack


@pytest.fixture(scope="module")
def console_url(line: LocalLine) -> Iterator[str]:
    settings = dataclasses.replace(line.settings, console_secret="e2e-" + "k" * 40)
    factory = make_uow_factory(settings.db_url)
    with factory(write=True) as uow:
        add_staff(uow, "olga", PASSWORD, "publisher")
        uow.commit()
    factory.dispose()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, name="console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the console did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--autoplay-policy=no-user-gesture-required",
        "--mute-audio",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, condition: object, seconds: float = 30.0, message: str = "") -> object:
    """Wait for `condition`; on a timeout, say what the page showed in element `message` (if given)."""
    try:
        return WebDriverWait(driver, seconds).until(condition)
    except Exception:
        if message:
            shown = driver.execute_script(
                f"const e = document.getElementById('{message}'); return e && e.textContent"
            )
            raise AssertionError(f"timed out; #{message} says: {shown!r}") from None
        raise


def shot(driver: WebDriver, name: str) -> None:
    if DOCS_SHOTS:
        Path(DOCS_SHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(DOCS_SHOTS) / f"console-{name}.png"))


def set_text(driver: WebDriver, area_id: str, text: str) -> None:
    """Type into a texts-form field and leave it (its change event saves the text in the draft)."""
    area = driver.find_element(By.ID, area_id)
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(text)
    area.send_keys(Keys.TAB)  # leaving the field fires its change event


def streamed(line: LocalLine, uniqueid: str, key: str) -> list[str]:
    """The files the server asked Asterisk to stream for prompt `key` in one call (its DEBUG log)."""
    names = []
    for entry in line.log_for(uniqueid):
        found = re.search(r"stream (\S+)$", entry)
        if found and Path(found.group(1)).name.startswith(f"{key}."):
            names.append(Path(found.group(1)).name)
    return names


def place(line: LocalLine, keys: str, first_wait: float) -> DialResult:
    return asyncio.run(dial(line.settings, "0505", caller=IVAN, keys=keys, first_wait=first_wait, wait=4.0))


def test_edit_hear_try_publish_and_calls_hear_their_version(
    line: LocalLine, console_url: str, browser: WebDriver
) -> None:
    d = browser
    # 1. log in (an anonymous visit goes to the login page first)
    d.get(f"{console_url}/lines/operator/edit")
    wait_for(d, EC.presence_of_element_located((By.ID, "login")))
    shot(d, "login")
    d.find_element(By.ID, "username").send_keys("olga")
    d.find_element(By.ID, "password").send_keys(PASSWORD)
    d.find_element(By.ID, "login").click()
    wait_for(d, EC.presence_of_element_located((By.ID, "texts-table")))
    assert "olga (publisher)" in d.find_element(By.ID, "whoami").text

    # 2. a broken edit: the error is shown with its file and line
    set_text(d, "text-ru-main_menu", BROKEN_MENU)
    wait_for(d, EC.text_to_be_present_in_element((By.ID, "check-status"), "error(s)"))
    problems = d.find_element(By.ID, "problems").text
    assert "unknown kind 'nonsense'" in problems and "operator.yaml:" in problems, problems
    assert "error" in d.find_element(By.ID, "text-ru-main_menu").get_attribute("class")  # the field is marked
    shot(d, "edit-error")

    # 3. fixed: no errors, and the prompt plays as callers will hear it (rendered, 8 kHz)
    set_text(d, "text-ru-main_menu", NEW_MENU)
    wait_for(d, EC.text_to_be_present_in_element((By.ID, "check-status"), "No errors"))
    d.find_element(By.ID, "play-ru-main_menu").click()
    wait_for(d, lambda drv: drv.execute_script("return document.body.dataset.lastPlayed || ''"))
    heard = d.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(document.body.dataset.lastPlayed).then(async (r) => {
          const b = new DataView(await r.arrayBuffer());
          done({status: r.status, riff: b.getUint32(0, false), rate: b.getUint32(24, true),
                bytes: b.byteLength, text: r.headers.get('X-Prompt-Text')});
        }).catch((e) => done({error: String(e)}));"""
    )
    assert heard["status"] == 200 and heard["riff"] == 0x52494646 and heard["rate"] == 8000, heard
    assert heard["bytes"] > 8000, heard  # more than half a second of speech
    assert bytes.fromhex(heard["text"]).decode() == NEW_MENU
    # the page's own player decoded it: a playable clip of the right length
    wait_for(
        d,
        lambda drv: drv.execute_script("return window.consolePlayer && window.consolePlayer.readyState >= 1"),
    )
    seconds = d.execute_script("return window.consolePlayer.duration")
    assert abs(seconds - (heard["bytes"] - 44) / 16000) < 0.1, seconds
    shot(d, "edit")

    # 4. try a call on the draft: the changed prompt is heard, the path is drawn on the graph
    d.get(f"{console_url}/lines/operator/try?from=draft")
    Select(d.find_element(By.NAME, "did")).select_by_value("0505")
    Select(d.find_element(By.NAME, "caller")).select_by_value(IVAN)
    Select(d.find_element(By.NAME, "language")).select_by_value("ru")
    d.find_element(By.ID, "call").click()
    wait_for(d, lambda drv: NEW_MENU in drv.find_element(By.ID, "transcript").text, message="try-state")
    assert OLD_MENU not in d.find_element(By.ID, "transcript").text
    visited = d.execute_script(
        "return [...document.querySelectorAll('#graph g.node.visited')].map(g => g.id)"
    )
    assert "node-main" in visited, visited
    d.find_element(By.ID, "keys").send_keys("1")
    d.find_element(By.ID, "send-keys").click()
    wait_for(d, EC.text_to_be_present_in_element((By.ID, "transcript"), "баланс"))
    shot(d, "try")

    # 5. save, see the diff, publish
    d.get(f"{console_url}/lines/operator/edit")
    d.find_element(By.ID, "comment").send_keys("a shorter main menu")
    d.find_element(By.ID, "save-version").click()
    wait_for(d, EC.presence_of_element_located((By.ID, "saved")))
    d.get(f"{console_url}/lines/operator/publish")
    diff = d.find_element(By.ID, "diff").text
    assert f"+main_menu: '{NEW_MENU}'" in diff or f"+main_menu: {NEW_MENU}" in diff, diff
    assert "-main_menu: " + OLD_MENU in diff, diff
    shot(d, "publish")

    # 6. a call in the menu before the publish, a call after it
    reloads = line.server_log.read_text(encoding="utf-8").count("tree operator version")
    before: dict[str, DialResult] = {}
    early = threading.Thread(target=lambda: before.update(r=place(line, "*", first_wait=14.0)))
    early.start()
    time.sleep(4.0)  # call A has heard the old main menu and waits in it
    d.find_element(By.ID, "publish").click()
    wait_for(d, EC.presence_of_element_located((By.ID, "published")), 60)
    deadline = time.monotonic() + 30
    while line.server_log.read_text(encoding="utf-8").count("tree operator version") == reloads:
        assert time.monotonic() < deadline, "the server never took the published version"
        time.sleep(0.2)
    after = place(line, "", first_wait=6.0)
    early.join(120)
    call_a, call_b = before["r"], after
    assert call_a.record is not None and call_b.record is not None
    old_files = streamed(line, call_a.record.uniqueid, "main_menu")
    new_files = streamed(line, call_b.record.uniqueid, "main_menu")
    assert len(old_files) >= 2, old_files  # heard before the publish, and again after it (the * key)
    assert len(set(old_files)) == 1, old_files  # one version throughout: the old one
    assert new_files and set(new_files).isdisjoint(old_files), (old_files, new_files)
    # and the publish is in the audit trail with its diff; the lines page shows the new live version
    d.get(f"{console_url}/audit")
    assert "publish" in d.find_element(By.ID, "audit").text
    shot(d, "audit")
    d.get(f"{console_url}/")
    assert "v2" in d.find_element(By.ID, "lines").text
    shot(d, "lines")
    # the two calls are in the report (their records are written as each call ends)
    deadline = time.monotonic() + 30
    while True:
        d.get(f"{console_url}/report")
        counts = [
            int(c.text) for c in d.find_elements(By.CSS_SELECTOR, 'section[data-line="operator"] td.calls')
        ]
        if sum(counts) >= 2:
            break
        assert time.monotonic() < deadline, f"the report shows {counts} calls"
        time.sleep(1)
    assert d.find_elements(By.CSS_SELECTOR, "svg.chart rect.part")
    shot(d, "report")
    if DOCS_SHOTS:
        d.get(f"{console_url}/lines/operator?from=live")
        shot(d, "line")
        d.get(f"{console_url}/lines/operator/versions")
        shot(d, "versions")
