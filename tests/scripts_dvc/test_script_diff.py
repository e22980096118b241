"""Diff and show of scripts: module-level statements compared one by one, in the file's lines."""

from __future__ import annotations

from pathlib import Path

from modver.engine.diff import CHANGED, FORMATTING, UNCHANGED, diff_closures
from modver.engine.parts import closure_parts
from modver.fingerprint import fingerprint_stage
from modver.sourcetree import DictTree
from tests.helpers import GitProject, mv, mv_json

SCRIPT = """\
import math

# config
batch_size = 4
lr = 0.1  # learning rate
steps = 3
grad_clip = 0.0

print("start")
weights = [1.0, 2.0]
for step in range(steps):
    grads = [w * lr for w in weights]
    # update
    weights = [w - g for w, g in zip(weights, grads)]
    if step % 2 == 0:
        print(step, weights)
print("done", math.fsum(weights))
"""


def pair(a: str, b: str):
    ta, tb = DictTree({"train.py": a}), DictTree({"train.py": b})
    return diff_closures(
        "train", "A", fingerprint_stage(ta, "train.py"), ta, "B", fingerprint_stage(tb, "train.py"), tb
    )


def test_a_changed_line_in_the_loop_shows_as_that_line_with_file_lines():
    edited = SCRIPT.replace("    weights = [w - g", "    weights = [w - 2 * g")
    d = pair(SCRIPT, edited)
    assert d.status == CHANGED
    assert [(c.kind, c.name, c.status) for c in d.changes] == [("statement", "for step in range(steps)", CHANGED)]
    diff = d.changes[0].diff
    assert "-    weights = [w - g for w, g in zip(weights, grads)]" in diff
    assert "+    weights = [w - 2 * g for w, g in zip(weights, grads)]" in diff
    assert "@@ -11,6 +11,6 @@" in diff  # the loop's lines in the file, three lines of context
    assert "-for step" not in diff and "+for step" not in diff  # not the whole loop removed and added


def test_inserted_statements_pair_the_rest_with_their_counterparts():
    edited = SCRIPT.replace('print("start")\n', 'print("start")\nprint("batch", batch_size)\n')
    edited = edited.replace("        print(step, weights)\n", "        print(step, weights)\n    weights[0] += 0\n")
    d = pair(SCRIPT, edited)
    got = [(c.name, c.status) for c in d.changes]
    assert got == [("for step in range(steps)", CHANGED), ('print("batch", batch_size)', "added")]
    loop = d.changes[0].diff
    assert "+    weights[0] += 0" in loop and "@@ -14,3 +15,4 @@" in loop


def test_comments_and_formatting_in_statements_make_no_difference():
    cosmetic = SCRIPT.replace("    # update\n", "    # update the weights\n").replace('print("done"', "print('done'")
    assert pair(SCRIPT, cosmetic).status == FORMATTING
    assert pair(SCRIPT, SCRIPT).status == UNCHANGED
    # a real change next to a comment edit: only the hunk that means something is shown
    mixed = cosmetic.replace('print("start")', 'print("begin")')
    d = pair(SCRIPT, mixed)
    assert d.status == CHANGED
    changed = [c for c in d.changes if c.status == CHANGED]
    assert [c.name for c in changed] == ['print("begin")']
    loop = next(c for c in d.changes if c.name.startswith("for step"))
    assert loop.status == FORMATTING


def test_cosmetic_hunks_of_a_changed_statement_are_left_out():
    body = "for i in range(3):\n    x = i  # first\n" + "    y = i\n" * 10 + "    z = i\n"
    edited = body.replace("# first", "# the first").replace("    z = i", "    z = i + 1")
    diff = pair(body, edited).changes[0].diff
    assert "+    z = i + 1" in diff and "# the first" not in diff
    # moving a line into a block changes its meaning: a re-indented line is never cosmetic
    moved = pair("for i in range(3):\n    a = i\nb = 1\n", "for i in range(3):\n    a = i\n    b = 1\n")
    assert any("+    b = 1" in c.diff for c in moved.changes)


def test_show_groups_neighbouring_assignments_and_labels_statements():
    tree = DictTree({"train.py": SCRIPT})
    parts = closure_parts(tree, fingerprint_stage(tree, "train.py"))
    rows = [(p.kind, p.name, p.line, p.end_line) for p in parts]
    assert rows == [
        ("import", "math", 1, 1),
        ("assignments", "batch_size … grad_clip (4)", 3, 7),
        ("statement", 'print("start")', 9, 9),
        ("assignment", "weights", 10, 10),
        ("statement", "for step in range(steps)", 11, 16),
        ("statement", 'print("done", math.fsum(weights))', 17, 17),
    ]
    assert parts[1].source.startswith("# config\nbatch_size = 4\n") and "grad_clip = 0.0" in parts[1].source
    assert len({p.key for p in parts}) == len(parts)


def test_diff_and_show_of_a_script_through_the_cli(tmp_path: Path):
    project = GitProject(tmp_path)
    project.write("manifest.yaml", "stages:\n  train:\n    entry: train.py\n")
    project.write("train.py", SCRIPT)
    project.commit("v1")
    edited = SCRIPT.replace("grad_clip = 0.0", "grad_clip = 1.0").replace(
        "    weights = [w - g for w, g in zip(weights, grads)]\n",
        "    if grad_clip:\n        grads = [max(-grad_clip, min(grad_clip, g)) for g in grads]\n"
        "    weights = [w - g for w, g in zip(weights, grads)]\n",
    )
    project.write("train.py", edited)
    project.commit("clip")
    mv(tmp_path, "index")
    out = mv(tmp_path, "diff", "train@v1", "train@v2").stdout
    assert "statement for step in range(steps): changed" in out
    assert "+    if grad_clip:" in out and "@@ -11,6 +11,8 @@" in out
    assert "assignment grad_clip: changed" in out and "+grad_clip = 1.0" in out
    assert "-    weights" not in out  # the unchanged lines of the loop are context, not removed
    shown = mv_json(tmp_path, "show", "train@v2")
    kinds = [(p["kind"], p["name"]) for p in shown["parts"]]
    assert ("assignments", "batch_size … grad_clip (4)") in kinds
    assert set(shown["sources"]) == {p["key"] for p in shown["parts"]}
    text = mv(tmp_path, "show", "train@v2").stdout
    row = next(line for line in text.splitlines() if line.startswith("batch_size … grad_clip (4)"))
    assert row.split()[-3:] == ["assignments", "train.py", "3-7"]
    assert text.count("# train.py:") == len(shown["parts"])
