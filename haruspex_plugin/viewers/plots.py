"""Matplotlib plots (headless, Agg): the class fractions and per-slice class profile of a Haruspex label map; the
per-residue confidence along each chain of a nucleic-acid model and the coverage of its chain sequences."""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from haruspex_engine.nucleic.sequences import read_fasta

from ..constants import CLASS_COLORS, CLASS_LABELS, CLASSES, DISPLAY_ORDER
from .chimerax import NUCLEOTIDE_COLORS

# Columns of build-na's <prefix>_confidence.csv (docs/worker-contract.md), one row per model residue.
CONFIDENCE_COLUMNS = ("chain", "residue_number", "residue_name", "confidence")
# State of each residue of a chain sequence in the coverage plot (index = state value), and its colour.
COVERAGE_STATES = ("not modelled", "modelled with the sequence's base", "modelled with another base")
COVERAGE_COLORS = ("lightgray", "seagreen", "darkorange")
MAX_PANEL_COLUMNS = 4
CHAINS_PER_COLUMN = 5  # confidence panels stacked in one column before a second column is started


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
    figure = agg_figure((11, 4.5))
    draw_annotation_summary(figure, labels, z_angstrom, title)
    return _save_png(figure, png_path)


@dataclass(frozen=True)
class ChainConfidence:
    """One chain of a nucleic-acid model, residues in chain order: residue numbers (int), residue names (A, C, G, U
    or DA, DC, DG, DT) and per-residue confidence 0..1."""

    chain: str
    numbers: np.ndarray
    names: tuple[str, ...]
    confidence: np.ndarray

    @property
    def letters(self) -> str:
        """One-letter base of each residue (the last letter of its name)."""
        return "".join(name[-1] for name in self.names)


def read_confidence_table(path: str | os.PathLike) -> list[ChainConfidence]:
    """The chains of build-na's confidence table (columns ``CONFIDENCE_COLUMNS``), in the order they first appear.
    Raises ValueError naming the file (and line) for a table of another layout or an unreadable value."""
    rows: dict[str, list[tuple[int, str, float]]] = {}
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader, ()))
        if header != CONFIDENCE_COLUMNS:
            raise ValueError(f"{path}: not a build-na confidence table (header {','.join(header) or 'missing'}; "
                             f"expected {','.join(CONFIDENCE_COLUMNS)})")
        for line, row in enumerate(reader, start=2):
            try:
                chain, number, name, confidence = row
                value = float(confidence)
                residue = (int(number), name, value)
            except ValueError:
                raise ValueError(f"{path}, line {line}: expected chain, residue number, residue name and "
                                 f"confidence, got {','.join(row)!r}") from None
            if not name or not 0.0 <= value <= 1.0:
                raise ValueError(f"{path}, line {line}: residue name empty or confidence {confidence} outside 0..1")
            rows.setdefault(chain, []).append(residue)
    return [ChainConfidence(chain, np.array([r[0] for r in residues]), tuple(r[1] for r in residues),
                            np.array([r[2] for r in residues])) for chain, residues in rows.items()]


