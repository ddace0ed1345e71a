"""PDF decompression bombs: the decoded size of every stream, measured from the file's bytes.

qpdf and pdfium inflate a stream in full before they use it, and a few KiB of Flate can claim
gigabytes (filters chain, ISO 32000-1 §7.4). So before either opens the file, this module
finds every ``n g obj`` in it, parses each stream dictionary with its own small parser
(§7.3), and runs the stream's data through incremental decoders of the expanding filters
(Flate, LZW, RunLength, ASCIIHex, ASCII85) in pieces of at most 1 MiB, stopping as soon as a
limit is passed (``pdf_stream_sizes``). Whatever the bytes, it runs in bounded time and
memory and only ``InputError`` leaves it. Measuring a PDF's streams inflates its Flate data
once (~0.25 s for 100 MB decoded).
"""

from __future__ import annotations

import base64
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from edoc.errors import InputError

#: Decoded bytes allowed for one PDF stream: at least the raster of the largest image edoc
#: accepts (``MAX_PIXELS`` at 4 bytes a pixel, CMYK). Flate reaches ~1000:1 and filters can
#: be chained (ISO 32000-1 §7.4), so a few KiB can claim gigabytes, and qpdf and pdfium
#: inflate a content stream, font program or object stream in full before they use it.
MAX_STREAM_BYTES: Final = 320 * 1024 * 1024
#: Decoded bytes measured in one document, all streams together, so that the measurement's
#: own work stays bounded (300 lossless A4 colour pages at 200 dpi decode to ~3.5 GB).
MAX_DECODED_TOTAL: Final = 4 * 1024**3

_WHITESPACE: Final = b"\x00\t\n\x0c\r "  # ISO 32000-1 §7.2.2, Table 1
_DELIMITERS: Final = b"()<>[]{}/%"
_REGULAR: Final = re.compile(rb"[^\x00\t\n\x0c\r ()<>\[\]{}/%]*")
_OBJ_HEADER: Final = re.compile(rb"(?<![0-9])(\d{1,10})[\x00\t\n\x0c\r ]+(\d{1,5})"
                                rb"[\x00\t\n\x0c\r ]+obj(?![^\x00\t\n\x0c\r ()<>\[\]{}/%])")
_NAME_ESCAPE: Final = re.compile(rb"#([0-9A-Fa-f]{2})")
_REFERENCE: Final = re.compile(rb"[\x00\t\n\x0c\r ]+(\d+)[\x00\t\n\x0c\r ]+R"
                               rb"(?![^\x00\t\n\x0c\r ()<>\[\]{}/%])")
_STREAM_KEYWORD: Final = re.compile(rb"[\x00\t\n\x0c\r ]*stream(?:\r\n|\n|\r)")
_SCAN_BLOCK: Final = 1024 * 1024
#: Output piece of an incremental decoder: nothing larger is ever held.
_PIECE: Final = 1024 * 1024
_MAX_PARSE_DEPTH: Final = 32
#: The longest stream dictionary parsed (a font's /Widths can be long; 8 MiB is absurd).
_MAX_DICT_BYTES: Final = 8 * 1024 * 1024
#: How far after an object's header a ``stream`` keyword is looked for when its dictionary
#: cannot be parsed.
_FALLBACK_SPAN: Final = 64 * 1024
_STREAM_ANYWHERE: Final = re.compile(rb"(?<![A-Za-z])stream(?:\r\n|\n|\r)")
#: Marks a stream dictionary that could not be parsed (not a PDF name: no leading slash).
_UNPARSED: Final = "unparsed"


class _Ref(tuple[int, int]):
    """An indirect reference ``n g R`` met in a dictionary."""


class _Unparsable(Exception):
    pass


