"""Registry of published network weights, and their download, verification and cache.

Published weights are never shipped with the package.  Each *weight set* (one trained network: one or several
files) is described in :data:`REGISTRY` by its files' URLs, byte sizes and git blob ids (the SHA-1 that
``git hash-object FILE`` prints, which is the only hash published for these files; CryoREAD's file sizes were
never published, so for them the blob id, whose header holds the size, is the whole check).
:func:`download` fetches a set into ``cache_dir()/<key>/`` so that nothing unverified ever appears there: every
file is written to a temporary name in the same directory, checked for size and git blob id, and only then renamed
into place.

Before published weights are used (:func:`locate_checkpoint`, whichever of the places below they come from), each
file that holds the network's numbers is checked against its git blob id, not only its size: a right-size file
with other content is refused with :class:`WeightsError`.  A file is hashed once: the success is recorded in
``cache_dir()/verified.json`` (resolved path -> size, mtime and ctime in ns, git blob id), so later runs skip the
hash until the file changes.  Where that record cannot be written (a read-only cache), the file is still verified
and used, and is simply hashed again next time.  Weights generated for tests (a directory holding
:data:`~haruspex_engine.checkpoints.TEST_WEIGHTS_MARKER`) are not hashed: the loaders refuse them outside the test
suite.

Where the weights come from, in the order :func:`locate_checkpoint` tries:

1. files the user already has: ``$HARUSPEX_CHECKPOINT`` for Haruspex (a checkpoint prefix or a directory holding
   the files), ``$HARUSPEX_CRYOREAD_WEIGHTS`` for CryoREAD (a directory holding the two ``.pth`` files, or a clone
   of the CryoREAD repository);
2. the cache, ``$HARUSPEX_CACHE`` (default ``~/.cache/haruspex``), filled by ``haruspex weights download`` or,
   in Scipion, by ``scipion3 installb haruspex-weights``.

This module only uses the standard library (and ``tqdm``, through haruspex_engine.progress, while downloading); it
never imports TensorFlow, PyTorch or pyworkflow, so the Scipion side may read the registry too.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import __version__
from .atomic_files import write_text_atomically
from .checkpoints import is_test_weights

if TYPE_CHECKING:  # progress imports tqdm, which Scipion's environment (reading REGISTRY) may not have
    from .progress import Progress

__all__ = [
    "CACHE_ENV",
    "CHECKPOINT_ENV",
    "CRYOREAD_ENV",
    "CRYOREAD_STAGE_FILES",
    "DEFAULT_SET",
    "REGISTRY",
    "WeightFile",
    "WeightSet",
    "WeightsError",
    "WeightsMissingError",
    "add_weights_parser",
    "cache_dir",
    "choose_cryoread_set",
    "download",
    "get_set",
    "git_blob_sha1",
    "locate_checkpoint",
    "run_weights_command",
    "set_dir",
    "verify",
]

CACHE_ENV = "HARUSPEX_CACHE"
CHECKPOINT_ENV = "HARUSPEX_CHECKPOINT"
CRYOREAD_ENV = "HARUSPEX_CRYOREAD_WEIGHTS"
DEFAULT_SET = "haruspex-hpx_190116"
SCIPION_BINARY = "haruspex-weights"
#: File in the cache root recording which weight files were verified, as they were then (see the module docstring).
VERIFIED_RECORD = "verified.json"

_CHUNK = 1 << 20  # bytes read/written per step (downloads and hashing)
_TIMEOUT_S = 60.0  # socket timeout for one network operation (connect or read)
_TMP_SUFFIX = ".part"


class WeightsError(RuntimeError):
    """A weight file is missing, incomplete, corrupt, or could not be downloaded."""


class WeightsMissingError(WeightsError):
    """No usable weights were found; the message explains how to install them."""


@dataclass(frozen=True)
class WeightFile:
    """One published file of a weight set.

    Attributes:
        name: file name inside the set directory (e.g. ``model.ckpt-40000.index``).
        url: public download URL.
        size: exact size in bytes, or ``None`` where it was never published (the git blob id, whose header holds
            the size, is then the only check).
        git_blob_sha1: git blob id of the content (``git hash-object FILE``).
    """

    name: str
    url: str
    size: int | None
    git_blob_sha1: str


@dataclass(frozen=True)
class WeightSet:
    """A set of files that together make one trained network.

    Attributes:
        key: registry key, also the name of the set's cache subdirectory.
        description: one line saying what the network is.
        files: the files of the set.
        licence: licence of the weights (a short note; where the full text lives).
        citation: the paper to cite when the weights are used.
        checkpoint_prefix: for TensorFlow checkpoints, the file stem TF loaders take (``model.ckpt-40000``);
            ``None`` for sets that are used file by file (e.g. PyTorch ``.pth``).
        upstream_dir: for sets kept in a directory of their upstream repository (CryoREAD's ``best_model_0_3A``),
            that directory's name, so a user's clone of the repository can be used as it is.
    """

    key: str
    description: str
    files: tuple[WeightFile, ...]
    licence: str
    citation: str
    checkpoint_prefix: str | None = None
    upstream_dir: str | None = None

    @property
    def total_size(self) -> int | None:
        """Sum of the sizes of the set's files in bytes; ``None`` when a size was never published."""
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(sizes)


_HPX_URL = "https://github.com/thorn-lab/haruspex/raw/master/network/hpx_190116/"

REGISTRY: dict[str, WeightSet] = {
    "haruspex-hpx_190116": WeightSet(
        key="haruspex-hpx_190116",
        description="Haruspex U-Net hpx_190116 (TensorFlow 1 checkpoint, step 40000): helix / sheet / "
        "nucleic-acid / unassigned annotation of cryo-EM maps",
        files=(
            WeightFile(
                name="model.ckpt-40000.index",
                url=_HPX_URL + "model.ckpt-40000.index",
                size=2332,
                git_blob_sha1="14c27bc70d0bb6a46e076b562b250d2154563235",
            ),
            WeightFile(
                name="model.ckpt-40000.data-00000-of-00001",
                url=_HPX_URL + "model.ckpt-40000.data-00000-of-00001",
                size=72_417_088,
                git_blob_sha1="72a51139e1c7b3b446529919f82f121950a0094b",
            ),
        ),
        licence="MIT, Copyright (c) 2019-2020 Philipp Mostosi, University of Wuerzburg "
        "(full text: LICENSE in https://github.com/thorn-lab/haruspex; keep it with the files when redistributing)",
        citation="Mostosi P, Schindelin H, Kollmannsberger P, Thorn A. Haruspex: A Neural Network for the Automatic "
        "Identification of Oligonucleotides and Protein Secondary Structure in Cryo-EM Maps. "
        "Angew. Chem. Int. Ed. 2020, 59(35):14788-14795. doi:10.1002/anie.202000421",
        checkpoint_prefix="model.ckpt-40000",
    ),
}

_CRYOREAD_URL = "https://github.com/kiharalab/CryoREAD/raw/5c49c2f6083d9a70ac47014a64daaed01a9f1328/"
_CRYOREAD_LICENCE = (
    "GPL-3.0, Copyright (C) 2022 Xiao Wang, Genki Terashi, Daisuke Kihara, Purdue University (the weights ship "
    "inside https://github.com/kiharalab/CryoREAD under its GPL-3.0 licence statement)"
)
_CRYOREAD_CITATION = (
    "Wang X, Terashi G, Kihara D. CryoREAD: de novo structure modeling for nucleic acids in cryo-EM maps using "
    "deep learning. Nat. Methods 2023, 20(11):1739-1747. doi:10.1038/s41592-023-02032-5"
)
# (key, upstream directory, what it is, git blob ids of stage 1 and stage 2). File sizes were never published.
_CRYOREAD_SETS = (
    ("cryoread-default", "best_model", "default model (trained on the entire data set, 2023-11-01); "
     "chosen automatically for 3-5 Å maps",
     "035c4a7d61b5643108d34a3ede294512d1841fec", "14cb697dd1bc05a32e89b8e1415fd0a598100127"),
    ("cryoread-paper", "best_model_paper", "model of the Nature Methods 2023 paper (2023-03-20); only on request",
     "99946f4b982d45fe3dcdc8ad07665093895c818b", "94343e75e231bace118c6e9ac341efa0106bdd4b"),
    ("cryoread-0-3A", "best_model_0_3A", "model for maps better than 3 Å (2024-04-11); chosen automatically "
     "below 3 Å", "60b94ad28bb1d0dbc2a5d5b20d17ff87e269a08e", "50fd9b8e5b77ab33fce46e1803fad4507a076317"),
    ("cryoread-5-10A", "best_model_5_10A", "model for 5-10 Å maps (2024-04-11); chosen automatically above "
     "5 Å", "b0f15bb3dbbd04df220cbf95a025b67003f8918b", "3e2d9d64959199f408ee617ea4f85b3d1e99742f"),
)
#: File names of the two CryoREAD networks inside a set directory.
CRYOREAD_STAGE_FILES = ("stage1_network.pth", "stage2_network.pth")
for _key, _dirname, _what, *_blobs in _CRYOREAD_SETS:
    REGISTRY[_key] = WeightSet(
        key=_key,
        description=f"CryoREAD detection networks (PyTorch, stages 1 and 2), {_what}",
        files=tuple(
            WeightFile(name=name, url=f"{_CRYOREAD_URL}{_dirname}/{name}", size=None, git_blob_sha1=blob)
            for name, blob in zip(CRYOREAD_STAGE_FILES, _blobs)
        ),
        licence=_CRYOREAD_LICENCE,
        citation=_CRYOREAD_CITATION,
        upstream_dir=_dirname,
    )


# --------------------------------------------------------------------------------------------------------------
# Registry and cache helpers
# --------------------------------------------------------------------------------------------------------------
def get_set(key: str) -> WeightSet:
    """Return the registered weight set *key*; raise :class:`WeightsError` naming the known keys otherwise."""
    try:
        return REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "(none)"
        raise WeightsError(f"unknown weight set {key!r}; known sets: {known}") from None


def cache_dir() -> Path:
    """The weights cache root: ``$HARUSPEX_CACHE`` if set and non-empty, else ``~/.cache/haruspex``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "haruspex"


def set_dir(key: str) -> Path:
    """Directory where the weight set *key* lives in the cache: ``cache_dir()/<key>``."""
    get_set(key)
    return cache_dir() / key


def git_blob_sha1(path: str | os.PathLike[str]) -> str:
    """Git blob id of a file (what ``git hash-object PATH`` prints), read in chunks.

    The id is the SHA-1 of ``b"blob <size>\\0"`` followed by the content.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        digest = hashlib.sha1(b"blob %d\0" % size)
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def _fmt_bytes(n: int) -> str:
    return f"{n:,} bytes"


def _file_state(path: Path) -> dict[str, int]:
    """What the verification record keeps of a file's state: size in bytes, mtime and ctime in ns."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def _read_verified() -> dict[str, Any]:
    """The verification record: resolved path -> file state and git blob id; empty when absent or unreadable."""
    try:
        record = json.loads((cache_dir() / VERIFIED_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _remember_verified(path: Path, state: dict[str, int], blob: str) -> None:
    """Record that *path*, in *state*, has git blob id *blob* (entries of files that are gone are dropped).

    Best effort: when the record cannot be written (a read-only cache), nothing is recorded and the file is hashed
    again the next time it is used.
    """
    record = {name: entry for name, entry in _read_verified().items() if Path(name).is_file()}
    record[str(path.resolve())] = {**state, "git_blob_sha1": blob}
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        write_text_atomically(cache_dir() / VERIFIED_RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only cache: the file is hashed again next time


def recorded_blob(path: str | os.PathLike[str]) -> str | None:
    """The git blob id the verification record holds for the existing file *path* when it lists it with its current
    size, mtime and ctime (the file is not read); None otherwise."""
    path = Path(path)
    entry = _read_verified().get(str(path.resolve()))
    if entry is None or any(entry.get(key) != value for key, value in _file_state(path).items()):
        return None
    return entry.get("git_blob_sha1")


def _wrong_blob(wf: WeightFile, path: Path, *, trust_record: bool = True) -> str | None:
    """The git blob id of the existing file *path* when it is not *wf*'s published one; None when it is.

    trust_record: accept a file the verification record lists with its current size, mtime and ctime (no reading);
    False hashes it anyway.  A successful hash is recorded (:func:`_remember_verified`).
    """
    if trust_record and recorded_blob(path) == wf.git_blob_sha1:
        return None
    state = _file_state(path)
    got = git_blob_sha1(path)
    if got != wf.git_blob_sha1:
        return got
    _remember_verified(path, state, got)
    return None


def _file_problems(wf: WeightFile, path: Path, *, check_hash: bool, trust_record: bool = True) -> list[str]:
    """Problems with one file at *path* against its registry entry (empty list when fine).

    check_hash: also compare the git blob id (see :func:`_wrong_blob` for trust_record); False checks the size only.
    """
    if not path.is_file():
        return [f"{path}: missing"]
    got_size = path.stat().st_size
    if wf.size is not None and got_size != wf.size:
        return [f"{path}: wrong size: expected {_fmt_bytes(wf.size)}, got {_fmt_bytes(got_size)}"]
    if check_hash:
        got = _wrong_blob(wf, path, trust_record=trust_record)
        if got is not None:
            return [f"{path}: wrong git blob SHA-1: expected {wf.git_blob_sha1}, got {got}"]
    return []


def verify(key: str, directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Check every file of the set *key* in *directory* (default: the set's cache directory).

    Returns a list of problems, one line each (missing file, wrong size, wrong git blob id); empty when all
    files are present and intact.  Hashing reads every file completely, whatever the verification record says,
    and records each intact file there, so that runs afterwards do not hash it again.
    """
    ws = get_set(key)
    where = Path(directory).expanduser() if directory is not None else set_dir(key)
    problems: list[str] = []
    for wf in ws.files:
        problems.extend(_file_problems(wf, where / wf.name, check_hash=True, trust_record=False))
    return problems


# --------------------------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------------------------
def _file_url(wf: WeightFile, base_url: str | None) -> str:
    if base_url is None:
        return wf.url
    return base_url.rstrip("/") + "/" + wf.name


def _fetch_to(url: str, wf: WeightFile, out: IO[bytes], progress: Progress | None) -> None:
    """Stream *url* into *out*.

    Raises :class:`WeightsError` on a network error or, when the size is published, as soon as the byte count
    differs from ``wf.size`` (the transfer stops once more bytes than expected arrive).
    """
    request = urllib.request.Request(url, headers={"User-Agent": f"haruspex-engine/{__version__}"})
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            if wf.size is not None and length is not None and length.strip().isdigit() and int(length) != wf.size:
                raise WeightsError(
                    f"{wf.name}: wrong size: expected {_fmt_bytes(wf.size)}, "
                    f"server announces {_fmt_bytes(int(length))} ({url})"
                )
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                received += len(chunk)
                if wf.size is not None and received > wf.size:
                    raise WeightsError(
                        f"{wf.name}: wrong size: expected {_fmt_bytes(wf.size)}, got more than that ({url})"
                    )
                out.write(chunk)
                if progress is not None:
                    progress.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"{wf.name}: download failed: HTTP {exc.code} {exc.reason} ({url})") from exc
    except urllib.error.URLError as exc:
        raise WeightsError(f"{wf.name}: download failed: {exc.reason} ({url})") from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:  # timeouts, resets, IncompleteRead, bad URLs
        raise WeightsError(f"{wf.name}: download failed: {exc.__class__.__name__}: {exc} ({url})") from exc
    if wf.size is not None and received != wf.size:
        raise WeightsError(
            f"{wf.name}: wrong size: expected {_fmt_bytes(wf.size)}, got {_fmt_bytes(received)} ({url})"
        )


