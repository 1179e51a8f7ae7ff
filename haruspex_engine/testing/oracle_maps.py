""""Oracle" detection maps: what a detector would output for a known nucleic-acid model, with controlled corruption
that makes them look like real network output, for testing and benchmarking model building without the networks.

The eight maps follow the stage-2 layout of ``nucleic.networks.STAGE2_CLASSES`` (sugar, phosphate, A, UT, C, G,
protein, base) on a 1 Å grid: each class map is the maximum over that class's atoms of a Gaussian blob
peak · exp(−d² / 2σ²) (σ = ``blob_sigma_A``, peak 1 unless corrupted), so it is the peak at an atom centre and falls
to ~0 within 3σ. Atom classes: sugar = C1′ C2′ O2′ C3′ O3′ C4′ O4′ C5′, phosphate = P OP1 OP2 O5′ OP3, base = every
other non-hydrogen nucleotide atom, each base-type map = the base atoms of residues of that type (U and T together;
a modified nucleotide counts as its parent base, see :func:`base_type`), protein = atoms of amino-acid residues.
A residue gemmi does not know that has C1′, C4′ and P atoms paints sugar, phosphate and base but no base type;
waters, ions and ligands paint nothing. The matching density is simulated from the (undropped) model with gemmi on
the same grid and normalised as detect-na's working map is (``detection.preprocess.normalise``, contour 0: [0, 1]).

Corruption (``Corruption``; every draw from its one seed, every kind off by default):

* map noise: Gaussian noise of s.d. ``noise_sigma`` on every class map (then clipped to [0, 1]); white, or
  spatially correlated when ``noise_correlation_A`` > 0 (white noise smoothed by a Gaussian of that σ in Å, or of a
  σ drawn per channel from a (low, high) range, then rescaled to s.d. ``noise_sigma``);
* blob shapes: per residue, σ drawn from ``blob_sigma_range_A`` and peak from ``peak_range`` (uniform);
* dropped residues: ``drop_fraction`` of the nucleotides left out of every map, about ``segment_drop_share`` of
  them as runs of 3–8 consecutive nucleotides of one chain, the rest one by one;
* base confusion: ``confusion_fraction`` of the nucleotides have their base painted into another base-type map;
* protein calls: ``protein_call_fraction`` of the amino acids also paint one nucleic class (sugar, phosphate, or
  base with a random base type) on their atoms, at a peak drawn from 0.3–0.8;
* false blobs: ``false_blobs_per_1000_A3`` blobs of a random class (shape drawn as for residues) at random points
  within ``false_blob_shell_A`` of an atom;
* density noise: Gaussian noise smoothed by σ 1.5 Å, s.d. ``density_noise_sigma`` × the simulated map's s.d. over
  voxels within 2 Å of an atom, added before the normalisation.

Presets (``PRESETS``, :func:`preset`). "-white" presets and ``moderate`` are the original white-noise levels
(``CLEAN`` = clean-white, ``REALISTIC`` = realistic-white; their class maps are those of the earlier white-noise
generator, draw for draw); fields not listed are 0 / None (off):

=============== ===== ===================== =========== ========== ===== ======= ========= ======= ====== =======
preset          noise noise correlation (Å) blob σ (Å)  peak       drop  segment confusion protein false  density
                σ                                                        share             calls   blobs  noise
=============== ===== ===================== =========== ========== ===== ======= ========= ======= ====== =======
clean-white     0.05  0 (white)             1.0 fixed   1          0     0       0         0       0      0
moderate        0.05  0 (white)             1.0 fixed   1          0.05  0       0.15      0       2      0
realistic-white 0.15  0 (white)             1.0 fixed   1          0.05  0       0.15      0       2      0
harsh-white     0.2   0 (white)             1.0 fixed   1          0.1   0       0.25      0       4      0
clean           0.05  1.0–2.0 per channel   1.2–1.8     0.5–1.0    0     0       0         0       0      0.1
realistic       0.15  1.0–2.0 per channel   1.2–1.8     0.5–1.0    0.05  0.5     0.15      0.1     2      0.25
harsh           0.2   1.0–2.0 per channel   1.2–1.8     0.5–1.0    0.1   0.5     0.35      0.2     4      0.25
=============== ===== ===================== =========== ========== ===== ======= ========= ======= ====== =======

False blobs are per 1000 Å³ of the shell within 6 Å of the model; "blob σ 1.0 fixed" is the ``blob_sigma_A``
default of :func:`oracle_maps`; density noise is relative to the simulated map's s.d. near atoms.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import gemmi
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from haruspex_engine.nucleic.building.nucleotides import PHOSPHATE_ATOMS, SUGAR_ATOMS
from haruspex_engine.nucleic.building.parent_bases import modres_parents, parent_base
from haruspex_engine.nucleic.classes import BASE_TYPES, STAGE2_CLASSES
from haruspex_engine.nucleic.detection.preprocess import normalise
from haruspex_engine.simulate import density_on_grid

#: Base-type channel of each standard nucleotide residue name (:func:`base_type` also knows modified ones).
BASE_TYPE = {"A": "A", "DA": "A", "U": "UT", "DU": "UT", "DT": "UT", "T": "UT", "C": "C", "DC": "C", "G": "G",
             "DG": "G"}
#: Base-type channel of each parent base letter (gemmi's one-letter code, upper-cased).
_PARENT_CHANNEL = {"A": "A", "U": "UT", "T": "UT", "C": "C", "G": "G"}
#: Atoms that make an unknown residue a nucleotide.
#: Lengths (nucleotides, inclusive) of the runs that segment drops remove.
SEGMENT_LENGTH_NT = (3, 8)
#: Range of the peak probability of a false nucleic call painted on a protein residue.
PROTEIN_CALL_PEAK = (0.3, 0.8)
#: The nucleic classes a protein residue can be falsely called as ("base" also paints a random base type).
_PROTEIN_CALL_CLASSES = ("sugar", "phosphate", "base")
#: σ (Å) of the Gaussian that smooths the density noise.
DENSITY_NOISE_CORRELATION_A = 1.5
#: Voxels within this distance (Å) of an atom set the s.d. that the density noise is relative to.
DENSITY_NOISE_REFERENCE_A = 2.0
#: Most (points × box voxels) painted at once by :func:`_blob_map`: bounds its temporary memory (~0.1 GB).
_BLOB_BATCH_ENTRIES = 2_000_000

Range = tuple[float, float]


@dataclass(frozen=True)
class Corruption:
    """How the oracle maps are corrupted (see the module docstring); every draw comes from ``seed``.

    noise_sigma: s.d. of the noise added to each class map (probability units). noise_correlation_A: σ (Å) of the
    Gaussian smoothing that noise, or a (low, high) range to draw it from per channel; 0: white noise.
    blob_sigma_range_A: (low, high) Å range of each residue's blob σ; None: ``blob_sigma_A`` of :func:`oracle_maps`.
    peak_range: (low, high) range of each residue's peak probability; None: 1. drop_fraction: nucleotides left out
    of every map. segment_drop_share: about this fraction of the dropped nucleotides go as runs of 3–8 consecutive
    nucleotides. confusion_fraction: nucleotides whose base goes into a wrong base-type map. protein_call_fraction:
    amino acids that also paint one nucleic class. false_blobs_per_1000_A3: spurious blobs per 1000 Å³ of the shell
    within ``false_blob_shell_A`` Å of the model. density_noise_sigma: s.d. of the density noise relative to the
    simulated map's s.d. within 2 Å of atoms.
    """

    noise_sigma: float = 0.0
    drop_fraction: float = 0.0
    confusion_fraction: float = 0.0
    false_blobs_per_1000_A3: float = 0.0
    false_blob_shell_A: float = 6.0
    seed: int = 0
    noise_correlation_A: float | Range = 0.0
    blob_sigma_range_A: Range | None = None
    peak_range: Range | None = None
    segment_drop_share: float = 0.0
    protein_call_fraction: float = 0.0
    density_noise_sigma: float = 0.0


_SHAPES = {"noise_correlation_A": (1.0, 2.0), "blob_sigma_range_A": (1.2, 1.8), "peak_range": (0.5, 1.0)}

PRESETS: dict[str, Corruption] = {
    "clean-white": Corruption(noise_sigma=0.05),
    "moderate": Corruption(noise_sigma=0.05, drop_fraction=0.05, confusion_fraction=0.15, false_blobs_per_1000_A3=2.0),
    "realistic-white": Corruption(noise_sigma=0.15, drop_fraction=0.05, confusion_fraction=0.15,
                                  false_blobs_per_1000_A3=2.0),
    "harsh-white": Corruption(noise_sigma=0.2, drop_fraction=0.1, confusion_fraction=0.25, false_blobs_per_1000_A3=4.0),
    "clean": Corruption(noise_sigma=0.05, density_noise_sigma=0.1, **_SHAPES),
    "realistic": Corruption(noise_sigma=0.15, drop_fraction=0.05, segment_drop_share=0.5, confusion_fraction=0.15,
                            protein_call_fraction=0.1, false_blobs_per_1000_A3=2.0, density_noise_sigma=0.25,
                            **_SHAPES),
    "harsh": Corruption(noise_sigma=0.2, drop_fraction=0.1, segment_drop_share=0.5, confusion_fraction=0.35,
                        protein_call_fraction=0.2, false_blobs_per_1000_A3=4.0, density_noise_sigma=0.25, **_SHAPES),
}
CLEAN = PRESETS["clean-white"]
REALISTIC = PRESETS["realistic-white"]


def preset(name: str, seed: int = 0) -> Corruption:
    """The corruption preset ``name`` (a key of PRESETS, see the module docstring) with ``seed``."""
    if name not in PRESETS:
        raise ValueError(f"unknown oracle-map preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], seed=seed)


@dataclass(frozen=True)
class OracleMaps:
    """stage2: float32 (8, Z, Y, X) in STAGE2_CLASSES order; density: float32 (Z, Y, X) simulated map normalised to
    [0, 1] as detect-na's working map; origin: (x, y, z) Å of voxel (0, 0, 0); voxel size 1 Å. dropped / confused:
    (chain, residue number) of the corrupted nucleotides; protein_calls: of the amino acids painted as nucleic."""

    stage2: np.ndarray
    density: np.ndarray
    origin: tuple[float, float, float]
    dropped: tuple[tuple[str, int], ...]
    confused: tuple[tuple[str, int], ...]
    protein_calls: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class _Residue:
    """One residue to paint: its chain, gemmi residue, kind ("nucleic", "protein" or None) and base-type channel."""

    chain: str
    residue: gemmi.Residue
    kind: str | None
    base: str | None


def oracle_maps(
    structure: gemmi.Structure,
    corruption: Corruption = CLEAN,
    *,
    padding_A: float = 12.0,
    blob_sigma_A: float = 1.0,
    resolution_A: float = 3.5,
) -> OracleMaps:
    """Eight detection maps and a normalised simulated density for the first model of ``structure`` (see the module
    docstring). blob_sigma_A: blob σ (Å) when ``corruption.blob_sigma_range_A`` is None; resolution_A: of the
    simulated density.

    The grid is 1 Å, covering the model's atoms plus ``padding_A`` on every side, origin on whole Å.
    """
    rng = np.random.default_rng(corruption.seed)
    parents = modres_parents(structure)
    residues = [_describe(chain.name, residue, parents.get((chain.name, str(residue.seqid))))
                for chain in structure[0] for residue in chain]
    if not residues:
        raise ValueError("the structure has no residues")
    xyz_all = np.array([atom.pos.tolist() for item in residues for atom in item.residue])
    origin = np.floor(xyz_all.min(axis=0) - padding_A)
    shape_zyx = tuple(int(n) for n in (np.ceil(xyz_all.max(axis=0) + padding_A - origin).astype(int) + 1)[::-1])

    nucleic = [item for item in residues if item.kind == "nucleic"]
    dropped, confused = _drop_and_confuse(nucleic, corruption, rng)
    sigma, peak = _blob_shapes(len(residues), corruption, blob_sigma_A, rng)
    calls = _protein_calls(residues, corruption, rng)
    blobs = _residue_blobs(residues, dropped, confused, calls, sigma, peak)
    for cls, point in zip(*_false_blobs(xyz_all, corruption, blob_sigma_A, rng)):
        blobs[cls].append(point)

    stage2 = np.zeros((len(STAGE2_CLASSES), *shape_zyx), np.float32)
    for channel, cls in zip(stage2, STAGE2_CLASSES):
        _blob_map(np.asarray(blobs[cls], float).reshape(-1, 5), origin, channel)
    _add_map_noise(stage2, corruption, rng)
    density = _working_density(structure, origin, shape_zyx, resolution_A, corruption.density_noise_sigma, rng)
    return OracleMaps(
        stage2=stage2,
        density=density,
        origin=tuple(float(o) for o in origin),
        dropped=_labels(nucleic, dropped),
        confused=_labels(nucleic, confused),
        protein_calls=_labels(residues, calls),
    )


def base_type(residue: gemmi.Residue, modres_parent: str | None = None) -> str | None:
    """Base-type channel (A, UT, C or G) of a nucleotide, a modified one by its parent base (``parent_bases``:
    gemmi's table, else the file's MODRES parent, e.g. PSU → UT, 7MG → G); None for anything else and for a
    nucleotide of unknown parent."""
    nucleotide = parent_base(residue, modres_parent)
    return None if nucleotide is None else _PARENT_CHANNEL.get(nucleotide[0])


def _describe(chain: str, residue: gemmi.Residue, modres_parent: str | None) -> _Residue:
    """What a residue paints: a nucleotide (known base type, or of unknown parent with C1′, C4′ and P), an amino
    acid, or nothing."""
    if parent_base(residue, modres_parent) is not None:
        return _Residue(chain, residue, "nucleic", base_type(residue, modres_parent))
    info = gemmi.find_tabulated_residue(residue.name)
    return _Residue(chain, residue, "protein" if info is not None and info.is_amino_acid() else None, None)


def _labels(items: list[_Residue], chosen: set[int] | dict[int, object]) -> tuple[tuple[str, int], ...]:
    """(chain, residue number) of the items whose residue id is in ``chosen``, in model order."""
    return tuple((item.chain, item.residue.seqid.num) for item in items if id(item.residue) in chosen)


def _drop_and_confuse(nucleic: list[_Residue], corruption: Corruption,
                      rng: np.random.Generator) -> tuple[set[int], dict[int, str]]:
    """Residue ids dropped (segments first, then single nucleotides in random order) and confused (id → the wrong
    base type), never both; confusion only touches nucleotides with a base type."""
    n_drop = int(round(corruption.drop_fraction * len(nucleic)))
    n_confuse = int(round(corruption.confusion_fraction * len(nucleic)))
    order = rng.permutation(len(nucleic))
    segment_target = int(round(corruption.segment_drop_share * n_drop))
    dropped = _segment_drops([item.chain for item in nucleic], segment_target, n_drop, rng)
    for i in order:
        if len(dropped) >= n_drop:
            break
        dropped.add(int(i))
    candidates = [int(i) for i in order if int(i) not in dropped and nucleic[i].base is not None][:n_confuse]
    shifts = rng.integers(1, 4, size=len(candidates))
    confused = {id(nucleic[i].residue): BASE_TYPES[(BASE_TYPES.index(nucleic[i].base) + int(s)) % 4]
                for i, s in zip(candidates, shifts)}
    return {id(nucleic[i].residue) for i in dropped}, confused


def _segment_drops(chains: list[str], target: int, limit: int, rng: np.random.Generator) -> set[int]:
    """Indices of runs of 3–8 consecutive nucleotides of one chain (``chains``: each nucleotide's chain, in model
    order), added until at least ``target`` are dropped; a run never takes the total past ``limit``."""
    dropped: set[int] = set()
    low, high = SEGMENT_LENGTH_NT
    for _ in range(100 * target):  # bounded: a crowded or short structure may not fit the runs
        room = min(limit - len(dropped), len(chains))
        if len(dropped) >= target or room < low:
            break
        length = int(rng.integers(low, min(high, room) + 1))
        start = int(rng.integers(0, len(chains) - length + 1))
        run = range(start, start + length)
        if len({chains[i] for i in run}) == 1 and dropped.isdisjoint(run):
            dropped.update(run)
    return dropped


def _blob_shapes(count: int, corruption: Corruption, blob_sigma_A: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blob σ (Å) and peak of ``count`` residues or blobs: drawn from the corruption's ranges, else fixed."""
    sigma = (rng.uniform(*corruption.blob_sigma_range_A, size=count) if corruption.blob_sigma_range_A
             else np.full(count, float(blob_sigma_A)))
    peak = rng.uniform(*corruption.peak_range, size=count) if corruption.peak_range else np.ones(count)
    return sigma, peak


