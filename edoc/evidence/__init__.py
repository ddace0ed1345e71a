"""Evidence mechanisms: hashing, the Merkle ledger, CAdES seals, RFC 3161 time-stamps, PKI."""
