"""Coverage-guided fuzzing of the readability gate and the CSV manifest reader (optional).

Not collected by pytest (the name does not start with ``test_``) and not a dependency:
atheris (libFuzzer for Python) ships binary wheels for CPython 3.11 on Linux x86-64::

    pip install atheris        # in a throwaway environment, or the project's venv
    python tests/fuzz_atheris.py -max_total_time=300 [CORPUS_DIR]
    python tests/fuzz_atheris.py --target=manifest -runs=100000

Each input is written to a temporary file and given to ``detect_media_type`` + ``inspect``
(``--target=readability``, the default) or ``read_manifest`` (``--target=manifest``). Only
``InputError`` may escape; anything else is a finding, and libFuzzer saves the input as
``crash-*``. Seed the corpus with ``tests/hostile.py`` (``build_corpus``) for a head start.
libFuzzer's ``-rss_limit_mb`` (2048 by default) catches decompression bombs that slip past
the gate's limits.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import atheris  # type: ignore[import-not-found]

with atheris.instrument_imports():
    from edoc import inspection
    from edoc.errors import InputError
    from edoc.services.manifest_csv import read_manifest

_WORK = Path(tempfile.mkdtemp(prefix="edoc-atheris-"))


def fuzz_readability(data: bytes) -> None:
    path = _WORK / "input.bin"
    path.write_bytes(data)
    with contextlib.suppress(InputError):
        inspection.inspect(path, inspection.detect_media_type(path))


def fuzz_manifest(data: bytes) -> None:
    path = _WORK / "manifest.csv"
    path.write_bytes(data)
    try:
        for request in read_manifest(path, default_profiles=("general",)):
            if request.rejection is None:
                assert Path(request.path).is_relative_to(_WORK.resolve()), request.path
    except InputError:
        pass


def main() -> None:
    target = fuzz_readability
    argv = []
    for arg in sys.argv:
        if arg.startswith("--target="):
            target = {"readability": fuzz_readability,
                      "manifest": fuzz_manifest}[arg.split("=", 1)[1]]
        else:
            argv.append(arg)
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
