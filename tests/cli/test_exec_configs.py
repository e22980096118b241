"""End-to-end: config files a script runs with exec() count in its stage's version (issue 7, item 2).

The shape is nanoGPT's: ``train.py`` is a whole-module stage that does
``exec(open('configurator.py').read())``; before fingerprint scheme mv2 an edit of the
configurator left ``train`` "unchanged".
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modver.fingerprint import fingerprint_stage
from modver.project import Project
from tests.helpers import GitProject, mv, mv_json

DOCS = Path(__file__).resolve().parents[2] / "docs"
TRAIN = """\
import modver

lr = 0.1
batch_size = 8
exec(open('config.py').read())  # overrides from a config file
modver.log_metrics(lr=lr, batch_size=batch_size)
"""
CONFIG = """\
# experiment settings
lr = 0.5
"""
FILES = {
    "manifest.yaml": "stages:\n  train:\n    entry: train.py\n",
    "train.py": TRAIN,
    "config.py": CONFIG,
    ".gitignore": ".modver/\n",
}


@pytest.fixture
def script_project(git_project):
    for path, text in FILES.items():
        git_project.write(path, text)
    git_project.commit("a script that execs its config")
    return git_project


def _train_status(root):
    (row,) = mv_json(root, "status")
    return row


def test_editing_the_execd_config_changes_the_stage_and_a_comment_does_not(script_project):
    p = script_project
    mv(p.root, "index")
    mv(p.root, "pin", "train@v1")
    p.write("config.py", "# experiment settings, tuned by hand\nlr = 0.5  # was 0.5 already\n\n")
    row = _train_status(p.root)
    assert (row["pinned"], row["working"], row["changed"]) == ("v1", "v1", False)

    p.write("config.py", CONFIG.replace("0.5", "0.05"))
    row = _train_status(p.root)
    assert row["changed"] is True and row["working"] is None  # a version no one registered yet
    out = mv(p.root, "snapshot", "--message", "smaller lr").stdout
    assert "train: new version v2" in out
    assert [v["version"] for v in mv_json(p.root, "log", "train")] == ["v1", "v2"]
    assert "config.py" in mv_json(p.root, "show", "train@v2")["files"]


def test_the_execd_config_is_stored_with_the_version_and_a_pinned_run_finds_it(script_project):
    p = script_project
    mv(p.root, "index")
    assert p.git("show", "refs/modver/stages/train:src/config.py") == CONFIG.strip()
    shown = mv(p.root, "show", "train@v1").stdout
    assert "exec(open('config.py').read()) runs config.py -> config.py, every statement" in shown
    mv(p.root, "pin", "train@v1")
    record = json.loads(mv(p.root, "run", "--json").stdout)
    assert record["status"] == "succeeded"
    assert record["metrics"] == {"lr": 0.5, "batch_size": 8}


def test_a_pinned_version_runs_the_config_it_was_registered_with(script_project):
    p = script_project
    mv(p.root, "index")
    mv(p.root, "pin", "train@v1")
    p.write("config.py", CONFIG.replace("0.5", "0.9"))
    record = json.loads(mv(p.root, "run", "--force", "train", "--json").stdout)
    assert record["versions"] == {"train": "v1"} and record["metrics"]["lr"] == 0.5
    (p.root / "config.py").unlink()  # gone from the working tree: the version still runs
    record = json.loads(mv(p.root, "run", "--force", "train", "--json").stdout)
    assert record["status"] == "succeeded" and record["metrics"]["lr"] == 0.5


def test_a_config_named_at_run_time_gets_a_ready_to_paste_deps_line(script_project):
    p = script_project
    p.write(
        "train.py",
        TRAIN.replace("open('config.py')", "open(os.environ.get('CONFIG', 'config.py'))").replace(
            "import modver\n", "import os\n\nimport modver\n"
        ),
    )
    p.commit("config file from the environment")
    mv(p.root, "index")
    shown = mv(p.root, "show", "train@latest").stdout
    assert "train.py:7: exec(open(os.environ.get('CONFIG', 'config.py')).read()) runs a file named at run time" in shown
    lines = shown.splitlines()
    hint = lines.index("to count the files these calls run or import, list them under `train:` in the manifest:")
    paste = lines[hint + 1]
    assert paste == "    deps: [path/to/file.py]"
    # pasted under the stage with the real path, the config counts
    p.write("manifest.yaml", FILES["manifest.yaml"] + paste.replace("path/to/file.py", "config.py") + "\n")
    before = _train_status(p.root)["working_fingerprint"]
    p.write("config.py", CONFIG.replace("0.5", "0.05"))
    assert _train_status(p.root)["working_fingerprint"] != before


def test_a_version_registered_under_the_old_rules_still_verifies(tmp_path):
    """A version registered before mv2 (its fingerprint says ``mv1:``) whose stored files
    include the exec'd config — here because the script also imports it — is re-fingerprinted
    under mv1's rules, which did not follow exec'd files, and verifies."""
    root = tmp_path / "proj"
    root.mkdir()
    p = GitProject(root)
    for path, text in FILES.items():
        p.write(path, text)
    p.write("train.py", "from config import lr as default_lr\n" + TRAIN.replace("lr = 0.1", "lr = default_lr"))
    p.commit("a script that imports and execs its config")
    with Project(root) as project:  # what modver registered before mv2
        tree = project.working_tree()
        old = fingerprint_stage(tree, "train.py", scheme="mv1")
        project.history.register("train", old, tree, origin=None, message="registered before mv2")
    assert old.fingerprint.startswith("mv1:") and "config.py" in old.files
    assert mv(root, "verify").stdout.splitlines()[-1] == "1 version checked, 0 damaged."


# -- docs/concepts.md, "What a pin controls" (issue 7, item 12) ---------------------------------

NANOGPT_SHAPED = {  # nanoGPT's layout: prepare writes next to itself, train writes a checkpoint sample reads
    "model.py": """\
