"""Tests for haruspex_engine.weights: registry, git blob ids, download/verify against a local HTTP server, locating
the checkpoint, and the `weights` CLI actions."""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.server
import os
import random
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from haruspex_engine import weights as W
from haruspex_engine.weights import (
    WeightFile,
    WeightsError,
    WeightSet,
    WeightsMissingError,
)

REPO = Path(__file__).resolve().parents[2]
SHARED_HARUSPEX = REPO.parent / "shared" / "models" / "haruspex"
SHARED_CRYOREAD = REPO.parent / "shared" / "models" / "cryoread"

TEST_KEY = "test-set"
CKPT_KEY = "test-ckpt"
CKPT_STEM = "model.ckpt-7"


# ----------------------------------------------------------------------------------------------------------------
# fixtures: a local HTTP server and a small generated weight set
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Server:
    root: Path
    base_url: str
    requests: list[str] = field(default_factory=list)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files from the server root; paths under /nolength/ are streamed without a Content-Length header."""

    log: list[str]

    def log_message(self, format: str, *args: object) -> None:  # silence the default stderr log
        pass

    def do_GET(self) -> None:
        self.log.append(self.path)
        if self.path.startswith("/nolength/"):
            path = Path(self.directory) / self.path[len("/nolength/"):]
            if not path.is_file():
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(path.read_bytes())
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "srv"
    root.mkdir()
    log: list[str] = []

    class Handler(_Handler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

    Handler.log = log
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(root=root, base_url=f"http://127.0.0.1:{httpd.server_address[1]}", requests=log)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache and no user checkpoint."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARUSPEX_CACHE", str(cache))
    monkeypatch.delenv("HARUSPEX_CHECKPOINT", raising=False)
    monkeypatch.delenv("HARUSPEX_CRYOREAD_WEIGHTS", raising=False)
    return cache


def _blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _publish(server: Server, files: dict[str, bytes], *, url_dir: str = "") -> tuple[WeightFile, ...]:
    """Write *files* under the server root and return their true registry entries."""
    target = server.root / url_dir if url_dir else server.root
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for name, data in files.items():
        (target / name).write_bytes(data)
        url = f"{server.base_url}/{url_dir + '/' if url_dir else ''}{name}"
        out.append(WeightFile(name=name, url=url, size=len(data), git_blob_sha1=_blob(data)))
    return tuple(out)


def _register(monkeypatch: pytest.MonkeyPatch, key: str, files: tuple[WeightFile, ...], prefix: str | None = None):
    ws = WeightSet(key=key, description="test", files=files, licence="test", citation="test", checkpoint_prefix=prefix)
    monkeypatch.setitem(W.REGISTRY, key, ws)
    return ws


SMALL = {"a.bin": _random_bytes(3000, 1), "b.bin": _random_bytes(5123, 2)}


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ----------------------------------------------------------------------------------------------------------------
# registry and hashing
# ----------------------------------------------------------------------------------------------------------------
def test_registry_haruspex_entry() -> None:
    ws = W.REGISTRY["haruspex-hpx_190116"]
    assert ws.key == "haruspex-hpx_190116"
    assert ws.checkpoint_prefix == "model.ckpt-40000"
    by_name = {f.name: f for f in ws.files}
    assert set(by_name) == {"model.ckpt-40000.index", "model.ckpt-40000.data-00000-of-00001"}
    assert by_name["model.ckpt-40000.index"].size == 2332
    assert by_name["model.ckpt-40000.index"].git_blob_sha1 == "14c27bc70d0bb6a46e076b562b250d2154563235"
    data = by_name["model.ckpt-40000.data-00000-of-00001"]
    assert data.size == 72_417_088
    assert data.git_blob_sha1 == "72a51139e1c7b3b446529919f82f121950a0094b"
    for f in ws.files:
        assert f.url == "https://github.com/thorn-lab/haruspex/raw/master/network/hpx_190116/" + f.name
    assert "MIT" in ws.licence
    assert "14788" in ws.citation and "Mostosi" in ws.citation
    with pytest.raises(dataclasses.FrozenInstanceError):
        ws.key = "x"  # type: ignore[misc]


def test_unknown_set_is_a_clear_error() -> None:
    with pytest.raises(WeightsError, match="unknown weight set 'nope'.*haruspex-hpx_190116"):
        W.verify("nope")


def test_git_blob_sha1_of_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert W.git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's well-known empty blob


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_blob_sha1_matches_git_hash_object(tmp_path: Path) -> None:
    sample = tmp_path / "sample.bin"
    sample.write_bytes(_random_bytes(W._CHUNK + 12345, 3))  # crosses a chunk boundary
    expected = subprocess.run(
        ["git", "hash-object", str(sample)], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert W.git_blob_sha1(sample) == expected
    assert W.git_blob_sha1(str(sample)) == expected


@pytest.mark.skipif(
    not (SHARED_HARUSPEX / "model.ckpt-40000.index").is_file(), reason="../shared/models/haruspex is absent"
)
def test_registry_matches_the_published_index_file() -> None:
    ws = W.REGISTRY["haruspex-hpx_190116"]
    index = next(f for f in ws.files if f.name.endswith(".index"))
    path = SHARED_HARUSPEX / index.name
    assert path.stat().st_size == index.size
    assert W.git_blob_sha1(path) == index.git_blob_sha1


def test_cache_dir_from_env_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARUSPEX_CACHE", str(tmp_path / "c"))
    assert W.cache_dir() == tmp_path / "c"
    assert W.set_dir("haruspex-hpx_190116") == tmp_path / "c" / "haruspex-hpx_190116"
    monkeypatch.delenv("HARUSPEX_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert W.cache_dir() == tmp_path / "home" / ".cache" / "haruspex"


# ----------------------------------------------------------------------------------------------------------------
# download and verify
# ----------------------------------------------------------------------------------------------------------------
def test_download_then_verify(server: Server, clean_env: Path, monkeypatch, capsys) -> None:
    _register(monkeypatch, TEST_KEY, _publish(server, SMALL))
    directory = W.download(TEST_KEY, progress=True)
    assert directory == clean_env / TEST_KEY
    assert _leftovers(directory) == ["a.bin", "b.bin"]
    for name, data in SMALL.items():
        assert (directory / name).read_bytes() == data
    assert W.verify(TEST_KEY) == []
    assert W.verify(TEST_KEY, directory) == []
    assert "b.bin" in capsys.readouterr().err  # the progress bar names the file on stderr
    assert sorted(server.requests) == ["/a.bin", "/b.bin"]

    # intact files are not fetched again
    assert W.download(TEST_KEY, progress=False) == directory
    assert len(server.requests) == 2


def test_download_with_base_url_override(server: Server, monkeypatch) -> None:
    files = _publish(server, SMALL, url_dir="mirror")
    bogus = tuple(
        WeightFile(f.name, "http://127.0.0.1:9/does-not-exist/" + f.name, f.size, f.git_blob_sha1) for f in files
    )
    _register(monkeypatch, TEST_KEY, bogus)
    directory = W.download(TEST_KEY, base_url=server.base_url + "/mirror/", progress=False)
    assert W.verify(TEST_KEY, directory) == []
    assert sorted(server.requests) == ["/mirror/a.bin", "/mirror/b.bin"]


def test_corrupt_cached_file_is_replaced(server: Server, clean_env: Path, monkeypatch) -> None:
    _register(monkeypatch, TEST_KEY, _publish(server, SMALL))
    directory = clean_env / TEST_KEY
    directory.mkdir(parents=True)
    bad = bytearray(SMALL["a.bin"])
    bad[100] ^= 0xFF
    (directory / "a.bin").write_bytes(bytes(bad))
    assert any("a.bin" in p and "git blob" in p for p in W.verify(TEST_KEY))
    W.download(TEST_KEY, progress=False)
    assert (directory / "a.bin").read_bytes() == SMALL["a.bin"]
    assert W.verify(TEST_KEY) == []


def test_wrong_hash_is_rejected_and_nothing_is_left(server: Server, clean_env: Path, monkeypatch) -> None:
    a, b = _publish(server, SMALL)
    wrong = "0" * 40
    _register(monkeypatch, TEST_KEY, (a, WeightFile(b.name, b.url, b.size, wrong)))
    with pytest.raises(WeightsError) as info:
        W.download(TEST_KEY, progress=False)
    msg = str(info.value)
    assert "b.bin" in msg and wrong in msg and b.git_blob_sha1 in msg
    # the good file stays, the bad one and every temporary file are gone
    assert _leftovers(clean_env / TEST_KEY) == ["a.bin"]

    # when the first file is bad, not even the set directory remains
    _register(monkeypatch, "other", (WeightFile(a.name, a.url, a.size, wrong),))
    with pytest.raises(WeightsError, match="a.bin.*wrong git blob"):
        W.download("other", progress=False)
    assert not (clean_env / "other").exists()


@pytest.mark.parametrize("delta", [+1, -1, +100_000])
@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "no-content-length"])
def test_wrong_size_is_rejected(server: Server, clean_env: Path, monkeypatch, delta: int, streamed: bool) -> None:
    (a,) = _publish(server, {"a.bin": SMALL["a.bin"]})
    url = a.url.replace(server.base_url, server.base_url + "/nolength") if streamed else a.url
    _register(monkeypatch, TEST_KEY, (WeightFile(a.name, url, a.size + delta, a.git_blob_sha1),))
    with pytest.raises(WeightsError) as info:
        W.download(TEST_KEY, progress=False)
    msg = str(info.value)
    assert "a.bin" in msg and "wrong size" in msg and f"{a.size + delta:,}" in msg
    assert _leftovers(clean_env / TEST_KEY) == []


def test_http_404_is_rejected_cleanly(server: Server, clean_env: Path, monkeypatch) -> None:
    (a,) = _publish(server, {"a.bin": SMALL["a.bin"]})
    _register(monkeypatch, TEST_KEY, (WeightFile("gone.bin", server.base_url + "/gone.bin", 10, a.git_blob_sha1),))
    with pytest.raises(WeightsError, match=r"gone\.bin: download failed: HTTP 404"):
        W.download(TEST_KEY, progress=False)
    assert _leftovers(clean_env / TEST_KEY) == []


def test_connection_refused_is_rejected_cleanly(clean_env: Path, monkeypatch) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _register(monkeypatch, TEST_KEY, (WeightFile("x.bin", f"http://127.0.0.1:{port}/x.bin", 10, "0" * 40),))
    with pytest.raises(WeightsError, match=r"x\.bin: download failed"):
        W.download(TEST_KEY, progress=False)
    assert _leftovers(clean_env / TEST_KEY) == []


def test_verify_reports_each_problem(tmp_path: Path, monkeypatch) -> None:
    files = tuple(WeightFile(n, "http://unused/" + n, len(d), _blob(d)) for n, d in SMALL.items())
    files += (WeightFile("c.bin", "http://unused/c.bin", 4, _blob(b"abcd")),)
    _register(monkeypatch, TEST_KEY, files)
    d = tmp_path / "d"
    d.mkdir()
    assert len(W.verify(TEST_KEY, d)) == 3
    (d / "a.bin").write_bytes(SMALL["a.bin"])  # good
    (d / "b.bin").write_bytes(SMALL["b.bin"][:-1])  # short
    (d / "c.bin").write_bytes(b"abce")  # right size, wrong content
    problems = W.verify(TEST_KEY, d)
    assert len(problems) == 2
    assert "b.bin" in problems[0] and "wrong size" in problems[0] and "5,123" in problems[0] and "5,122" in problems[0]
    assert "c.bin" in problems[1] and "git blob" in problems[1] and _blob(b"abce") in problems[1]
    (d / "c.bin").write_bytes(b"abcd")
    (d / "b.bin").write_bytes(SMALL["b.bin"])
    assert W.verify(TEST_KEY, d) == []


# ----------------------------------------------------------------------------------------------------------------
# locate_checkpoint
# ----------------------------------------------------------------------------------------------------------------
CKPT_FILES = {
    f"{CKPT_STEM}.index": _random_bytes(300, 4),
    f"{CKPT_STEM}.data-00000-of-00001": _random_bytes(4096, 5),
}


def _ckpt_set(monkeypatch) -> WeightSet:
    files = tuple(WeightFile(n, "http://unused/" + n, len(d), _blob(d)) for n, d in CKPT_FILES.items())
    return _register(monkeypatch, CKPT_KEY, files, prefix=CKPT_STEM)


def _write_ckpt(directory: Path, stem: str = CKPT_STEM, data: dict[str, bytes] = CKPT_FILES) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in data.items():
        (directory / (stem + name[len(CKPT_STEM):])).write_bytes(content)


def test_locate_checkpoint_from_env_prefix_dir_and_file(tmp_path: Path, monkeypatch) -> None:
    _ckpt_set(monkeypatch)
    mine = tmp_path / "mine"
    _write_ckpt(mine)
    monkeypatch.setenv("HARUSPEX_CHECKPOINT", str(mine / CKPT_STEM))
    assert W.locate_checkpoint(CKPT_KEY) == mine / CKPT_STEM
    monkeypatch.setenv("HARUSPEX_CHECKPOINT", str(mine))
    assert W.locate_checkpoint(CKPT_KEY) == mine / CKPT_STEM
    monkeypatch.setenv("HARUSPEX_CHECKPOINT", str(mine / f"{CKPT_STEM}.index"))
    assert W.locate_checkpoint(CKPT_KEY) == mine / CKPT_STEM
    # a renamed checkpoint works as a prefix
    _write_ckpt(tmp_path / "renamed", stem="my.ckpt")
    monkeypatch.setenv("HARUSPEX_CHECKPOINT", str(tmp_path / "renamed" / "my.ckpt"))
    assert W.locate_checkpoint(CKPT_KEY) == tmp_path / "renamed" / "my.ckpt"


def test_locate_checkpoint_env_problems_are_errors(tmp_path: Path, clean_env: Path, monkeypatch) -> None:
    _ckpt_set(monkeypatch)
    _write_ckpt(clean_env / CKPT_KEY)  # a good cache must not hide a bad explicit setting
    mine = tmp_path / "mine"
    _write_ckpt(mine)
    (mine / f"{CKPT_STEM}.data-00000-of-00001").write_bytes(b"short")
    monkeypatch.setenv("HARUSPEX_CHECKPOINT", str(mine))
    with pytest.raises(WeightsError, match=r"HARUSPEX_CHECKPOINT=.*data-00000-of-00001 has 5 bytes, expected 4,096"):
        W.locate_checkpoint(CKPT_KEY)
    (mine / f"{CKPT_STEM}.index").unlink()
    monkeypatch.setenv("HARUSPEX_CHECKPOINT", str(mine / CKPT_STEM))
    with pytest.raises(WeightsError, match=r"index missing") as info:
        W.locate_checkpoint(CKPT_KEY)
    assert not isinstance(info.value, WeightsMissingError)
    monkeypatch.setenv("HARUSPEX_CHECKPOINT", str(tmp_path / "nowhere"))
    with pytest.raises(WeightsError, match="nowhere"):
        W.locate_checkpoint(CKPT_KEY)


def test_locate_checkpoint_from_cache(clean_env: Path, monkeypatch) -> None:
    _ckpt_set(monkeypatch)
    _write_ckpt(clean_env / CKPT_KEY)
    assert W.locate_checkpoint(CKPT_KEY) == clean_env / CKPT_KEY / CKPT_STEM


def test_locate_checkpoint_missing_explains_how_to_install(clean_env: Path, monkeypatch) -> None:
    with pytest.raises(WeightsMissingError) as info:
        W.locate_checkpoint()  # the real set; the cache is empty
    msg = str(info.value)
    assert "haruspex weights download" in msg
    assert "HARUSPEX_CHECKPOINT" in msg
    assert "scipion3 installb haruspex-weights" in msg
    assert "\n" not in msg

    # an incomplete cache (e.g. someone copied a truncated file) is reported as missing, with what is wrong
    _ckpt_set(monkeypatch)
    _write_ckpt(clean_env / CKPT_KEY)
    (clean_env / CKPT_KEY / f"{CKPT_STEM}.index").write_bytes(b"x")
    with pytest.raises(WeightsMissingError, match="incomplete.*wrong size"):
        W.locate_checkpoint(CKPT_KEY)


# ----------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haruspex")
    W.add_weights_parser(parser.add_subparsers(dest="command"))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    assert args.func is W.run_weights_command
    return args.func(args)


def test_cli_download_verify_path(server: Server, clean_env: Path, monkeypatch, capsys) -> None:
    _register(monkeypatch, CKPT_KEY, _publish(server, CKPT_FILES), prefix=CKPT_STEM)
    assert _run(["weights", "path", "--set", CKPT_KEY]) == W.EXIT_NO_WEIGHTS == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("haruspex: error: ") and "haruspex weights download" in err[0]

    assert _run(["weights", "download", "--set", CKPT_KEY, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(clean_env / CKPT_KEY)
    assert err == ""  # --quiet: no progress bar

    assert _run(["weights", "verify", "--set", CKPT_KEY]) == 0
    assert capsys.readouterr().out.startswith("ok:")
    assert _run(["weights", "path", "--name", CKPT_KEY]) == 0
    assert capsys.readouterr().out.strip() == str(clean_env / CKPT_KEY / CKPT_STEM)

    (clean_env / CKPT_KEY / f"{CKPT_STEM}.index").write_bytes(b"broken")
    assert _run(["weights", "verify", "--set", CKPT_KEY]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("haruspex: error: ") and "1 problem" in err[-1]
    assert any("wrong size" in line for line in err[:-1])


def test_cli_download_base_url_and_failure(server: Server, clean_env: Path, monkeypatch, capsys) -> None:
    files = _publish(server, SMALL, url_dir="m")
    _register(monkeypatch, TEST_KEY, tuple(WeightFile(f.name, "http://127.0.0.1:9/x/" + f.name, f.size,
                                                      f.git_blob_sha1) for f in files))
    assert _run(["weights", "download", "--set", TEST_KEY, "-q", "--base-url", server.base_url + "/m"]) == 0
    assert W.verify(TEST_KEY) == []
    capsys.readouterr()
    shutil.rmtree(clean_env / TEST_KEY)
    assert _run(["weights", "download", "--set", TEST_KEY, "-q", "--base-url", server.base_url + "/empty"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("haruspex: error: ") and "404" in err[0]
    assert not (clean_env / TEST_KEY).exists()


def test_cli_unknown_set_and_verify_dir(tmp_path: Path, monkeypatch, capsys) -> None:
    assert _run(["weights", "verify", "--set", "nope"]) == 1
    assert "unknown weight set" in capsys.readouterr().err
    _ckpt_set(monkeypatch)
    _write_ckpt(tmp_path / "elsewhere")
    assert _run(["weights", "verify", "--set", CKPT_KEY, "--dir", str(tmp_path / "elsewhere")]) == 0


def test_cli_help_and_required_action(capsys) -> None:
    parser = _parser()
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["weights", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for word in ("download", "verify", "path", "HARUSPEX_CHECKPOINT", "haruspex-weights"):
        assert word in text
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["weights", "download", "--help"])
    assert "--base-url" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["weights"])
    assert info.value.code == 2


def test_module_does_not_import_frameworks() -> None:
    source = Path(W.__file__).read_text()
    for name in ("tensorflow", "torch", "pyworkflow"):
        assert f"import {name}" not in source and f"from {name}" not in source
    assert os.path.basename(W.__file__) == "weights.py"


# ----------------------------------------------------------------------------------------------------------------
# CryoREAD weight sets: registry, unknown sizes, choice by resolution, user directories
# ----------------------------------------------------------------------------------------------------------------
CRYOREAD_KEYS = ("cryoread-default", "cryoread-paper", "cryoread-0-3A", "cryoread-5-10A")


def test_cryoread_sets_are_registered() -> None:
    for key in CRYOREAD_KEYS:
        ws = W.get_set(key)
        assert [f.name for f in ws.files] == ["stage1_network.pth", "stage2_network.pth"]
        assert ws.checkpoint_prefix is None and ws.upstream_dir
        assert ws.total_size is None  # never published: the blob id is the check
        for wf in ws.files:
            assert wf.url.endswith(f"/{ws.upstream_dir}/{wf.name}") and len(wf.git_blob_sha1) == 40


def test_cryoread_blob_ids_match_the_published_list() -> None:
    source = SHARED_CRYOREAD / "SOURCE.txt"
    if not source.is_file():
        pytest.skip(f"{source} is absent (../shared not beside the project)")
    published = {}
    for line in source.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(".pth"):
            published[parts[0]] = parts[1]
    assert len(published) == 8
    for key in CRYOREAD_KEYS:
        ws = W.get_set(key)
        for wf in ws.files:
            assert published[f"{ws.upstream_dir}/{wf.name}"] == wf.git_blob_sha1


@pytest.mark.parametrize(
    ("resolution", "key"),
    [(1.8, "cryoread-0-3A"), (2.99, "cryoread-0-3A"), (3.0, "cryoread-default"), (3.7, "cryoread-default"),
     (5.0, "cryoread-default"), (5.01, "cryoread-5-10A"), (10.0, "cryoread-5-10A")],
)
def test_cryoread_set_follows_the_resolution(resolution: float, key: str) -> None:
    chosen, reason = W.choose_cryoread_set(resolution)
    assert chosen == key and str(resolution) in reason


@pytest.mark.parametrize("resolution", [10.5, 0.0, -2.0, float("nan")])
def test_cryoread_set_refuses_resolutions_outside_the_trained_range(resolution: float) -> None:
    with pytest.raises(WeightsError, match="resolution"):
        W.choose_cryoread_set(resolution)


def test_download_of_a_set_without_published_sizes(server: Server, clean_env: Path, monkeypatch) -> None:
    a, b = _publish(server, SMALL, url_dir="best_model")
    unsized = tuple(WeightFile(f.name, f.url, None, f.git_blob_sha1) for f in (a, b))
    _register(monkeypatch, TEST_KEY, unsized)
    directory = W.download(TEST_KEY, progress=True)
    assert (directory / "a.bin").read_bytes() == SMALL["a.bin"] and W.verify(TEST_KEY) == []
    # a wrong blob id is still caught, and nothing is left behind
    _register(monkeypatch, "other", (WeightFile(a.name, a.url, None, "0" * 40),))
    with pytest.raises(WeightsError, match="a.bin.*wrong git blob"):
        W.download("other", progress=False)
    assert not (clean_env / "other").exists()


FAKE_PTH = b"stands for a published .pth file"


def _fake_cryoread_files(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in W.CRYOREAD_STAGE_FILES:
        (directory / name).write_bytes(FAKE_PTH)


def _publish_fake_cryoread(monkeypatch, key: str) -> None:
    """Make the registered set *key* expect FAKE_PTH as both of its files."""
    ws = W.get_set(key)
    files = tuple(dataclasses.replace(wf, git_blob_sha1=_blob(FAKE_PTH)) for wf in ws.files)
    monkeypatch.setitem(W.REGISTRY, key, dataclasses.replace(ws, files=files))


def test_cryoread_weights_from_a_user_directory_or_a_clone(tmp_path: Path, monkeypatch) -> None:
    _publish_fake_cryoread(monkeypatch, "cryoread-0-3A")
    plain = tmp_path / "my-weights"
    _fake_cryoread_files(plain)
    monkeypatch.setenv(W.CRYOREAD_ENV, str(plain))
    assert W.locate_checkpoint("cryoread-0-3A") == plain  # a directory holding the set's two files
    clone = tmp_path / "CryoREAD"
    _fake_cryoread_files(clone / "best_model_0_3A")
    monkeypatch.setenv(W.CRYOREAD_ENV, str(clone))
    assert W.locate_checkpoint("cryoread-0-3A") == clone / "best_model_0_3A"
    with pytest.raises(WeightsError, match=r"cryoread-5-10A.*best_model_5_10A"):
        W.locate_checkpoint("cryoread-5-10A")


def test_missing_cryoread_weights_explain_how_to_install(monkeypatch) -> None:
    with pytest.raises(WeightsMissingError) as info:
        W.locate_checkpoint("cryoread-default")
    message = str(info.value)
    assert "haruspex weights download --set cryoread-default" in message
    assert W.CRYOREAD_ENV in message and "best_model/" in message
    # the variable a user must set for these weights is the one named first; the Haruspex one is not named at all
    assert message.startswith(f"weights 'cryoread-default' not found: {W.CRYOREAD_ENV} is not set")
    assert W.CHECKPOINT_ENV not in message


# ----------------------------------------------------------------------------------------------------------------
# every use checks the git blob id, hashing each file once (verification record in the cache)
# ----------------------------------------------------------------------------------------------------------------
DATA_NAME = f"{CKPT_STEM}.data-00000-of-00001"


@pytest.fixture
def hash_calls(monkeypatch) -> list[Path]:
    """The paths W.git_blob_sha1 is asked to hash, in order."""
    calls: list[Path] = []
    real = W.git_blob_sha1

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(W, "git_blob_sha1", counting)
    return calls


def _same_size_other_content(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))


def test_right_size_wrong_content_in_the_cache_is_refused(clean_env: Path, monkeypatch, capsys) -> None:
    _ckpt_set(monkeypatch)
    _write_ckpt(clean_env / CKPT_KEY)
    bad = clean_env / CKPT_KEY / DATA_NAME
    _same_size_other_content(bad)
    assert _run(["weights", "path", "--set", CKPT_KEY]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"haruspex: error: {bad}: not the published {CKPT_KEY} file")
    assert W.git_blob_sha1(bad) in err[0] and _blob(CKPT_FILES[DATA_NAME]) in err[0]
    assert f"`haruspex weights download --set {CKPT_KEY}`" in err[0]


def test_right_size_wrong_content_from_the_variables_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    _ckpt_set(monkeypatch)
    mine = tmp_path / "mine"
    _write_ckpt(mine)
    _same_size_other_content(mine / DATA_NAME)
    monkeypatch.setenv(W.CHECKPOINT_ENV, str(mine))
    assert _run(["weights", "path", "--set", CKPT_KEY]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(mine / DATA_NAME) in err[0] and W.CHECKPOINT_ENV in err[0]
    assert _blob(CKPT_FILES[DATA_NAME]) in err[0] and "haruspex weights download" in err[0]

    # CryoREAD files of another published set are named as such
    _publish_fake_cryoread(monkeypatch, "cryoread-default")
    plain = tmp_path / "cryoread"
    _fake_cryoread_files(plain)
    monkeypatch.setenv(W.CRYOREAD_ENV, str(plain))
    with pytest.raises(WeightsError) as info:
        W.locate_checkpoint("cryoread-0-3A")
    message = str(info.value)
    assert message.startswith(f"{plain / 'stage1_network.pth'}: not the published cryoread-0-3A file")
    assert "that is the published cryoread-default stage1_network.pth" in message and W.CRYOREAD_ENV in message


def test_a_verified_file_is_hashed_once(clean_env: Path, monkeypatch, hash_calls: list[Path]) -> None:
    _ckpt_set(monkeypatch)
    _write_ckpt(clean_env / CKPT_KEY)
    assert W.locate_checkpoint(CKPT_KEY) == clean_env / CKPT_KEY / CKPT_STEM
    assert len(hash_calls) == 2  # both files of the cache
    assert (clean_env / W.VERIFIED_RECORD).is_file()
    assert W.locate_checkpoint(CKPT_KEY) == clean_env / CKPT_KEY / CKPT_STEM
    assert len(hash_calls) == 2  # nothing hashed again

    mine = clean_env.parent / "mine"
    _write_ckpt(mine)
    monkeypatch.setenv(W.CHECKPOINT_ENV, str(mine))
    W.locate_checkpoint(CKPT_KEY)
    W.locate_checkpoint(CKPT_KEY)
    assert hash_calls[2:] == [mine / DATA_NAME]  # the variable's .data shard, once

    # `weights verify` always reads every file, and records them
    assert W.verify(CKPT_KEY) == []
    assert len(hash_calls) == 5


def test_a_changed_file_is_verified_again(clean_env: Path, monkeypatch, hash_calls: list[Path]) -> None:
    _ckpt_set(monkeypatch)
    _write_ckpt(clean_env / CKPT_KEY)
    data = clean_env / CKPT_KEY / DATA_NAME
    W.locate_checkpoint(CKPT_KEY)
    assert len(hash_calls) == 2
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # same content, new mtime
    W.locate_checkpoint(CKPT_KEY)
    assert hash_calls[2:] == [data]
    _same_size_other_content(data)
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime back
    with pytest.raises(WeightsError, match="not the published"):
        W.locate_checkpoint(CKPT_KEY)
    with pytest.raises(WeightsError, match="not the published"):  # a failure is never recorded
        W.locate_checkpoint(CKPT_KEY)


def test_download_records_what_it_verified(server: Server, monkeypatch, hash_calls: list[Path]) -> None:
    _register(monkeypatch, CKPT_KEY, _publish(server, CKPT_FILES), prefix=CKPT_STEM)
    W.download(CKPT_KEY, progress=False)
    hashed = len(hash_calls)
    W.locate_checkpoint(CKPT_KEY)
    W.download(CKPT_KEY, progress=False)  # intact files: neither fetched nor hashed again
    assert len(hash_calls) == hashed and len(server.requests) == 2


def test_an_unwritable_record_still_verifies(clean_env: Path, monkeypatch, hash_calls: list[Path]) -> None:
    def read_only(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(W, "write_text_atomically", read_only)
    _ckpt_set(monkeypatch)
    _write_ckpt(clean_env / CKPT_KEY)
    assert W.locate_checkpoint(CKPT_KEY) == clean_env / CKPT_KEY / CKPT_STEM
    assert W.locate_checkpoint(CKPT_KEY) == clean_env / CKPT_KEY / CKPT_STEM
    assert len(hash_calls) == 4  # verified every time, as nothing could be recorded


def test_generated_test_weights_are_not_hashed(tmp_path: Path, monkeypatch, hash_calls: list[Path]) -> None:
    from haruspex_engine.checkpoints import mark_test_weights

    _ckpt_set(monkeypatch)
    generated = tmp_path / "generated"
    _write_ckpt(generated)
    _same_size_other_content(generated / DATA_NAME)  # random weights in the published layout
    mark_test_weights(generated)
    monkeypatch.setenv(W.CHECKPOINT_ENV, str(generated))
    assert W.locate_checkpoint(CKPT_KEY) == generated / CKPT_STEM  # the loaders refuse them outside the tests
    assert hash_calls == []
