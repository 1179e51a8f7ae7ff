"""Model validation against annotation maps: per-residue secondary structure of atomic models."""