from dataclasses import dataclass


@dataclass
class GPTConfig:
    n_layer: int = 12


class GPT:
    def __init__(self, config):
        self.config = config

    def generate(self, prompt):
        return prompt + "!" * self.config.n_layer
""",
    "configurator.py": """\
import sys
from ast import literal_eval

for arg in sys.argv[1:]:
    if '=' not in arg:
        exec(open(arg).read())
    else:
        key, val = arg[2:].split("=")
        attempt = literal_eval(val) if val[:1].isdigit() or val in ("True", "False") else val
        assert type(attempt) == type(globals()[key]), key
        globals()[key] = attempt
""",
    "data/shakespeare_char/prepare.py": """\
import os
import pickle

here = os.path.dirname(__file__)
text = open(os.path.join(here, 'input.txt')).read()
chars = sorted(set(text))
open(os.path.join(here, 'train.bin'), 'wb').write(bytes(chars.index(c) for c in text[:-10]))
open(os.path.join(here, 'val.bin'), 'wb').write(bytes(chars.index(c) for c in text[-10:]))
pickle.dump({'vocab_size': len(chars)}, open(os.path.join(here, 'meta.pkl'), 'wb'))
""",
    "data/shakespeare_char/input.txt": "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    "config/train_shakespeare_char.py": "out_dir = 'out-shakespeare-char'\nmax_iters = 5000\n",
    "train.py": """\
import os
import pickle

from model import GPTConfig, GPT

out_dir = 'out'
compile = True
device = 'cuda'
max_iters = 100
exec(open('configurator.py').read())  # overrides from command line or config file
data = open(os.path.join('data', 'shakespeare_char', 'train.bin'), 'rb').read()
model = GPT(GPTConfig())
os.makedirs(out_dir, exist_ok=True)
ckpt = {'n_layer': model.config.n_layer, 'iters': max_iters, 'compile': compile, 'device': device}
pickle.dump(ckpt, open(os.path.join(out_dir, 'ckpt.pt'), 'wb'))
print("training", model.config)
""",
    "sample.py": """\
import os
import pickle

from model import GPTConfig, GPT

