"""``.env.example`` lists every variable that settings and the server read from the environment."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READERS = {
    "string",
    "boolean",
    "integer",
    "duration",
    "secret",
    "choice",
    "path_list",
    "networks",
    "upstreams",
}


def variables_read_by(path: Path) -> set[str]:
    """Names passed to ``env.<reader>(...)`` calls, however they are nested."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "env"
            and node.func.attr in READERS
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(node.args[0].value)
    return names


def documented() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE))


def test_it_documents_every_setting() -> None:
    read = variables_read_by(ROOT / "crow" / "settings.py")
    assert read, "no env readers found: did settings.py stop using crow.env?"
    assert read - documented() == set()


def test_it_documents_every_server_variable() -> None:
    assert variables_read_by(ROOT / "crow" / "serve.py") - documented() == set()


def test_it_documents_nothing_that_is_not_read() -> None:
    read = (
        variables_read_by(ROOT / "crow" / "settings.py")
        | variables_read_by(ROOT / "crow" / "serve.py")
        | {"CROW_REQUIRE_CLIENTS"}
    )
    assert documented() - read == set()
