"""ChimeraX script showing a map with its Haruspex class probability maps, in the paper's colours."""
from __future__ import annotations

import os
from pathlib import Path

from ..constants import CLASS_COLORS, CLASS_LABELS
from ..constants import CLASSES as LABEL_ORDER

INPUT_MAP_COLOR = "lightgray"
DEFAULT_LEVEL = 0.5


def chimerax_script_lines(input_map: str | os.PathLike, class_maps: dict[str, str | os.PathLike],
                          level: float = DEFAULT_LEVEL, labels_map: str | os.PathLike | None = None) -> list[str]:
    """ChimeraX commands opening *input_map* (model #1) and the probability maps of *class_maps* (class name ->
    path; models #2, #3, … in that order), each shown as a surface at probability *level* in its class colour.
    The unassigned map is coloured but hidden, as it wraps the solvent around everything else.
    With *labels_map* (0 unassigned, 1 helix, 2 sheet, 3 nucleic acid; the next model, hidden), the input map's
    own mesh is coloured by class too.
    """
    lines = [f'open "{Path(input_map).resolve()}"']
    lines += [f'open "{Path(path).resolve()}"' for path in class_maps.values()]
    lines += ["rename #1 input_map", f"volume #1 style mesh color {INPUT_MAP_COLOR}"]
    for model, name in enumerate(class_maps, start=2):
        lines.append(f"rename #{model} {name}")
        lines.append(f"volume #{model} style surface level {level:g} step 1 color {CLASS_COLORS[name]}")
        if name == "unassigned":
            lines.append(f"volume #{model} hide")
    if labels_map is not None:
        model = len(class_maps) + 2
        palette = ":".join(f"{value},{CLASS_COLORS[name]}" for value, name in enumerate(LABEL_ORDER))
        lines += [f'open "{Path(labels_map).resolve()}"', f"rename #{model} labels", f"volume #{model} hide",
                  f"color sample #1 map #{model} palette {palette}"]
    lines.append("view")
    return lines


def write_chimerax_script(input_map: str | os.PathLike, class_maps: dict[str, str | os.PathLike],
                          script_path: str | os.PathLike, level: float = DEFAULT_LEVEL,
                          labels_map: str | os.PathLike | None = None) -> Path:
    """Write :func:`chimerax_script_lines` to *script_path* (a ``.cxc`` file) and return its path."""
    legend = ", ".join(f"{CLASS_LABELS[name]} {CLASS_COLORS[name]}" for name in class_maps)
    header = [f"# Haruspex annotation: {legend}; probability maps shown at level {level:g}."]
    script_path = Path(script_path)
    lines = chimerax_script_lines(input_map, class_maps, level, labels_map)
    script_path.write_text("\n".join(header + lines) + "\n")
    return script_path
