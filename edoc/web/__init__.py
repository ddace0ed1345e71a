"""The read-only web viewer (``edoc serve``): the screen an auditor sits at (見読可能装置).

- ``app``: the Starlette application, routes, security headers, page rendering;
- ``auth``: login, logout, session cookie, CSRF, the guard on every route;
- ``views_search`` / ``views_record``: the search and the record pages;
- ``documents``: a stored document drawn as PNG images (never served as stored);
- ``i18n``: Japanese (default) and English.

Above ``edoc.bundle`` in the layers: it calls services and the bundle writer, never the
catalog or the store; only ``cli.py`` imports it.
"""
