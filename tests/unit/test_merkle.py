"""Tests for edoc.evidence.merkle against outside answers: the RFC 6962 test vectors used by
Certificate Transparency implementations, and a naive transcription of the RFC 9162
definitions (recursive, slicing) written here independently of the module."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edoc.evidence.merkle import (
    EMPTY_ROOT,
    ConsistencyProof,
    InclusionProof,
    MerkleTree,
    TreeBuilder,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
    walk_inclusion,
)

# --------------------------------------------------------------------------- known answers
# From transparency-dev/merkle (testonly/constants.go, proof/verify_test.go), the same set
# google/certificate-transparency uses. Note leaves 5 and 6 are 4 and 8 bytes long.
VECTOR_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]


def hx(h: str) -> bytes:
    return bytes.fromhex(h)


# NODE_HASHES[level][i]: the complete subtrees of the 8-leaf tree.
NODE_HASHES = [
    [
        hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        hx("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        hx("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        hx("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        hx("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        hx("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        hx("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        hx("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        hx("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [hx("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]

# VECTOR_ROOTS[n]: root of the first n leaves.
VECTOR_ROOTS = [
    hx("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    hx("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    hx("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    hx("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    hx("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    hx("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# (0-based leaf index, tree size, path); upstream lists 1-based leaf numbers.
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        [
            hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hx("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            hx("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

# (old size, new size, path)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hx("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            hx("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            hx("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            hx("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            hx("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

SOME_HASH = hx("abacaba000000000000000000000000000000000000000000060061e00123456")
VECTOR_LEAVES = [leaf_hash(d) for d in VECTOR_INPUTS]


def flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


# --------------------------------------------------------------------------- naive reference
# A literal transcription of RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 over raw data, with
# list slicing and recursion: slow, obviously right, and not sharing code with edoc.evidence.merkle.


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = ref_split(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_sides(m: int, n: int) -> list[str]:
    """Side of each PATH element relative to the running hash, leaf first."""
    if n == 1:
        return []
    k = ref_split(n)
    if m < k:
        return [*ref_sides(m, k), "right"]
    return [*ref_sides(m - k, n - k), "left"]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_split(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


def sample_data(n: int) -> list[bytes]:
    """n distinct leaf inputs of varying length (including the empty one)."""
    return [bytes([i % 251]) * (i % 7) + i.to_bytes(2, "big") for i in range(n)]


MAX_N = 70
DATA = sample_data(MAX_N + 1)
LEAVES = [leaf_hash(x) for x in DATA]
TREES = [MerkleTree(LEAVES[:n]) for n in range(MAX_N + 1)]
ROOTS = [ref_mth(DATA[:n]) for n in range(MAX_N + 1)]


# --------------------------------------------------------------------------- hashing


def test_leaf_hashes_match_vectors() -> None:
    assert [leaf_hash(d) for d in VECTOR_INPUTS] == NODE_HASHES[0]


def test_empty_root_is_sha256_of_nothing() -> None:
    assert root([]) == EMPTY_ROOT == VECTOR_ROOTS[0]


@pytest.mark.parametrize("n", range(9))
def test_roots_match_vectors(n: int) -> None:
    assert root(VECTOR_LEAVES[:n]) == VECTOR_ROOTS[n]
    assert MerkleTree(VECTOR_LEAVES[:n]).root() == VECTOR_ROOTS[n]
    builder = TreeBuilder()
    builder.extend(VECTOR_LEAVES[:n])
    assert builder.root() == VECTOR_ROOTS[n]


@pytest.mark.parametrize("level", range(1, 4))
def test_complete_subtrees_match_vectors(level: int) -> None:
    width = 1 << level
    for i, expected in enumerate(NODE_HASHES[level]):
        assert root(VECTOR_LEAVES[i * width : (i + 1) * width]) == expected
        left, right = NODE_HASHES[level - 1][2 * i], NODE_HASHES[level - 1][2 * i + 1]
        assert node_hash(left, right) == expected


def test_node_hash_is_order_sensitive_and_prefixed() -> None:
    a, b = VECTOR_LEAVES[1], VECTOR_LEAVES[2]
    assert node_hash(a, b) != node_hash(b, a)
    # A node must never equal the leaf hash of its own concatenated children (§2.1.1 prefixes).
    assert node_hash(a, b) != leaf_hash(a + b)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33, "0" * 32])
def test_node_hash_rejects_wrong_length(bad: object) -> None:
    with pytest.raises(ValueError, match="MERKLE_HASH"):
        node_hash(bad, SOME_HASH)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="MERKLE_HASH"):
        node_hash(SOME_HASH, bad)  # type: ignore[arg-type]


def test_root_rejects_a_bad_leaf_and_names_it() -> None:
    leaves = [*VECTOR_LEAVES[:3], b"short", VECTOR_LEAVES[4]]
    with pytest.raises(ValueError, match=r"leaf hash \[3\] is 5 bytes, required 32"):
        root(leaves)


def test_root_accepts_bytearray_leaves() -> None:
    as_bytearrays: list[bytes] = [bytearray(h) for h in VECTOR_LEAVES]  # type: ignore[misc]
    assert root(as_bytearrays) == VECTOR_ROOTS[8]


def test_root_matches_reference_at_every_size() -> None:
    for n in range(MAX_N + 1):
        assert root(LEAVES[:n]) == ROOTS[n], n
        assert TREES[n].root() == ROOTS[n], n


def test_large_tree_builders_agree() -> None:
    # Crosses several powers of two; the builder and the level-wise root are separate code.
    n = (1 << 14) + 3
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    builder = TreeBuilder()
    builder.extend(leaves)
    assert builder.size == n
    assert builder.root() == root(leaves)
    k = 1 << 14
    assert root(leaves) == node_hash(root(leaves[:k]), root(leaves[k:]))


# --------------------------------------------------------------------------- inclusion


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_inclusion_vectors(index: int, size: int, path: list[bytes]) -> None:
    assert inclusion_proof(VECTOR_LEAVES[:size], index) == path
    assert verify_inclusion(VECTOR_LEAVES[index], index, size, path, VECTOR_ROOTS[size])


def corrupt_inclusion(
    index: int, size: int, path: list[bytes], rt: bytes, leaf: bytes
) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    """The corruptions transparency-dev/merkle's verifier tests must reject."""
    probes = [
        ("index - 1", index - 1, size, path, rt, leaf),
        ("index + 1", index + 1, size, path, rt, leaf),
        ("index ^ 2", index ^ 2, size, path, rt, leaf),
        ("size * 2", index, size * 2, path, rt, leaf),
        ("size // 2", index, size // 2, path, rt, leaf),
        ("wrong leaf", index, size, path, rt, SOME_HASH),
        ("empty root", index, size, path, EMPTY_ROOT, leaf),
        ("random root", index, size, path, SOME_HASH, leaf),
        ("trailing garbage", index, size, [*path, b""], rt, leaf),
        ("trailing root", index, size, [*path, rt], rt, leaf),
        ("preceding garbage", index, size, [b"", *path], rt, leaf),
        ("preceding root", index, size, [rt, *path], rt, leaf),
    ]
    for i in range(len(path)):
        bad = list(path)
        bad[i] = flip(bad[i], 3)
        probes.append((f"flipped bit in path[{i}]", index, size, bad, rt, leaf))
    if path:
        probes.append(("removed component", index, size, path[:-1], rt, leaf))
    if len(path) > 1:
        probes.append(
            ("inserted component", index, size, [path[0], SOME_HASH, *path[1:]], rt, leaf)
        )
    return probes


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS[1:])
def test_inclusion_vectors_reject_corruptions(index: int, size: int, path: list[bytes]) -> None:
    leaf, rt = VECTOR_LEAVES[index], VECTOR_ROOTS[size]
    accepted = [
        desc
        for desc, i, n, p, r, lf in corrupt_inclusion(index, size, path, rt, leaf)
        if verify_inclusion(lf, i, n, p, r)
    ]
    assert accepted == []


