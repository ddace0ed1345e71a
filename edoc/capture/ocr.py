"""OCR with Tesseract: one page image in, its words, their text and a mean confidence out.

Owns the one call to the ``tesseract`` program (Debian ``tesseract-ocr`` and
``tesseract-ocr-jpn``): ``-l jpn+eng`` (Japanese documents carry Latin letters and digits),
TSV output so each word's confidence is known, a timeout per page, and ``OMP_THREAD_LIMIT=1``
so that a pool of worker processes does not oversubscribe the cores (Tesseract's OpenMP
threads would otherwise multiply by the pool size).

Errors carry codes: ``OCR_UNAVAILABLE`` (the program or the Japanese model is missing),
``OCR_TIMEOUT``, ``OCR_FAILED``. Nothing is logged of the document's content.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image

from edoc.errors import InputError

OCR_UNAVAILABLE: Final = "OCR_UNAVAILABLE"
OCR_TIMEOUT: Final = "OCR_TIMEOUT"
OCR_FAILED: Final = "OCR_FAILED"
LANGUAGES: Final = "jpn+eng"
DEFAULT_TIMEOUT: Final = 120.0
#: Tesseract's own page segmentation (3: automatic, no OSD). Receipts are columns of short
#: lines; automatic segmentation keeps a right-aligned amount on its label's line.
PAGE_SEGMENTATION: Final = "3"
BLOCK_SEGMENTATION: Final = "6"
_INSTALL_HINT: Final = "install it: apt-get install -y tesseract-ocr tesseract-ocr-jpn"


class OcrError(InputError):
    """Tesseract could not read a page (the code says why)."""

    code = OCR_FAILED


@dataclass(frozen=True)
class OcrPage:
    """One page read by Tesseract: ``text`` has one line per line Tesseract found;
    ``confidence`` is the mean word confidence 0..1 (None when no word was found)."""

    text: str
    confidence: float | None
    words: int


def tesseract_program() -> str:
    """The program run; ``EDOC_TESSERACT`` names another (tests point it at a missing one)."""
    return os.environ.get("EDOC_TESSERACT", "tesseract")


def ocr_image(image: Image.Image, *, timeout: float = DEFAULT_TIMEOUT,
              segmentation: str = PAGE_SEGMENTATION) -> OcrPage:
    """OCR one page image (any Pillow mode; it is handed to Tesseract as lossless PNG).
    ``segmentation``: Tesseract's ``--psm`` (``BLOCK_SEGMENTATION`` reads a region as one
    block of text)."""
    if image.mode not in ("1", "L", "RGB"):
        image = image.convert("RGB")
    with tempfile.TemporaryDirectory(prefix="edoc-ocr-") as tmp:
        page = Path(tmp) / "page.png"
        # dpi: Tesseract scales its expectations of glyph size by it; Pillow keeps the
        # resolution the scan declared, and 300 is what the archive's capture rules ask.
        dpi = image.info.get("dpi", (300, 300))
        image.save(page, format="PNG", dpi=dpi)
        return _run(page, timeout, segmentation)


def _run(page: Path, timeout: float, segmentation: str) -> OcrPage:
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    argv = [tesseract_program(), str(page), "stdout", "-l", LANGUAGES,
            "--psm", segmentation, "tsv"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, env=env,
                              check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise OcrError(f"{argv[0]} is not installed; OCR is unavailable",
                       code=OCR_UNAVAILABLE, hint=_INSTALL_HINT) from None
    except subprocess.TimeoutExpired:
        raise OcrError(f"OCR of a page took more than {timeout:.0f} s", code=OCR_TIMEOUT,
                       hint="split the document or scan it at 300 dpi") from None
    stderr = done.stderr.decode("utf-8", "replace")
    if "Failed loading language" in stderr or "Error opening data file" in stderr:
        raise OcrError("the Tesseract language data jpn+eng is missing", code=OCR_UNAVAILABLE,
                       hint=_INSTALL_HINT)
    if done.returncode != 0:
        last = stderr.strip().splitlines()[-1:] or ["no message"]
        raise OcrError(f"tesseract failed (exit {done.returncode}): {last[0][:200]}",
                       code=OCR_FAILED)
    return parse_tsv(done.stdout.decode("utf-8", "replace"))


def parse_tsv(tsv: str) -> OcrPage:
    """Lines and the mean confidence from Tesseract's TSV (level 5 rows are words)."""
    lines: dict[tuple[str, str, str, str], list[str]] = {}
    confidences: list[float] = []
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != "5":
            continue
        word = cells[11].strip()
        if not word:
            continue
        try:
            conf = float(cells[10])
        except ValueError:
            continue
        if conf >= 0:
            confidences.append(conf)
        lines.setdefault((cells[1], cells[2], cells[3], cells[4]), []).append(word)
    text = "\n".join(_join_words(words) for words in lines.values())
    mean = round(sum(confidences) / len(confidences) / 100.0, 4) if confidences else None
    return OcrPage(text=text, confidence=mean, words=len(confidences))


def _join_words(words: list[str]) -> str:
    """Tesseract's Japanese model splits a run of kana and kanji into one 'word' per few
    characters; between two such pieces there is no space in the printed text."""
    out = words[0]
    for word in words[1:]:
        if _is_cjk(out[-1]) or _is_cjk(word[0]):
            out += word
        else:
            out += " " + word
    return out


def _is_cjk(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "FULLWIDTH", "IDEOGRAPHIC"))
