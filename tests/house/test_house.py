"""The shape of the codebase: layers that point down, small modules, short functions, tools that are shims.

The import contracts live in pyproject.toml (`[tool.importlinter]`) and `lint-imports` runs in CI;
these tests show the contracts hold today and would catch a new upward import.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def python_files() -> list[Path]:
    files = [*sorted((REPO / "slm_swap").rglob("*.py")), *sorted((REPO / "tools").glob("*.py")), REPO / "conftest.py"]
    return [path for path in files if "node_modules" not in path.parts]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy under test, ahead of any installed slm_swap
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("house")
    shutil.copytree(REPO / "slm_swap", root / "slm_swap", ignore=shutil.ignore_patterns("mastra", "0*_*", "models", "__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_import_contracts_hold(package_copy: Path) -> None:
    result = lint_imports(package_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("scoring/metrics.py", "slm_swap.harness.records"),  # a lower layer reaching for a higher one
        ("engine/decode_attention.py", "slm_swap.harness.settings"),  # the engine knowing the harness
        ("harness/writer.py", "slm_swap.harness.plugin"),  # the writer taking things back from the plugin
        ("data/rows.py", "slm_swap.backends.api"),  # data knowing the models
    ],
)
def test_a_new_upward_import_breaks_a_contract(package_copy: Path, tmp_path: Path, module: str, upward: str) -> None:
    root = tmp_path / "copy"
    shutil.copytree(package_copy, root)
    path = root / "slm_swap" / module
    # inside a function, where such imports used to hide
    path.write_text(path.read_text(encoding="utf-8") + f"\n\ndef _sneaky() -> None:\n    import {upward}  # noqa\n", encoding="utf-8")
    result = lint_imports(root)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout and upward in result.stdout


def test_no_module_is_over_300_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n for p in python_files() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_over_60_lines() -> None:
    long = {}
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = lines
    assert long == {}


def test_every_package_says_what_it_owns() -> None:
    missing = [
        str(init.relative_to(REPO))
        for init in sorted((REPO / "slm_swap").rglob("__init__.py"))
        if "node_modules" not in init.parts and not ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    ]
    assert missing == []


MAX_SHIM_LINES = 25


def test_every_tool_is_a_shim_over_its_command() -> None:
    """tools/<name>.py: the command's docstring, the clone on sys.path, main and build_parser from slm_swap.cli.<name>."""
    wrong = {}
    for path in sorted((REPO / "tools").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        imported = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
        command = REPO / "slm_swap" / "cli" / path.name
        problems = [
            why
            for why, broken in (
                ("no `python tools/<name>.py` in its docstring", f"tools/{path.name}" not in (ast.get_docstring(tree) or "")),
                (f"over {MAX_SHIM_LINES} lines", len(text.splitlines()) > MAX_SHIM_LINES),
                ("no slm_swap/cli module of its name", not command.is_file()),
                (
                    "not main and build_parser from it",
                    not {(f"slm_swap.cli.{path.stem}", "main"), (f"slm_swap.cli.{path.stem}", "build_parser")} <= imported,
                ),
                ("defines functions or classes", any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in tree.body)),
            )
            if broken
        ]
        if problems:
            wrong[path.name] = problems
    assert wrong == {}


def test_every_command_has_a_parser_a_main_and_a_console_entry() -> None:
    missing = {}
    for path in sorted((REPO / "slm_swap" / "cli").glob("*.py")):
        if path.name == "__init__.py":
            continue
        defined = {node.name for node in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(node, ast.FunctionDef)}
        if lacking := {"build_parser", "main", "run"} - defined:
            missing[path.name] = sorted(lacking)
    assert missing == {}


def test_only_the_tool_shims_put_anything_on_sys_path() -> None:
    found = [
        str(path.relative_to(REPO))
        for path in python_files()
        if path.parent != REPO / "tools" and "sys.path.insert" in path.read_text(encoding="utf-8")
    ]
    assert found == []
