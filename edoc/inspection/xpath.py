"""Namespaced XPath lookups compiled once per expression and thread.

``node.xpath(path, namespaces=...)`` compiles its expression on every call, and reading one
invoice asks for some 40 of them (a quarter of its cost, measured: BENCHMARKS.md, issue 15).
An ``etree.XPath`` is reusable, but evaluates under a lock of its own, so each thread keeps
its own compiled copies rather than queueing on a shared one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from lxml import etree


def selector(namespaces: Mapping[str, str]) -> Callable[[Any, str], list[Any]]:
    """``select(node, path)``: the elements (or values) at ``path`` relative to ``node``,
    with ``namespaces``' prefixes; [] when the expression yields no node-set."""
    local = threading.local()
    ns = dict(namespaces)

    def select(node: Any, path: str) -> list[Any]:
        compiled: dict[str, etree.XPath] | None = getattr(local, "compiled", None)
        if compiled is None:
            compiled = local.compiled = {}
        xpath = compiled.get(path)
        if xpath is None:
            xpath = compiled[path] = etree.XPath(path, namespaces=ns)
        found = xpath(node)
        return list(found) if isinstance(found, list) else []

    return select
