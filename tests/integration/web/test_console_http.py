"""The console's rules over HTTP: logins, roles, CSRF, validation, drafts, optimistic concurrency,
publishing to the files, rollback, the audit trail."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from console_support import PASSWORD, csrf_of, json_post, log_in
from starlette.testclient import TestClient

from ivr.config import Settings
from ivr.web.texts_edit import set_text, texts_of


def draft_files(client: TestClient, line: str = "operator") -> dict[str, str]:
    html = client.get(f"/lines/{line}/edit").text
    files = {}
    for path, body in re.findall(
        r'<textarea class="yaml" data-path="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S
    ):
        import html as h

        files[path] = h.unescape(body)
    assert "operator.yaml" in files and "texts/operator.ru.yaml" in files
    return files


def test_anonymous_requests_are_refused(console: TestClient) -> None:
    assert console.get("/").status_code == 303  # to the login page
    assert console.get("/").headers["location"].startswith("/login")
    assert console.get("/lines/operator", headers={"Accept": "application/json"}).status_code == 401
    assert console.post("/lines/operator/save", data={"csrf": "x"}).status_code in (401, 403)
    assert console.get("/lines/operator/audio/ru/welcome.wav").status_code == 303


def test_a_wrong_password_fails_and_five_lock_the_account(console: TestClient) -> None:
    token = csrf_of(console.get("/login").text)
    for _ in range(5):
        r = console.post("/login", data={"username": "viewer", "password": "wrong password!", "csrf": token})
        assert r.status_code == 401
    # Locked now: even the right password is refused
    r = console.post("/login", data={"username": "viewer", "password": PASSWORD, "csrf": token})
    assert r.status_code == 401
    assert "whoami" not in console.get("/login").text


def test_the_login_form_needs_its_csrf_token(console: TestClient) -> None:
    console.get("/login")
    r = console.post("/login", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 403


def test_a_change_without_the_csrf_token_is_refused(console: TestClient) -> None:
    token = log_in(console, "editor")
    files = draft_files(console)
    assert json_post(console, "/lines/operator/draft", None, {"files": files}).status_code == 403
    assert json_post(console, "/lines/operator/draft", "forged", {"files": files}).status_code == 403
    assert json_post(console, "/lines/operator/draft", token, {"files": files}).status_code == 200


def test_roles_a_viewer_cannot_save_an_editor_cannot_publish(console: TestClient) -> None:
    token = log_in(console, "viewer")
    assert console.get("/lines/operator").status_code == 200
    assert console.get("/lines/operator/edit").status_code == 403
    assert (
        json_post(
            console, "/lines/operator/text", token, {"lang": "ru", "key": "welcome", "text": "Х"}
        ).status_code
        == 403
    )
    console.post("/logout", data={"csrf": token})

    token = log_in(console, "editor")
    r = json_post(
        console, "/lines/operator/text", token, {"lang": "ru", "key": "welcome", "text": "Добрый день!"}
    )
    assert r.status_code == 200
    assert (
        console.post("/lines/operator/save", data={"csrf": token, "comment": "greeting"}).status_code == 303
    )
    r = console.post("/lines/operator/publish", data={"csrf": token, "number": "2"})
    assert r.status_code == 403
    assert console.get("/staff").status_code == 403


def test_a_broken_edit_is_reported_at_its_file_and_line(console: TestClient) -> None:
    token = log_in(console, "editor")
    files = draft_files(console)
    tree = files["operator.yaml"]
    broken = tree.replace("    goto: after_auth", "    goto: no_such_node", 1)
    lineno = broken.splitlines().index("  start:") + 1  # the checker names the node's own line
    r = json_post(console, "/lines/operator/check", token, {"files": {**files, "operator.yaml": broken}})
    problems = r.json()["problems"]
    assert any(
        p["file"] == "operator.yaml" and p["lineno"] == lineno and p["node"] == "start" for p in problems
    ), problems
    # A text with an unknown placeholder kind, through the structured form
    r = json_post(
        console,
        "/lines/operator/text",
        token,
        {"lang": "ru", "key": "balance_is", "text": "Баланс {balance:weird}."},
    )
    problems = r.json()["problems"]
    assert any("texts/operator.ru.yaml: balance_is: unknown kind 'weird'" in p["text"] for p in problems), (
        problems
    )
    assert not any("/tmp/" in p["text"] for p in problems), problems  # never the scratch copy's path
    # ... which cannot be saved as a version
    assert console.post("/lines/operator/save", data={"csrf": token}).status_code == 422


def test_two_editors_on_the_same_base_the_second_is_refused_with_the_diff(
    console: TestClient, console_settings: Settings
) -> None:
    first = TestClient(console.app, follow_redirects=False)
    second = TestClient(console.app, follow_redirects=False)
    t1, t2 = log_in(first, "editor"), log_in(second, "editor2")
    first.get("/lines/operator/edit")
    second.get("/lines/operator/edit")  # both drafts start from version 1
    assert (
        json_post(
            first, "/lines/operator/text", t1, {"lang": "ru", "key": "welcome", "text": "Привет от первого!"}
        ).status_code
        == 200
    )
    assert (
        json_post(
            second, "/lines/operator/text", t2, {"lang": "ru", "key": "cancelled", "text": "Отменено вторым."}
        ).status_code
        == 200
    )
    assert first.post("/lines/operator/save", data={"csrf": t1}).status_code == 303
    refused = second.post("/lines/operator/save", data={"csrf": t2})
    assert refused.status_code == 409
    assert "Привет от первого!" in refused.text and "version 2" in refused.text
    # nothing of the second editor reached a version
    page = first.get("/lines/operator/versions").text
    assert "v3" not in page


def test_publish_writes_the_files_and_audits_the_diff_then_rollback(
    console: TestClient, console_settings: Settings
) -> None:
    editor_token = log_in(console, "editor")
    json_post(
        console,
        "/lines/operator/text",
        editor_token,
        {"lang": "ru", "key": "cancelled", "text": "Хорошо, отменили."},
    )
    assert (
        console.post("/lines/operator/save", data={"csrf": editor_token, "comment": "softer"}).status_code
        == 303
    )
    console.post("/logout", data={"csrf": editor_token})

    token = log_in(console, "publisher")
    page = console.get("/lines/operator/publish").text
    assert "Хорошо, отменили." in page and 'id="publish"' in page
    texts = Path(console_settings.prompts) / "texts" / "operator.ru.yaml"
    before = texts.read_text(encoding="utf-8")
    assert console.post("/lines/operator/publish", data={"csrf": token, "number": "2"}).status_code == 303
    after = texts.read_text(encoding="utf-8")
    assert texts_of(after)["cancelled"] == "Хорошо, отменили."
    assert after == set_text(before, "cancelled", "Хорошо, отменили.")  # the rest of the file byte for byte
    audit = console.get("/audit").text
    assert "publish" in audit and "+cancelled: Хорошо, отменили." in audit and "publisher" in audit

    assert console.post("/lines/operator/rollback", data={"csrf": token, "number": "1"}).status_code == 303
    assert texts.read_text(encoding="utf-8") == before
    assert "rollback to version 1" in console.get("/lines/operator/versions").text


def test_a_version_with_errors_is_not_published(console: TestClient, console_settings: Settings) -> None:
    from ivr.db.session import make_uow_factory
    from ivr.services import tree_versions

    factory = make_uow_factory(console_settings.db_url)
    with factory(write=True) as uow:  # a broken version, as if saved before a check existed
        top = tree_versions.latest(uow, "operator")
        files = dict(top.files)
        files["operator.yaml"] = files["operator.yaml"].replace("goto: after_auth", "goto: nowhere", 1)
        uow.session.add(
            type(top)(
                line="operator",
                number=top.number + 1,
                base=top.number,
                files=files,
                author="x",
                comment="",
                created_at=uow.now(),
                published_by="",
            )
        )
        uow.commit()
    factory.dispose()
    token = log_in(console, "publisher")
    before = (Path(console_settings.prompts) / "operator.yaml").read_text(encoding="utf-8")
    r = console.post("/lines/operator/publish", data={"csrf": token, "number": str(top.number + 1)})
    assert r.status_code == 409 and "nowhere" in r.text
    assert (Path(console_settings.prompts) / "operator.yaml").read_text(encoding="utf-8") == before


def test_an_admin_adds_staff_and_nobody_sees_a_password(console: TestClient) -> None:
    token = log_in(console, "admin")
    r = console.post(
        "/staff", data={"csrf": token, "op": "add", "username": "olga", "password": "short", "role": "editor"}
    )
    assert r.status_code == 400 and "10 characters" in r.text
    r = console.post(
        "/staff",
        data={
            "csrf": token,
            "op": "add",
            "username": "olga",
            "password": "a long enough one",
            "role": "editor",
        },
    )
    assert r.status_code == 303
    page = console.get("/staff").text
    assert "olga" in page and "a long enough one" not in page
    assert "a long enough one" not in console.get("/audit").text


def test_a_session_ends_after_its_idle_time(console: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from ivr.web import security

    log_in(console, "viewer")
    assert console.get("/").status_code == 200
    later = time.time() + 31 * 60  # console_idle_minutes is 30
    monkeypatch.setattr(security.time, "time", lambda: later)
    r = console.get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_the_session_cookie_is_http_only_and_same_site(console: TestClient) -> None:
    token = csrf_of(console.get("/login").text)
    r = console.post("/login", data={"username": "viewer", "password": PASSWORD, "csrf": token})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_an_edit_made_in_the_files_becomes_a_version(console: TestClient, console_settings: Settings) -> None:
    log_in(console, "viewer")
    texts = Path(console_settings.prompts) / "texts" / "operator.ru.yaml"
    texts.write_text(
        set_text(texts.read_text(encoding="utf-8"), "cancelled", "Отменено в файле."), encoding="utf-8"
    )
    console.get("/")
    page = console.get("/lines/operator/versions").text
    assert "changed in the files under prompts/" in page and "v2" in page
    assert "Отменено в файле." in console.get("/lines/operator/versions/2").text


def test_a_version_number_that_is_not_one_is_refused(console: TestClient) -> None:
    token = log_in(console, "publisher")
    for url in ("/lines/operator/publish", "/lines/operator/rollback"):
        assert console.post(url, data={"csrf": token, "number": "1; drop"}).status_code == 400
    assert console.post("/lines/operator/rollback", data={"csrf": token, "number": "99"}).status_code == 404
