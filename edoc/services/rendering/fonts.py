"""Which Japanese font a rendering embeds, and the refusal when there is none.

A readable copy (見読性, 電子帳簿保存法施行規則 第2条第2項第2号) must show the same glyphs on
every screen and printer, so the font is a TrueType file embedded (as a subset) in the PDF.
reportlab's built-in CID fonts (``HeiseiKakuGo-W5``) are *not* embedded — the viewer
substitutes whatever it has — so they are never used as a silent fallback: no font file means
``FONT_MISSING`` and no PDF.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from edoc.errors import ConfigError

#: The environment variable naming a TrueType (.ttf) font to use instead of the defaults.
FONT_ENV: Final = "EDOC_CJK_FONT"
#: The Debian package the default font comes from (``apt-get install fonts-ipaexfont-gothic``).
FONT_PACKAGE: Final = "fonts-ipaexfont-gothic"

#: Where Debian/Ubuntu put IPAex Gothic (``dpkg -L fonts-ipaexfont-gothic``); older releases
#: used the truetype directory. Only IPAex paths: the ``fonts-japanese-gothic.ttf``
#: alternative may point at an OpenType/CFF or .ttc font reportlab cannot embed.
DEFAULT_FONT_PATHS: Final[tuple[Path, ...]] = (
    Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"),
    Path("/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf"),
)


def find_cjk_font(search: Sequence[Path] = DEFAULT_FONT_PATHS) -> Path:
    """The font file to embed: ``EDOC_CJK_FONT`` if set, else the first default that exists.

    A set but wrong ``EDOC_CJK_FONT`` is an error, not a reason to fall back: the operator
    asked for that font, and a copy in another one would not be what they checked."""
    override = os.environ.get(FONT_ENV)
    if override:
        path = Path(override)
        if path.is_file():
            return path
        raise ConfigError(f"{FONT_ENV}={override} is not a font file", code="FONT_MISSING",
                          hint=f"point {FONT_ENV} at a .ttf file, or unset it and install "
                               f"the Debian package {FONT_PACKAGE}")
    for path in search:
        if path.is_file():
            return path
    raise ConfigError(f"no Japanese font to embed (install the Debian package {FONT_PACKAGE})",
                      code="FONT_MISSING",
                      hint=f"apt-get install {FONT_PACKAGE}, or set {FONT_ENV} to a .ttf file")