def confidence_panel_grid(chains: int) -> tuple[int, int]:
    """(rows, columns) of the per-chain confidence panels: up to ``CHAINS_PER_COLUMN`` chains in one column, then
    up to ``MAX_PANEL_COLUMNS`` columns."""
    columns = min(MAX_PANEL_COLUMNS, 1 + (max(chains, 1) - 1) // CHAINS_PER_COLUMN)
    return math.ceil(max(chains, 1) / columns), columns


def confidence_figure_size(chains: int) -> tuple[float, float]:
    """Figure size (inches) for :func:`draw_confidence_profiles` of that many chains."""
    rows, columns = confidence_panel_grid(chains)
    return (11.0 if columns <= 2 else 15.0), 1.0 + 2.2 * rows


def draw_confidence_profiles(figure: Figure, chains: list[ChainConfidence], title: str = "") -> Figure:
    """Draw, on *figure*, one panel per chain: each residue's confidence (0..1) at its residue number, the point in
    its base's colour (as ChimeraX colours nucleotides), consecutive residues joined by a line broken at gaps in
    the numbering."""
    if not chains:
        raise ValueError("no model residues to plot")
    rows, columns = confidence_panel_grid(len(chains))
    for index, chain in enumerate(chains):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.plot(*_broken_at_gaps(chain.numbers, chain.confidence), color="0.6", linewidth=1, zorder=1)
        axes.scatter(chain.numbers, chain.confidence, s=20, linewidths=0.4, edgecolors="black", zorder=2,
                     c=[NUCLEOTIDE_COLORS.get(letter, "gray") for letter in chain.letters])
        axes.set_ylim(-0.03, 1.03)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("residue number")
        axes.set_ylabel("confidence")
        axes.set_title(f"chain {chain.chain}: {len(chain.numbers)} residues, mean confidence "
                       f"{float(np.mean(chain.confidence)):.2f}", fontsize="medium")
    present = {letter for chain in chains for letter in chain.letters}
    handles = [Line2D([], [], marker="o", linestyle="", markerfacecolor=color, markeredgecolor="black", label=letter)
               for letter, color in NUCLEOTIDE_COLORS.items() if letter in present]
    figure.legend(handles=handles, loc="upper right", fontsize="small", ncols=len(handles) or 1)
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    return figure


def plot_confidence_profiles(confidence_table: str | os.PathLike, png_path: str | os.PathLike,
                             title: str = "") -> Path:
    """Write the per-chain confidence plot of build-na's *confidence_table* to *png_path* (PNG, no display)."""
    chains = read_confidence_table(confidence_table)
    figure = agg_figure(confidence_figure_size(len(chains)))
    draw_confidence_profiles(figure, chains, title)
    return _save_png(figure, png_path)


def read_chain_sequences(fasta: str | os.PathLike) -> list[tuple[str, str]]:
    """(chain id, sequence) of each nucleic-acid chain of *fasta*, read by the engine's rules (the ids build-na
    names the matched model chains by); raises the engine's SequenceError (a ValueError) naming the file."""
    return [(record.chain_id, record.sequence) for record in read_fasta(fasta)]


def sequence_coverage(sequence: str, chain: ChainConfidence | None) -> np.ndarray:
    """State (index into ``COVERAGE_STATES``) of each residue of a chain *sequence*: residue k (1-based, the number
    build-na gives a residue matched to it) is modelled when *chain* (the model chain with the sequence's chain id,
    or None) has a residue numbered k, with the sequence's base or another one (U and T count as the same base).
    Model residues numbered outside 1..len(sequence) cover nothing."""
    states = np.zeros(len(sequence), dtype=np.int8)
    if chain is None:
        return states
    inside = (chain.numbers >= 1) & (chain.numbers <= len(sequence))
    positions = chain.numbers[inside] - 1
    built = np.array(list(chain.letters.replace("T", "U")), dtype="<U1")[inside]
    wanted = np.array(list(sequence.replace("T", "U")), dtype="<U1")[positions]
    states[positions] = np.where(built == wanted, 1, 2)
    return states


def coverage_figure_size(sequences: int) -> tuple[float, float]:
    """Figure size (inches) for :func:`draw_sequence_coverage` of that many chain sequences."""
    return 11.0, 2.0 + 0.7 * max(sequences, 1)


def draw_sequence_coverage(figure: Figure, sequences: list[tuple[str, str]], chains: list[ChainConfidence],
                           title: str = "") -> Figure:
    """Draw, on *figure*, one bar per chain sequence (chain id, sequence) along its residue numbers, each residue
    in the colour of its ``sequence_coverage`` state against the model *chains*."""
    if not sequences:
        raise ValueError("no chain sequences to plot")
    by_id = {chain.chain: chain for chain in chains}
    axes = figure.add_subplot(1, 1, 1)
    labels, modelled, matching = [], 0, 0
    for row, (chain_id, sequence) in enumerate(sequences):
        states = sequence_coverage(sequence, by_id.get(chain_id))
        for state, color in enumerate(COVERAGE_COLORS):
            runs = _runs(states == state)
            if runs:
                axes.broken_barh(runs, (row - 0.35, 0.7), facecolors=color)
        covered = int(np.count_nonzero(states))
        labels.append(f"{chain_id}: {covered}/{len(sequence)} nt")
        modelled += covered
        matching += int(np.count_nonzero(states == 1))
    axes.set_yticks(range(len(sequences)), labels)
    axes.set_ylim(len(sequences) - 0.5, -0.5)  # first chain on top
    axes.set_xlim(0.5, max(len(sequence) for _, sequence in sequences) + 0.5)
    axes.set_xlabel("residue number")
    axes.legend(handles=[Patch(facecolor=c, label=s) for s, c in zip(COVERAGE_STATES, COVERAGE_COLORS)],
                loc="upper center", bbox_to_anchor=(0.5, -0.25), ncols=3, fontsize="small")
    total = sum(len(sequence) for _, sequence in sequences)
    others = sum(len(chain.numbers) for chain in chains if chain.chain not in {i for i, _ in sequences})
    axes.set_title(f"{modelled} of {total} nucleotides modelled ({100 * modelled / total:.0f}%), {matching} with the "
                   f"sequence's base; {others} model residues in chains without a sequence", fontsize="medium")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_sequence_coverage(fasta: str | os.PathLike, confidence_table: str | os.PathLike,
                           png_path: str | os.PathLike, title: str = "") -> Path:
    """Write the coverage of the chain sequences of *fasta* by the model whose residues *confidence_table* (build-na)
    lists to *png_path* (PNG, no display). Raises the engine's SequenceError for an unusable FASTA file."""
    sequences = read_chain_sequences(fasta)
    figure = agg_figure(coverage_figure_size(len(sequences)))
    draw_sequence_coverage(figure, sequences, read_confidence_table(confidence_table), title)
    return _save_png(figure, png_path)


def _broken_at_gaps(numbers: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) for a line through (numbers, values) with NaN inserted where the numbering skips, so it breaks there."""
    breaks = np.flatnonzero(np.diff(numbers) != 1) + 1
    return np.insert(numbers.astype(float), breaks, np.nan), np.insert(values.astype(float), breaks, np.nan)


def _runs(mask: np.ndarray) -> list[tuple[float, int]]:
    """(start, length) of each run of True in *mask*, in residue-number units (index k is residue k + 1, drawn from
    k + 0.5 to k + 1.5)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [(float(start) + 0.5, int(stop - start)) for start, stop in zip(edges[::2], edges[1::2])]


def agg_figure(size: tuple[float, float]) -> Figure:
    """A figure of *size* inches at 100 dpi that draws without a display."""
    figure = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure: Figure, png_path: str | os.PathLike) -> Path:
    png_path = Path(png_path)
    figure.savefig(png_path, format="png")
    return png_path