def test_inclusion_single_leaf_tree() -> None:
    h = leaf_hash(b"data")
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], h)
    assert not verify_inclusion(b"", 0, 1, [], b"")


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (1, 1)])
def test_inclusion_rejects_index_outside_tree(index: int, size: int) -> None:
    assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    assert not verify_inclusion(SOME_HASH, index, size, [], SOME_HASH)


def test_inclusion_paths_match_reference_for_every_index_and_size() -> None:
    for n in range(1, MAX_N + 1):
        for m in range(n):
            expected = ref_path(m, DATA[:n])
            assert TREES[n].inclusion_path(m) == expected, (m, n)
            assert verify_inclusion(LEAVES[m], m, n, expected, ROOTS[n]), (m, n)
    # The module-level function builds its own tree.
    assert inclusion_proof(LEAVES[:37], 20) == ref_path(20, DATA[:37])


@pytest.mark.parametrize(("index", "size"), [(-1, 5), (5, 5), (6, 5), (0, 0)])
def test_inclusion_proof_rejects_bad_index(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="MERKLE_"):
        inclusion_proof(LEAVES[:size], index)
    with pytest.raises(ValueError, match="MERKLE_"):
        TREES[size].inclusion_proof(index)


def test_walk_inclusion_shows_each_step() -> None:
    # Leaf 5 of 8 is a right child, then a left child, then a right child: its siblings
    # sit left, right, left, and the intermediate hashes are the upstream subtree hashes.
    path = INCLUSION_VECTORS[2][2]
    steps = walk_inclusion(VECTOR_LEAVES[5], 5, 8, path)
    assert steps == [
        ("left", NODE_HASHES[1][2]),
        ("right", NODE_HASHES[2][1]),
        ("left", NODE_HASHES[3][0]),
    ]
    assert walk_inclusion(VECTOR_LEAVES[0], 0, 1, []) == []


