"""Matplotlib plots (headless, Agg): the class fractions and per-slice class profile of a Haruspex label map; the
per-residue confidence along each chain of a nucleic-acid model and the coverage of its chain sequences; the
agreement of a model's secondary structure with a Haruspex annotation along each chain."""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from haruspex_engine.nucleic.building.sequences import read_fasta

from ..constants import CLASS_COLORS, CLASS_LABELS, CLASSES, DISPLAY_ORDER
from .chimerax import NUCLEOTIDE_COLORS

# Columns of build-na's <prefix>_confidence.csv (docs/worker-contract.md), one row per model residue.
CONFIDENCE_COLUMNS = ("chain", "residue_number", "residue_name", "confidence")
# State of each residue of a chain sequence in the coverage plot (index = state value), and its colour.
COVERAGE_STATES = ("not modelled", "modelled with the sequence's base", "modelled with another base")
COVERAGE_COLORS = ("lightgray", "seagreen", "darkorange")
# Columns of validate's <prefix>_validation.csv (docs/worker-contract.md) the agreement plot reads, one row per
# validated residue; the bands it draws per chain (y = index) and the row of the disagreement marks above them.
AGREEMENT_COLUMNS = ("chain", "residue_number", "model_class", "predicted_class", "counted", "agreement")
AGREEMENT_ROWS = ("predicted", "model", "disagreement")
BELOW_LEVEL_ALPHA = 0.25  # opacity of residues below the backbone-density level (not counted): greyed out
DISAGREEMENT_MARKER = "v"
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


@dataclass(frozen=True)
class ChainAgreement:
    """One chain of a validated model, residues in model order: residue numbers (int; an insertion code is dropped),
    model class and predicted class of each residue (``CLASSES`` names; the predicted class is '' off the map),
    counted (bool: backbone density at least the level) and agrees (bool: predicted class = model class; False
    off the map)."""

    chain: str
    numbers: np.ndarray
    model_class: tuple[str, ...]
    predicted_class: tuple[str, ...]
    counted: np.ndarray
    agrees: np.ndarray

    @property
    def disagreements(self) -> np.ndarray:
        """Residue numbers of the counted residues whose predicted class is not the model's."""
        return self.numbers[self.counted & ~self.agrees]

    @property
    def agreement(self) -> float | None:
        """Share of the counted residues whose predicted class is the model's; None when none is counted."""
        counted = int(np.count_nonzero(self.counted))
        return int(np.count_nonzero(self.counted & self.agrees)) / counted if counted else None


def read_validation_table(path: str | os.PathLike) -> list[ChainAgreement]:
    """The chains of validate's per-residue table (columns ``AGREEMENT_COLUMNS`` among others), in the order they
    first appear. Raises ValueError naming the file (and line) for another table or an unreadable value."""
    rows: dict[str, list[tuple[int, str, str, bool, bool]]] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in AGREEMENT_COLUMNS if column not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: not a validate table (columns {', '.join(missing)} missing)")
        for line, row in enumerate(reader, start=2):
            number = re.match(r"-?\d+", row["residue_number"] or "")
            model, predicted = row["model_class"], row["predicted_class"]
            if (number is None or model not in CLASSES or predicted not in (*CLASSES, "")
                    or row["counted"] not in ("0", "1") or row["agreement"] not in ("0", "1", "")):
                raise ValueError(f"{path}, line {line}: expected a residue number, model and predicted class "
                                 f"({', '.join(CLASSES)}), counted and agreement (1 or 0), got "
                                 f"{','.join(row[c] or '' for c in AGREEMENT_COLUMNS)!r}")
            rows.setdefault(row["chain"], []).append(
                (int(number.group()), model, predicted, row["counted"] == "1", row["agreement"] == "1"))
    return [ChainAgreement(chain, np.array([r[0] for r in residues]), tuple(r[1] for r in residues),
                           tuple(r[2] for r in residues), np.array([r[3] for r in residues]),
                           np.array([r[4] for r in residues])) for chain, residues in rows.items()]


def agreement_figure_size(chains: int) -> tuple[float, float]:
    """Figure size (inches) for :func:`draw_agreement_profiles` of that many chains (panels laid out as the
    confidence plot's)."""
    rows, columns = confidence_panel_grid(chains)
    return (11.0 if columns <= 2 else 15.0), 1.0 + 2.0 * rows


def draw_agreement_profiles(figure: Figure, chains: list[ChainAgreement], title: str = "") -> Figure:
    """Draw, on *figure*, one panel per chain along its residue numbers: a band of the model's class and one of the
    predicted class of each residue (a 1-wide bar in the class colour; residues off the map have no predicted bar),
    residues below the backbone-density level faded, and a mark above each counted residue that disagrees."""
    if not chains:
        raise ValueError("no validated residues to plot")
    rows, columns = confidence_panel_grid(len(chains))
    for index, chain in enumerate(chains):
        axes = figure.add_subplot(rows, columns, index + 1)
        for row, classes in ((AGREEMENT_ROWS.index("model"), chain.model_class),
                             (AGREEMENT_ROWS.index("predicted"), chain.predicted_class)):
            for name in DISPLAY_ORDER:
                for counted in (True, False):
                    numbers = chain.numbers[(np.array(classes) == name) & (chain.counted == counted)]
                    if len(numbers):
                        axes.broken_barh([(float(n) - 0.5, 1.0) for n in numbers], (row - 0.4, 0.8),
                                         facecolors=CLASS_COLORS[name], alpha=1.0 if counted else BELOW_LEVEL_ALPHA)
        disagreements = chain.disagreements
        axes.scatter(disagreements, np.full(len(disagreements), AGREEMENT_ROWS.index("disagreement")),
                     marker=DISAGREEMENT_MARKER, color="black", s=25)
        axes.set_yticks(range(len(AGREEMENT_ROWS)), AGREEMENT_ROWS)
        axes.set_ylim(-0.6, len(AGREEMENT_ROWS) - 0.4)
        axes.set_xlim(float(chain.numbers.min()) - 1.0, float(chain.numbers.max()) + 1.0)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("residue number")
        agreement = "n/a" if chain.agreement is None else f"{100 * chain.agreement:.0f}%"
        axes.set_title(f"chain {chain.chain}: {int(np.count_nonzero(chain.counted))} of {len(chain.numbers)} "
                       f"residues counted, agreement {agreement}, {len(disagreements)} disagreeing",
                       fontsize="medium")
    present = {name for chain in chains for name in (*chain.model_class, *chain.predicted_class)}
    handles = [Patch(facecolor=CLASS_COLORS[name], label=CLASS_LABELS[name]) for name in DISPLAY_ORDER
               if name in present]
    handles += [Patch(facecolor="grey", alpha=BELOW_LEVEL_ALPHA, label="below the density level"),
                Line2D([], [], marker=DISAGREEMENT_MARKER, color="black", linestyle="", label="disagreement")]
    figure.legend(handles=handles, loc="upper right", fontsize="small", ncols=len(handles))
    if title:
        figure.suptitle(title, x=0.02, ha="left")
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    return figure


def plot_agreement_profiles(validation_table: str | os.PathLike, png_path: str | os.PathLike,
                            title: str = "") -> Path:
    """Write the per-chain agreement plot of validate's *validation_table* to *png_path* (PNG, no display)."""
    chains = read_validation_table(validation_table)
    figure = agg_figure(agreement_figure_size(len(chains)))
    draw_agreement_profiles(figure, chains, title)
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
