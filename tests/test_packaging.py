"""The main job works from an installed package: a built wheel, a fresh virtualenv, `modver demo`.

The wheel is built from a copy of the source tree (nothing is written into the checkout) and
installed without dependencies into a new virtualenv; the dependencies come from the test
environment through a ``.pth`` line (a plain path: the editable install's finder there is not
activated, so ``import modver`` finds the wheel's copy). `.ci/run` does the same with a full
install from the package index.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh virtualenv with modver installed from a wheel."""
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", ".modver", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("modver", "examples"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(base / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if built.returncode != 0 and "No matching distribution found for setuptools" in built.stderr:
        pytest.skip("building a wheel needs setuptools from the package index, which is unreachable")
    assert built.returncode == 0, built.stderr
    [wheel] = (base / "dist").glob("modver-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (purelib / "_modver_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return venv / "bin"


def test_the_wheel_ships_the_example(installed: Path, tmp_path: Path):
    done = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import modver, modver.demo as d; print(modver.__file__); print(d.example_dir())",
        ],
        cwd=tmp_path,  # not the checkout: `python -c` imports from its working directory first
        capture_output=True,
        text=True,
        check=True,
    )
    module, example = done.stdout.split()
    venv = str(installed.parent)
    assert module.startswith(venv) and example.startswith(venv), "modver must come from the wheel, not the checkout"
    assert (Path(example) / "manifest.yaml").is_file() and (Path(example) / "data" / "digits.npz").is_file()


def test_demo_runs_from_the_installed_package(installed: Path, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run([str(installed / "modver"), "demo"], cwd=empty, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "## Every run in one table" in done.stdout
    assert "Error" not in done.stderr
    assert list(empty.iterdir()) == []  # the demo works in its own folder
    where = done.stdout.rsplit("The demo project is in ", 1)[1].split(":", 1)[0]
    assert (Path(where) / "manifest.yaml").is_file() and (Path(where) / ".modver" / "runs").is_dir()
    shutil.rmtree(Path(where).parent)


def test_every_package_is_in_the_wheel() -> None:
    """A new subpackage of modver/ is listed in pyproject.toml, or the wheel would lack it."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "modver").rglob("__init__.py")}
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"


def test_the_wheel_ships_the_report_templates(installed: Path, tmp_path: Path) -> None:
    """Package data (the report's page, style and script) is in the wheel: a report renders from it."""
    code = "import modver, modver.report.page as r; print(modver.__file__); print(len(r.render({'title': 't', 'x': 1}, [])))"
    done = subprocess.run([str(installed / "python"), "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    module, size = done.stdout.split()
    assert module.startswith(str(installed.parent)) and int(size) > 10_000