def test_walk_inclusion_sides_match_reference() -> None:
    for n in range(1, MAX_N + 1):
        for m in range(n):
            steps = walk_inclusion(LEAVES[m], m, n, TREES[n].inclusion_path(m))
            assert [side for side, _ in steps] == ref_sides(m, n), (m, n)
            assert (steps[-1][1] if steps else LEAVES[m]) == ROOTS[n]


def test_walk_inclusion_rejects_unwalkable_paths() -> None:
    path = INCLUSION_VECTORS[2][2]
    with pytest.raises(ValueError, match="MERKLE_PROOF_MALFORMED"):
        walk_inclusion(VECTOR_LEAVES[5], 5, 8, path[:-1])
    with pytest.raises(ValueError, match="MERKLE_PROOF_MALFORMED"):
        walk_inclusion(VECTOR_LEAVES[5], 5, 8, [*path, SOME_HASH])
    with pytest.raises(ValueError, match="MERKLE_INDEX_OUT_OF_RANGE"):
        walk_inclusion(VECTOR_LEAVES[5], 8, 8, path)
    with pytest.raises(ValueError, match=r"path\[1\] is 31 bytes"):
        walk_inclusion(VECTOR_LEAVES[5], 5, 8, [path[0], path[1][:31], path[2]])


# --------------------------------------------------------------------------- consistency


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY_VECTORS)
def test_consistency_vectors(old: int, new: int, path: list[bytes]) -> None:
    assert consistency_proof(VECTOR_LEAVES[:new], old) == path
    assert verify_consistency(old, new, VECTOR_ROOTS[old], VECTOR_ROOTS[new], path)


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY_VECTORS[1:])
def test_consistency_vectors_reject_corruptions(old: int, new: int, path: list[bytes]) -> None:
    r1, r2 = VECTOR_ROOTS[old], VECTOR_ROOTS[new]
    probes: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = [
        ("old - 1", old - 1, new, r1, r2, path),
        ("old + 1", old + 1, new, r1, r2, path),
        ("old ^ 2", old ^ 2, new, r1, r2, path),
        ("new * 2", old, new * 2, r1, r2, path),
        ("new // 2", old, new // 2, r1, r2, path),
        ("wrong old root", old, new, SOME_HASH, r2, path),
        ("wrong new root", old, new, r1, SOME_HASH, path),
        ("swapped roots", old, new, r2, r1, path),
        ("empty proof", old, new, r1, r2, []),
        ("trailing garbage", old, new, r1, r2, [*path, b""]),
        ("trailing old root", old, new, r1, r2, [*path, r1]),
        ("trailing new root", old, new, r1, r2, [*path, r2]),
        ("preceding garbage", old, new, r1, r2, [b"", *path]),
        ("preceding old root", old, new, r1, r2, [r1, *path]),
        ("preceding new root", old, new, r1, r2, [r2, *path]),
        ("preceding path[0]", old, new, r1, r2, [path[0], *path]),
        ("truncated", old, new, r1, r2, path[:-1]),
    ]
    for i in range(len(path)):
        bad = list(path)
        bad[i] = flip(bad[i], 4)
        probes.append((f"flipped bit in path[{i}]", old, new, r1, r2, bad))
    accepted = [d for d, m, n, a, b, p in probes if verify_consistency(m, n, a, b, p)]
    assert accepted == []


def test_consistency_trivial_cases() -> None:
    r1, r2 = VECTOR_ROOTS[1], VECTOR_ROOTS[2]
    # Same size: same root, empty proof.
    assert verify_consistency(1, 1, r1, r1, [])
    assert not verify_consistency(1, 1, r1, r2, [])
    assert not verify_consistency(1, 1, r1, r1, [EMPTY_ROOT])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 0, SOME_HASH, SOME_HASH, [])
    # The empty log is a prefix of every log, but only with the empty root.
    assert verify_consistency(0, 5, EMPTY_ROOT, VECTOR_ROOTS[5], [])
    assert not verify_consistency(0, 5, SOME_HASH, VECTOR_ROOTS[5], [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, VECTOR_ROOTS[5], [EMPTY_ROOT])
    # Time does not run backwards.
    assert not verify_consistency(2, 1, r2, r1, [])
    assert not verify_consistency(1, 0, r1, EMPTY_ROOT, [])
    # A real change needs a proof.
    assert not verify_consistency(1, 2, r1, r2, [])


def test_consistency_proofs_match_reference_for_all_sizes() -> None:
    for n in range(1, MAX_N + 1):
        for m in range(1, n + 1):
            expected = ref_proof(m, DATA[:n])
            assert TREES[n].consistency_path(m) == expected, (m, n)
            assert verify_consistency(m, n, ROOTS[m], ROOTS[n], expected), (m, n)
        assert TREES[n].consistency_path(0) == []
    assert consistency_proof(LEAVES[:45], 13) == ref_proof(13, DATA[:45])


@pytest.mark.parametrize(("old", "new"), [(-1, 5), (6, 5), (9, 8)])
def test_consistency_proof_rejects_bad_sizes(old: int, new: int) -> None:
    with pytest.raises(ValueError, match="MERKLE_SIZE_INVALID"):
        consistency_proof(LEAVES[:new], old)
    with pytest.raises(ValueError, match="MERKLE_SIZE_INVALID"):
        ConsistencyProof(old, new, ())


# --------------------------------------------------------------------------- never raise


JUNK = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.booleans(),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.lists(st.binary(max_size=40), max_size=4),
    st.just([b"\x00" * 32, None]),
)


