"""A virtual X display (Xvfb) for the GUI tests, and screenshots of Tk windows on it.

Debian's ``xvfb`` package provides Xvfb; when it is missing and the tests run as root where apt-get exists (as in
CI), :func:`xvfb_problem` installs it. Screenshots are taken with Pillow's ImageGrab on the X display.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

XVFB = "Xvfb"
SCREEN = "1600x1200x24"
_APT_INSTALL = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "xvfb"]


def xvfb_problem() -> str | None:
    """Why no virtual display can be started here (None when Xvfb is available, after installing it as root)."""
    if shutil.which(XVFB):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "Xvfb is not installed and cannot be installed here (needs root and apt-get): apt-get install xvfb"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for commands in ([_APT_INSTALL], [["apt-get", "update", "-q"], _APT_INSTALL]):
        if all(subprocess.run(c, env=env, capture_output=True).returncode == 0 for c in commands):
            break
    return None if shutil.which(XVFB) else "Xvfb could not be installed with `apt-get install xvfb`"


class VirtualDisplay:
    """An Xvfb server on a free display number, started on entering and stopped on leaving (``with``)."""

    def __init__(self) -> None:
        self.name = ""
        self._server: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # Xvfb's messages (a pipe left unread could fill up and block it)

    def __enter__(self) -> VirtualDisplay:
        read_end, write_end = os.pipe()
        try:
            # -displayfd: Xvfb picks a free display number and writes it to that descriptor once it accepts clients.
            self._server = subprocess.Popen([XVFB, "-displayfd", str(write_end), "-screen", "0", SCREEN,
                                             "-nolisten", "tcp", "-noreset"], pass_fds=[write_end],
                                            stdout=subprocess.DEVNULL, stderr=self._log)
            os.close(write_end)
            announced = b""
            while not announced.endswith(b"\n"):  # read the whole line: Xvfb dies if it cannot write all of it
                chunk = os.read(read_end, 32)
                if not chunk:
                    break
                announced += chunk
        finally:
            os.close(read_end)
        if not announced.strip():
            self._server.wait(timeout=10)
            self._log.seek(0)
            raise RuntimeError(f"Xvfb did not start: {self._log.read().decode(errors='replace')[-500:]}")
        self.name = f":{announced.decode().strip()}"
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.terminate()
        self._server.wait(timeout=10)
        self._log.close()


def grab_window(window, display: str, path: str | os.PathLike) -> Path:
    """Show the Tk toplevel *window* on *display*, save a PNG of exactly its area at *path* and return the path."""
    from PIL import ImageGrab

    window.deiconify()
    window.update()
    x, y = window.winfo_rootx(), window.winfo_rooty()
    image = ImageGrab.grab(bbox=(x, y, x + window.winfo_width(), y + window.winfo_height()), xdisplay=display)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