def _download_file(wf: WeightFile, directory: Path, url: str, progress: bool) -> None:
    """Download one file into *directory* through a temporary name; rename it into place only when verified."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{wf.name}.", suffix=_TMP_SUFFIX, dir=directory)
    tmp = Path(tmp_name)
    from .progress import Progress

    bar = Progress(wf.size, f"download {wf.name}", "B", interval_s=5.0, unit_scale=True) if progress else None
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch_to(url, wf, out, bar)
            out.flush()
            os.fsync(out.fileno())
        got = git_blob_sha1(tmp)
        if got != wf.git_blob_sha1:
            raise WeightsError(f"{wf.name}: wrong git blob SHA-1: expected {wf.git_blob_sha1}, got {got} ({url})")
        os.chmod(tmp, 0o644)
        os.replace(tmp, directory / wf.name)
        _remember_verified(directory / wf.name, _file_state(directory / wf.name), got)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()


def download(key: str = DEFAULT_SET, *, base_url: str | None = None, progress: bool = True) -> Path:
    """Make sure the weight set *key* is complete and intact in the cache; return its directory.

    Files already present with the right size and git blob id are kept; the others are downloaded (with
    ``urllib``) to a temporary file in the same directory, checked for size and git blob id, and atomically
    renamed into place.  On any mismatch or network error the temporary file is deleted and :class:`WeightsError`
    is raised naming the file, what was expected and what was got; a wrong file already in the cache is never
    trusted, and nothing partial is ever left there.

    Args:
        key: registry key of the set.
        base_url: directory URL to download from instead of each file's registered URL (``<base_url>/<name>``);
            for mirrors and tests.
        progress: show a byte progress bar with ETA on stderr.
    """
    ws = get_set(key)
    target = set_dir(key)
    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"{target}: cannot create the weights cache directory: {exc}") from exc
    try:
        for wf in ws.files:
            if not _file_problems(wf, target / wf.name, check_hash=True):
                continue
            _download_file(wf, target, _file_url(wf, base_url), progress)
    except BaseException:
        if created:  # leave no empty set directory behind when the very first download failed
            try:
                target.rmdir()
            except OSError:
                pass
        raise
    return target


# --------------------------------------------------------------------------------------------------------------
# Locating a usable checkpoint
# --------------------------------------------------------------------------------------------------------------
def _download_command(key: str) -> str:
    """The command line that installs the weight set *key* into the cache."""
    return "haruspex weights download" + ("" if key == DEFAULT_SET else f" --set {key}")


def _install_hint(key: str) -> str:
    ws = get_set(key)
    size = "" if ws.total_size is None else f"about {ws.total_size / 2**20:.0f} MiB "
    if ws.checkpoint_prefix:
        existing = (f"set {CHECKPOINT_ENV}=/path/to/{ws.checkpoint_prefix} (a checkpoint prefix, or the directory "
                    f"holding {', '.join(f.name for f in ws.files)})")
    else:
        existing = (f"set {CRYOREAD_ENV} to the directory holding {', '.join(f.name for f in ws.files)}, or to a "
                    f"clone of the upstream repository (its {ws.upstream_dir}/ directory is used)")
    return (
        f"install them in one of three ways: (1) run `{_download_command(key)}` "
        f"({size}into {set_dir(key)}; the cache root is ${CACHE_ENV}); "
        f"(2) if you already have the files, {existing}; "
        f"(3) in Scipion, run `scipion3 installb {SCIPION_BINARY}`"
    )


def _published_as(blob: str) -> str:
    """`` (that is the published <set> <file>)`` when *blob* is the git blob id of a registered file, else ``""``."""
    for ws in REGISTRY.values():
        for wf in ws.files:
            if wf.git_blob_sha1 == blob:
                return f" (that is the published {ws.key} {wf.name})"
    return ""


def _require_published(ws: WeightSet, pairs: list[tuple[WeightFile, Path]], fix: str) -> None:
    """Raise :class:`WeightsError` for the first file of *pairs* (registry entry, existing path) that is not the
    published file of the set *ws*, naming it, the expected and found git blob ids, and *fix* (what to do).

    Each file is hashed once (:func:`_wrong_blob`; later calls read the verification record).  Files in a
    directory of weights generated for tests are not hashed: the checkpoint loaders refuse them outside the tests.
    """
    for wf, path in pairs:
        if is_test_weights(path.parent):
            continue
        got = _wrong_blob(wf, path)
        if got is not None:
            raise WeightsError(
                f"{path}: not the published {ws.key} file {wf.name}: git blob SHA-1 {got}{_published_as(got)}, "
                f"expected {wf.git_blob_sha1}; {fix}"
            )


def _prefix_files(ws: WeightSet, prefix: Path) -> list[tuple[WeightFile, Path]]:
    """Pair each file of a checkpoint set with its path for a user-supplied *prefix* (whose stem may differ)."""
    assert ws.checkpoint_prefix is not None
    stem = ws.checkpoint_prefix
    pairs = []
    for wf in ws.files:
        if wf.name.startswith(stem):
            pairs.append((wf, prefix.with_name(prefix.name + wf.name[len(stem):])))
        else:  # a file outside the checkpoint proper (none for now): expected next to it
            pairs.append((wf, prefix.parent / wf.name))
    return pairs


def _normalise_prefix(ws: WeightSet, given: Path) -> Path:
    """Turn the value of ``$HARUSPEX_CHECKPOINT`` (prefix, directory, or one of the files) into a prefix."""
    assert ws.checkpoint_prefix is not None
    if given.is_dir():
        return given / ws.checkpoint_prefix
    for wf in ws.files:  # accept a path to one of the files themselves (e.g. the .index)
        if not wf.name.startswith(ws.checkpoint_prefix):
            continue
        suffix = wf.name[len(ws.checkpoint_prefix):]
        if suffix and given.name.endswith(suffix) and len(given.name) > len(suffix):
            return given.with_name(given.name[: -len(suffix)])
    return given


def _check_env_checkpoint(ws: WeightSet, value: str) -> Path:
    given = Path(value).expanduser()
    prefix = _normalise_prefix(ws, given)
    problems = []
    for wf, path in _prefix_files(ws, prefix):
        if not path.is_file():
            problems.append(f"{path.name} missing")
        elif ".data-" in wf.name and path.stat().st_size != wf.size:
            # The .data shard's size is fixed by the network's variables; the index may differ legitimately.
            problems.append(
                f"{path.name} has {_fmt_bytes(path.stat().st_size)}, expected {_fmt_bytes(wf.size)} "
                "(incomplete download or a different network)"
            )
    if problems:
        raise WeightsError(
            f"{CHECKPOINT_ENV}={value}: not a usable {ws.key} checkpoint (looked for prefix {prefix}): "
            + "; ".join(problems)
            + f"; point it at the checkpoint prefix (e.g. .../{ws.checkpoint_prefix}) or at the directory holding "
            + ", ".join(f.name for f in ws.files)
        )
    # The .data shard holds every number of the network; TensorFlow checks the index's checksums against it.
    _require_published(ws, [(wf, path) for wf, path in _prefix_files(ws, prefix) if ".data-" in wf.name],
                       f"point {CHECKPOINT_ENV} at the published files, or unset it and run "
                       f"`{_download_command(ws.key)}`")
    return prefix


def _check_env_directory(ws: WeightSet, value: str) -> Path:
    """The directory ``$HARUSPEX_CRYOREAD_WEIGHTS`` names for *ws*: itself, or its ``upstream_dir`` subdirectory."""
    given = Path(value).expanduser()
    for candidate in (given / ws.upstream_dir, given):
        if all((candidate / wf.name).is_file() for wf in ws.files):
            _require_published(ws, [(wf, candidate / wf.name) for wf in ws.files],
                               f"point {CRYOREAD_ENV} at the published {ws.key} files, or unset it and run "
                               f"`{_download_command(ws.key)}`")
            return candidate
    raise WeightsError(
        f"{CRYOREAD_ENV}={value}: no {ws.key} weights there: expected {' and '.join(f.name for f in ws.files)} in "
        f"{given} or in {given / ws.upstream_dir}"
    )


def choose_cryoread_set(resolution: float) -> tuple[str, str]:
    """The CryoREAD weight set the original picks for a map of *resolution* Å, and why: (key, reason).

    Below 3 Å the 0-3 Å model, above 5 Å (up to 10 Å) the 5-10 Å model, else the default model. Beyond 10 Å
    the original refuses to run; so does this (:class:`WeightsError`), unless the caller names a set itself.
    """
    if not resolution > 0:
        raise WeightsError(f"resolution must be a positive number of Å, not {resolution}")
    if resolution > 10:
        raise WeightsError(
            f"resolution {resolution} Å is beyond the 10 Å that CryoREAD's networks were trained for; "
            "choose a weight set explicitly if you want to try anyway"
        )
    if resolution < 3:
        return "cryoread-0-3A", f"resolution {resolution} Å < 3 Å"
    if resolution > 5:
        return "cryoread-5-10A", f"resolution {resolution} Å in (5, 10] Å"
    return "cryoread-default", f"resolution {resolution} Å in [3, 5] Å"


def locate_checkpoint(key: str = DEFAULT_SET) -> Path:
    """Return the path of a usable copy of the weight set *key*.

    For a TensorFlow set this is the checkpoint prefix (``.../model.ckpt-40000``) to give to TF loaders; for a set
    without ``checkpoint_prefix`` it is the directory holding its files.

    Looks first at ``$HARUSPEX_CHECKPOINT`` (TensorFlow sets only): a prefix, a directory holding the files, or
    the path of one of the files; for CryoREAD sets at ``$HARUSPEX_CRYOREAD_WEIGHTS``: the directory holding the
    two ``.pth`` files, or a clone of the CryoREAD repository (its ``upstream_dir`` subdirectory is used).
    The files must exist and the ``.data`` shard must have its published size,
    else :class:`WeightsError` says what is wrong (a set variable is never silently ignored).  Otherwise the
    cache copy is used when all its files are present with the right sizes.

    Wherever they come from, the files that hold the network (a checkpoint's ``.data`` shard, every file of the
    cache or of a CryoREAD set) must have their published git blob ids.  Each is hashed once; the success is
    recorded in ``cache_dir()/verified.json`` by resolved path, size, mtime and ctime, so later calls return at
    once until the file changes.  Where the record cannot be written (a read-only cache) the file is still
    verified and used, and hashed again on the next call.  Weights generated for tests (their directory holds
    the ``RANDOM-TEST-WEIGHTS`` marker) are not hashed: the loaders refuse them outside the test suite.

    Raises:
        WeightsMissingError: nothing usable was found; the message explains the three ways to install.
        WeightsError: a configured file is missing or has the wrong size, or a file is not the published one (the
            message names it, the expected and found git blob ids, and the fix).
    """
    ws = get_set(key)
    env = os.environ.get(CHECKPOINT_ENV, "").strip()
    if env and ws.checkpoint_prefix is not None:
        return _check_env_checkpoint(ws, env)
    env = os.environ.get(CRYOREAD_ENV, "").strip()
    if env and ws.upstream_dir is not None:
        return _check_env_directory(ws, env)
    directory = set_dir(key)
    problems: list[str] = []
    for wf in ws.files:
        problems.extend(_file_problems(wf, directory / wf.name, check_hash=False))
    if problems:
        variable = CHECKPOINT_ENV if ws.checkpoint_prefix is not None else CRYOREAD_ENV
        where = f"{variable} is not set and the cache {directory} "
        where += "does not exist" if not directory.exists() else "is incomplete (" + "; ".join(problems) + ")"
        raise WeightsMissingError(f"weights {key!r} not found: {where}; {_install_hint(key)}")
    _require_published(ws, [(wf, directory / wf.name) for wf in ws.files],
                       f"run `{_download_command(key)}` to replace it")
    if ws.checkpoint_prefix is None:
        return directory
    return directory / ws.checkpoint_prefix


# --------------------------------------------------------------------------------------------------------------
# Command line: `haruspex weights download|verify|path`
# --------------------------------------------------------------------------------------------------------------
def _add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        "--name",
        dest="set_key",
        metavar="KEY",
        default=DEFAULT_SET,
        help=f"weight set to act on (default: {DEFAULT_SET}; known: {', '.join(sorted(REGISTRY))})",
    )


def add_weights_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``weights`` subcommand (actions ``download``, ``verify``, ``path``) on *subparsers*.

    *subparsers* is what ``ArgumentParser.add_subparsers()`` returned.  The parsed namespace has
    ``weights_action`` and ``set_key`` (plus ``base_url``/``quiet`` for download and ``dir`` for verify) and a
    ``func`` default set to :func:`run_weights_command`.  Returns the ``weights`` parser.
    """
    fmt = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser(
        "weights",
        help="download, verify or locate the published network weights",
        description=(
            "Manage the published network weights. They are not shipped with the package: `download` fetches\n"
            f"them into the cache (${CACHE_ENV}, default ~/.cache/haruspex), checking each file's size and git\n"
            f"blob id. If you already have the files, set ${CHECKPOINT_ENV} to the checkpoint prefix\n"
            "(.../model.ckpt-40000) or to the directory holding them. In Scipion, "
            f"`scipion3 installb {SCIPION_BINARY}` does the download."
        ),
        formatter_class=fmt,
    )
    parser.set_defaults(func=run_weights_command)
    actions = parser.add_subparsers(dest="weights_action", metavar="ACTION", title="actions")
    actions.required = True

    p_download = actions.add_parser(
        "download",
        help="download the weights into the cache (skips files already intact)",
        description=(
            "Download a weight set into $HARUSPEX_CACHE/<KEY>/. Each file goes to a temporary name, is checked\n"
            "for size and git blob SHA-1, and is renamed into place only when both match; intact files already in\n"
            "the cache are kept. Prints the set directory on stdout."
        ),
        formatter_class=fmt,
    )
    _add_set_option(p_download)
    p_download.add_argument(
        "--base-url",
        metavar="URL",
        default=None,
        help="download <URL>/<file name> instead of the registered URLs (a mirror or a local copy)",
    )
    p_download.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")

    p_verify = actions.add_parser(
        "verify",
        help="check the weights' sizes and git blob ids",
        description=(
            "Check that every file of a weight set is present, has the published size and the published git\n"
            "blob SHA-1 (what `git hash-object FILE` prints). Reads every file completely, even one already\n"
            "verified, and remembers the intact ones so that runs need not hash them again (the same check runs\n"
            "before any use of the weights). Exit status 0 when all files are intact, 1 otherwise (each problem is\n"
            "listed on stderr)."
        ),
        formatter_class=fmt,
    )
    _add_set_option(p_verify)
    p_verify.add_argument(
        "--dir",
        metavar="DIR",
        default=None,
        help="directory holding the files (default: the set's cache directory $HARUSPEX_CACHE/<KEY>)",
    )

    p_path = actions.add_parser(
        "path",
        help="print the checkpoint prefix that will be used",
        description=(
            f"Print the path the engine will load the weights from: ${CHECKPOINT_ENV} when set, else the cache\n"
            "copy; the files must have their published size and git blob SHA-1 (hashed once per file, then\n"
            f"remembered in ${CACHE_ENV}/{VERIFIED_RECORD} until the file changes). For a TensorFlow set this is\n"
            "the checkpoint prefix, e.g. ~/.cache/haruspex/haruspex-hpx_190116/model.ckpt-40000. Exit status 3\n"
            "with installation instructions when no weights are installed, 1 when the configured ones are unusable."
        ),
        formatter_class=fmt,
    )
    _add_set_option(p_path)
    return parser


