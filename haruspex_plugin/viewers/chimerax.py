"""ChimeraX scripts: a map with its Haruspex class probability maps in the paper's colours, and a nucleic-acid build
(input map, model coloured by confidence or base type, CryoREAD detection maps)."""
from __future__ import annotations

import os
from pathlib import Path

from ..constants import CLASS_COLORS, CLASS_LABELS
from ..constants import CLASSES as LABEL_ORDER

INPUT_MAP_COLOR = "lightgray"
DEFAULT_LEVEL = 0.5

# Nucleic-acid builds. Named colours nearest to ChimeraX's `color bynucleotide` (the NDB convention: A red, C yellow,
# G green, U cyan, T blue), so plots and base-type maps match the model coloured by base.
NUCLEOTIDE_COLORS = {"A": "red", "C": "yellow", "G": "lime", "U": "cyan", "T": "blue"}
# Detection map (CryoREAD stage-2 class) -> surface colour; the U/T map as U.
DETECTION_COLORS = {"sugar": "orange", "phosphate": "purple", "A": "red", "UT": "cyan", "C": "yellow", "G": "lime",
                    "protein": "tan", "base": "gray"}
SHOWN_DETECTION_MAPS = ("sugar", "phosphate")  # the backbone; the other maps are opened hidden
INPUT_MAP_TRANSPARENCY = 0.7  # fraction of light the input map's surface lets through
# Per-residue confidence 0..1 (the model's B-factor): red (0) through yellow (0.5) to blue (1).
CONFIDENCE_PALETTE = "0,red:0.5,yellow:1,blue"
# ChimeraX aliases (typed as commands) recolouring the model, by name; "{model}" is its model number.
MODEL_COLOURINGS = {"confidence": f"color bfactor #{{model}} palette {CONFIDENCE_PALETTE}",
                    "bases": "color #{model} bynucleotide"}


def chimerax_script_lines(input_map: str | os.PathLike, class_maps: dict[str, str | os.PathLike],
                          level: float = DEFAULT_LEVEL, labels_map: str | os.PathLike | None = None) -> list[str]:
    """ChimeraX commands opening *input_map* (model #1) and the probability maps of *class_maps* (class name ->
    path; models #2, #3, … in that order), each shown as a surface at probability *level* in its class colour.
    The unassigned map is coloured but hidden, as it wraps the solvent around everything else.
    With *labels_map* (0 unassigned, 1 helix, 2 sheet, 3 nucleic acid; the next model, hidden), the input map's
    own mesh is coloured by class too.
    """
    lines = [_open(path) for path in (input_map, *class_maps.values())]
    lines += ["rename #1 input_map", _volume_style(1, "mesh", INPUT_MAP_COLOR)]
    for model, name in enumerate(class_maps, start=2):
        lines.append(f"rename #{model} {name}")
        lines.append(_volume_style(model, "surface", CLASS_COLORS[name], level, step1=True))
        if name == "unassigned":
            lines.append(f"volume #{model} hide")
    if labels_map is not None:
        model = len(class_maps) + 2
        palette = ":".join(f"{value},{CLASS_COLORS[name]}" for value, name in enumerate(LABEL_ORDER))
        lines += [_open(labels_map), f"rename #{model} labels", f"volume #{model} hide",
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


def nucleic_chimerax_script_lines(input_map: str | os.PathLike, input_level: float,
                                  model: str | os.PathLike | None, detection_maps: dict[str, str | os.PathLike],
                                  colour_by: str = "confidence", level: float = DEFAULT_LEVEL) -> list[str]:
    """ChimeraX commands showing a nucleic-acid build: *input_map* (model #1) as a transparent light-grey surface at
    *input_level* (map units), the atomic *model* (mmCIF, B-factor = per-residue confidence 0..1; model #2, or none
    when nothing was built) and the *detection_maps* (CryoREAD class name -> probability map; the next models, in
    that order) as surfaces at probability *level*: sugar and phosphate shown, the others opened hidden.

    The model's colourings (``MODEL_COLOURINGS``) are defined as ChimeraX aliases, so typing ``confidence`` or
    ``bases`` recolours it; *colour_by* names the one applied.
    """
    if colour_by not in MODEL_COLOURINGS:
        raise ValueError(f"unknown model colouring {colour_by!r}: choose one of {', '.join(MODEL_COLOURINGS)}")
    unknown = sorted(set(detection_maps) - set(DETECTION_COLORS))
    if unknown:
        raise ValueError(f"unknown detection map class {', '.join(unknown)}: expected {', '.join(DETECTION_COLORS)}")
    models = [input_map] if model is None else [input_map, model]
    lines = [_open(path) for path in (*models, *detection_maps.values())]
    lines += ["rename #1 input_map",
              _volume_style(1, "surface", INPUT_MAP_COLOR, input_level, transparency=INPUT_MAP_TRANSPARENCY)]
    if model is not None:
        lines.append("rename #2 model")
        lines += [f"alias {name} {command.format(model=2)}" for name, command in MODEL_COLOURINGS.items()]
        lines.append(colour_by)
    for number, name in enumerate(detection_maps, start=len(models) + 1):
        lines.append(f"rename #{number} detect_{name}")
        lines.append(_volume_style(number, "surface", DETECTION_COLORS[name], level, step1=True))
        if name not in SHOWN_DETECTION_MAPS:
            lines.append(f"volume #{number} hide")
    lines.append("view")
    return lines


def write_nucleic_chimerax_script(input_map: str | os.PathLike, input_level: float,
                                  model: str | os.PathLike | None, detection_maps: dict[str, str | os.PathLike],
                                  script_path: str | os.PathLike, colour_by: str = "confidence",
                                  level: float = DEFAULT_LEVEL) -> Path:
    """Write :func:`nucleic_chimerax_script_lines` to *script_path* (a ``.cxc`` file) and return its path."""
    header = [f"# Haruspex nucleic-acid build: detection maps at probability {level:g} (sugar "
              f"{DETECTION_COLORS['sugar']} and phosphate {DETECTION_COLORS['phosphate']} shown; base types, protein "
              "and base hidden)."]
    if model is not None:
        header.append(f"# Model coloured by {colour_by}. Commands: 'confidence' colours by per-residue confidence "
                      f"(palette {CONFIDENCE_PALETTE}), 'bases' by base type (A red, C yellow, G green, U cyan, "
                      "T blue).")
    lines = nucleic_chimerax_script_lines(input_map, input_level, model, detection_maps, colour_by, level)
    script_path = Path(script_path)
    script_path.write_text("\n".join(header + lines) + "\n")
    return script_path


def _open(path: str | os.PathLike) -> str:
    return f'open "{Path(path).resolve()}"'


def _volume_style(model: int, style: str, color: str, level: float | None = None, step1: bool = False,
                  transparency: float | None = None) -> str:
    """``volume`` command showing *model* in *style* and *color*, at contour *level* when given (map units), every
    voxel (``step 1``) when *step1*, with surface *transparency* 0..1 when given."""
    options = [f"style {style}"]
    if level is not None:
        options.append(f"level {level:g}")
    if step1:
        options.append("step 1")
    if transparency is not None:
        options.append(f"transparency {transparency:g}")
    return f"volume #{model} {' '.join(options)} color {color}"
