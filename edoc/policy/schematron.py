"""Operator-supplied e-invoice rules: a compiled Schematron (XSLT producing SVRL) run by Saxon.

Owns running the rule files an operator names in ``edoc.toml`` (``[einvoice] rules``) — e.g.
the official Peppol PINT / JP PINT Schematron, compiled to XSLT as the OpenPeppol releases ship
it — against an e-invoice that edoc's own reader has already accepted, and turning each
``svrl:failed-assert`` / ``svrl:successful-report`` into a ``Finding`` (a warning on the
record: 電子帳簿保存法 第7条 obliges keeping what was received, so a rule breach is reported,
never a reason to refuse). ``edoc.policy.pint_rules`` stays the archive's own short list; this
is the full validation for operators who want it.

Saxon (``saxonche``, XSLT 3.0) is optional: without it, configured rules are a clear
``EINVOICE_RULES_UNAVAILABLE`` at ingest, never silently skipped.

Trust: the rule files are the operator's, like ``edoc.toml``; the invoice is not. So only a
document ``edoc.inspection.einvoice.read_einvoice`` has accepted reaches Saxon: no DOCTYPE,
hence nothing for Saxon's own XML parser to expand or fetch. The SVRL Saxon returns is parsed
with the same hardened parser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from lxml import etree

from edoc.errors import ConfigError
from edoc.inspection.einvoice import hardened_parser
from edoc.policy.registration import Finding

SVRL: Final = "http://purl.oclc.org/dsdl/svrl"
EINVOICE_RULE: Final = "EINVOICE_RULE"
EINVOICE_RULES_UNAVAILABLE: Final = "EINVOICE_RULES_UNAVAILABLE"
EINVOICE_RULES_INVALID: Final = "EINVOICE_RULES_INVALID"
#: A message is the rule's own text; cap it so one verbose rule cannot bloat a manifest.
_MAX_MESSAGE: Final = 500


@dataclass(frozen=True)
class _Compiled:
    name: str
    executable: Any


class RuleSet:
    """The compiled rule files, compiled once and run on each invoice of an ingest.

    Raises ``ConfigError`` (``EINVOICE_RULES_UNAVAILABLE`` without saxonche,
    ``EINVOICE_RULES_INVALID`` for a file that is missing or does not compile)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        try:
            from saxonche import PySaxonApiError, PySaxonProcessor
        except ImportError:
            raise ConfigError(
                "einvoice rules are configured but Saxon is not installed "
                "(pip install saxonche)", code=EINVOICE_RULES_UNAVAILABLE) from None
        self._error: type[Exception] = PySaxonApiError
        self._processor = PySaxonProcessor(license=False)
        compiler = self._processor.new_xslt30_processor()
        self._rules: list[_Compiled] = []
        for path in paths:
            if not path.is_file():
                raise ConfigError(f"einvoice rule file {path} does not exist",
                                  code=EINVOICE_RULES_INVALID)
            try:
                executable = compiler.compile_stylesheet(stylesheet_file=str(path))
            except PySaxonApiError as exc:
                first = str(exc).strip().splitlines()[:2]
                raise ConfigError(f"einvoice rule file {path.name} does not compile: "
                                  f"{' '.join(line.strip() for line in first)}",
                                  code=EINVOICE_RULES_INVALID) from None
            self._rules.append(_Compiled(path.name, executable))

    def __len__(self) -> int:
        return len(self._rules)

    def check(self, xml: bytes) -> list[Finding]:
        """Every failed assertion and successful report of every rule file on ``xml``."""
        findings: list[Finding] = []
        text = xml.decode("utf-8", errors="replace")
        for rule in self._rules:
            try:
                node = self._processor.parse_xml(xml_text=text)
                svrl = rule.executable.transform_to_string(xdm_node=node)
            except self._error as exc:
                findings.append(Finding(EINVOICE_RULE, f"{rule.name}",
                                        f"the rule file could not run on this document: "
                                        f"{str(exc).strip().splitlines()[0][:200]}"))
                continue
            findings.extend(_svrl_findings(rule.name, svrl or ""))
        return findings


def _svrl_findings(source: str, svrl: str) -> list[Finding]:
    """``svrl:failed-assert`` and ``svrl:successful-report``, in document order."""
    try:
        root = etree.fromstring(svrl.encode("utf-8"), hardened_parser())
    except etree.XMLSyntaxError as exc:
        return [Finding(EINVOICE_RULE, source, f"the rule file's output is not SVRL: {exc}")]
    out: list[Finding] = []
    for node in root.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report"):
        rule_id = (node.get("id") or "").strip() or source
        flag = (node.get("flag") or "").strip()
        texts = node.findall(f"{{{SVRL}}}text")
        message = " ".join(" ".join("".join(t.itertext()).split()) for t in texts)
        location = (node.get("location") or "").strip()
        detail = message or (node.get("test") or "").strip()
        if location:
            detail = f"{detail} (at {location[:120]})"
        prefix = f"[{flag}] " if flag else ""
        out.append(Finding(EINVOICE_RULE, rule_id, (prefix + detail)[:_MAX_MESSAGE]))
    return out
