"""One rule for stage and tag names, one did-you-mean for every unknown name."""

from __future__ import annotations

import pytest

from modver.errors import InvalidNameError
from modver.names import did_you_mean, is_name, suggest, validate_name


@pytest.mark.parametrize("name", ["a", "A1", "pre_process", "v1.2-final", "0", "0x", "x" * 80])
def test_valid_names(name):
    assert is_name(name) and validate_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "-a", ".a", "_a", "a..b", "a.", "a.lock", "a/b", "a b", "a~", "a^", "a:b", "é", "a@{", 3, None]
)
def test_invalid_names(name):
    assert not is_name(name)
    with pytest.raises(InvalidNameError) as info:
        validate_name(name, "tag", where="manifest.yaml:3:5")
    assert "invalid tag name" in str(info.value) and "manifest.yaml:3:5" in str(info.value)
    assert "letters, digits" in (info.value.hint or "")


def test_suggestions():
    assert suggest("modle", ["preprocess", "model", "evaluate"]) == "model"
    assert suggest("zzz", ["preprocess", "model"]) is None
    assert did_you_mean("modle", ["model"]) == "did you mean 'model'? "
    assert did_you_mean("zzz", ["model"]) == ""


def test_no_module_keeps_a_name_rule_of_its_own():
    """The rule lives in modver/names.py only (it was written three times)."""
    from pathlib import Path

    import modver

    package = Path(modver.__file__).parent
    rule = "[A-Za-z0-9][A-Za-z0-9_.-]*"
    holders = [p.name for p in package.rglob("*.py") if rule in p.read_text(encoding="utf-8")]
    assert holders == ["names.py"]
