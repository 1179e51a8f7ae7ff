"""A model file cut short inside a record (a PDB truncated in the middle of an ATOM line's coordinates) is answered,
through the commands that read models, with one `haruspex: error:` line naming the file and the line."""
from __future__ import annotations

from pathlib import Path

import gemmi
import pytest

from haruspex_engine.cli import EXIT_FAILED, main
from haruspex_engine.model_files import ModelFileError, read_model
from haruspex_engine.testing.rna_models import ideal_rna

CUT_ATOM = 10  # the ATOM record cut short: the tenth
CUT_COLUMN = 35  # inside its x coordinate (columns 31-38)


def cut_inside_a_coordinate(structure: gemmi.Structure, path: Path) -> int:
    """Write ``structure`` as PDB to ``path``, ending in the middle of the x coordinate of its CUT_ATOM-th ATOM
    record, as an interrupted copy leaves it; returns that record's line number (1-based)."""
    lines = structure.make_pdb_string().splitlines(keepends=True)
    cut = [number for number, line in enumerate(lines) if line.startswith("ATOM")][CUT_ATOM - 1]
    path.write_text("".join(lines[:cut]) + lines[cut][:CUT_COLUMN])
    return cut + 1


def test_read_model_names_the_line_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "cut.pdb"
    line = cut_inside_a_coordinate(ideal_rna(), path)
    with pytest.raises(ModelFileError) as raised:
        read_model(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: line {line} is cut short (\"ATOM ")
    assert message.endswith("): the file is truncated or damaged; write or copy it again")


def test_evaluate_na_answers_a_cut_model_with_one_line(tmp_path: Path, capsys) -> None:
    reference = tmp_path / "reference.cif"
    ideal_rna().make_mmcif_document().write_file(str(reference))
    model = tmp_path / "model.pdb"
    line = cut_inside_a_coordinate(ideal_rna(), model)
    assert main(["evaluate-na", str(model), str(reference)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"haruspex: error: {model}: line {line} is cut short")
