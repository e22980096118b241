"""Hash a data folder of 10,000 files / 1 GB with DataHasher, next to ``sha256sum``.

    python benchmarks/bench_data.py                          # 10,000 files, 1 GB, 5 rounds
    python benchmarks/bench_data.py --files 2000 --size-mb 200   # quicker

In one temporary project, a folder ``data/images`` of 100 class folders holding ``--files``
random files (``--size-mb`` MB in all) is written once; the benchmark then waits until the
files are older than ``modver.store.data.RACY_NS`` (a file written within that window of being hashed
is not remembered, see modver/store/data.py), untimed. Each round times, in alternating order:

- ``sha256sum`` over the same files (``xargs -0 sha256sum``), and ``b2sum`` for reference;
- **first**: ``DataHasher.hash`` of the folder with no memo (``.modver/cache/data.json``
  deleted), then ``save`` of the memo;
- **second**: a new ``DataHasher`` (reading the memo) hashing the unchanged folder;
- **one changed**: the same after one file was rewritten (it alone is read again; the round
  then waits, untimed, until that file is older than ``RACY_NS`` too).

The files stay in the page cache (the machine has the memory), so every reader reads warm
data. Targets (issue 6): first <= 1.5x sha256sum; second <= 5% of first.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from modver.store import data
from modver.store.layout import Store


def _write_folder(folder: Path, files: int, total: int) -> list[Path]:
    rng = random.Random(0)
    size = total // files
    paths = []
    for i in range(files):
        path = folder / f"class{i % 100:03d}" / f"{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    return paths


def _wait_until_not_racy(paths: list[Path]) -> None:
    newest = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in paths)
    while time.time_ns() - newest <= data.RACY_NS:
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000, help="number of files (default 10,000)")
    parser.add_argument("--size-mb", type=int, default=1000, help="total size in MB (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="folder for the temporary project (default: system temp)"
    )
    args = parser.parse_args(argv)

    total = args.size_mb * 1_000_000
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        store = Store(root)
        folder = root / "data" / "images"
        paths = _write_folder(folder, args.files, total)
        listing = b"".join(os.fsencode(p) + b"\0" for p in paths)
        _wait_until_not_racy(paths)
        memo = store.data_hashes
        print(
            f"folder: {args.files:,} files, {total / 1e6:,.0f} MB; {args.rounds} rounds; "
            f"{os.cpu_count()} cores; python {sys.version.split()[0]}; hashing threads: {data._THREADS}"
        )

        def tool(name: str) -> Callable[[], object]:
            return lambda: subprocess.run(["xargs", "-0", name], input=listing, stdout=subprocess.DEVNULL, check=True)

        def first() -> str:
            memo.unlink(missing_ok=True)
            hasher = data.DataHasher(store)
            digest = hasher.hash("images", "data/images")
            hasher.save()
            return digest

        def again() -> str:
            hasher = data.DataHasher(store)
            digest = hasher.hash("images", "data/images")
            hasher.save()
            return digest

        changed = paths[len(paths) // 2]
        steps: dict[str, Callable[[], object]] = {
            "sha256sum": tool("sha256sum"),
            "b2sum": tool("b2sum"),
            "first": first,
            "second": again,
        }
        times: dict[str, list[float]] = {name: [] for name in [*steps, "one changed"]}
        for round_ in range(args.rounds):
            order = list(steps) if round_ % 2 == 0 else ["first", "second", "b2sum", "sha256sum"]
            digests = {}
            for name in order:
                start = time.perf_counter()
                digests[name] = steps[name]()
                times[name].append(time.perf_counter() - start)
            assert digests["first"] == digests["second"], "the memo changed the folder's hash"
            changed.write_bytes(os.urandom(changed.stat().st_size))
            start = time.perf_counter()
            again()
            times["one changed"].append(time.perf_counter() - start)
            _wait_until_not_racy([changed])  # or the next rounds would read it again, as they should
        shutil.rmtree(store, ignore_errors=True)

    mb = total / 1e6
    sha_best, sha_median = min(times["sha256sum"]), statistics.median(times["sha256sum"])
    first_best, first_median = min(times["first"]), statistics.median(times["first"])
    print(f"{'':28s} {'best s':>8s} {'MB/s':>7s} {'median s':>9s} {'MB/s':>7s}")
    for name, label in [
        ("sha256sum", "sha256sum (xargs -0)"),
        ("b2sum", "(b2sum, reference)"),
        ("first", "DataHasher, first"),
        ("second", "DataHasher, unchanged"),
        ("one changed", "DataHasher, one file changed"),
    ]:
        best, median = min(times[name]), statistics.median(times[name])
        print(f"{label:28s} {best:8.3f} {mb / best:7,.0f} {median:9.3f} {mb / median:7,.0f}")
    ratio_best, ratio_median = first_best / sha_best, first_median / sha_median
    second_best, second_median = min(times["second"]) / first_best, statistics.median(times["second"]) / first_median
    print(f"first / sha256sum: best {ratio_best:.2f}x, median {ratio_median:.2f}x (target <= 1.5x)")
    print(f"unchanged / first: best {second_best:.1%}, median {second_median:.1%} (target <= 5%)")
    for name, values in times.items():
        print(f"  {name:12s} s: " + " ".join(f"{v:.3f}" for v in values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