def _parse_object(buf: bytes, i: int, depth: int = 0) -> tuple[object, int]:
    """One PDF object (§7.3) from ``buf[i:]``: dict → dict, array → list, name → str,
    number → int/float, ``n g R`` → ``_Ref``; strings, booleans and null → None. Raises
    ``_Unparsable`` at the end of ``buf`` or on anything malformed."""
    i = _skip_space(buf, i)
    if i >= len(buf) or depth > _MAX_PARSE_DEPTH:
        raise _Unparsable
    c = buf[i:i + 1]
    if buf.startswith(b"<<", i):
        out: dict[str, object] = {}
        i += 2
        while True:
            i = _skip_space(buf, i)
            if buf.startswith(b">>", i):
                return out, i + 2
            key, i = _parse_object(buf, i, depth + 1)
            if not isinstance(key, str):
                raise _Unparsable
            out[key], i = _parse_object(buf, i, depth + 1)
    if c == b"[":
        items: list[object] = []
        i += 1
        while True:
            i = _skip_space(buf, i)
            if buf.startswith(b"]", i):
                return items, i + 1
            item, i = _parse_object(buf, i, depth + 1)
            items.append(item)
    if c == b"/":
        token = _REGULAR.match(buf, i + 1)
        assert token is not None  # the pattern matches the empty string
        # #xx escapes (§7.3.5): /Fl#61teDecode is /FlateDecode to every reader.
        name = _NAME_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), token.group())
        return name.decode("latin-1"), token.end()
    if c == b"(":
        return None, _skip_literal_string(buf, i)
    if c == b"<":
        end = buf.find(b">", i)
        if end < 0:
            raise _Unparsable
        return None, end + 1
    token = _REGULAR.match(buf, i)
    assert token is not None
    word = token.group()
    if not word:
        raise _Unparsable  # a stray delimiter: ) > ] } or end of the buffer
    if re.fullmatch(rb"\d+", word):
        ref = _REFERENCE.match(buf, token.end())
        if ref is not None:
            return _Ref((int(word), int(ref.group(1)))), ref.end()
        return int(word), token.end()
    try:
        return float(word), token.end()
    except ValueError:
        return None, token.end()  # true, false, null (or a keyword we do not need)


def _skip_space(buf: bytes, i: int) -> int:
    while i < len(buf):
        if buf[i] in _WHITESPACE:
            i += 1
        elif buf[i] == 0x25:  # % comment to the end of the line
            while i < len(buf) and buf[i] not in b"\r\n":
                i += 1
        else:
            break
    return i


def _skip_literal_string(buf: bytes, i: int) -> int:
    """Past a literal string (§7.3.4.2): balanced parentheses, backslash escapes."""
    depth = 0
    while i < len(buf):
        ch = buf[i]
        if ch == 0x5C:  # backslash: the next byte is escaped
            i += 2
            continue
        if ch == 0x28:
            depth += 1
        elif ch == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise _Unparsable


class _StreamTooLarge(Exception):
    """A measurement passed one of its limits."""


class _Decoder:
    """One stream filter decoding incrementally: ``feed`` yields pieces of at most ``_PIECE``
    bytes, so a bomb never materialises; ``done`` once its end of data is reached."""

    done = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        raise NotImplementedError