out_dir = 'out'
start = "hello"
exec(open('configurator.py').read())  # overrides from command line or config file
ckpt = pickle.load(open(os.path.join(out_dir, 'ckpt.pt'), 'rb'))
print(GPT(GPTConfig(n_layer=ckpt['n_layer'])).generate(start))
""",
    ".gitignore": ".modver/\nout-shakespeare-char/\n*.bin\n*.pkl\n",
}


def _section(title: str) -> str:
    text = (DOCS / "concepts.md").read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def test_the_pin_examples_in_concepts_run_and_say_what_happens(git_project):
    """Every command of the section runs in a nanoGPT-shaped project with two commits, each
    output line shown appears in the command's output, and the section's claims hold: the
    checkpoint is train's out and sample's input, and pinning back runs from the cache."""
    p = git_project
    section = _section("What a pin controls")
    manifest = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)[0]
    for path, text in {**NANOGPT_SHAPED, "manifest.yaml": manifest}.items():
        p.write(path, text)
    p.commit("gpt")
    p.write("model.py", NANOGPT_SHAPED["model.py"].replace("n_layer: int = 12", "n_layer: int = 6"))
    p.commit("a smaller default model")
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    ran = 0
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.DOTALL):
        output = ""
        for line in textwrap.dedent(block).strip().splitlines():
            if line.startswith("$ "):
                done = subprocess.run(
                    ["bash", "-c", line[2:]], cwd=p.root, env=env, capture_output=True, text=True, check=False
                )
                assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
                output, ran = done.stdout, ran + 1
            else:
                assert line in output.splitlines(), f"concepts.md shows {line!r}; the command printed:\n{output}"
    assert ran >= 9
    ckpt = p.root / "out-shakespeare-char" / "ckpt.pt"
    # both pinned to the first commit's versions: train@v1 ran already (from the cache), sample@v1 runs
    record = json.loads(mv(p.root, "run", "--json").stdout)
    assert record["versions"] == {"prepare": "v1", "train": "v1", "sample": "v1"}
    assert record["cached"] == {"prepare": True, "train": True, "sample": False}
    assert (p.root / ".modver" / "runs" / record["run"] / "sample.stdout").read_text().strip() == "hello" + "!" * 12
    assert pickle.loads(ckpt.read_bytes()) == {"n_layer": 12, "iters": 20, "compile": False, "device": "cpu"}
    # back to the working tree: everything ran before, so nothing runs and v2's checkpoint is placed
    p.write("manifest.yaml", manifest)
    record = json.loads(mv(p.root, "run", "--json").stdout)
    assert all(record["cached"].values()) and pickle.loads(ckpt.read_bytes())["n_layer"] == 6


def test_a_model_stage_whose_output_train_takes_is_what_a_model_pin_changes(git_project):
    """The section's second structure: `train` takes the model as an input, so pinning
    `model` changes what `train` receives; an isinstance() against train's own import is False."""
    p = git_project
    manifest = re.findall(r"```yaml\n(.*?)```", _section("What a pin controls"), flags=re.DOTALL)[1]
    p.write("manifest.yaml", textwrap.dedent(manifest))
    p.write("pipeline/__init__.py", "")
    model = "class GPT:\n    def __init__(self, n_layer):\n        self.n_layer = n_layer\n\n\ndef build(n_layer=12):\n    return GPT(n_layer)\n"
    p.write("pipeline/model.py", model)
    p.write(
        "pipeline/train.py",
        "import modver\nfrom pipeline.model import GPT\n\n\ndef train(model):\n"
        "    modver.log_metrics(layers=model.n_layer, same_class=isinstance(model, GPT))\n",
    )
    p.write(".gitignore", ".modver/\n")
    p.commit("model as a stage")
    p.write("pipeline/model.py", model.replace("return GPT(n_layer)", "return GPT(n_layer * 2)"))
    p.commit("twice the layers")
    mv(p.root, "index")
    assert json.loads(mv(p.root, "run", "--json").stdout)["metrics"] == {"layers": 24, "same_class": False}
    mv(p.root, "pin", "model@v1")
    record = json.loads(mv(p.root, "run", "--json").stdout)
    assert record["metrics"]["layers"] == 12 and record["cached"]["train"] is False
