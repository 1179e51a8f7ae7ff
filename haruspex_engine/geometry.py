"""Small rigid-body geometry shared by the structure builders: placing an atom from internal coordinates, Kabsch
superposition and the screw axis of a rigid motion. Positions in Å, angles in degrees, points as (3,) or (n, 3)."""
from __future__ import annotations

import numpy as np


def place_atom(a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle: float, torsion: float) -> np.ndarray:
    """Position of atom d with |cd| = bond (Å), angle b-c-d = angle and torsion a-b-c-d = torsion (degrees)."""
    bc = c - b
    bc /= np.linalg.norm(bc)
    normal = np.cross(b - a, bc)
    normal /= np.linalg.norm(normal)
    theta = np.radians(angle)
    tau = np.radians(torsion)
    return c + bond * (
        -np.cos(theta) * bc
        + np.sin(theta) * np.cos(tau) * np.cross(normal, bc)
        + np.sin(theta) * np.sin(tau) * normal
    )


def superpose(moving: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (3, 3) and translation (3,) (Kabsch, no reflection) taking points ``moving`` (n, 3) onto ``target``
    (n, 3) with the least r.m.s. deviation: target ≈ moving @ rotation.T + translation."""
    moving_mean, target_mean = moving.mean(axis=0), target.mean(axis=0)
    u, _, vt = np.linalg.svd((moving - moving_mean).T @ (target - target_mean))
    rotation = vt.T @ np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T
    return rotation, target_mean - rotation @ moving_mean


def screw_axis(rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Screw axis of the motion x -> rotation @ x + translation (a proper rotation that is not the identity).

    Returns (unit direction, oriented so the motion advances along it; one point on the axis; rise along it, Å).
    """
    eigenvalues, eigenvectors = np.linalg.eig(rotation)
    direction = np.real(eigenvectors[:, np.argmin(np.abs(eigenvalues - 1.0))])
    direction /= np.linalg.norm(direction)
    if translation @ direction < 0:
        direction = -direction
    rise = float(translation @ direction)
    # Points p on the axis satisfy rotation @ p + translation = p + rise * direction.
    point = np.linalg.lstsq(np.eye(3) - rotation, translation - rise * direction, rcond=None)[0]
    return direction, point, rise