def _protein_calls(residues: list[_Residue], corruption: Corruption,
                   rng: np.random.Generator) -> dict[int, tuple[tuple[str, ...], float]]:
    """Amino acids falsely called nucleic: residue id → (classes painted, peak)."""
    amino = [i for i, item in enumerate(residues) if item.kind == "protein"]
    n_calls = int(round(corruption.protein_call_fraction * len(amino)))
    if n_calls == 0:
        return {}
    chosen = rng.choice(amino, size=n_calls, replace=False)
    kinds = rng.integers(len(_PROTEIN_CALL_CLASSES), size=n_calls)
    types = rng.integers(len(BASE_TYPES), size=n_calls)
    peaks = rng.uniform(*PROTEIN_CALL_PEAK, size=n_calls)
    calls = {}
    for i, kind, base, peak in zip(chosen, kinds, types, peaks):
        cls = _PROTEIN_CALL_CLASSES[kind]
        calls[id(residues[i].residue)] = ((cls, BASE_TYPES[base]) if cls == "base" else (cls,), float(peak))
    return calls


def _residue_blobs(residues: list[_Residue], dropped: set[int], confused: dict[int, str],
                   calls: dict[int, tuple[tuple[str, ...], float]], sigma: np.ndarray,
                   peak: np.ndarray) -> dict[str, list[tuple[float, ...]]]:
    """Per class, the blobs (x, y, z Å, σ Å, peak) that the atoms of the kept residues paint."""
    blobs: dict[str, list[tuple[float, ...]]] = {name: [] for name in STAGE2_CLASSES}
    for item, width, height in zip(residues, sigma, peak):
        key = id(item.residue)
        if item.kind is None or key in dropped:
            continue
        call_classes, call_peak = calls.get(key, ((), 0.0))
        base = confused.get(key, item.base)
        for atom in item.residue:
            if atom.is_hydrogen():
                continue
            xyz = atom.pos.tolist()
            for cls in _atom_classes(item.kind, base, atom.name):
                blobs[cls].append((*xyz, width, height))
            for cls in call_classes:
                blobs[cls].append((*xyz, width, call_peak))
    return blobs


