"""The read-only web viewer (見読可能装置, ``edoc serve``): the Starlette application, its
routes, the security headers on every response, and how pages are rendered.

Read-only by construction: the only POSTs are login, logout, Verify (which reads) and the
evidence bundle (which writes a zip outside the archive); no route calls a service that
changes a record. Every page a person sees is written to the access log with the account's
name (by the reading services, or ``edoc.services.accounts.log_view``).

Headers on every response (``SecurityHeaders``): a Content-Security-Policy that allows no
inline script and nothing from elsewhere, ``X-Content-Type-Options: nosniff``, no framing,
no referrer, and ``Cache-Control: no-store`` (records must not linger in a shared cache).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edoc.errors import EdocError, InputError, NotFound
from edoc.services.archive import Archive
from edoc.web import auth, i18n

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
LANG_COOKIE = "edoc_lang"


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every HTTP response, whatever produced it (a route, a
    static file, an error)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in SECURITY_HEADERS if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass
class Viewer:
    """What every request shares: the open archive and the templates."""

    archive: Archive
    templates: jinja2.Environment


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("edoc.web", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["yen"] = lambda v: "-" if v is None else f"¥{int(v):,}"
    return env


def language(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in i18n.LANGS:
        return str(asked)
    kept = request.cookies.get(LANG_COOKIE)
    return kept if kept in i18n.LANGS else i18n.DEFAULT


def render(request: Request, template: str, context: dict[str, Any], *,
           status: int = 200) -> HTMLResponse:
    viewer: Viewer = request.app.state.viewer
    lang = language(request)
    sess = auth.current_session(request)
    html = viewer.templates.get_template(template).render(
        t=i18n.translator(lang), lang=lang, session=sess,
        csrf=sess.csrf_token if sess else "", path=request.url.path,
        keep=urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "lang"]),
        **context)
    resp = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in i18n.LANGS:
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict",
                        secure=auth.secure(request), path="/")
    return resp


def error_page(request: Request, exc: EdocError, *, status: int) -> Response:
    return render(request, "error.html", {"code": exc.code, "message": exc.message,
                                          "hint": exc.hint}, status=status)


def _status(exc: EdocError) -> int:
    if isinstance(exc, NotFound) or exc.code in ("PAGE_NOT_FOUND", "NOT_FOUND"):
        return 404
    if isinstance(exc, InputError):
        return 400
    return 500


async def _edoc_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EdocError)
    return error_page(request, exc, status=_status(exc))


async def _internal_error(request: Request, exc: Exception) -> Response:
    # The details go to the server's log, never to the page (no traceback, no content).
    log.exception("internal error on %s", request.url.path)
    return error_page(request, EdocError(f"internal error ({type(exc).__name__})",
                                         code="INTERNAL_ERROR"), status=500)


def _home(request: Request) -> Response:
    return RedirectResponse("/search", status_code=302)


def create_app(archive: Archive) -> Starlette:
    """The viewer over ``archive`` (kept open for the server's life)."""
    from edoc.services import accounts
    from edoc.web import views_record, views_search

    accounts.tables(archive)  # an older catalog gets the account tables now
    routes = [
        Route("/", _home),
        Route("/login", auth.threaded(auth.login_page), methods=["GET", "POST"]),
        Route("/logout", auth.threaded(auth.logout), methods=["POST"]),
        Route("/search", views_search.search_page),
        Route("/search.csv", views_search.search_csv),
        *views_record.routes(),
        Mount("/static", StaticFiles(packages=[("edoc.web", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        EdocError: _edoc_error, Exception: _internal_error})
    app.state.viewer = Viewer(archive, _templates())
    app.add_middleware(SecurityHeaders)
    return app
