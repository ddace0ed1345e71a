"""edoc benchmarks: every figure is a ratio against a baseline measured in the same run.

Run ``make bench`` (``.venv/bin/python bench/run.py``); ``--quick`` uses small counts (the
smoke test in ``tests/integration/test_bench_smoke.py`` runs it), ``--only PART`` runs one
part. Results and how to read them: BENCHMARKS.md.
"""
