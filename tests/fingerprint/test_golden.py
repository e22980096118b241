"""Golden digests of fixture stages: a change here is a change of scheme (new prefix).

Regenerate (only for a deliberate scheme change): MODVER_REGEN_GOLDEN=1 pytest tests/fingerprint
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

from modver._encoding import digest_value
from modver.fingerprint import SummaryCache, fingerprint_source, fingerprint_stage
from modver.sourcetree import DictTree

GOLDEN = Path(__file__).with_name("golden_digests.json")

PROJECT = DictTree(
    {
        "pipeline/__init__.py": "",
        "pipeline/helpers.py": (
            "import numpy as np\n\nSCALE = 2.5\nnp.random.seed(0)\n\n\n"
            'def norm(x, eps=1e-8):\n    """Normalize."""\n    return (x - x.mean()) / (x.std() + eps) * SCALE\n'
        ),
        "pipeline/model.py": (
            "from dataclasses import dataclass\nfrom .helpers import norm\n\n\n@dataclass\nclass Config:\n"
            "    C: float = 1.0\n    tags: tuple = ('a', b'b', None, ...)\n\n\n"
            "class Model:\n    def __init__(self, cfg: Config):\n        self.cfg = cfg\n\n"
            "    def fit(self, x):\n        return [norm(v) for v in x if v is not None]\n\n\n"
            "def train(data, *, C=1.0, **kw):\n    m = Model(Config(C=C))\n    return m.fit(data), 1j, -0.0, f'{C!r:>10}'\n"
            "\n\nif __name__ == '__main__':\n    train([])\n"
        ),
    }
)

RUNS = DictTree(
    {  # scheme mv2: a whole-module script that execs its configurator (nanoGPT's shape)
        "train.py": "from pipeline.helpers import norm\n\nlr = 0.5\nexec(open('configurator.py').read())\nprint(norm(lr))\n",
        "configurator.py": "import sys\n\nfor arg in sys.argv[1:]:\n    exec(open(arg).read())\n",
        "pipeline/__init__.py": "",
        "pipeline/helpers.py": PROJECT.read("pipeline/helpers.py"),
    }
)

IMPORTS = DictTree(
    {  # scheme mv3: a project module imported by name with importlib
        "main.py": "import importlib\n\n\ndef run():\n    return importlib.import_module('plugins').p()\n",
        "plugins.py": "def p():\n    return 1\n",
    }
)


def compute():
    cache = SummaryCache()
    return {
        "value {lr, layers}": digest_value({"lr": 0.1, "layers": [1, 2], "name": "x", "flag": True}),
        "source whole module": fingerprint_source(PROJECT.read("pipeline/model.py").decode()),
        "source train": fingerprint_source(PROJECT.read("pipeline/model.py").decode(), "train"),
        "stage pipeline/model.py:train": fingerprint_stage(PROJECT, "pipeline/model.py:train", cache=cache).fingerprint,
        "stage pipeline/model.py:Model.fit": fingerprint_stage(
            PROJECT, "pipeline/model.py:Model.fit", cache=cache
        ).fingerprint,
        "stage pipeline/model.py": fingerprint_stage(PROJECT, "pipeline/model.py", cache=cache).fingerprint,
        "stage docstrings=True": fingerprint_stage(
            PROJECT, "pipeline/model.py:train", docstrings=True, cache=cache
        ).fingerprint,
        "stage train.py (runs configurator.py)": fingerprint_stage(RUNS, "train.py", cache=cache).fingerprint,
        "stage train.py (scheme mv1)": fingerprint_stage(RUNS, "train.py", cache=cache, scheme="mv1").fingerprint,
        "stage main.py:run (importlib import)": fingerprint_stage(IMPORTS, "main.py:run", cache=cache).fingerprint,
        "stage main.py:run (scheme mv2)": fingerprint_stage(
            IMPORTS, "main.py:run", cache=cache, scheme="mv2"
        ).fingerprint,
    }


def test_golden_digests():
    actual = compute()
    text = json.dumps(actual, indent=2, sort_keys=True) + "\n"
    if os.environ.get("MODVER_REGEN_GOLDEN") == "1":
        GOLDEN.write_text(text)
    expected = GOLDEN.read_text() if GOLDEN.exists() else ""
    if text != expected:
        diff = "".join(
            difflib.unified_diff(expected.splitlines(True), text.splitlines(True), "golden_digests.json", "actual")
        )
        raise AssertionError(
            "fingerprint digests changed: this breaks every registered version.\n"
            + diff
            + "\nIf the scheme change is deliberate (new prefix), regenerate with:\n"
            "    MODVER_REGEN_GOLDEN=1 /tmp/venv/bin/python -m pytest tests/fingerprint/test_golden.py"
        )
