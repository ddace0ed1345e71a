"""The viewer's security, tested (issue 19 item 5): ids and paths never escape the archive,
every response carries the CSP (no inline script) and nosniff, downloads carry
Content-Disposition, a stored HTML/SVG/PDF with script is never served inline,
unauthenticated requests get 302/401, CSRF missing or wrong is 403, repeated failed logins
lock the account (and the lock survives a restart)."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from edoc.services.archive import Archive
from edoc.web.app import create_app
from tests.web.conftest import PASSWORDS, WebArchive, add_user, login, login_csrf

PAGES = ["/", "/search", "/search?counterparty=x", "/records/{scan}", "/records/{scan}/print",
         "/records/{scan}?v=1"]
DOWNLOADS = ["/search.csv", "/records/{scan}/versions/1/pages/1.png",
             "/records/{scan}/versions/1/original"]
POSTS = ["/records/{scan}/verify", "/records/{scan}/bundle", "/logout"]


def _fill(path: str, w: WebArchive) -> str:
    return path.format(**w.ids)


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_the_unauthenticated_to_login(client: TestClient, web_archive: WebArchive,
                                                 path: str) -> None:
    res = client.get(_fill(path, web_archive))
    if path == "/":
        assert res.status_code == 302 and res.headers["location"] == "/search"
        res = client.get("/search")
    assert res.status_code == 302
    assert res.headers["location"].startswith("/login?next=%2F")


@pytest.mark.parametrize("path", DOWNLOADS)
def test_downloads_answer_401_unauthenticated(client: TestClient, web_archive: WebArchive,
                                              path: str) -> None:
    res = client.get(_fill(path, web_archive))
    assert res.status_code == 401
    assert b"\x89PNG" not in res.content and b"%PDF" not in res.content


@pytest.mark.parametrize("path", POSTS)
def test_posts_answer_401_unauthenticated(client: TestClient, web_archive: WebArchive,
                                          path: str) -> None:
    assert client.post(_fill(path, web_archive), data={"csrf_token": "x"}).status_code == 401


def test_a_forged_session_cookie_is_no_session(client: TestClient) -> None:
    client.cookies.set("edoc_session", "A" * 43)
    assert client.get("/search").status_code == 302
    client.cookies.set("edoc_session", "x" * 5000)
    assert client.get("/search").status_code == 302


@pytest.mark.parametrize("path", POSTS)
def test_csrf_missing_or_wrong_is_403(client: TestClient, web_archive: WebArchive,
                                      path: str) -> None:
    login(client, "audrey")
    url = _fill(path, web_archive)
    assert client.post(url).status_code == 403
    assert client.post(url, data={"csrf_token": ""}).status_code == 403
    assert client.post(url, data={"csrf_token": "forged" * 7}).status_code == 403
    assert client.get("/search").status_code == 200  # still logged in: logout did not run


def test_login_csrf_missing_or_wrong_is_403(client: TestClient) -> None:
    good = {"account": "audrey", "password": PASSWORDS["audrey"], "next": "/search"}
    assert client.post("/login", data=good).status_code == 403  # no cookie, no field
    token = login_csrf(client)
    assert client.post("/login", data={**good, "csrf_token": token + "x"}).status_code == 403
    client.cookies.delete("edoc_login_csrf", path="/login")
    assert client.post("/login", data={**good, "csrf_token": token}).status_code == 403
    assert "edoc_session" not in client.cookies


def test_every_response_carries_the_security_headers(client: TestClient,
                                                     web_archive: WebArchive) -> None:
    answers = [client.get("/login"), client.get("/static/viewer.js"), client.get("/nowhere"),
               client.get("/search")]
    csrf = login(client, "audrey")
    answers += [client.get(_fill(p, web_archive)) for p in PAGES + DOWNLOADS]
    answers += [client.get("/records/" + "Z" * 26),
                client.post(_fill("/records/{scan}/verify", web_archive),
                            data={"csrf_token": csrf})]
    for res in answers:
        csp = res.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert res.headers["x-content-type-options"] == "nosniff"
        assert res.headers["x-frame-options"] == "DENY"


def test_pages_hold_no_inline_script(client: TestClient, web_archive: WebArchive) -> None:
    login(client, "audrey")
    for path in PAGES:
        html = client.get(_fill(path, web_archive)).text
        for tag in re.findall(r"<script[^>]*>", html):
            assert 'src="/static/' in tag, tag
        # no body in any script element
        assert not re.search(r"<script[^>]*>(?!\s*</script>)", html)
        assert not re.search(r"\son[a-z]+=", html)  # no event-handler attributes


def test_downloads_carry_content_disposition(client: TestClient,
                                             web_archive: WebArchive) -> None:
    csrf = login(client, "audrey")
    rid = web_archive.ids["scan"]
    for res in (client.get("/search.csv?go=1"),
                client.get(f"/records/{rid}/versions/1/original"),
                client.post(f"/records/{rid}/bundle", data={"csrf_token": csrf})):
        assert res.status_code == 200
        assert res.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize("name", ["html", "svg", "js_pdf"])
def test_a_stored_document_with_script_is_never_served_inline(
        client: TestClient, web_archive: WebArchive, name: str) -> None:
    if name not in web_archive.ids:
        pytest.fail(f"the {name} sample was not ingested: the test would prove nothing")
    login(client, "audrey")
    rid = web_archive.ids[name]
    page = client.get(f"/records/{rid}")
    assert page.status_code == 200
    assert "alert(1)" not in page.text and "app.alert" not in page.text
    original = client.get(f"/records/{rid}/versions/1/original")
    assert original.headers["content-type"] == "application/octet-stream"
    assert original.headers["content-disposition"].startswith("attachment")
    image = client.get(f"/records/{rid}/versions/1/pages/1.png")
    if name == "js_pdf":  # drawn by PDFium: pixels only
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG") and b"app.alert" not in image.content
        assert 'class="page"' in page.text
    else:  # nothing to draw: no page at all, never the stored bytes
        assert image.status_code == 404
        assert b"<script>" not in image.content
        assert 'id="no-preview"' in page.text
    for res in (page, original, image):
        assert not (res.headers["content-type"].startswith(("text/html", "image/svg"))
                    and b"alert(1)" in res.content)


@pytest.mark.parametrize("path", [
    "/records/../../catalog.sqlite", "/records/..%2F..%2Fcatalog.sqlite",
    "/records/%2e%2e%2f%2e%2e%2fedoc.toml", "/records/01ARZ3NDEKTSV4RRFFQ69G5FA",
    "/records/01arz3ndektsv4rrffq69g5fav", "/records/01ARZ3NDEKTSV4RRFFQ69G5FAV.json",
    "/records/{scan}/versions/1/pages/0.png", "/records/{scan}/versions/1/pages/-1.png",
    "/records/{scan}/versions/99/pages/1.png", "/records/{scan}/versions/1/pages/99.png",
    "/records/{scan}/versions/1/pages/1.png/../../../../edoc.toml",
    "/records/{scan}/versions/x/original", "/records/{scan}/versions/2/original",
    "/static/..%2F..%2Fedoc.toml", "/static/%2e%2e/app.py",
])
def test_ids_and_paths_never_escape_the_archive(client: TestClient, web_archive: WebArchive,
                                                path: str) -> None:
    login(client, "audrey")
    res = client.get(_fill(path, web_archive))
    assert res.status_code in (400, 404), (path, res.status_code)
    assert b"archive_id" not in res.content and b"SQLite format" not in res.content
    assert b"def create_app" not in res.content


def test_lock_out_after_repeated_failures_survives_a_restart(
        web_archive: WebArchive) -> None:
    from edoc.services.accounts import LOCK_AFTER

    add_user(web_archive.edoc, "lockme", "auditor", "the right password")
    archive = Archive.open(str(web_archive.edoc.archive))
    try:
        with TestClient(create_app(archive), base_url="https://testserver",
                        follow_redirects=False) as c:
            for _ in range(LOCK_AFTER):
                token = login_csrf(c)
                res = c.post("/login", data={"csrf_token": token, "account": "lockme",
                                             "password": "wrong guess", "next": "/search"})
                assert res.status_code == 401
            token = login_csrf(c)
            res = c.post("/login", data={"csrf_token": token, "account": "lockme",
                                         "password": "the right password", "next": "/"})
            assert res.status_code == 401 and "ロック" in res.text
    finally:
        archive.close()
    # a new server process: the lock is in the catalog, not in memory
    archive = Archive.open(str(web_archive.edoc.archive))
    try:
        with TestClient(create_app(archive), base_url="https://testserver",
                        follow_redirects=False) as c:
            token = login_csrf(c)
            res = c.post("/login", data={"csrf_token": token, "account": "lockme",
                                         "password": "the right password", "next": "/"})
            assert res.status_code == 401 and "ロック" in res.text
    finally:
        archive.close()
    code, doc = web_archive.edoc.json("user", "list")
    assert code == 0
    locked = {a["name"]: a for a in doc["accounts"]}["lockme"]
    assert locked["locked_until"] is not None


def test_a_disabled_account_cannot_log_in_and_its_sessions_end(
        client: TestClient, web_archive: WebArchive) -> None:
    add_user(web_archive.edoc, "leaver", "staff", "leaving password")
    login(client, "leaver", "leaving password")
    assert client.get("/search").status_code == 200
    assert web_archive.edoc("user", "disable", "leaver").exit_code == 0
    assert client.get("/search").status_code == 302
    token = login_csrf(client)
    res = client.post("/login", data={"csrf_token": token, "account": "leaver",
                                      "password": "leaving password", "next": "/"})
    assert res.status_code == 401


def test_no_secure_cookie_over_plain_http(web_archive: WebArchive) -> None:
    archive = Archive.open(str(web_archive.edoc.archive))
    try:
        with TestClient(create_app(archive), base_url="http://testserver",
                        follow_redirects=False) as c:
            token = login_csrf(c)
            res = c.post("/login", data={"csrf_token": token, "account": "audrey",
                                         "password": PASSWORDS["audrey"], "next": "/"})
            assert res.status_code == 302
            assert "Secure" not in res.headers["set-cookie"]
            assert "HttpOnly" in res.headers["set-cookie"]
    finally:
        archive.close()


def test_passwords_are_never_stored(web_archive: WebArchive) -> None:
    data = (web_archive.edoc.archive / "catalog.sqlite").read_bytes()
    for password in PASSWORDS.values():
        assert password.encode() not in data
    with web_archive.edoc.db() as db:
        hashes = [h for (h,) in db.execute("SELECT password_hash FROM web_accounts")]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)


def test_user_add_refuses_bad_input_with_one_line(web_archive: WebArchive) -> None:
    from click.testing import CliRunner

    from cli import cli

    def add(*args: str, password: str = "long enough pw") -> tuple[int, str]:
        res = CliRunner().invoke(cli, ["--archive", str(web_archive.edoc.archive), "user",
                                       "add", *args, "--password-stdin"],
                                 input=password + "\n")
        return res.exit_code, res.output

    code, out = add("audrey", "--role", "auditor")
    assert code != 0 and "ACCOUNT_EXISTS" in out
    code, out = add("short", "--role", "auditor", password="short")
    assert code != 0 and "WEAK_PASSWORD" in out
    code, out = add("../evil", "--role", "auditor")
    assert code != 0 and "BAD_ACCOUNT_NAME" in out
    assert "Traceback" not in out


def test_secure_cookie_behind_a_trusted_tls_proxy_only(web_archive: WebArchive) -> None:
    """``edoc serve --behind-proxy`` runs uvicorn's proxy-header middleware: a request the
    proxy marks ``X-Forwarded-Proto: https`` gets a Secure cookie; without the flag the
    header is ignored (anyone could send it)."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    archive = Archive.open(str(web_archive.edoc.archive))
    try:
        app = create_app(archive)
        for wrapped, secure in ((ProxyHeadersMiddleware(app, trusted_hosts="*"), True),
                                (app, False)):
            with TestClient(wrapped, base_url="http://testserver",
                            follow_redirects=False) as c:
                c.headers["X-Forwarded-Proto"] = "https"
                token = login_csrf(c)
                # the client speaks plain http to the app (the proxy's side), so its jar
                # keeps a Secure cookie back: send it as the browser would over TLS
                res = c.post("/login", data={"csrf_token": token, "account": "audrey",
                                             "password": PASSWORDS["audrey"], "next": "/"},
                             headers={"Cookie": f"edoc_login_csrf={token}"})
                assert res.status_code == 302
                assert ("Secure" in res.headers["set-cookie"]) is secure
    finally:
        archive.close()


def test_a_typed_name_that_is_no_account_name_is_not_logged_as_typed(
        client: TestClient, web_archive: WebArchive) -> None:
    token = login_csrf(client)
    client.post("/login", data={"csrf_token": token, "account": "evil\x1b[2Jname",
                                "password": "x", "next": "/"})
    code, doc = web_archive.edoc.json("audit-log")
    assert code == 0
    assert not any("\x1b" in e["actor"] for e in doc["entries"])
