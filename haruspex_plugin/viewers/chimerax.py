"""ChimeraX script showing a map with its Haruspex class probability maps, in the paper's colours."""
from __future__ import annotations

import os
from pathlib import Path

from ..constants import CLASS_COLORS, CLASS_LABELS

INPUT_MAP_COLOR = "lightgray"
DEFAULT_LEVEL = 0.5


def chimerax_script_lines(input_map: str | os.PathLike, class_maps: dict[str, str | os.PathLike],
                          level: float = DEFAULT_LEVEL) -> list[str]:
    """ChimeraX commands opening *input_map* (model #1) and the probability maps of *class_maps* (class name ->
    path; models #2, #3, … in that order), each shown as a surface at probability *level* in its class colour.
    The unassigned map is coloured but hidden, as it wraps the solvent around everything else.
    """
    lines = [f'open "{Path(input_map).resolve()}"']
    lines += [f'open "{Path(path).resolve()}"' for path in class_maps.values()]
    lines += ["rename #1 input_map", f"volume #1 style mesh color {INPUT_MAP_COLOR}"]
    for model, name in enumerate(class_maps, start=2):
        lines.append(f"rename #{model} {name}")
        lines.append(f"volume #{model} style surface level {level:g} step 1 color {CLASS_COLORS[name]}")
        if name == "unassigned":
            lines.append(f"volume #{model} hide")
    lines.append("view")
    return lines


def write_chimerax_script(input_map: str | os.PathLike, class_maps: dict[str, str | os.PathLike],
                          script_path: str | os.PathLike, level: float = DEFAULT_LEVEL) -> Path:
    """Write :func:`chimerax_script_lines` to *script_path* (a ``.cxc`` file) and return its path."""
    legend = ", ".join(f"{CLASS_LABELS[name]} {CLASS_COLORS[name]}" for name in class_maps)
    header = [f"# Haruspex annotation: {legend}; probability maps shown at level {level:g}."]
    script_path = Path(script_path)
    script_path.write_text("\n".join(header + chimerax_script_lines(input_map, class_maps, level)) + "\n")
    return script_path