def _atom_classes(kind: str, base: str | None, atom_name: str) -> tuple[str, ...]:
    """Classes a non-hydrogen atom paints: sugar, phosphate, or base (+ its base type, when known) for a
    nucleotide; protein for an amino acid."""
    if kind == "protein":
        return ("protein",)
    if atom_name in SUGAR_ATOMS:
        return ("sugar",)
    if atom_name in PHOSPHATE_ATOMS:
        return ("phosphate",)
    return ("base", base) if base else ("base",)


def _false_blobs(xyz: np.ndarray, corruption: Corruption, blob_sigma_A: float,
                 rng: np.random.Generator) -> tuple[list[str], list[tuple[float, ...]]]:
    """Classes and blobs (x, y, z Å, σ Å, peak) of the false blobs, at random points of the shell of
    ``false_blob_shell_A`` Å around the atoms (rejection sampling)."""
    if corruption.false_blobs_per_1000_A3 <= 0:
        return [], []
    tree = cKDTree(xyz)
    shell = corruption.false_blob_shell_A
    low, high = xyz.min(axis=0) - shell, xyz.max(axis=0) + shell
    trial = rng.uniform(low, high, size=(20000, 3))
    inside = tree.query(trial, distance_upper_bound=shell)[0] < shell
    shell_volume = float(np.prod(high - low)) * float(inside.mean())
    count = rng.poisson(corruption.false_blobs_per_1000_A3 * shell_volume / 1000.0)
    chosen = trial[inside]
    points = chosen[rng.choice(len(chosen), size=min(count, len(chosen)), replace=False)]
    classes = [STAGE2_CLASSES[int(k)] for k in rng.integers(len(STAGE2_CLASSES), size=len(points))]
    sigma, peak = _blob_shapes(len(points), corruption, blob_sigma_A, rng)
    return classes, [(*p, s, h) for p, s, h in zip(points.tolist(), sigma, peak)]