#: Exit status of any command that stops because no usable weights are installed.
EXIT_NO_WEIGHTS = 3


def _error(message: str, stream: IO[str], status: int = 1) -> int:
    one_line = " ".join(message.split())
    print(f"haruspex: error: {one_line}", file=stream)
    return status


def run_weights_command(args: argparse.Namespace) -> int:
    """Run a parsed ``haruspex weights ...`` command; return the exit status (0 success, 1 failure,
    EXIT_NO_WEIGHTS when no usable weights are installed).

    Results go to stdout (the set directory, the checkpoint path, ``ok`` lines); failures end with one line
    ``haruspex: error: ...`` on stderr.
    """
    action = getattr(args, "weights_action", None)
    key = getattr(args, "set_key", DEFAULT_SET)
    handlers: dict[str, Callable[[], int]] = {
        "download": lambda: _cmd_download(key, getattr(args, "base_url", None), not getattr(args, "quiet", False)),
        "verify": lambda: _cmd_verify(key, getattr(args, "dir", None)),
        "path": lambda: _cmd_path(key),
    }
    if action not in handlers:
        return _error(f"weights: unknown action {action!r}; use one of: download, verify, path", sys.stderr)
    try:
        return handlers[action]()
    except WeightsMissingError as exc:
        return _error(str(exc), sys.stderr, EXIT_NO_WEIGHTS)
    except WeightsError as exc:
        return _error(str(exc), sys.stderr)


def _cmd_download(key: str, base_url: str | None, progress: bool) -> int:
    directory = download(key, base_url=base_url, progress=progress)
    print(directory)
    return 0


def _cmd_verify(key: str, directory: str | None) -> int:
    where = Path(directory).expanduser() if directory is not None else set_dir(key)
    problems = verify(key, where)
    if problems:
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        hint = "" if directory is not None else f"; `haruspex weights download --set {key}` re-fetches bad files"
        return _error(f"weights {key!r} in {where}: {len(problems)} problem(s){hint}", sys.stderr)
    print(f"ok: {key} ({len(get_set(key).files)} files) in {where}")
    return 0


def _cmd_path(key: str) -> int:
    print(locate_checkpoint(key))
    return 0
