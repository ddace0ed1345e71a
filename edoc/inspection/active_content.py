"""Active content in a PDF: JavaScript, launch and submit actions, embedded files, XFA, ….

A record that runs code or reaches outside itself when opened may not display the same way
for the whole retention period; the kinds found are reported in the manifest, not refused
here: a profile with ``reject_active_content`` refuses them (``edoc.policy.capture``).
"""

from __future__ import annotations

from typing import Final

import pikepdf

#: Objects examined when looking for active content; a larger graph is reported as
#: ``incomplete-scan`` (and refused where active content is refused).
_MAX_ACTIVE_CONTENT_NODES: Final = 200_000
_MAX_NESTING: Final = 64

_ACTION_KINDS: Final[dict[str, str]] = {
    "/JavaScript": "javascript",
    "/Launch": "launch-action",
    "/SubmitForm": "submit-form",
    "/ImportData": "import-data",
    "/RichMediaExecute": "rich-media",
}
_MULTIMEDIA_ANNOTATIONS: Final = frozenset({"/RichMedia", "/Movie", "/Sound", "/Screen", "/3D"})
#: Keys whose subtrees hold no actions; skipping them keeps the walk to the document's
#: skeleton (content, fonts and images are the bulk of a large PDF).
_INERT_KEYS: Final = frozenset(
    {
        "/Parent",
        "/Resources",
        "/Contents",
        "/AP",
        "/Font",
        "/Metadata",
        "/StructTreeRoot",
        "/ParentTree",
        "/Thumb",
        "/OutputIntents",
        "/MediaBox",
        "/CropBox",
    }
)


def find_active_content(pdf: pikepdf.Pdf) -> tuple[str, ...]:
    """Kinds of active content reachable from the document catalog.

    A bounded walk of the object graph (each indirect object once, nesting ≤ 64, at most
    200 000 objects) finds: document open actions other than a plain go-to, JavaScript
    (name tree or any action), Launch/SubmitForm/ImportData actions, additional actions
    (/AA on the catalog, pages, annotations or fields), embedded files (name tree or file
    specifications with /EF), file attachment annotations, XFA forms and multimedia
    annotations. Found kinds are reported, not refused; the profile decides.
    """
    found: set[str] = set()
    root = pdf.Root
    opening = root.get("/OpenAction")
    if isinstance(opening, pikepdf.Dictionary) and opening.get("/S") != pikepdf.Name.GoTo:
        found.add("open-action")
    seen: set[tuple[int, int]] = set()
    pending: list[tuple[object, int]] = [(root, 0)]
    visited = 0
    while pending:
        node, depth = pending.pop()
        if not isinstance(node, pikepdf.Dictionary | pikepdf.Array | pikepdf.Stream):
            continue
        if node.is_indirect:
            objgen = node.objgen
            if objgen in seen:
                continue
            seen.add(objgen)
        visited += 1
        if visited > _MAX_ACTIVE_CONTENT_NODES or depth > _MAX_NESTING:
            found.add("incomplete-scan")
            break
        if isinstance(node, pikepdf.Array):
            pending.extend((item, depth + 1) for item in node)
            continue
        _classify_dict(node, found)
        # items(), not get(key): a key naming bytes that are not UTF-8 (/A#FF) comes back as a
        # str with surrogates, which pikepdf cannot take as a key again.
        for key, value in node.items():
            if key not in _INERT_KEYS:
                pending.append((value, depth + 1))
    return tuple(sorted(found))


def _classify_dict(node: pikepdf.Object, found: set[str]) -> None:
    action = node.get("/S")
    if isinstance(action, pikepdf.Name) and str(action) in _ACTION_KINDS:
        found.add(_ACTION_KINDS[str(action)])
    if "/JS" in node:
        found.add("javascript")
    if "/JavaScript" in node and isinstance(node.get("/JavaScript"), pikepdf.Dictionary):
        found.add("javascript")  # the catalog's /Names /JavaScript name tree (§7.7.4)
    aa = node.get("/AA")
    if isinstance(aa, pikepdf.Dictionary) and len(aa.keys()) > 0:
        found.add("additional-actions")
    if "/EF" in node or "/EmbeddedFiles" in node or node.get("/Type") == pikepdf.Name.EmbeddedFile:
        found.add("embedded-files")
    subtype = node.get("/Subtype")
    if subtype == pikepdf.Name.FileAttachment:
        found.add("file-attachment")
    elif isinstance(subtype, pikepdf.Name) and str(subtype) in _MULTIMEDIA_ANNOTATIONS:
        found.add("multimedia")
    if "/XFA" in node:
        found.add("xfa")
