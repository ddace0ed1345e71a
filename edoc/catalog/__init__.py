"""The catalog: a derived, searchable index of records, versions, ledger and checkpoints.

The catalog is an index, not the source of truth: ``edoc catalog rebuild`` recreates it
from the object store, and ``edoc verify`` compares it with the sealed manifests. This
package is the only one that speaks SQL (SQLAlchemy Core): services get frozen row
dataclasses and plain values back.

- ``schema``: tables, indexes, the counterparty trigger, the upgrade of older catalogs;
- ``engine``: connections, the write lock, ``write()`` / ``read()``;
- ``core``: ``Catalog`` and its typed ``Transaction``;
- ``records``, ``search``, ``ledger``, ``holds``, ``disposal``, ``access``: each concern's
  statements and row types; ``group_commit``: many threads' transactions, one commit.
"""

from edoc.catalog.access import AccessRow
from edoc.catalog.core import Catalog, Transaction
from edoc.catalog.disposal import DisposalRun, JournalItem
from edoc.catalog.engine import BUSY_TIMEOUT_S
from edoc.catalog.holds import HoldRow
from edoc.catalog.ledger import (
    INSERT_LEDGER,
    LEDGER_TOP,
    CheckpointRow,
    LedgerEntry,
    LedgerState,
)
from edoc.catalog.records import (
    ACTIVE_RECORD_BY_SHA,
    DELETE_INTENT,
    INSERT_INTENT,
    INSERT_RECORD,
    INSERT_VERSION,
    INTENT_BY_SHA,
    INTENT_OWNER,
    MOVE_RECORD,
    RECORD_HEAD,
    VERSION_COLUMNS,
    Intent,
    PendingIntent,
    RecordRow,
    Refusal,
    VersionRow,
    VersionWithEntry,
    stray_columns,
    version_row,
)
from edoc.catalog.schema import (
    SCHEMA_VERSION,
    SEARCH_COLUMNS,
    access_log,
    checkpoints,
    counterparties,
    disposal_items,
    disposal_runs,
    holds,
    intents,
    ledger,
    metadata,
    normalise_counterparty,
    records,
    schema_info,
    versions,
)
from edoc.catalog.search import SearchHitRow, SearchQuery, SearchRow
from edoc.clock import utc_text

__all__ = [
    "ACTIVE_RECORD_BY_SHA", "BUSY_TIMEOUT_S", "DELETE_INTENT", "INSERT_INTENT",
    "INSERT_LEDGER", "INSERT_RECORD", "INSERT_VERSION", "INTENT_BY_SHA", "INTENT_OWNER",
    "LEDGER_TOP", "MOVE_RECORD", "RECORD_HEAD", "SCHEMA_VERSION", "SEARCH_COLUMNS",
    "VERSION_COLUMNS", "AccessRow", "Catalog", "CheckpointRow", "DisposalRun", "HoldRow",
    "Intent", "JournalItem", "LedgerEntry", "LedgerState", "PendingIntent", "RecordRow",
    "Refusal", "SearchHitRow", "SearchQuery", "SearchRow", "Transaction", "VersionRow",
    "VersionWithEntry",
    "access_log", "checkpoints", "counterparties", "disposal_items", "disposal_runs",
    "holds", "intents", "ledger", "metadata", "normalise_counterparty", "records",
    "schema_info", "stray_columns", "utc_text", "version_row", "versions",
]
