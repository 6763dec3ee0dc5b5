"""The package's import graph has no circle, and no module inside it imports the package root
(tools/import_graph.py reads every import of fastmlp/**/*.py, lazy ones included)."""
import pathlib
import subprocess
import sys

TOOL = pathlib.Path(__file__).resolve().parent.parent / "tools" / "import_graph.py"


def test_no_import_circle_and_no_import_of_the_root():
    result = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "circles: none" in result.stdout
    assert "imports of the root: none" in result.stdout
