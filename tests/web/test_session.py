"""No credential in any URL: the token is exchanged once for a session cookie (HttpOnly, SameSite=Strict, Secure on
HTTPS) that the pages and OHIF then use, and the access log never records a token, even one put in a URL."""

from __future__ import annotations

import time

import pytest

from dicom_node.web.session import COOKIE, session_cookie, session_name
from tests.web.conftest import Site

TOKEN = "s3cret-token-42"
TOKENS = {"token": TOKEN, "access_log": "access.log"}


def set_cookie_attributes(header: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}


@pytest.mark.parametrize(("base_url", "secure"), [("http://localhost", False), ("https://localhost", True)])
def test_the_token_is_exchanged_once_for_an_httponly_strict_cookie(small_site: Site, base_url: str, secure: bool) -> None:
    with small_site.client(base_url=base_url, http=TOKENS) as http:
        assert http.get("/api/jobs").status_code == 401
        assert http.post("/api/session").status_code == 401  # no token, no cookie
        opened = http.post("/api/session", headers={"Authorization": f"Bearer {TOKEN}"})
        assert opened.status_code == 204
        header = opened.headers["set-cookie"]
        assert header.startswith(f"{COOKIE}=") and TOKEN not in header
        attributes = set_cookie_attributes(header)
        assert {"httponly", "path", "max-age"} <= attributes and "samesite=strict" in header.lower()
        assert ("secure" in attributes) is secure
        assert http.get("/api/jobs").status_code == 200  # the cookie alone
        assert http.get("/dicomweb/studies").status_code == 200
        assert http.delete("/api/session").status_code == 204
        assert http.get("/api/jobs").status_code == 401


def test_a_forged_expired_or_orphaned_cookie_is_refused(small_site: Site) -> None:
    tokens = {"default": TOKEN}
    later = int(time.time()) + 3600
    genuine = session_cookie("default", TOKEN, later)
    assert session_name(genuine, tokens) == "default"
    forged = session_cookie("default", "guessed", later)
    expired = session_cookie("default", TOKEN, int(time.time()) - 1)
    stretched = genuine.replace(str(later), str(later + 10**6), 1)  # the expiry is under the MAC
    for value in (forged, expired, stretched, "garbage", "", f"{later}..default"):
        assert session_name(value, tokens) is None, value
    assert session_name(genuine, {"default": "the token was changed"}) is None
    with small_site.client(http=TOKENS) as http:
        http.cookies.set(COOKIE, forged)
        assert http.get("/api/jobs").status_code == 401


def test_a_token_in_a_url_is_neither_accepted_nor_logged(small_site: Site) -> None:
    with small_site.client(http=TOKENS) as http:
        assert http.get(f"/api/jobs?token={TOKEN}").status_code == 401
        assert http.get(f"/ohif/viewer?StudyInstanceUIDs=1.2.3&token={TOKEN}&access_token={TOKEN}").status_code == 200
    log = (small_site.data_dir / "access.log").read_text()
    assert TOKEN not in log
    assert '"query":"token=[redacted]"' in log and "StudyInstanceUIDs=1.2.3&token=[redacted]&access_token=[redacted]" in log
