"""The device package stays lean: it imports and classifies with the heavy libraries made unimportable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from support.helpers import REPO

FORBIDDEN = ["tensorflow", "keras", "tf_keras", "scipy", "librosa", "sklearn", "matplotlib", "trainer", "python_speech_features"]

# Runs in a fresh interpreter: a meta-path finder refuses the forbidden packages, then every edge
# module is imported and `ser classify` runs on a real clip.
SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    FORBIDDEN = set(json.loads(sys.argv[1]))

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                raise ImportError(f"forbidden import on the device: {name}")
            return None

    sys.meta_path.insert(0, Refuse())
    import edge
    for module in pkgutil.iter_modules(edge.__path__):
        importlib.import_module(f"edge.{module.name}")
    from edge.cli import main
    try:
        main(["classify", "--json", sys.argv[2]], prog_name="ser")
    except SystemExit as stop:
        assert stop.code in (0, None), stop.code
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in FORBIDDEN)
    print(json.dumps({"forbidden_loaded": loaded}))
    """
)


def test_edge_imports_and_classifies_without_heavy_libraries(speech_files):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(FORBIDDEN), str(speech_files[0])],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    prediction, summary = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert prediction["emotion"] and summary == {"forbidden_loaded": []}


def test_the_refusing_hook_really_refuses():
    """The check above means something only if the hook does block an installed package."""
    probe = SCRIPT.split("sys.meta_path.insert(0, Refuse())")[0] + "sys.meta_path.insert(0, Refuse())\nimport scipy\n"
    result = subprocess.run([sys.executable, "-c", probe, json.dumps(FORBIDDEN), "-"], capture_output=True, text=True)
    assert result.returncode != 0 and "forbidden import on the device: scipy" in result.stderr