class _Flate(_Decoder):
    """FlateDecode (§7.4.4; zlib, RFC 1950/1951)."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            while not self._z.eof:
                out = self._z.decompress(data, _PIECE)
                if out:
                    yield out
                data = self._z.unconsumed_tail
                if not data and len(out) < _PIECE:
                    break
        except zlib.error:
            self._z = zlib.decompressobj()
            self.done = True  # damaged: what decoded so far is what any reader gets
            return
        self.done = self._z.eof


class _Lzw(_Decoder):
    """LZWDecode (§7.4.4): 9- to 12-bit codes; 256 clears the table, 257 ends the data; with
    /EarlyChange 1 (the default) the code width grows one code early."""

    def __init__(self, early_change: int) -> None:
        self._early = early_change
        self._acc = 0
        self._bits = 0
        self._reset()

    def _reset(self) -> None:
        self._table: list[bytes] = [bytes((i,)) for i in range(256)] + [b"", b""]
        self._width = 9
        self._prev = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        out = bytearray()
        for byte in data:
            self._acc = (self._acc << 8) | byte
            self._bits += 8
            while self._bits >= self._width:
                self._bits -= self._width
                code = self._acc >> self._bits
                self._acc &= (1 << self._bits) - 1
                if code == 256:
                    self._reset()
                    continue
                size = len(self._table)
                if code == 257 or code > size or (code == size and not self._prev):
                    self.done = True  # end of data, or a code that cannot occur
                    break
                entry = self._table[code] if code < size else self._prev + self._prev[:1]
                if self._prev and size < 4096:
                    self._table.append(self._prev + entry[:1])
                self._prev = entry
                out += entry
                if len(self._table) + self._early >= 1 << self._width and self._width < 12:
                    self._width += 1
                if len(out) >= _PIECE:
                    yield bytes(out)
                    out.clear()
            if self.done:
                break
        if out:
            yield bytes(out)


class _RunLength(_Decoder):
    """RunLengthDecode (§7.4.5): a length byte, then 1–128 literal bytes or one byte repeated
    2–128 times; 128 ends the data."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        data = self._pending + data
        out = bytearray()
        i = 0
        while i < len(data):
            n = data[i]
            if n == 128:
                self.done = True
                break
            if n < 128:
                if i + 2 + n > len(data):
                    break
                out += data[i + 1:i + 2 + n]
                i += 2 + n
            else:
                if i + 2 > len(data):
                    break
                out += data[i + 1:i + 2] * (257 - n)
                i += 2
            if len(out) >= _PIECE:
                yield bytes(out)
                out.clear()
        self._pending = b"" if self.done else data[i:]
        if out:
            yield bytes(out)


class _AsciiHex(_Decoder):
    """ASCIIHexDecode (§7.4.2): pairs of hex digits, white space ignored, ``>`` ends."""

    def __init__(self) -> None:
        self._odd = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        end = data.find(b">")
        if end >= 0:
            data, self.done = data[:end], True
        digits = self._odd + data.translate(None, _WHITESPACE)
        if self.done and len(digits) % 2:
            digits += b"0"  # a final odd digit is followed by an implied 0
        even = len(digits) - len(digits) % 2
        self._odd = digits[even:]
        try:
            decoded = bytes.fromhex(digits[:even].decode("ascii"))
        except ValueError:  # UnicodeDecodeError is a ValueError
            self.done = True
            return
        for start in range(0, len(decoded), _PIECE):
            yield decoded[start:start + _PIECE]


