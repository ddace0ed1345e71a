"""The one error family edoc raises to its users.

Every error carries a stable ``code`` (scripts match on it), a one-line message a clerk can
act on, an optional ``hint``, and the process ``exit_code`` the CLI uses: 1 when the subject
failed (a file rejected, a check failed, a disposal refused), 2 for usage or configuration.
``cli.py`` has a single ``except EdocError`` that renders them; tracebacks go to the debug
log only.
"""

from __future__ import annotations


class EdocError(Exception):
    """Base class: ``str(e)`` is ``CODE: message`` on one line."""

    code: str = "EDOC_ERROR"
    exit_code: int = 1

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = " ".join(message.split())
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class ConfigError(EdocError):
    """The archive or a profile is misconfigured, or the command line is wrong (exit 2)."""

    code = "CONFIG_ERROR"
    exit_code = 2


class UsageError(ConfigError):
    code = "USAGE_ERROR"


class InputError(EdocError):
    """A file or a value given by the user cannot be accepted (exit 1, nothing stored)."""

    code = "INPUT_ERROR"


class ProfileViolation(InputError):
    """A document does not meet what its ordinance profile requires."""

    code = "PROFILE_VIOLATION"


class DuplicateContent(InputError):
    code = "DUPLICATE_CONTENT"
    #: The record that already holds these bytes.
    record_id: str | None = None


class NotFound(EdocError):
    code = "NOT_FOUND"


class StorageError(EdocError):
    """The object store failed or refused an operation."""

    code = "STORAGE_ERROR"


class ObjectExists(StorageError):
    """Write-once: a key that already holds an object cannot be written again."""

    code = "OBJECT_EXISTS"


class ObjectMissing(StorageError):
    code = "OBJECT_MISSING"


class RetentionActive(StorageError):
    """A delete or shortening was refused because retention or a legal hold is in force."""

    code = "RETENTION_ACTIVE"


class TimestampError(EdocError):
    """The time-stamping authority could not be reached or answered with a failure."""

    code = "TSA_ERROR"


class SealError(EdocError):
    code = "SEAL_ERROR"


class CatalogError(EdocError):
    code = "CATALOG_ERROR"
