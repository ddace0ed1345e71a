"""The job queue: ingest batches spread over worker processes on any number of hosts.

This package is the only one that imports procrastinate (a maintained PostgreSQL-backed job
queue, psycopg 3); the import-linter contract "procrastinate only in edoc.queue" keeps it so.
It sits above ``edoc.services``: a job is a thin wrapper around ``services.ingest`` (the same
checks and the same commit protocol as ``edoc ingest``), never a second copy of them.

* ``settings`` — which PostgreSQL database holds the queue (``EDOC_QUEUE_URL``, ``[queue] url``
  in edoc.toml, else the catalog's own PostgreSQL database),
* ``staging`` — the documents in transit: workers share nothing but the servers, so the bytes
  travel through the queue database (table ``edoc_queue_items``) with their SHA-256,
* ``app`` — the procrastinate app, its schema (applied on first use) and the tasks,
* ``work`` — what one job does: check the staged bytes, ingest them, classify failures,
* ``operations`` — what the CLI calls: enqueue, run a worker, counts, retry.
"""
