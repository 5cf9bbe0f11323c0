"""The direction of imports between edge's modules: data flows one way (audio → features → model
→ events), and a module builds only on the layers below it. Peers in a layer do not know each
other: the segmenter and the classifier share voice activity, neither imports the other."""

from __future__ import annotations

import ast
from pathlib import Path

EDGE = Path(__file__).resolve().parent.parent / "edge"

LAYERS = (
    ("errors", "config", "reproducible", "certified", "process", "systemd", "pause_file"),  # edge imports none
    ("settings", "audio", "runtime", "int8_dense", "frontend", "model_input"),
    ("fingerprint", "events", "microphone", "pipe"),
    ("manifest", "mqtt", "homeassistant"),
    ("bundle", "mqtt_device"),
    ("speech_detector",),
    ("voice_activity",),
    ("segmenter", "classifier"),
    ("stream",),
    ("daemon", "api"),
    ("cli",),
)
"""edge's modules from the bottom up: each may import modules of the layers before its own only."""


def edge_modules() -> set[str]:
    """edge's modules: its .py files and its packages (edge/cli)."""
    files = {path.stem for path in EDGE.glob("*.py")} - {"__init__", "__main__"}
    return files | {path.name for path in EDGE.iterdir() if (path / "__init__.py").is_file()}


def edge_imports(module: str) -> set[str]:
    """The edge modules that ``module`` (any file of it, for a package) imports, at the top or inside functions."""
    found = set()
    package = EDGE / module
    sources = sorted(package.rglob("*.py")) if package.is_dir() else [EDGE / f"{module}.py"]
    for node in (node for source in sources for node in ast.walk(ast.parse(source.read_text()))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("edge.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "edge":
            if node.module == "edge":
                found |= {alias.name for alias in node.names}
            else:
                found.add(node.module.split(".")[1])
    return found


def test_every_edge_module_has_a_layer():
    listed = [module for layer in LAYERS for module in layer]
    assert sorted(listed) == sorted(edge_modules())


def test_each_module_imports_only_from_the_layers_below_it():
    layer_of = {module: index for index, layer in enumerate(LAYERS) for module in layer}
    upward = [
        f"edge/{module}.py imports edge.{imported}"
        for module, index in layer_of.items()
        for imported in sorted(edge_imports(module))
        if imported != module and layer_of[imported] >= index
    ]
    assert upward == []