class _Ascii85(_Decoder):
    """ASCII85Decode (§7.4.3): groups of five base-85 digits, ``z`` for four zero bytes,
    white space ignored, ``~>`` ends."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        end = data.find(b"~")
        if end >= 0:
            data, self.done = data[:end], True
        for start in range(0, len(data), _PIECE // 4):
            # 'z' is a whole group of zeros: spelled out, every group has five digits.
            text = self._carry + data[start:start + _PIECE // 4].translate(
                None, _WHITESPACE).replace(b"z", b"!!!!!")
            whole = len(text) - len(text) % 5
            self._carry = text[whole:]
            try:
                yield base64.a85decode(text[:whole])
            except ValueError:
                self.done = True
                return
        if self.done and self._carry:
            try:
                tail = base64.a85decode(self._carry)
            except ValueError:
                return
            yield tail


def _decoder(name: object, params: object) -> _Decoder | None:
    """The incremental decoder of a filter that can expand its input, or None: the image
    codecs (DCT, JPX, JBIG2, CCITT) decode to the image's declared size and no more, which
    ``MAX_PIXELS`` bounds; Crypt and unknown filters end the measurement."""
    if name in ("FlateDecode", "Fl"):
        return _Flate()
    if name in ("LZWDecode", "LZW"):
        early = params.get("EarlyChange", 1) if isinstance(params, dict) else 1
        return _Lzw(0 if early == 0 else 1)
    if name in ("RunLengthDecode", "RL"):
        return _RunLength()
    if name in ("ASCIIHexDecode", "AHx"):
        return _AsciiHex()
    if name in ("ASCII85Decode", "A85"):
        return _Ascii85()
    return None


def _filter_chain(stream_dict: dict[str, object]) -> list[_Decoder] | None:
    """The expanding filters of a stream, in order; None when its /Filter is an indirect
    reference (not resolved here: the data is then tried as Flate, the common case)."""
    names = stream_dict.get("Filter")
    params = stream_dict.get("DecodeParms")
    if names is None:
        return []
    if isinstance(names, _Ref):
        return None
    names_list = names if isinstance(names, list) else [names]
    params_list = params if isinstance(params, list) else [params] * len(names_list)
    chain: list[_Decoder] = []
    for name, p in zip(names_list, params_list + [None] * len(names_list), strict=False):
        decoder = _decoder(name, p)
        if decoder is None:
            break
        chain.append(decoder)
    return chain


@dataclass
class _Budget:
    limit: int
    total_limit: int
    total: int = 0


def _decoded_size(chain: Sequence[_Decoder], chunks: Iterable[bytes], budget: _Budget) -> int:
    """Bytes out of the last filter of ``chain`` fed with ``chunks``; raises
    ``_StreamTooLarge`` as soon as a limit of ``budget`` is passed."""
    size = 0

    def push(stage: int, data: bytes) -> None:
        nonlocal size
        if stage == len(chain):
            size += len(data)
            budget.total += len(data)
            if size > budget.limit or budget.total > budget.total_limit:
                raise _StreamTooLarge
            return
        if chain[stage].done:
            return  # bytes after a filter's end-of-data marker are ignored (§7.4)
        for piece in chain[stage].feed(data):
            push(stage + 1, piece)

    for chunk in chunks:
        push(0, chunk)
        if chain[0].done:
            break
    return size


def _stream_data(fh: BinaryIO, start: int, length: int | None) -> Iterator[bytes]:
    """A stream's raw data: ``length`` bytes from ``start``, or up to the next ``endstream``
    when the length is not known here."""
    fh.seek(start)
    if length is not None:
        while length > 0:
            chunk = fh.read(min(length, _SCAN_BLOCK))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
        return
    keep = len(b"endstream") - 1
    tail = b""
    while chunk := fh.read(_SCAN_BLOCK):
        data = tail + chunk
        end = data.find(b"endstream")
        if end >= 0:
            yield data[:end]
            return
        yield data[:-keep]
        tail = data[-keep:]
    yield tail


class _FileWindow:
    """Bytes of a file from some offset, re-read only when a caller needs bytes it lacks."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh = fh
        self.size = size
        self.start = 0
        self.data = b""

    @property
    def end(self) -> int:
        return self.start + len(self.data)

    def at(self, pos: int, need: int) -> int:
        """Hold ``need`` bytes from ``pos`` (fewer at the end of the file); ``pos``'s index."""
        if not (self.start <= pos and min(pos + need, self.size) <= self.end):
            self._fh.seek(pos)
            self.data = self._fh.read(max(need, _SCAN_BLOCK))
            self.start = pos
        return pos - self.start


