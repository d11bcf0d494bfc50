"""tokcore.api, the declared plugin API: every name resolves, the type checkers' view matches
the table, the top-level names are the same objects, and hook modules stay light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import tokcore
import tokcore.api as api


def test_every_declared_name_resolves():
    assert api.__all__ == list(api._EXPORTS)
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert set(api.__all__) <= set(dir(api))


def test_type_checking_imports_state_the_same_table():
    tree = ast.parse(Path(api.__file__).read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    stated = {alias.asname or alias.name: f"{imp.module}:{alias.name}"
              for imp in block.body if isinstance(imp, ast.ImportFrom) for alias in imp.names}
    assert stated == api._EXPORTS


def test_top_level_names_are_the_apis():
    for name in tokcore._LAZY:
        assert getattr(tokcore, name) is getattr(api, name), name


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no_such_thing"):
        api.no_such_thing  # noqa: B018


def test_hook_modules_importing_the_api_do_not_import_torch():
    code = ("import sys; import tokcore.api; from tokcore.api import hookimpl, ConfigError; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
