"""Helpers of the console tests: log in, read the CSRF token, post JSON."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

PASSWORD = "correct horse battery"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def log_in(client: TestClient, user: str, password: str = PASSWORD) -> str:
    """Log in as `user`; returns the session's CSRF token."""
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"username": user, "password": password, "csrf": token, "next": "/"}
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)


def json_post(client: TestClient, url: str, token: str | None, body: dict) -> object:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["X-CSRF-Token"] = token
    return client.post(url, json=body, headers=headers)
