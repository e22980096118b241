"""SummaryCache: summaries by content id, on-disk store, whole-stage memo."""

from __future__ import annotations

from modver.fingerprint import SummaryCache, fingerprint_stage
from modver.sourcetree import DictTree

FILES = {
    "main.py": "import helpers\nimport numpy\ndef run():\n    return helpers.f() + numpy.zeros(1)\n",
    "helpers.py": "def f():\n    return 1\n",
}


class CountingTree(DictTree):
    def __init__(self, files):
        super().__init__(files)
        self.reads = 0

    def read(self, path):
        self.reads += 1
        return super().read(path)


def test_stage_memo_skips_parsing():
    cache = SummaryCache()
    first = fingerprint_stage(CountingTree(FILES), "main.py:run", cache=cache)
    tree = CountingTree(FILES)
    assert fingerprint_stage(tree, "main.py:run", cache=cache) is first
    assert tree.reads == 0
    # an unrelated file changes: still memoised
    other = CountingTree(dict(FILES, **{"other.py": "x = 1\n"}))
    assert fingerprint_stage(other, "main.py:run", cache=cache) is first
    # a used file changes: recomputed, but only that file is parsed
    changed = CountingTree(dict(FILES, **{"helpers.py": "def f():\n    return 2\n"}))
    parsed = cache.parsed
    result = fingerprint_stage(changed, "main.py:run", cache=cache)
    assert result.fingerprint != first.fingerprint
    assert cache.parsed == parsed + 1
    # a probed-but-missing path appears (shadows the third-party numpy): recomputed
    shadow = CountingTree(dict(FILES, **{"numpy.py": "def g():\n    pass\n"}))
    assert fingerprint_stage(shadow, "main.py:run", cache=cache).fingerprint != first.fingerprint
    # going back to the first tree: memo hit again
    assert fingerprint_stage(CountingTree(FILES), "main.py:run", cache=cache) is first


def test_memo_key_includes_options():
    cache = SummaryCache()
    tree = DictTree(FILES)
    a = fingerprint_stage(tree, "main.py:run", cache=cache)
    b = fingerprint_stage(tree, "main.py:run", cache=cache, docstrings=True)
    c = fingerprint_stage(tree, "main.py", cache=cache)
    assert a.fingerprint == b.fingerprint  # no docstrings in these files
    assert c.fingerprint != a.fingerprint


def test_disk_cache_roundtrip_and_corruption(tmp_path):
    tree = DictTree(FILES)
    expected = fingerprint_stage(tree, "main.py:run", cache=SummaryCache()).fingerprint
    first = SummaryCache(tmp_path / "parse")
    assert fingerprint_stage(tree, "main.py:run", cache=first).fingerprint == expected
    stored = sorted(p for p in (tmp_path / "parse").rglob("*") if p.is_file())
    assert len(stored) == 2 and not any(p.name.startswith(".tmp") for p in stored)
    warm = SummaryCache(tmp_path / "parse")
    assert fingerprint_stage(tree, "main.py:run", cache=warm).fingerprint == expected
    assert warm.parsed == 0
    # corrupt every file in different ways: never a crash, never a wrong digest
    for number, path in enumerate(stored):
        data = path.read_bytes()
        path.write_bytes(b"" if number == 0 else data[:-5] + b"xxxxx")
    broken = SummaryCache(tmp_path / "parse")
    assert fingerprint_stage(tree, "main.py:run", cache=broken).fingerprint == expected
    assert broken.parsed == 2
    # garbage that is valid marshal of the wrong shape
    import marshal

    for path in stored:
        path.write_bytes(b"garbage" + marshal.dumps({"units": 1}))
    assert fingerprint_stage(tree, "main.py:run", cache=SummaryCache(tmp_path / "parse")).fingerprint == expected


def test_unwritable_cache_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = SummaryCache(blocker / "parse")
    assert fingerprint_stage(DictTree(FILES), "main.py:run", cache=cache).fingerprint.startswith("mv1:")
