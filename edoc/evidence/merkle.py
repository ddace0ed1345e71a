"""RFC 9162 (Certificate Transparency v2) Merkle tree mechanics for the ledger.

This module owns the tree hashing and the proofs, and nothing else: no storage, no event
format, no checkpoint signing. It uses only :mod:`hashlib`, so an auditor can read it in one
sitting and re-implement it from the RFC.

Hashing is RFC 9162 §2.1.1 (identical to RFC 6962 §2.1) with SHA-256:

* leaf hash ``SHA-256(0x00 || data)``, interior node ``SHA-256(0x01 || left || right)``;
  the two prefixes keep a leaf from ever being passed off as an interior node (second
  preimage resistance, RFC 9162 §2.1.1);
* the root of the empty list is ``SHA-256("")``;
* a list of ``n > 1`` leaves splits at ``k``, the largest power of two strictly below ``n``.

Everything here that takes "leaves" takes **leaf hashes** (already passed through
:func:`leaf_hash`): the ledger stores those, never the event bytes.

Proofs:

* :func:`inclusion_proof` is ``PATH(m, D[n])`` of RFC 9162 §2.1.3.1 and
  :func:`verify_inclusion` is the verification algorithm of §2.1.3.2, step by step;
* :func:`consistency_proof` is ``PROOF(m, D[n])`` of §2.1.4.1 and :func:`verify_consistency`
  the algorithm of §2.1.4.2. The RFC defines them for ``0 < m < n``; edoc also accepts the
  two trivial cases with an empty proof: ``m == n`` with equal roots, and ``m == 0`` with the
  empty-tree root as the old root (an empty log is consistent with every later log).

A proof binds the tree size only through the root: RFC 9162's walk depends on the size
only through the shape of the path, so, e.g., the inclusion path of leaf 0 in a 3-leaf tree
also "verifies" against that root for size 4. Always take a (size, root) pair from the same
sealed checkpoint, never a size from one source and a root from another.

Functions that build trees or proofs raise :class:`ValueError` on invalid arguments (index
out of range, ``old_size > new_size``, a hash that is not 32 bytes); the messages start with
a stable code. The ``verify_*`` functions and the ``verify`` methods never raise: a malformed
proof simply does not verify.

Building a root over a million leaves takes well under two seconds on one core: levels are
hashed iteratively, never by recursive list slicing. :class:`TreeBuilder` appends leaves one
at a time in O(log n) memory; :class:`MerkleTree` keeps every level so that many proofs over
the same tree cost O(log n) each.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from string import hexdigits
from typing import Any

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "ConsistencyProof",
    "InclusionProof",
    "MerkleTree",
    "TreeBuilder",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
    "walk_inclusion",
]

#: Length in bytes of every hash in the tree (SHA-256).
HASH_SIZE = 32

#: ``MTH({})``: the root hash of a tree with no leaves (RFC 9162 §2.1.1).
EMPTY_ROOT = sha256(b"").digest()

_HEX_DIGITS = frozenset(hexdigits)

# Domain-separation prefixes of RFC 9162 §2.1.1.
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

# --------------------------------------------------------------------------- hashing


def leaf_hash(data: bytes) -> bytes:
    """``MTH({d0}) = SHA-256(0x00 || d0)`` (RFC 9162 §2.1.1): the hash the ledger appends."""
    return sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)`` (RFC 9162 §2.1.1) over two 32-byte child hashes."""
    _require_hash("left", left)
    _require_hash("right", right)
    return sha256(_NODE_PREFIX + left + right).digest()


def _node(left: bytes, right: bytes) -> bytes:
    # Unchecked variant for hot loops whose inputs were validated once up front.
    return sha256(_NODE_PREFIX + left + right).digest()


# --------------------------------------------------------------------------- argument checks


def _invalid(code: str, message: str) -> ValueError:
    return ValueError(f"{code}: {message}")


def _require_hash(name: str, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise _invalid(
            "MERKLE_HASH_INVALID", f"{name} is {type(value).__name__}, required {HASH_SIZE} bytes"
        )
    if len(value) != HASH_SIZE:
        raise _invalid("MERKLE_HASH_LENGTH", f"{name} is {len(value)} bytes, required {HASH_SIZE}")
    return bytes(value)


def _require_size(name: str, value: object) -> int:
    # bool is an int subclass; True as a tree size is always a caller bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(
            "MERKLE_SIZE_INVALID", f"{name} is {type(value).__name__}, required an integer"
        )
    if value < 0:
        raise _invalid("MERKLE_SIZE_INVALID", f"{name} is {value}, required >= 0")
    return value