@settings(max_examples=200, deadline=None)
@given(leaf=JUNK, index=JUNK, size=JUNK, proof=JUNK, rt=JUNK)
def test_verify_inclusion_never_raises(
    leaf: object, index: object, size: object, proof: object, rt: object
) -> None:
    result = verify_inclusion(leaf, index, size, proof, rt)  # type: ignore[arg-type]
    assert result is False


@settings(max_examples=200, deadline=None)
@given(old=JUNK, new=JUNK, r1=JUNK, r2=JUNK, proof=JUNK)
def test_verify_consistency_never_raises(
    old: object, new: object, r1: object, r2: object, proof: object
) -> None:
    result = verify_consistency(old, new, r1, r2, proof)  # type: ignore[arg-type]
    assert result is False


# --------------------------------------------------------------------------- properties

UNIQUE_DATA = st.lists(st.binary(max_size=12), min_size=1, max_size=MAX_N, unique=True)


@settings(max_examples=150, deadline=None)
@given(data=UNIQUE_DATA, pick=st.data())
def test_inclusion_property(data: list[bytes], pick: st.DataObject) -> None:
    leaves = [leaf_hash(x) for x in data]
    n = len(leaves)
    tree = MerkleTree(leaves)
    rt = ref_mth(data)
    assert tree.root() == rt
    index = pick.draw(st.integers(0, n - 1), label="index")
    path = tree.inclusion_path(index)
    assert path == ref_path(index, data)
    assert verify_inclusion(leaves[index], index, n, path, rt)

    # A flipped bit anywhere in the path or the leaf breaks it.
    if path:
        i = pick.draw(st.integers(0, len(path) - 1), label="element")
        bit = pick.draw(st.integers(0, 255), label="bit")
        bad = list(path)
        bad[i] = flip(bad[i], bit)
        assert not verify_inclusion(leaves[index], index, n, bad, rt)
    assert not verify_inclusion(flip(leaves[index], 0), index, n, path, rt)

    # Another index never verifies: the leaves are distinct, and so is each leaf's position.
    other = pick.draw(st.integers(0, n + 2).filter(lambda j: j != index), label="other")
    assert not verify_inclusion(leaves[index], other, n, path, rt)

    # Another size verifies only where RFC 9162's walk has exactly the same shape, because
    # the proof binds the size only through the root (checkpoints sign both together).
    size = pick.draw(st.integers(0, 2 * n + 2).filter(lambda s: s != n), label="size")
    same_shape = index < size and ref_sides(index, size) == ref_sides(index, n)
    assert verify_inclusion(leaves[index], index, size, path, rt) == same_shape
    assert not verify_inclusion(leaves[index], index, 2 * n, path, rt)

    # Any other root fails.
    wrong = pick.draw(st.binary(min_size=32, max_size=32).filter(lambda r: r != rt), label="root")
    assert not verify_inclusion(leaves[index], index, n, path, wrong)