def _blob_map(blobs: np.ndarray, origin: np.ndarray, out: np.ndarray) -> None:
    """Raise ``out`` (z, y, x, 1 Å grid, float32) to the max over blobs of peak · exp(−d²/2σ²), in place. blobs:
    (n, 5) rows of x, y, z (Å), σ (Å), peak; each is evaluated over the box of ±ceil(3σ) voxels, blobs of one box
    size painted together."""
    reach = np.ceil(3 * blobs[:, 3]).astype(int)
    for r in np.unique(reach):
        _paint(out, blobs[reach == r], origin, int(r))


def _paint(out: np.ndarray, blobs: np.ndarray, origin: np.ndarray, reach: int) -> None:
    """Raise ``out`` (z, y, x) to each blob's values over the box of ±``reach`` voxels round its nearest voxel.

    The Gaussian is separable: per blob, one factor per axis and box step (n, 3, k), multiplied out per box.
    """
    steps = np.arange(-reach, reach + 1)
    nz, ny, nx = out.shape
    size = np.array([nx, ny, nz])[None, :, None]
    stride = np.array([1, nx, nx * ny])[None, :, None]  # step of the flat index per voxel along x, y, z
    flat = out.reshape(-1)
    batch = max(1, _BLOB_BATCH_ENTRIES // len(steps) ** 3)
    for start in range(0, len(blobs), batch):
        part = blobs[start:start + batch]
        local = (part[:, :3] - origin)[:, :, None]  # (n, 3, 1) x, y, z in voxels
        index = np.rint(local) + steps  # (n, 3, k)
        factor = np.exp(-((index - local) ** 2) / (2 * part[:, 3, None, None] ** 2))
        value = part[:, 4, None, None, None] * _box(factor, np.multiply)
        index = index.astype(np.int64)
        linear = _box(index * stride, np.add)
        inside = _box((index >= 0) & (index < size), np.logical_and)
        np.maximum.at(flat, linear[inside], value[inside].astype(np.float32))


def _box(per_axis: np.ndarray, combine: np.ufunc) -> np.ndarray:
    """(n, k, k, k) box (z, y, x) combining per-axis values (n, 3, k) of (x, y, z) with ``combine``."""
    x, y, z = per_axis[:, 0, None, None, :], per_axis[:, 1, None, :, None], per_axis[:, 2, :, None, None]
    return combine(combine(z, y), x)


def _draw(value: float | Range, rng: np.random.Generator) -> float:
    """``value`` itself, or a uniform draw from a (low, high) range."""
    return float(rng.uniform(*value)) if isinstance(value, tuple) else float(value)


def _noise(shape_zyx: tuple[int, int, int], sd: float, correlation_A: float,
           rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise (z, y, x), float32, of voxel s.d. ``sd``: white for ``correlation_A`` 0, else white noise
    smoothed by a Gaussian of σ ``correlation_A`` Å (1 Å voxels) and rescaled to s.d. ``sd``."""
    white = rng.standard_normal(shape_zyx, dtype=np.float32)
    if correlation_A <= 0:
        return np.float32(sd) * white
    smooth = ndimage.gaussian_filter(white, correlation_A)
    return smooth * np.float32(sd / float(smooth.std()))


def _add_map_noise(stage2: np.ndarray, corruption: Corruption, rng: np.random.Generator) -> None:
    """Add the class-map noise in place, one channel at a time (large assemblies stay within memory), and clip to
    [0, 1]."""
    if corruption.noise_sigma <= 0:
        return
    for channel in stage2:
        correlation = _draw(corruption.noise_correlation_A, rng)
        channel += _noise(channel.shape, corruption.noise_sigma, correlation, rng)
    np.clip(stage2, 0.0, 1.0, out=stage2)


def _working_density(structure: gemmi.Structure, origin: np.ndarray, shape_zyx: tuple[int, int, int],
                     resolution: float, noise_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Simulated density of the model on the oracle grid (z, y, x), with correlated noise of s.d. ``noise_fraction``
    × its s.d. within 2 Å of an atom, normalised as detect-na's working map (contour 0)."""
    moved = _structure_on_grid(structure, origin)
    model = moved[0]
    density = density_on_grid(model, shape_zyx, 1.0, resolution)
    if noise_fraction > 0:
        near = _near_atoms(model, shape_zyx, DENSITY_NOISE_REFERENCE_A)
        sd = noise_fraction * float(density[near].std())
        density += _noise(shape_zyx, sd, DENSITY_NOISE_CORRELATION_A, rng)
    return normalise(density, 0.0)[0]


def _structure_on_grid(structure: gemmi.Structure, origin: np.ndarray) -> gemmi.Structure:
    """A copy without hydrogens, its atoms moved so the grid origin is at (0, 0, 0) Å."""
    work = structure.clone()
    work.remove_hydrogens()
    shift = gemmi.Position(*(-origin))
    for chain in work[0]:
        for residue in chain:
            for atom in residue:
                atom.pos = atom.pos + shift
    return work


def _near_atoms(model: gemmi.Model, shape_zyx: tuple[int, int, int], radius_A: float) -> np.ndarray:
    """Boolean (z, y, x) mask of the 1 Å grid voxels within ``radius_A`` Å of an atom of ``model`` (grid origin at
    (0, 0, 0) Å)."""
    nz, ny, nx = shape_zyx
    grid = gemmi.Int8Grid(nx, ny, nz)
    grid.set_unit_cell(gemmi.UnitCell(nx, ny, nz, 90.0, 90.0, 90.0))
    grid.mask_points_in_constant_radius(model, radius_A, 1)
    return grid.array.transpose(2, 1, 0) == 1
