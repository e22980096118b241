"""A DVC-shaped project written by hand in the SPEC's keys: scripts that take positional
arguments, read ``params.yaml`` themselves and write folders, and a metrics JSON.

``src/evaluate.py`` also does what dvclive does inside a DVC project: it looks for ``.dvc`` above
its working directory and, where it finds one, writes ``.dvc/tmp`` and makes a git ref
(``refs/exps/...``) with the git binary — in its workspace, never in the user's repository.
"""

from __future__ import annotations

PREPARE = """\
import os
import random
import sys

import yaml

params = yaml.safe_load(open("params.yaml"))["prepare"]
random.seed(params["seed"])
lines = open(sys.argv[1]).read().split()
os.makedirs(os.path.join("data", "prepared"), exist_ok=True)
test = [w for w in lines if random.random() < params["split"]]
train = [w for w in lines if w not in test]
open("data/prepared/train.tsv", "w").write("\\n".join(train))
open("data/prepared/test.tsv", "w").write("\\n".join(test))
"""

FEATURIZE = """\
import json
import os
import sys

import yaml

params = yaml.safe_load(open("params.yaml"))["featurize"]
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for name in ("train", "test"):
    words = open(os.path.join(src, f"{name}.tsv")).read().split()
    feats = [len(w) % params["max_features"] for w in words]
    json.dump(feats, open(os.path.join(dst, f"{name}.json"), "w"))
"""

TRAIN = """\
import json
import pickle
import sys

import yaml

params = yaml.safe_load(open("params.yaml"))["train"]
feats = json.load(open(sys.argv[1] + "/train.json"))
model = {"threshold": sum(feats) / max(len(feats), 1) * params["n_est"] / 10}
pickle.dump(model, open(sys.argv[2], "wb"))
"""

EVALUATE = """\
import json
import os
import pickle
import subprocess
import sys

model = pickle.load(open(sys.argv[1], "rb"))
os.makedirs("eval", exist_ok=True)
scores = {}
for name in ("train", "test"):
    feats = json.load(open(os.path.join(sys.argv[2], f"{name}.json")))
    scores[name] = round(sum(f > model["threshold"] for f in feats) / max(len(feats), 1), 4)
json.dump({"avg_prec": scores, "label": "not a number"}, open("eval/metrics.json", "w"))
with open("eval/prc.csv", "w") as f:
    f.write("step,precision\\n" + "".join(f"{i},{0.5 + i / 10}\\n" for i in range(3)))

# what dvclive's `dvc exp save` amounts to: find the DVC project, write under .dvc, make a git ref
here = os.path.abspath(".")
while not os.path.isdir(os.path.join(here, ".dvc")) and os.path.dirname(here) != here:
    here = os.path.dirname(here)
os.makedirs(os.path.join(here, ".dvc", "tmp"), exist_ok=True)
open(os.path.join(here, ".dvc", "tmp", "exp-saved"), "w").write("x")
git = ["git", "-c", "user.name=live", "-c", "user.email=live@example.com"]
subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "exp"], check=False)
subprocess.run([*git, "update-ref", "refs/exps/ab/cdef/exp-1", "HEAD"], check=False)
print("toplevel:", subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True).stdout)
"""

MANIFEST = """\
stages:
  prepare:
    entry: src/prepare.py
    args: [data/data.xml]
    params: [prepare.seed, prepare.split]
    outs: [data/prepared]
  featurize:
    entry: src/featurize.py
    args: [data/prepared, data/features]
    deps: [data/prepared]
    params: [featurize.max_features]
    outs: [data/features]
  train:
    entry: src/train.py
    args: [data/features, model.pkl]
    deps: [data/features]
    params: [train.n_est]
    outs: [model.pkl]
  evaluate:
    entry: src/evaluate.py
    args: [model.pkl, data/features]
    deps: [model.pkl, data/features]
    outs: [eval/prc.csv]
    metrics: [eval/metrics.json]
    plots: [eval/prc.csv]
"""

PARAMS = """\
prepare:
  split: 0.3
  seed: 20170428
featurize:
  max_features: 7
train:
  n_est: 10
"""

FILES = {
    "src/prepare.py": PREPARE,
    "src/featurize.py": FEATURIZE,
    "src/train.py": TRAIN,
    "src/evaluate.py": EVALUATE,
    "manifest.yaml": MANIFEST,
    "params.yaml": PARAMS,
    "data/data.xml": " ".join(f"word{i * 7 % 13}x{i}" for i in range(200)),
    ".dvc/config": "[core]\n    remote = storage\n",
    ".dvc/.gitignore": "/tmp\n",
    ".gitignore": ".modver/\n/data/prepared\n/data/features\n/model.pkl\n/eval\n",
}
