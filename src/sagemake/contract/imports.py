"""The modules a trainer's code imports that this Python cannot find, found without running any of it.

Usage: python -m sagemake.contract.imports FOLDER
Prints `file<TAB>line<TAB>module` for each (file relative to FOLDER's parent), exit 1 when there is one. Run by
the job's Python before a local job, and inside a freshly built image before it is tagged: a requirement missing
from docker/requirements.txt is named before anything runs, not when the job reaches the import. An import under
`try: ... except ImportError` or `if TYPE_CHECKING:` is the code's own business and is not checked; relative imports,
the standard library and the trainer's own package are not either. Standard library only.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ANY_IMPORT_ERROR = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _catches_import_errors(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return handler.type is None or any(isinstance(kind, ast.Name) and kind.id in ANY_IMPORT_ERROR
                                       or isinstance(kind, ast.Attribute) and kind.attr in ANY_IMPORT_ERROR
                                       for kind in kinds)


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level module) of each absolute import in tree that nothing guards."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Try) and any(_catches_import_errors(h) for h in node.handlers):
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child)
            return
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def missing(folder: Path) -> list[tuple[str, int, str]]:
    """(file, line, module) for each import in folder's Python files that this Python cannot find."""
    own = {folder.name, "sagemake", "__future__"}
    absent = []
    for path in sorted(folder.rglob("*.py")):
        try:
            tree = ast.parse(path.read_bytes(), str(path))
        except SyntaxError:
            continue  # the job itself says where, when it imports it
        for line, module in imported(tree):
            if module in own or module in sys.stdlib_module_names or module in sys.builtin_module_names:
                continue
            if importlib.util.find_spec(module) is None:
                absent.append((path.relative_to(folder.parent).as_posix(), line, module))
    return absent


def main(argv: list[str]) -> int:
    folder = Path(argv[0]).resolve()
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != folder]  # not the folder's own modules
    absent = missing(folder)
    for name, line, module in absent:
        print(f"{name}\t{line}\t{module}")
    return 1 if absent else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