def _check_leaves(leaves: Iterable[bytes]) -> list[bytes]:
    """Copy ``leaves`` into a list of 32-byte ``bytes``, or raise ValueError naming the culprit."""
    level = list(leaves)
    # Fast path: two C-level passes instead of a Python loop over a million leaves.
    if set(map(type, level)) <= {bytes} and set(map(len, level)) <= {HASH_SIZE}:
        return level
    for i, h in enumerate(level):
        _require_hash(f"leaf hash [{i}]", h)
    return [bytes(h) for h in level]


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --------------------------------------------------------------------------- tree building


def _next_level(level: list[bytes]) -> list[bytes]:
    """Hash adjacent pairs; an unpaired last node moves up unchanged.

    Pairing level by level and promoting the odd node yields exactly the RFC 9162 tree
    (split at the largest power of two below n): every left subtree is complete, so only
    the right edge can be short, and its lone node is the MTH of its own range.
    """
    n = len(level)
    up = [sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, n - 1, 2)]
    if n & 1:
        up.append(level[-1])
    return up


def root(leaves: Sequence[bytes]) -> bytes:
    """``MTH(D[n])`` (RFC 9162 §2.1.1) over a list of leaf hashes."""
    level = _check_leaves(leaves)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def _largest_power_of_two_below(n: int) -> int:
    """``k`` of RFC 9162 §2.1.1: the largest power of two strictly less than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """A fixed list of leaf hashes with every level of the tree kept in memory.

    Use it when many proofs are needed over the same tree (e.g. one inclusion proof per
    record covered by a checkpoint): building costs n-1 hashes once, each proof then only
    looks nodes up. Memory is about twice the leaf list.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaves: Iterable[bytes]) -> None:
        level = _check_leaves(leaves)
        levels = [level]
        while len(level) > 1:
            level = _next_level(level)
            levels.append(level)
        self._levels = levels

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def root(self) -> bytes:
        top = self._levels[-1]
        return top[0] if top else EMPTY_ROOT

    def leaf(self, index: int) -> bytes:
        self._require_index(index)
        return self._levels[0][index]

    def _require_index(self, index: int) -> None:
        _require_size("leaf index", index)
        if index >= self.size:
            raise _invalid(
                "MERKLE_INDEX_OUT_OF_RANGE",
                f"leaf index {index} in a tree of size {self.size}, required index < size",
            )

    def _subtree(self, start: int, size: int) -> bytes:
        """``MTH(D[start:start+size])`` for a range that occurs in the RFC recursion.

        Such a range starts at a multiple of ``2**h`` (``h = ceil(log2 size)``) and is either
        complete or runs to the end of the tree, so it is exactly node ``start >> h`` of
        level ``h``.
        """
        height = (size - 1).bit_length()
        return self._levels[height][start >> height]

    def inclusion_path(self, index: int) -> list[bytes]:
        """``PATH(index, D[n])`` (RFC 9162 §2.1.3.1), leaf-side sibling first."""
        self._require_index(index)
        path: list[bytes] = []
        i = index
        for level in self._levels[:-1]:
            sibling = i ^ 1
            # The last node of a level may have no sibling: it moves up and adds nothing.
            if sibling < len(level):
                path.append(level[sibling])
            i >>= 1
        return path

    def consistency_path(self, old_size: int) -> list[bytes]:
        """``PROOF(old_size, D[n])`` (RFC 9162 §2.1.4.1); empty when old_size is 0 or n."""
        _require_size("old size", old_size)
        n = self.size
        if old_size > n:
            raise _invalid(
                "MERKLE_SIZE_INVALID",
                f"old size {old_size} is larger than the tree size {n}, required old <= new",
            )
        if old_size in (0, n):
            return []
        # SUBPROOF(m, D[start:start+size], complete), unrolled: each round of the RFC
        # recursion appends one subtree hash *after* the recursive result, so collect those
        # outermost-first and reverse them at the end.
        m, start, size, complete = old_size, 0, n, True
        outer: list[bytes] = []
        while m != size:
            k = _largest_power_of_two_below(size)
            if m <= k:
                outer.append(self._subtree(start + k, size - k))
                size = k
            else:
                outer.append(self._subtree(start, k))
                start, size, m, complete = start + k, size - k, m - k, False
        # SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}.
        head = [] if complete else [self._subtree(start, size)]
        return head + outer[::-1]

    def inclusion_proof(self, index: int) -> InclusionProof:
        path = tuple(self.inclusion_path(index))
        return InclusionProof(index, self.size, self._levels[0][index], path)

    def consistency_proof(self, old_size: int) -> ConsistencyProof:
        return ConsistencyProof(old_size, self.size, tuple(self.consistency_path(old_size)))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """``PATH(index, D[n])`` (RFC 9162 §2.1.3.1) over ``n = len(leaves)`` leaf hashes."""
    return MerkleTree(leaves).inclusion_path(index)


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """``PROOF(old_size, D[n])`` (RFC 9162 §2.1.4.1) from the tree of ``old_size`` leaves."""
    return MerkleTree(leaves).consistency_path(old_size)


