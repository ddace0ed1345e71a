"""Verification results as data: tri-state checks with stable codes.

Verification never raises for a failed check. Each mechanism returns ``Check`` values; a
``RecordReport`` groups them per record, and the CLI only renders them. An exception from a
verifier means "could not run", not "the record is bad".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

REPORT_SCHEMA_VERSION = 1


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    FAIL = "fail"
    INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class Check:
    """One check on one subject: ``digest``, ``seal``, ``timestamp``, ``inclusion``…"""

    name: str
    status: Status
    #: Stable code scripts can match on: ``OK`` on pass, else e.g. ``DIGEST_MISMATCH``.
    code: str
    detail: str = ""
    expected: str | None = None
    found: str | None = None

    @classmethod
    def ok(cls, name: str, detail: str = "") -> Check:
        return cls(name, Status.PASS, "OK", detail)

    @classmethod
    def fail(
        cls,
        name: str,
        code: str,
        detail: str,
        *,
        expected: str | None = None,
        found: str | None = None,
    ) -> Check:
        return cls(name, Status.FAIL, code, detail, expected, found)

    @classmethod
    def unknown(cls, name: str, code: str, detail: str) -> Check:
        return cls(name, Status.INDETERMINATE, code, detail)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "code": self.code,
            "detail": self.detail,
            "expected": self.expected,
            "found": self.found,
        }


def bottom_line(checks: list[Check]) -> Status:
    """FAIL if any check failed, else INDETERMINATE if any could not decide, else PASS."""
    statuses = {c.status for c in checks}
    if Status.FAIL in statuses:
        return Status.FAIL
    if Status.INDETERMINATE in statuses or not checks:
        return Status.INDETERMINATE
    return Status.PASS


@dataclass
class RecordReport:
    """Every check run on one record version."""

    record_id: str
    version: int
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return bottom_line(self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "version": self.version,
            "status": self.status.value,
            "checks": [c.as_dict() for c in self.checks],
        }
