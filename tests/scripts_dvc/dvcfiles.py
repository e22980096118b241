"""A DVC project as DVC's documentation shapes one, written by the tests: dvc.yaml with a
foreach stage, vars, a params.yaml section read by the scripts themselves, folder outs,
``cache: false`` metrics, a top-level plot with a template, ``artifacts:``, a dvc.lock and
``.dvc/``. No dvc is needed: the scripts only read params.yaml and write files."""

from __future__ import annotations

DVC_YAML = """\
vars:
  - raw: data/data.xml
artifacts:
  model:
    path: model.pkl
    type: model
stages:
  prepare:
    cmd: python src/prepare.py ${raw}
    deps:
    - ${raw}
    - src/prepare.py
    - src/common.py
    params:
    - prepare.split
    outs:
    - data/prepared
  featurize:
    foreach:
      - train
      - test
    do:
      cmd: python src/featurize.py data/prepared ${item}
      deps:
      - data/prepared
      - src/featurize.py
      params:
      - featurize.scale
      outs:
      - data/features/${item}
  train:
    cmd: python src/train.py data/features/train model.pkl
    deps:
    - data/features/train
    - src/train.py
    params:
    - train
    outs:
    - model.pkl
  evaluate:
    cmd: python src/evaluate.py model.pkl data/features/test
    deps:
    - model.pkl
    - data/features/test
    - src/evaluate.py
    metrics:
    - eval/metrics.json:
        cache: false
    outs:
    - eval/curve.csv:
        persist: true
plots:
- Curve:
    template: linear
    x: step
    y:
      eval/curve.csv: score
"""

COMMON = """\
import yaml


def params(section):
    with open("params.yaml") as f:
        return yaml.safe_load(f)[section]
"""

PREPARE = """\
import os
import sys

from common import params

split = params("prepare")["split"]
words = open(sys.argv[1]).read().split()
cut = int(len(words) * (1 - split))
os.makedirs("data/prepared", exist_ok=True)
open("data/prepared/train.txt", "w").write(" ".join(words[:cut]))
open("data/prepared/test.txt", "w").write(" ".join(words[cut:]))
"""

FEATURIZE = """\
import json
import os
import sys

import yaml

scale = yaml.safe_load(open("params.yaml"))["featurize"]["scale"]
name = sys.argv[2]
words = open(os.path.join(sys.argv[1], name + ".txt")).read().split()
os.makedirs(f"data/features/{name}", exist_ok=True)
json.dump([len(w) * scale for w in words], open(f"data/features/{name}/x.json", "w"))
"""

TRAIN = """\
import json
import pickle
import sys

import yaml

p = yaml.safe_load(open("params.yaml"))["train"]
x = json.load(open(sys.argv[1] + "/x.json"))
pickle.dump({"threshold": sum(x) / max(len(x), 1) * p["factor"]}, open(sys.argv[2], "wb"))
"""

EVALUATE = """\
import json
import os
import pickle
import sys

model = pickle.load(open(sys.argv[1], "rb"))
x = json.load(open(sys.argv[2] + "/x.json"))
acc = sum(v > model["threshold"] for v in x) / max(len(x), 1)
os.makedirs("eval", exist_ok=True)
json.dump({"acc": round(acc, 4), "n": {"test": len(x)}}, open("eval/metrics.json", "w"))
with open("eval/curve.csv", "w") as f:
    f.write("step,score\\n" + "".join(f"{i},{acc * i}\\n" for i in range(3)))
"""

PARAMS = """\
prepare:
  split: 0.25
featurize:
  scale: 2
train:
  factor: 1.0
"""

FILES = {
    "dvc.yaml": DVC_YAML,
    "params.yaml": PARAMS,
    "dvc.lock": "schema: '2.0'\nstages: {}\n",
    ".dvc/config": "[core]\n    remote = storage\n",
    ".dvc/.gitignore": "/tmp\n/cache\n",
    "src/common.py": COMMON,
    "src/prepare.py": PREPARE,
    "src/featurize.py": FEATURIZE,
    "src/train.py": TRAIN,
    "src/evaluate.py": EVALUATE,
    "data/data.xml": " ".join(f"w{'x' * (i % 7)}{i}" for i in range(120)),
    ".gitignore": "/data/prepared\n/data/features\n/model.pkl\n/eval\n",
}