class TreeBuilder:
    """Streaming root computation: append leaf hashes one at a time, O(log n) memory.

    The state is the "frontier": the roots of the complete subtrees the leaves so far
    decompose into, largest (leftmost) first, one per set bit of ``size``. It can be saved
    and resumed with :meth:`from_frontier`, so the ledger need not re-read old leaves.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> TreeBuilder:
        """Resume from a saved ``(size, frontier)`` as returned by :attr:`frontier`."""
        _require_size("tree size", size)
        if len(frontier) != size.bit_count():
            raise _invalid(
                "MERKLE_FRONTIER_INVALID",
                f"{len(frontier)} frontier hashes for tree size {size}, "
                f"required {size.bit_count()} (one per set bit of the size)",
            )
        builder = cls()
        builder._size = size
        builder._frontier = [_require_hash(f"frontier[{i}]", h) for i, h in enumerate(frontier)]
        return builder

    @property
    def size(self) -> int:
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        return tuple(self._frontier)

    def append(self, leaf: bytes) -> int:
        """Append one leaf hash; return its index."""
        h = _require_hash("leaf hash", leaf)
        index = self._size
        # Each trailing 1-bit of the old size is a complete subtree of the same height as
        # the one being carried: merge them, like binary addition.
        n = index
        while n & 1:
            h = _node(self._frontier.pop(), h)
            n >>= 1
        self._frontier.append(h)
        self._size = index + 1
        return index

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """``MTH`` of all leaves appended so far."""
        if not self._frontier:
            return EMPTY_ROOT
        # MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n])) with the complete subtree on the left,
        # so fold the frontier from the smallest (rightmost) subtree outwards.
        h = self._frontier[-1]
        for left in reversed(self._frontier[:-1]):
            h = _node(left, h)
        return h


# --------------------------------------------------------------------------- verification


def _inclusion_walk(
    leaf: bytes, index: int, tree_size: int, path: Sequence[bytes]
) -> list[tuple[str, bytes]] | None:
    """RFC 9162 §2.1.3.2 steps 1-5 except the root comparison; None if the walk fails.

    Each step records on which side the path element sits and the hash it produces.
    """
    # Step 1: the leaf must lie inside the tree.
    if index >= tree_size:
        return None
    # Step 2.
    fn, sn = index, tree_size - 1
    # Step 3.
    r = leaf
    steps: list[tuple[str, bytes]] = []
    # Step 4.
    for p in path:
        # 4a: more path than tree height.
        if sn == 0:
            return None
        # 4b: fn is a right child, or the last node of its level (its sibling is on the left).
        if fn & 1 or fn == sn:
            r = _node(p, r)
            steps.append(("left", r))
            # 4b.ii: skip the levels where fn was promoted without a sibling.
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
            steps.append(("right", r))
        # 4c.
        fn >>= 1
        sn >>= 1
    # Step 5 (first half): the path must reach the top of the tree.
    if sn != 0:
        return None
    return steps


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True iff ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``root`` of
    ``tree_size`` leaves (RFC 9162 §2.1.3.2). Never raises."""
    try:
        if not (_is_hash(leaf) and _is_hash(root) and _is_size(index) and _is_size(tree_size)):
            return False
        path = list(proof)
        if not all(_is_hash(p) for p in path):
            return False
        steps = _inclusion_walk(bytes(leaf), index, tree_size, [bytes(p) for p in path])
    except TypeError:
        # proof was not iterable at all.
        return False
    if steps is None:
        return False
    # Step 5 (second half): the recomputed hash must equal the root.
    computed = steps[-1][1] if steps else bytes(leaf)
    return computed == bytes(root)


