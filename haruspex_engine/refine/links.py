"""Which consecutive nucleotides refinement bonds together, and which chain breaks it must leave open.

gemmi (and so servalcat) restrains the phosphodiester bond O3'(i)-P(i+1) between consecutive residues of a chain
only when those two atoms are already closer than ``GEMMI_LINK_MAX_A`` (1.5 x 1.6 Å); otherwise it treats the step
as a gap and restrains nothing across it. That never bridges a real break, but it also leaves open the steps of a
built model whose traced neighbours came out a little too far apart. Here a step is:

* linked: O3'(i)-P(i+1) < ``GEMMI_LINK_MAX_A``, whatever the numbering; gemmi links it itself;
* bridged: not linked, but the residue numbers are consecutive and P(i)-P(i+1) <= ``STEP_MAX_P_P_A``, the longest
  P-P distance of one nucleotide step (gemmi's own P-P bound for connected nucleotides): an explicit ``p`` link
  (an mmCIF ``_struct_conn`` record) makes refinement restrain the bond;
* a break: anything else (a residue-number gap, P-P too long, or O3'/P missing). It stays open.
``haruspex build-na`` puts each traced path in its own chain and splits chains where the sequence register breaks,
so breaks between traced fragments are chain ends, which are never linked.
Distances are in Å.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import gemmi

GEMMI_LINK_MAX_A = 1.5 * 1.6
STEP_MAX_P_P_A = 7.5
PHOSPHODIESTER_LINK = "p"
BRIDGE_PREFIX = "haruspex_bridge"


@dataclass(frozen=True)
class Step:
    """Two consecutive nucleotides of one chain: residue ``first`` and the next one, ``second`` (seqids as text)."""

    chain: str
    first: str
    second: str
    o3_p_A: float | None
    p_p_A: float | None
    numbering_gap: bool

    def report(self) -> dict[str, Any]:
        """The step for a JSON summary, distances rounded to 0.01 Å."""
        return {**asdict(self), "o3_p_A": _round(self.o3_p_A), "p_p_A": _round(self.p_p_A)}


@dataclass
class BackboneLinks:
    """The steps of a model's nucleic-acid chains sorted into linked (count), bridged and breaks."""

    linked: int = 0
    bridged: list[Step] = field(default_factory=list)
    breaks: list[Step] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {"linked": self.linked, "bridged": [s.report() for s in self.bridged],
                "breaks": [s.report() for s in self.breaks]}


def plan_backbone_links(model: gemmi.Model) -> BackboneLinks:
    """Sort every pair of consecutive nucleotides in each chain of ``model`` (see the module docstring)."""
    plan = BackboneLinks()
    for chain in model:
        for first, second in zip(chain, chain[1:]):
            if not (_is_nucleotide(first) and _is_nucleotide(second)):
                continue
            step = Step(chain.name, str(first.seqid), str(second.seqid),
                        _distance(first, "O3'", second, "P"), _distance(first, "P", second, "P"),
                        not 0 <= second.seqid.num - first.seqid.num <= 1)
            if step.o3_p_A is not None and step.o3_p_A < GEMMI_LINK_MAX_A:
                plan.linked += 1
            elif step.o3_p_A is not None and step.p_p_A is not None and not step.numbering_gap \
                    and step.p_p_A <= STEP_MAX_P_P_A:
                plan.bridged.append(step)
            else:
                plan.breaks.append(step)
    return plan


def add_bridges(structure: gemmi.Structure, bridged: list[Step]) -> None:
    """Add an explicit O3'-P phosphodiester link (``_struct_conn``, link id ``p``) for each bridged step."""
    model = structure[0]
    for k, step in enumerate(bridged, start=1):
        chain = model[step.chain]
        first, second = chain[step.first][0], chain[step.second][0]
        link = gemmi.Connection()
        link.name = f"{BRIDGE_PREFIX}{k}"
        link.type = gemmi.ConnectionType.Covale
        link.link_id = PHOSPHODIESTER_LINK
        link.asu = gemmi.Asu.Same
        link.partner1 = gemmi.make_address(chain, first, first["O3'"][0])
        link.partner2 = gemmi.make_address(chain, second, second["P"][0])
        structure.connections.append(link)


def remove_bridges(structure: gemmi.Structure) -> None:
    """Drop the links ``add_bridges`` added (the refined chain is continuous; no extra record is needed)."""
    kept = [c for c in structure.connections if not c.name.startswith(BRIDGE_PREFIX)]
    structure.connections.clear()
    for connection in kept:
        structure.connections.append(connection)


def _is_nucleotide(residue: gemmi.Residue) -> bool:
    info = gemmi.find_tabulated_residue(residue.name)
    return info is not None and info.is_nucleic_acid()


def _distance(first: gemmi.Residue, name1: str, second: gemmi.Residue, name2: str) -> float | None:
    a, b = first.find_atom(name1, "*"), second.find_atom(name2, "*")
    return None if a is None or b is None else a.pos.dist(b.pos)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
