"""`haruspex example --nucleic`: the map, FASTA and model the main job's nucleic-acid part starts from."""
from __future__ import annotations

import gemmi
import numpy as np

from haruspex_engine import cli
from haruspex_engine.maps import read_map
from haruspex_engine.nucleic.building.sequences import read_fasta
from haruspex_engine.nucleic.example import EXAMPLE_DUPLEX


def test_the_nucleic_example_writes_a_map_its_fasta_and_its_model(tmp_path, capsys):
    assert cli.main(["example", "--nucleic", str(tmp_path / "na.mrc")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / name) for name in ("na.mrc", "na.fasta", "na_reference.cif")]
    model = gemmi.read_structure(printed[2])
    assert [len(chain) for chain in model[0]] == [len(EXAMPLE_DUPLEX)] * 2
    records = read_fasta(tmp_path / "na.fasta")
    assert [(r.chain_id, r.sequence, r.kind) for r in records] == [
        (c.name, gemmi.one_letter_code([r.name for r in c]), "RNA") for c in model[0]]
    assert not records.warnings
    density = read_map(printed[0])
    assert density.voxel_size == (1.0, 1.0, 1.0) and 0.0 <= density.data.min() and density.data.max() <= 1.0
    atoms = np.array([a.pos.tolist() for c in model[0] for r in c for a in r])
    index = np.round((atoms - np.array(density.origin))[:, ::-1]).astype(int)  # every atom inside the map
    assert (index >= 0).all() and (index < density.data.shape).all()
