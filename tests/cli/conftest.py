"""Fixtures of the CLI tests."""

from __future__ import annotations

import pytest

from tests.cli._first_hour import FILES
from tests.helpers import GitProject


@pytest.fixture
def first_hour(git_project: GitProject) -> GitProject:
    """The first-hour tests' two-stage pipeline (tests/cli/_first_hour.py), committed."""
    for path, text in FILES.items():
        git_project.write(path, text)
    git_project.write(".gitignore", ".modver/\n")
    git_project.commit("pipeline")
    return git_project
