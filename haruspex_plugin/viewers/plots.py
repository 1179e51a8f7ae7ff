"""Matplotlib summary of a Haruspex label map: class fractions and per-slice class profile along z."""
from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..constants import CLASS_COLORS, CLASS_LABELS, CLASSES, DISPLAY_ORDER


def read_label_map(labels_map: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels as int array (z, y, x), z coordinate of every slice in Å) from a label MRC file."""
    with mrcfile.open(labels_map, permissive=True) as mrc:
        labels = np.rint(np.asarray(mrc.data, dtype=np.float32)).astype(np.int64)
        voxel_z = float(mrc.voxel_size.z) or 1.0
        origin = mrc.header.origin
        # As in MRC readers: the origin field in Å when set, else the start index in voxels.
        start_z = float(origin.z) if any((origin.x, origin.y, origin.z)) else float(mrc.header.nzstart) * voxel_z
    return labels, start_z + voxel_z * np.arange(labels.shape[0])


def class_profiles(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Class name -> fraction of the voxels of each z slice whose label is that class."""
    per_slice = labels.reshape(labels.shape[0], -1)
    return {name: (per_slice == CLASSES.index(name)).mean(axis=1) for name in DISPLAY_ORDER}


def draw_annotation_summary(figure: Figure, labels: np.ndarray, z_angstrom: np.ndarray, title: str = "") -> Figure:
    """Draw, on *figure*, a bar chart of the class fractions and the class fractions of each z slice."""
    profiles = class_profiles(labels)
    colors = [CLASS_COLORS[name] for name in DISPLAY_ORDER]
    names = [CLASS_LABELS[name] for name in DISPLAY_ORDER]
    fractions = [100.0 * float(np.mean(labels == CLASSES.index(name))) for name in DISPLAY_ORDER]

    bars = figure.add_subplot(1, 2, 1)
    bars.bar(names, fractions, color=colors, edgecolor="black")
    bars.set_ylabel("voxels (%)")
    bars.set_title("Class fractions")
    for x, value in enumerate(fractions):
        bars.annotate(f"{value:.1f}", (x, value), ha="center", va="bottom")

    profile = figure.add_subplot(1, 2, 2)
    profile.stackplot(z_angstrom, [100.0 * profiles[name] for name in DISPLAY_ORDER], labels=names, colors=colors,
                      alpha=0.8)
    profile.set_xlabel("z (Å)")
    profile.set_ylabel("voxels of the slice (%)")
    profile.set_ylim(0, 100)
    profile.set_title("Class profile along z")
    profile.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_annotation_summary(labels_map: str | os.PathLike, png_path: str | os.PathLike, title: str = "") -> Path:
    """Write the summary plot of the label map *labels_map* to *png_path* (PNG, no display needed)."""
    labels, z_angstrom = read_label_map(labels_map)
    figure = Figure(figsize=(11, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    draw_annotation_summary(figure, labels, z_angstrom, title)
    png_path = Path(png_path)
    figure.savefig(png_path, format="png")
    return png_path