@settings(max_examples=150, deadline=None)
@given(data=UNIQUE_DATA, pick=st.data())
def test_consistency_property(data: list[bytes], pick: st.DataObject) -> None:
    leaves = [leaf_hash(x) for x in data]
    n = len(leaves)
    tree = MerkleTree(leaves)
    m = pick.draw(st.integers(1, n), label="old_size")
    old_root, new_root = ref_mth(data[:m]), ref_mth(data)
    path = tree.consistency_path(m)
    assert path == ref_proof(m, data)
    assert verify_consistency(m, n, old_root, new_root, path)

    if path:
        i = pick.draw(st.integers(0, len(path) - 1), label="element")
        bit = pick.draw(st.integers(0, 255), label="bit")
        bad = list(path)
        bad[i] = flip(bad[i], bit)
        assert not verify_consistency(m, n, old_root, new_root, bad)
        assert not verify_consistency(m, n, old_root, new_root, path[:-1])
        assert not verify_consistency(m, n, old_root, new_root, [*path, path[-1]])

    # With the new size fixed, no other old size is accepted for this proof.
    other = pick.draw(st.integers(0, n).filter(lambda j: j != m), label="other old size")
    assert not verify_consistency(other, n, old_root, new_root, path)
    if m < n:
        assert not verify_consistency(m, 2 * n, old_root, new_root, path)
        assert not verify_consistency(m, n, new_root, old_root, path)

    wrong = pick.draw(st.binary(min_size=32, max_size=32), label="root")
    if wrong != old_root:
        assert not verify_consistency(m, n, wrong, new_root, path)
    if wrong != new_root:
        assert not verify_consistency(m, n, old_root, wrong, path)


# --------------------------------------------------------------------------- TreeBuilder


def test_tree_builder_root_at_every_size() -> None:
    builder = TreeBuilder()
    assert builder.size == 0
    assert builder.root() == EMPTY_ROOT
    for n in range(1, MAX_N + 1):
        assert builder.append(LEAVES[n - 1]) == n - 1
        assert builder.size == n
        assert builder.root() == ROOTS[n], n
        # O(log n) state: one complete subtree per set bit of the size.
        assert len(builder.frontier) == bin(n).count("1")


@settings(max_examples=60, deadline=None)
@given(data=st.lists(st.binary(max_size=8), max_size=MAX_N), cut=st.integers(0, MAX_N))
def test_tree_builder_resumes_from_frontier(data: list[bytes], cut: int) -> None:
    leaves = [leaf_hash(x) for x in data]
    cut = min(cut, len(leaves))
    first = TreeBuilder()
    first.extend(leaves[:cut])
    resumed = TreeBuilder.from_frontier(first.size, first.frontier)
    resumed.extend(leaves[cut:])
    assert resumed.size == len(leaves)
    assert resumed.root() == ref_mth(data)