def walk_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes]
) -> list[tuple[str, bytes]]:
    """The hashes RFC 9162 §2.1.3.2 computes, one step per path element, for VERIFY.md.

    Step ``i`` is ``(side, hash)``: ``"left"`` means ``path[i]`` is the left child, so
    ``hash = SHA-256(0x01 || path[i] || previous)``; ``"right"`` means
    ``hash = SHA-256(0x01 || previous || path[i])``. ``previous`` starts as ``leaf``; the last
    hash (or ``leaf`` itself for a one-leaf tree) must equal the root. Raises ValueError when
    the path cannot be walked (index outside the tree, path longer or shorter than the tree
    height, a hash that is not 32 bytes).
    """
    leaf_b = _require_hash("leaf hash", leaf)
    _require_size("leaf index", index)
    _require_size("tree size", size)
    if index >= size:
        raise _invalid(
            "MERKLE_INDEX_OUT_OF_RANGE",
            f"leaf index {index} in a tree of size {size}, required index < size",
        )
    hashes = [_require_hash(f"path[{i}]", p) for i, p in enumerate(path)]
    steps = _inclusion_walk(leaf_b, index, size, hashes)
    if steps is None:
        raise _invalid(
            "MERKLE_PROOF_MALFORMED",
            f"inclusion path of {len(hashes)} hashes does not fit leaf {index} "
            f"of a tree of size {size}",
        )
    return steps


