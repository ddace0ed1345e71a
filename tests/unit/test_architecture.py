"""The architecture, checked where import-linter cannot look (ARCHITECTURE.md).

import-linter (``make lint``) enforces the package layers and which package may import
SQLAlchemy, boto3 and click. ``cli.py`` is a module beside the package, so its side of the
contract is checked here: it parses, calls a service and renders — it never reaches the
catalog or the store itself, and it speaks no SQL and no S3.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: What the CLI may import from edoc: the use cases, the bundle, and the vocabulary they speak.
CLI_MAY_IMPORT = ("edoc.services", "edoc.bundle", "edoc.errors", "edoc.clock", "edoc.model",
                  "edoc.queue", "edoc.config", "edoc.policy", "edoc.evidence.hashing",
                  # the web viewer (``edoc serve``): a top layer beside the CLI
                  "edoc.web",
                  # the process's warning filters (imported for its effect, no API)
                  "edoc.warnings_policy")
NEVER = ("sqlalchemy", "boto3", "botocore", "edoc.catalog", "edoc.storage")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "edoc":
                found += [(node.lineno, f"edoc.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def test_cli_imports_only_services_and_their_vocabulary() -> None:
    bad = [(line, mod) for line, mod in _imports(ROOT / "cli.py")
           if mod.startswith(NEVER)
           or (mod.startswith("edoc") and mod != "edoc" and not mod.startswith(CLI_MAY_IMPORT))]
    assert bad == [], f"cli.py reaches below the services: {bad}"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    probe = tmp_path / "cli.py"
    probe.write_text("from edoc.catalog import Catalog\nimport sqlalchemy as sa\n"
                     "from edoc import storage\n")
    assert [m for _, m in _imports(probe)] == ["edoc.catalog", "sqlalchemy", "edoc.storage"]


def test_cli_never_touches_the_store_or_the_catalog_directly() -> None:
    text = (ROOT / "cli.py").read_text(encoding="utf-8")
    for attribute in (".store.", ".catalog."):
        assert attribute not in text, f"cli.py uses archive{attribute} — call a service instead"