def test_tree_builder_rejects_bad_input() -> None:
    builder = TreeBuilder()
    with pytest.raises(ValueError, match="MERKLE_HASH_LENGTH"):
        builder.append(b"\x00" * 31)
    assert builder.size == 0
    with pytest.raises(ValueError, match="MERKLE_FRONTIER_INVALID"):
        TreeBuilder.from_frontier(3, [SOME_HASH])
    with pytest.raises(ValueError, match="MERKLE_SIZE_INVALID"):
        TreeBuilder.from_frontier(-1, [])


# --------------------------------------------------------------------------- proof objects


def test_inclusion_proof_json_round_trip() -> None:
    proof = MerkleTree(VECTOR_LEAVES).inclusion_proof(5)
    doc = proof.to_json()
    assert doc == {
        "leaf_index": 5,
        "tree_size": 8,
        "leaf_hash": "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "path": [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    }
    text = json.dumps(doc)
    assert InclusionProof.from_json(text) == proof
    assert InclusionProof.from_json(doc) == proof
    assert proof.verify(VECTOR_ROOTS[8])
    assert not proof.verify(VECTOR_ROOTS[7])
    assert [s for s, _ in proof.walk()] == ["left", "right", "left"]


def test_consistency_proof_json_round_trip() -> None:
    proof = MerkleTree(VECTOR_LEAVES[:7]).consistency_proof(6)
    doc = proof.to_json()
    assert doc == {
        "old_size": 6,
        "new_size": 7,
        "path": [h.hex() for h in CONSISTENCY_VECTORS[4][2]],
    }
    assert ConsistencyProof.from_json(json.dumps(doc)) == proof
    assert proof.verify(VECTOR_ROOTS[6], VECTOR_ROOTS[7])
    assert not proof.verify(VECTOR_ROOTS[7], VECTOR_ROOTS[6])


def _good_inclusion_doc() -> dict[str, object]:
    return MerkleTree(VECTOR_LEAVES).inclusion_proof(5).to_json()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"leaf_index": -1}, "non-negative integer"),
        ({"leaf_index": True}, "non-negative integer"),
        ({"leaf_index": 8}, "MERKLE_INDEX_OUT_OF_RANGE"),
        ({"tree_size": "8"}, "non-negative integer"),
        ({"leaf_hash": "zz" * 32}, "hexadecimal digits"),
        ({"leaf_hash": "ab" * 31}, "hexadecimal digits"),
        ({"leaf_hash": " " + "ab" * 31 + "a"}, "hexadecimal digits"),
        ({"path": "abc"}, "required a list"),
        ({"path": ["ab" * 32, 7]}, r"path\[1\]"),
        ({"extra": 1}, "unexpected"),
    ],
)
def test_inclusion_proof_from_json_rejects_malformed(
    change: dict[str, object], message: str
) -> None:
    doc = {**_good_inclusion_doc(), **change}
    with pytest.raises(ValueError, match=message):
        InclusionProof.from_json(doc)


def test_from_json_rejects_non_objects() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        InclusionProof.from_json("{")
    with pytest.raises(ValueError, match="required an object"):
        ConsistencyProof.from_json("[1, 2]")
    doc = _good_inclusion_doc()
    del doc["path"]
    with pytest.raises(ValueError, match=r"missing \['path'\]"):
        InclusionProof.from_json(doc)


def test_proof_objects_validate_fields() -> None:
    with pytest.raises(ValueError, match="MERKLE_HASH_LENGTH"):
        InclusionProof(0, 1, b"\x00", ())
    with pytest.raises(ValueError, match="MERKLE_INDEX_OUT_OF_RANGE"):
        InclusionProof(1, 1, SOME_HASH, ())
    # A list path is stored as a tuple so the frozen object stays hashable.
    proof = InclusionProof(0, 2, SOME_HASH, [SOME_HASH])  # type: ignore[arg-type]
    assert proof.path == (SOME_HASH,)
    assert hash(proof) == hash(InclusionProof(0, 2, SOME_HASH, (SOME_HASH,)))