def _consistency_rfc(
    first: int, second: int, first_hash: bytes, second_hash: bytes, path: list[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2 verbatim, for ``0 < first < second``."""
    # Step 1.
    if not path:
        return False
    # Step 2: a power-of-two old tree is itself a complete subtree of the new one, so the
    # proof omits its root and the verifier supplies it.
    if first & (first - 1) == 0:
        path = [first_hash, *path]
    # Step 3.
    fn, sn = first - 1, second - 1
    # Step 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        # 6a.
        if sn == 0:
            return False
        # 6b.
        if fn & 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node(sr, c)
        # 6c.
        fn >>= 1
        sn >>= 1
    # Step 7.
    return fr == first_hash and sr == second_hash and sn == 0


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True iff ``proof`` shows the tree ``new_root`` (``new_size`` leaves) extends the tree
    ``old_root`` (``old_size`` leaves) by appending only (RFC 9162 §2.1.4.2). Never raises."""
    try:
        if not (
            _is_size(old_size) and _is_size(new_size) and _is_hash(old_root) and _is_hash(new_root)
        ):
            return False
        path = list(proof)
        if not all(_is_hash(p) for p in path):
            return False
    except TypeError:
        return False
    old_b, new_b, hashes = bytes(old_root), bytes(new_root), [bytes(p) for p in path]
    if old_size > new_size:
        return False
    if old_size == new_size:
        # Nothing to prove: the same tree must have the same root (and size 0 only one root).
        same = old_b == new_b and not hashes
        return same and (old_size != 0 or old_b == EMPTY_ROOT)
    if old_size == 0:
        # The empty log is a prefix of every log; its root is fixed by RFC 9162 §2.1.1.
        return not hashes and old_b == EMPTY_ROOT
    return _consistency_rfc(old_size, new_size, old_b, new_b, hashes)


# --------------------------------------------------------------------------- proof objects


def _json_object(data: Mapping[str, Any] | str | bytes, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise _invalid("MERKLE_PROOF_MALFORMED", f"not JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise _invalid(
            "MERKLE_PROOF_MALFORMED", f"proof is a JSON {type(data).__name__}, required an object"
        )
    found, wanted = set(data), set(keys)
    if found != wanted:
        missing, extra = sorted(wanted - found), sorted(found - wanted)
        raise _invalid(
            "MERKLE_PROOF_MALFORMED",
            f"keys missing {missing}, unexpected {extra}; required exactly {sorted(wanted)}",
        )
    return data


def _json_int(data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _invalid(
            "MERKLE_PROOF_MALFORMED", f"{key} is {value!r}, required a non-negative integer"
        )
    return value


def _json_hash(value: object, what: str) -> bytes:
    # Exactly 64 hex digits: bytes.fromhex alone would also accept embedded whitespace.
    if not isinstance(value, str):
        raise _invalid(
            "MERKLE_PROOF_MALFORMED", f"{what} is {_short(value)}, required a hex string"
        )
    if len(value) != 2 * HASH_SIZE or not set(value) <= _HEX_DIGITS:
        raise _invalid(
            "MERKLE_PROOF_MALFORMED",
            f"{what} is {_short(value)}, required {2 * HASH_SIZE} hexadecimal digits",
        )
    return bytes.fromhex(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 72 else text[:69] + "..."


def _json_path(data: Mapping[str, Any]) -> tuple[bytes, ...]:
    value = data["path"]
    if not isinstance(value, list):
        raise _invalid("MERKLE_PROOF_MALFORMED", f"path is {type(value).__name__}, required a list")
    return tuple(_json_hash(h, f"path[{i}]") for i, h in enumerate(value))


@dataclass(frozen=True)
class InclusionProof:
    """Leaf ``leaf_hash`` sits at ``index`` in a tree of ``tree_size`` leaves (RFC 9162 §2.1.3).

    The JSON form (``to_json``) is what evidence bundles carry::

        {"leaf_index": 5, "tree_size": 8, "leaf_hash": "<hex>", "path": ["<hex>", ...]}
    """

    index: int
    tree_size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _require_size("leaf index", self.index)
        _require_size("tree size", self.tree_size)
        if self.index >= self.tree_size:
            raise _invalid(
                "MERKLE_INDEX_OUT_OF_RANGE",
                f"leaf index {self.index} in a tree of size {self.tree_size}, "
                "required index < size",
            )
        object.__setattr__(self, "leaf_hash", _require_hash("leaf hash", self.leaf_hash))
        path = tuple(_require_hash(f"path[{i}]", h) for i, h in enumerate(self.path))
        object.__setattr__(self, "path", path)

    def verify(self, root: bytes) -> bool:
        """True iff this proof leads to ``root``. Never raises."""
        return verify_inclusion(self.leaf_hash, self.index, self.tree_size, self.path, root)

    def walk(self) -> list[tuple[str, bytes]]:
        """The steps of :func:`walk_inclusion` for this proof."""
        return walk_inclusion(self.leaf_hash, self.index, self.tree_size, self.path)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (lower-case hex hashes)."""
        return {
            "leaf_index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "path": [h.hex() for h in self.path],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> InclusionProof:
        """Parse the ``to_json`` form (a dict or JSON text); ValueError if malformed."""
        obj = _json_object(data, ("leaf_index", "tree_size", "leaf_hash", "path"))
        return cls(
            _json_int(obj, "leaf_index"),
            _json_int(obj, "tree_size"),
            _json_hash(obj["leaf_hash"], "leaf_hash"),
            _json_path(obj),
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """The tree of ``new_size`` leaves extends the one of ``old_size`` (RFC 9162 §2.1.4).

    JSON form: ``{"old_size": 6, "new_size": 8, "path": ["<hex>", ...]}``.
    """

    old_size: int
    new_size: int
    path: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _require_size("old size", self.old_size)
        _require_size("new size", self.new_size)
        if self.old_size > self.new_size:
            raise _invalid(
                "MERKLE_SIZE_INVALID",
                f"old size {self.old_size} is larger than new size {self.new_size}, "
                "required old <= new",
            )
        path = tuple(_require_hash(f"path[{i}]", h) for i, h in enumerate(self.path))
        object.__setattr__(self, "path", path)

    def verify(self, old_root: bytes, new_root: bytes) -> bool:
        """True iff this proof links ``old_root`` to ``new_root``. Never raises."""
        return verify_consistency(self.old_size, self.new_size, old_root, new_root, self.path)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (lower-case hex hashes)."""
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "path": [h.hex() for h in self.path],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> ConsistencyProof:
        """Parse the ``to_json`` form (a dict or JSON text); ValueError if malformed."""
        obj = _json_object(data, ("old_size", "new_size", "path"))
        return cls(_json_int(obj, "old_size"), _json_int(obj, "new_size"), _json_path(obj))