def _stream_dictionary(win: _FileWindow, pos: int) -> tuple[dict[str, object], int] | None:
    """The dictionary of the object whose value starts at ``pos`` and the offset of its
    stream data; None when the object is not a stream.

    A dictionary this parser cannot read (pdfium's parser is more lenient than any strict
    one) still counts as a stream when a ``stream`` keyword follows before ``endobj``: it is
    then returned as ``{}``, and its data is measured as Flate, the common case."""
    for need in (_SCAN_BLOCK // 4, _MAX_DICT_BYTES):
        i = win.at(pos, need)
        try:
            value, end = _parse_object(win.data, i)
        except _Unparsable:
            if win.end >= win.size:
                break
            continue
        keyword = _STREAM_KEYWORD.match(win.data, end)
        if not isinstance(value, dict) or keyword is None:
            return None
        return value, win.start + keyword.end()
    i = win.at(pos, _FALLBACK_SPAN)
    span = win.data[i:i + _FALLBACK_SPAN]
    endobj = span.find(b"endobj")
    keyword = _STREAM_ANYWHERE.search(span, 0, endobj if endobj >= 0 else len(span))
    if keyword is None:
        return None
    return {_UNPARSED: True}, win.start + i + keyword.end()


def pdf_stream_sizes(path: Path, *, limit: int = MAX_STREAM_BYTES,
                      total_limit: int = MAX_DECODED_TOTAL) -> dict[tuple[int, int], int]:
    """Decoded size of every stream of the PDF at ``path``, by object, measured from the
    file's bytes before qpdf or pdfium decode anything.

    Objects are found by their ``n g obj`` headers, not through the cross-reference table, so
    object streams (§7.5.7) and cross-reference streams (§7.5.8) — which qpdf inflates while
    opening the file — are measured as well as content streams, fonts and images. Each stream
    is decoded in pieces of at most 1 MiB through the expanding filters of its /Filter chain
    (Flate, LZW, RunLength, ASCIIHex, ASCII85), and the measurement stops as soon as
    ``limit`` bytes (one stream) or ``total_limit`` bytes (all of them) have come out: a bomb
    is refused from its first ``limit`` bytes, never inflated in full.

    Raises ``InputError(PDF_STREAM_TOO_LARGE)``.
    """
    budget = _Budget(limit, total_limit)
    sizes: dict[tuple[int, int], int] = {}
    with path.open("rb") as fh, path.open("rb") as data_fh:
        win = _FileWindow(fh, os.fstat(fh.fileno()).st_size)
        pos = 0
        while pos < win.size:
            i = win.at(pos, 64)
            header = _OBJ_HEADER.search(win.data, i)
            if header is None:
                if win.end >= win.size:
                    break
                pos = max(pos + 1, win.end - 32)  # a header may straddle the window's end
                continue
            obj = (int(header.group(1)), int(header.group(2)))
            pos = win.start + header.end()
            found = _stream_dictionary(win, pos)
            if found is None:
                continue
            stream_dict, data_start = found
            length = stream_dict.get("Length")
            known = length if isinstance(length, int) and 0 <= length <= win.size else None
            chain = _filter_chain(stream_dict)
            if chain is None or _UNPARSED in stream_dict:
                # An indirect /Filter, or a dictionary not understood: try the common case.
                chain = [_Flate()]
            size = known or 0
            if chain:
                try:
                    size = _decoded_size(chain, _stream_data(data_fh, data_start, known), budget)
                except _StreamTooLarge:
                    raise _too_large(obj, budget) from None
            sizes[obj] = max(size, sizes.get(obj, 0))
            pos = max(pos, data_start + (known or 0))
    return sizes


def _too_large(obj: tuple[int, int], budget: _Budget) -> InputError:
    if budget.total > budget.total_limit:
        return InputError(
            f"the PDF's streams decode to more than {mib(budget.total_limit)} in total; "
            f"the limit is {mib(budget.total_limit)}",
            code="PDF_STREAM_TOO_LARGE",
            hint="split the document, or print it to a new PDF",
        )
    return InputError(
        f"object {obj[0]} of the PDF decodes to more than {mib(budget.limit)}; the limit for "
        f"one stream is {mib(budget.limit)} (a decompression bomb)",
        code="PDF_STREAM_TOO_LARGE",
        hint="obtain the document again from its source",
    )


def mib(n: int) -> str:
    return f"{n / 1024**2:.0f} MiB"
