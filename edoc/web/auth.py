"""Logging in and out, the session cookie, CSRF, and the guard every route passes.

The session cookie is HttpOnly, ``SameSite=Strict`` and ``Secure`` whenever the request
came over TLS (directly, or through a proxy trusted with ``edoc serve --behind-proxy``,
whose ``X-Forwarded-Proto`` uvicorn then honours). Every POST carries the session's CSRF
token in a form field (the login form: a token also set in a short-lived cookie, the
double-submit pattern, since there is no session yet); a missing or wrong one is 403. A
request without a live session gets 302 to the login page for a page, 401 for a download
or a POST (a script, not a person, should not be sent to a form).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from edoc.errors import EdocError
from edoc.services import accounts
from edoc.services.accounts import Session

SESSION_COOKIE = "edoc_session"
LOGIN_CSRF_COOKIE = "edoc_login_csrf"
CSRF_FIELD = "csrf_token"

Endpoint = Callable[[Request], Response]
AsyncEndpoint = Callable[[Request], Awaitable[Response]]


def threaded(endpoint: Endpoint) -> AsyncEndpoint:
    """An endpoint whose work blocks (catalog, store, rendering): its form is parsed in the
    event loop, then it runs in the thread pool."""

    @functools.wraps(endpoint)
    async def run(request: Request) -> Response:
        if request.method == "POST":
            async with request.form(max_files=0, max_fields=50) as form:
                request.scope["edoc.form"] = {k: v for k, v in form.items()
                                              if isinstance(v, str)}
        return await run_in_threadpool(endpoint, request)

    return run


def viewer(request: Request) -> Any:
    return request.app.state.viewer


def current_session(request: Request) -> Session | None:
    cached = request.scope.get("edoc.session", False)
    if cached is not False:
        return cached  # type: ignore[no-any-return]
    token = request.cookies.get(SESSION_COOKIE, "")
    found = accounts.session(viewer(request).archive, token) if token else None
    request.scope["edoc.session"] = found
    return found


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def safe_next(target: str | None) -> str:
    """Only a path of this site: never ``//host`` or ``https://…`` (an open redirect)."""
    if (not target or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(ch) < 32 for ch in target)):
        return "/search"
    return target


def guard(command: str, *, page: bool) -> Callable[[Endpoint], AsyncEndpoint]:
    """The route needs a live session whose role may run ``command``; a POST also needs
    the session's CSRF token."""

    def wrap(endpoint: Endpoint) -> AsyncEndpoint:
        @functools.wraps(endpoint)
        def guarded(request: Request) -> Response:
            sess = current_session(request)
            if sess is None:
                if page and request.method == "GET":
                    here = request.url.path + (f"?{request.url.query}" if request.url.query
                                               else "")
                    return RedirectResponse(f"/login?next={quote(here, safe='')}",
                                            status_code=302)
                return PlainTextResponse("login required", status_code=401)
            if request.method == "POST":
                form = _form(request)
                given = str(form.get(CSRF_FIELD, ""))
                if not given or not secrets.compare_digest(given, sess.csrf_token):
                    return PlainTextResponse("CSRF token missing or wrong", status_code=403)
            if not accounts.may(sess.account.role, command):
                from edoc.web.app import error_page

                return error_page(request, EdocError(
                    f"role {sess.account.role} may not {command}", code="ROLE_REQUIRED"),
                    status=403)
            return endpoint(request)

        return threaded(guarded)

    return wrap


def _form(request: Request) -> dict[str, Any]:
    """The parsed form of a POST (parsed before the endpoint runs, in the event loop)."""
    return dict(request.scope.get("edoc.form", {}))


def login_page(request: Request) -> Response:
    from edoc.web.app import render

    if request.method == "POST":
        return _login_post(request)
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", {
        "login_csrf": token, "next": safe_next(request.query_params.get("next")),
        "failed": None})
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True,
                    samesite="strict", secure=secure(request), path="/login")
    return resp


def _login_post(request: Request) -> Response:
    from edoc.web.app import render

    form = _form(request)
    given = str(form.get(CSRF_FIELD, ""))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not given or not expected or not secrets.compare_digest(given, expected):
        return PlainTextResponse("CSRF token missing or wrong", status_code=403)
    name = str(form.get("account", ""))[:200]
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    try:
        token, _sess = accounts.login(viewer(request).archive, name, password)
    except accounts.LoginRefused as exc:
        fresh = secrets.token_urlsafe(24)
        resp = render(request, "login.html", {
            "login_csrf": fresh, "next": target,
            "failed": "locked" if exc.code == "ACCOUNT_LOCKED" else "login_failed"},
            status=401)
        resp.set_cookie(LOGIN_CSRF_COOKIE, fresh, max_age=3600, httponly=True,
                        samesite="strict", secure=secure(request), path="/login")
        return resp
    done = RedirectResponse(target, status_code=302)
    done.set_cookie(SESSION_COOKIE, token, max_age=int(accounts.SESSION_FOR.total_seconds()),
                    httponly=True, samesite="strict", secure=secure(request), path="/")
    done.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return done


def logout(request: Request) -> Response:
    sess = current_session(request)
    if sess is None:
        return PlainTextResponse("login required", status_code=401)
    given = str(_form(request).get(CSRF_FIELD, ""))
    if not given or not secrets.compare_digest(given, sess.csrf_token):
        return PlainTextResponse("CSRF token missing or wrong", status_code=403)
    accounts.logout(viewer(request).archive, request.cookies.get(SESSION_COOKIE, ""),
                    sess.account.actor)
    resp = RedirectResponse("/login", status_code=302)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
