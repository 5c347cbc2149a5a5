"""The package never imports an entry script: the library stands on its own."""

import ast
import glob
import os

from conftest import ROOT


def test_no_module_of_the_package_imports_a_top_level_script():
    scripts = {os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(ROOT,
                                                                                        "*.py"))}
    assert {"build_model", "model_transform", "config"} <= scripts
    found = []
    for path in glob.glob(os.path.join(ROOT, "colorization", "*.py")):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and not node.level else [])
            found += [f"{os.path.basename(path)}:{node.lineno} imports {n}" for n in names
                      if n.split(".")[0] in scripts]
    assert not found, found
