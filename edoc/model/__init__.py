"""The typed records edoc keeps: manifests, verdicts, identifiers, canonical JSON.

No I/O and no crypto here; every other layer may import this one."""
