"""Every route of the viewer over HTTP (Starlette's TestClient on the real app and a real
archive): what each shows, in Japanese and English, and that each view is in the access log
(the one ``edoc audit-log`` reads) under the account's name."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import pypdfium2 as pdfium
from PIL import Image
from starlette.testclient import TestClient

from tests.web.conftest import WebArchive, login


def _audit(w: WebArchive) -> list[dict[str, Any]]:
    code, doc = w.edoc.json("audit-log")
    assert code == 0, doc
    return list(doc["entries"])


def _logged(w: WebArchive, actor: str, action: str, record_id: str | None = None) -> bool:
    return any(e["actor"] == actor and e["action"] == action
               and (record_id is None or record_id in e["record_ids"]) for e in _audit(w))


def test_home_sends_to_search(client: TestClient) -> None:
    login(client, "audrey")
    res = client.get("/")
    assert res.status_code == 302 and res.headers["location"] == "/search"


def test_login_page_is_japanese_by_default_and_english_on_request(client: TestClient) -> None:
    ja = client.get("/login")
    assert ja.status_code == 200 and "ログイン" in ja.text and 'lang="ja"' in ja.text
    en = client.get("/login?lang=en")
    assert "Log in" in en.text and 'lang="en"' in en.text
    assert en.cookies.get("edoc_lang") == "en" or "edoc_lang=en" in en.headers["set-cookie"]
    again = client.get("/login")  # the cookie remembers
    assert 'lang="en"' in again.text


def test_login_sets_a_strict_httponly_secure_cookie_and_logs_it(
        client: TestClient, web_archive: WebArchive) -> None:
    from tests.web.conftest import login_csrf

    csrf = login_csrf(client)
    res = client.post("/login", data={"csrf_token": csrf, "account": "sam",
                                      "password": "staff password 12", "next": "/search"})
    assert res.status_code == 302, res.text
    cookie = res.headers["set-cookie"]
    assert "edoc_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" in cookie  # the client speaks https
    assert _logged(web_archive, "web:sam", "web-login")


def test_wrong_password_is_refused_and_logged(client: TestClient,
                                              web_archive: WebArchive) -> None:
    from tests.web.conftest import login_csrf

    csrf = login_csrf(client)
    res = client.post("/login", data={"csrf_token": csrf, "account": "ada",
                                      "password": "not the password", "next": "/search"})
    assert res.status_code == 401
    assert "パスワードが違います" in res.text
    assert "edoc_session" not in res.headers.get("set-cookie", "")
    assert _logged(web_archive, "web:ada", "web-login-failed")
    # a later good login resets the count (the lock-out test counts from zero)
    login(client, "ada")


def test_login_redirects_to_next_but_never_off_site(client: TestClient) -> None:
    from tests.web.conftest import login_csrf

    for target, expected in (("/records/X", "/records/X"), ("//evil.example/", "/search"),
                             ("https://evil.example/", "/search"), ("/\\evil", "/search")):
        client.cookies.clear()
        csrf = login_csrf(client)
        res = client.post("/login", data={"csrf_token": csrf, "account": "audrey",
                                          "password": "correct horse battery",
                                          "next": target})
        assert res.status_code == 302 and res.headers["location"] == expected, target


def test_search_by_counterparty_fragment_and_logged(client: TestClient,
                                                    web_archive: WebArchive) -> None:
    login(client, "audrey")
    res = client.get("/search", params={"counterparty": "山田"})
    assert res.status_code == 200
    ids = web_archive.ids
    assert ids["scan"] in res.text and ids["corrected"] in res.text
    assert ids["pdf"] not in res.text
    assert _logged(web_archive, "web:audrey", "search", ids["scan"])


def test_search_fields_combine_with_and(client: TestClient, web_archive: WebArchive) -> None:
    login(client, "audrey")
    ids = web_archive.ids
    both = client.get("/search", params={"counterparty": "山田", "min_amount": "5000",
                                         "date_from": "2024-05-01", "date_to": "2024-05-31"})
    assert ids["scan"] in both.text and ids["corrected"] not in both.text
    by_type = client.get("/search", params={"doc_type": "contract", "go": "1"})
    assert ids["pdf"] in by_type.text and ids["scan"] not in by_type.text
    by_ref = client.get("/search", params={"ledger_ref": "JV-2024-001"})
    assert ids["scan"] in by_ref.text and ids["pdf"] not in by_ref.text
    none = client.get("/search", params={"counterparty": "存在しない取引先"})
    assert 'id="no-results"' in none.text


def test_search_refuses_a_range_the_wrong_way_round(client: TestClient) -> None:
    login(client, "audrey")
    res = client.get("/search", params={"date_from": "2024-12-01", "date_to": "2024-01-01"})
    assert res.status_code == 400 and "BAD_DATE" in res.text
    bad = client.get("/search", params={"min_amount": "lots"})
    assert bad.status_code == 400 and "BAD_AMOUNT" in bad.text


def test_search_pages_by_200(client: TestClient) -> None:
    from edoc.web.views_search import PAGE_SIZE

    login(client, "audrey")
    assert PAGE_SIZE == 200
    res = client.get("/search", params={"go": "1", "page": "2"})
    assert res.status_code == 200 and 'id="no-results"' in res.text  # < 200 records here
    assert 'id="next"' not in client.get("/search", params={"go": "1"}).text


def test_search_csv_is_a_neutralised_download(client: TestClient,
                                              web_archive: WebArchive) -> None:
    login(client, "audrey")
    res = client.get("/search.csv", params={"counterparty": "HYPERLINK"})
    assert res.status_code == 200
    assert res.headers["content-disposition"].startswith("attachment")
    assert res.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(res.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["record_id", "version", "state"]
    assert rows[1][0] == web_archive.ids["js_pdf"]
    assert rows[1][5] == "'=HYPERLINK(\"x\")"  # a formula is text


def test_record_page_shows_metadata_retention_and_pages(
        client: TestClient, web_archive: WebArchive) -> None:
    login(client, "audrey")
    rid = web_archive.ids["scan"]
    res = client.get(f"/records/{rid}")
    assert res.status_code == 200
    assert "株式会社山田商事" in res.text and "¥10,800" in res.text and "JV-2024-001" in res.text
    assert 'id="retention"' in res.text and "保存期限" in res.text
    assert f"/records/{rid}/versions/1/pages/1.png" in res.text
    assert _logged(web_archive, "web:audrey", "show", rid)


def test_record_page_in_english(client: TestClient, web_archive: WebArchive) -> None:
    login(client, "audrey")
    res = client.get(f"/records/{web_archive.ids['scan']}?lang=en")
    assert "Correction and deletion history" in res.text and "Retain until" in res.text


def test_history_lists_every_version_and_each_is_viewable(
        client: TestClient, web_archive: WebArchive) -> None:
    login(client, "audrey")
    rid = web_archive.ids["corrected"]
    page = client.get(f"/records/{rid}")
    assert "訂正削除履歴" in page.text and "金額の誤り" in page.text
    assert page.text.count('class="version-link"') == 2
    assert "¥3,800" in page.text  # the latest version by default
    first = client.get(f"/records/{rid}?v=1")
    assert first.status_code == 200 and "¥3,300" in first.text
    assert f"/records/{rid}/versions/1/pages/1.png" in first.text
    assert client.get(f"/records/{rid}?v=7").status_code == 404


def test_pdf_pages_are_rendered_as_png(client: TestClient, web_archive: WebArchive) -> None:
    login(client, "audrey")
    rid = web_archive.ids["pdf"]
    page = client.get(f"/records/{rid}")
    assert page.text.count('class="page"') == 2
    for n in (1, 2):
        img = client.get(f"/records/{rid}/versions/1/pages/{n}.png")
        assert img.status_code == 200 and img.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(img.content)) as im:
            assert im.format == "PNG" and im.width > 1000
    assert client.get(f"/records/{rid}/versions/1/pages/3.png").status_code == 404
    assert _logged(web_archive, "web:audrey", "get", rid)


def test_scan_is_redrawn_as_png(client: TestClient, web_archive: WebArchive) -> None:
    login(client, "audrey")
    img = client.get(f"/records/{web_archive.ids['scan']}/versions/1/pages/1.png")
    assert img.status_code == 200
    with Image.open(io.BytesIO(img.content)) as im:
        assert im.format == "PNG"


def test_einvoice_is_shown_through_the_rendering(client: TestClient,
                                                 web_archive: WebArchive) -> None:
    login(client, "audrey")
    rid = web_archive.ids["einvoice"]
    page = client.get(f"/records/{rid}")
    assert page.status_code == 200 and 'class="page"' in page.text
    img = client.get(f"/records/{rid}/versions/1/pages/1.png")
    assert img.status_code == 200 and img.content.startswith(b"\x89PNG")
    assert _logged(web_archive, "web:audrey", "render", rid)


def test_print_view(client: TestClient, web_archive: WebArchive) -> None:
    login(client, "audrey")
    rid = web_archive.ids["pdf"]
    res = client.get(f"/records/{rid}/print")
    assert res.status_code == 200
    assert res.text.count('class="print-page"') == 2 and "有限会社鈴木工業" in res.text
    assert 'data-print="1"' in res.text


def test_original_is_a_download_of_the_stored_bytes(client: TestClient,
                                                    web_archive: WebArchive) -> None:
    login(client, "audrey")
    rid = web_archive.ids["pdf"]
    res = client.get(f"/records/{rid}/versions/1/original")
    assert res.status_code == 200
    assert res.headers["content-type"] == "application/octet-stream"
    assert res.headers["content-disposition"].startswith("attachment")
    doc = pdfium.PdfDocument(res.content)
    assert len(doc) == 2
    doc.close()


def test_verify_runs_every_check_and_is_logged(client: TestClient,
                                               web_archive: WebArchive) -> None:
    csrf = login(client, "audrey")
    rid = web_archive.ids["corrected"]
    res = client.post(f"/records/{rid}/verify", data={"csrf_token": csrf})
    assert res.status_code == 200
    assert 'id="verify-status" class="ok">PASS' in res.text
    for check in ("content", "manifest", "ledger"):
        assert f"<td>{check}" in res.text or check in res.text
    assert res.text.count("<h2>v") == 2  # both versions
    assert _logged(web_archive, "web:audrey", "verify", rid)


def test_bundle_downloads_a_zip_and_is_logged(client: TestClient,
                                              web_archive: WebArchive) -> None:
    csrf = login(client, "audrey")
    rid = web_archive.ids["scan"]
    res = client.post(f"/records/{rid}/bundle", data={"csrf_token": csrf})
    assert res.status_code == 200
    assert res.headers["content-type"] == "application/zip"
    assert res.headers["content-disposition"] == f'attachment; filename="evidence-{rid}.zip"'
    with zipfile.ZipFile(io.BytesIO(res.content)) as z:
        assert "VERIFY.md" in z.namelist()
    assert _logged(web_archive, "web:audrey", "evidence", rid)


def test_staff_reads_but_may_not_verify_or_take_bundles(client: TestClient,
                                                        web_archive: WebArchive) -> None:
    csrf = login(client, "sam")
    rid = web_archive.ids["scan"]
    assert client.get(f"/records/{rid}").status_code == 200
    assert client.post(f"/records/{rid}/verify", data={"csrf_token": csrf}).status_code == 403
    assert client.post(f"/records/{rid}/bundle", data={"csrf_token": csrf}).status_code == 403


def test_logout_ends_the_session(client: TestClient, web_archive: WebArchive) -> None:
    csrf = login(client, "audrey")
    res = client.post("/logout", data={"csrf_token": csrf})
    assert res.status_code == 302 and res.headers["location"] == "/login"
    assert client.get("/search").status_code == 302
    assert _logged(web_archive, "web:audrey", "web-logout")


def test_a_stolen_cookie_is_dead_after_logout(client: TestClient) -> None:
    csrf = login(client, "audrey")
    cookie = client.cookies["edoc_session"]
    client.post("/logout", data={"csrf_token": csrf})
    client.cookies.set("edoc_session", cookie)
    assert client.get("/search").status_code == 302


def test_static_files(client: TestClient) -> None:
    js = client.get("/static/viewer.js")
    assert js.status_code == 200 and "data-zoom" in js.text
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/static/../app.py").status_code == 404


def test_switching_language_keeps_the_page(client: TestClient, web_archive: WebArchive) -> None:
    login(client, "audrey")
    rid = web_archive.ids["corrected"]
    page = client.get(f"/records/{rid}?v=1")
    assert f'href="/records/{rid}?v=1&amp;lang=en"' in page.text
    en = client.get(f"/records/{rid}?v=1&lang=en")
    assert "¥3,300" in en.text and "Correction and deletion history" in en.text
