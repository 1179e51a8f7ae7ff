"""*import maps (streaming)*: the rules by which it takes files from the watched folder (MapFolderWatch and the
header check, on files with a simulated clock: no waiting), then the protocol itself running in a headless project
while the test writes files into their folders (about 20 s: four runs at once, polling every second).
"""
from __future__ import annotations

import os
import tempfile
import time
import unittest
from pathlib import Path

import mrcfile
import numpy as np
from pwem.objects import SetOfVolumes
from pyworkflow.protocol import STATUS_ABORTED
from pyworkflow.tests import BaseTest, setupTestProject

from haruspex_plugin.map_header import MapFileError, read_map_header
from haruspex_plugin.protocols import ProtHaruspexImportMapsStreaming
from haruspex_plugin.protocols.map_folder_watch import STOPPED, TIMED_OUT, MapFolderWatch
from haruspex_plugin.protocols.protocol_import_maps_streaming import OUTPUT_NAME, duration_seconds
from haruspex_plugin.tests.helpers import read_mrc, write_mrc
from haruspex_plugin.tests.streaming_import import imported_files, refreshed_run, start_import, wait_for_run

SHAPE_ZYX = (12, 10, 8)
FILE_TIMEOUT_S = 5.0
TIMEOUT_S = 60.0


def map_bytes(origin=(0.0, 0.0, 0.0), seed: int = 0) -> bytes:
    """The bytes of a small MRC map (1.5 Å voxels)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "map.mrc")
        write_mrc(path, np.random.default_rng(seed).random(SHAPE_ZYX, dtype=np.float32), 1.5, origin)
        return Path(path).read_bytes()


class Clock:
    """A settable clock for MapFolderWatch, with the files' modification times set on it."""

    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def write(self, path: str, data: bytes, append: bool = False) -> str:
        """Write (or append) *data* to *path*, modified now."""
        with open(path, "ab" if append else "wb") as stream:
            stream.write(data)
        os.utime(path, (self.now, self.now))
        return path


class TestMapFolderWatch(unittest.TestCase):
    """Which files the watch takes, skips or waits for, and when it is over."""

    def setUp(self):
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.folder = folder.name
        self.clock = Clock()
        self.watch = MapFolderWatch(FILE_TIMEOUT_S, TIMEOUT_S, now=self.clock)

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def poll(self, *names: str, after_s: float = FILE_TIMEOUT_S):
        """Advance the clock by *after_s* and poll the files *names*: (taken, skipped, waiting) names."""
        self.clock.now += after_s
        found = self.watch.poll([self.path(name) for name in names])
        return ([os.path.basename(p) for p, _ in found.ready], [os.path.basename(p) for p, _ in found.skipped],
                [os.path.basename(p) for p in found.waiting])

    def test_a_file_is_taken_only_once_its_size_was_the_same_at_two_polls(self):
        data = map_bytes()
        self.clock.write(self.path("a.mrc"), data[:3000])
        self.assertEqual(self.poll("a.mrc"), ([], [], ["a.mrc"]))  # first seen
        self.clock.write(self.path("a.mrc"), data[3000:], append=True)
        self.assertEqual(self.poll("a.mrc"), ([], [], ["a.mrc"]))  # grew since
        taken, skipped, waiting = self.poll("a.mrc")
        self.assertEqual((taken, skipped, waiting), (["a.mrc"], [], []))
        self.assertEqual(self.poll("a.mrc"), ([], [], []))  # taken once

    def test_a_complete_file_written_just_now_waits_for_the_file_timeout(self):
        self.clock.write(self.path("a.mrc"), map_bytes())
        self.assertEqual(self.poll("a.mrc", after_s=1.0), ([], [], ["a.mrc"]))
        self.assertEqual(self.poll("a.mrc", after_s=1.0), ([], [], ["a.mrc"]))  # same size, 2 s old
        self.assertEqual(self.poll("a.mrc", after_s=FILE_TIMEOUT_S)[0], ["a.mrc"])

    def test_a_stable_file_shorter_than_its_header_says_is_skipped_until_it_changes(self):
        data = map_bytes()
        self.clock.write(self.path("a.mrc"), data[:-100])  # a copy that stalled
        self.poll("a.mrc")
        found = self.watch.poll([self.path("a.mrc")])
        self.assertEqual(len(found.skipped), 1)
        self.assertIn("incomplete", found.skipped[0][1])
        self.assertEqual(self.poll("a.mrc"), ([], [], []))  # reported once, not taken
        self.clock.write(self.path("a.mrc"), data[-100:], append=True)  # the copy resumes
        self.assertEqual(self.poll("a.mrc"), ([], [], ["a.mrc"]))
        self.assertEqual(self.poll("a.mrc")[0], ["a.mrc"])

    def test_a_file_that_is_not_a_map_is_skipped_once_and_never_taken(self):
        self.clock.write(self.path("notes.mrc"), b"not a map\n" * 200)
        self.clock.write(self.path("b.mrc"), map_bytes())
        self.poll("notes.mrc", "b.mrc")
        found = self.watch.poll([self.path("notes.mrc"), self.path("b.mrc")])
        self.assertEqual([os.path.basename(p) for p, _ in found.ready], ["b.mrc"])
        self.assertEqual([os.path.basename(p) for p, _ in found.skipped], ["notes.mrc"])
        self.assertIn("not a readable MRC/CCP4 map", found.skipped[0][1])
        for _ in range(3):
            self.assertEqual(self.poll("notes.mrc", "b.mrc"), ([], [], []))

    def test_the_stop_request_ends_the_watch_once_no_file_is_waiting(self):
        self.clock.write(self.path("a.mrc"), map_bytes())
        self.poll("a.mrc")
        self.assertIsNone(self.watch.finished(stopRequested=True))  # a.mrc is still waiting
        self.assertEqual(self.poll("a.mrc")[0], ["a.mrc"])
        self.assertEqual(self.watch.finished(stopRequested=True), STOPPED)
        self.assertIsNone(self.watch.finished(stopRequested=False))

    def test_the_timeout_ends_the_watch_when_no_new_file_came_for_it(self):
        self.clock.write(self.path("a.mrc"), map_bytes())
        self.poll("a.mrc")
        self.poll("a.mrc")  # taken
        self.poll("a.mrc", after_s=TIMEOUT_S - 1)
        self.assertIsNone(self.watch.finished(stopRequested=False))
        self.clock.write(self.path("b.mrc"), map_bytes())  # new: the timeout starts again
        self.assertEqual(self.poll("a.mrc", "b.mrc", after_s=2)[2], ["b.mrc"])
        self.clock.now += TIMEOUT_S - 1
        self.assertIsNone(self.watch.finished(stopRequested=False))  # b.mrc waits
        self.poll("a.mrc", "b.mrc", after_s=0)  # b.mrc taken: last activity now
        self.clock.now += TIMEOUT_S
        self.assertEqual(self.watch.finished(stopRequested=False), TIMED_OUT)

    def test_files_taken_by_an_earlier_run_are_not_taken_again(self):
        self.clock.write(self.path("a.mrc"), map_bytes())
        self.clock.write(self.path("b.mrc"), map_bytes())
        watch = MapFolderWatch(FILE_TIMEOUT_S, TIMEOUT_S, taken=[self.path("a.mrc")], now=self.clock)
        for _ in range(2):
            self.clock.now += FILE_TIMEOUT_S
            found = watch.poll([self.path("a.mrc"), self.path("b.mrc")])
        self.assertEqual([os.path.basename(p) for p, _ in found.ready], ["b.mrc"])


class TestMapHeader(unittest.TestCase):
    """The header check of the files taken."""

    def setUp(self):
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.folder = folder.name

    def test_a_map_header_gives_its_grid_and_first_voxel_position(self):
        path = os.path.join(self.folder, "a.mrc")
        with mrcfile.new(path) as mrc:
            mrc.set_data(np.zeros(SHAPE_ZYX, np.float32))
            mrc.voxel_size = 1.5
            mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = 2, 4, 6
        header = read_map_header(path)
        self.assertEqual(header.shape_xyz, SHAPE_ZYX[::-1])
        self.assertEqual(header.first_voxel_position(2.0), (4.0, 8.0, 12.0))  # origin 0: nstart x sampling
        write_mrc(path, np.zeros(SHAPE_ZYX, np.float32), 1.5, (3.0, -1.0, 0.0))
        self.assertEqual(read_map_header(path).first_voxel_position(2.0), (3.0, -1.0, 0.0))

    def test_compressed_and_two_dimensional_files_are_refused(self):
        import gzip

        path = os.path.join(self.folder, "a.mrc")
        Path(path).write_bytes(gzip.compress(map_bytes()))
        with self.assertRaisesRegex(MapFileError, "gzip-compressed"):
            read_map_header(path)
        write_mrc(path, np.zeros((1, 10, 8), np.float32), 1.5)
        with self.assertRaisesRegex(MapFileError, "not a 3-D map"):
            read_map_header(path)


class TestDurations(unittest.TestCase):
    def test_durations_are_read_as_pwem_writes_them(self):
        self.assertEqual([duration_seconds(text) for text in ("12h", "30", "1m 30s", "0.5m", "1d")],
                         [43200, 30, 90, 30, 86400])
        for text in ("", "soon", "1m30s", "-5", "1 m"):
            with self.subTest(text=text), self.assertRaises(ValueError):
                duration_seconds(text)


class TestImportMapsStreamingRuns(BaseTest):
    """Four runs in a project, at once, each in its own process, while the test writes files into their folders:

    - "stop file" (file timeout 3 s): a map there before the start, a text file matching the pattern, a map
      written in two parts two polls apart; then the stop file;
    - "timeout" (5 s, maps copied with their origin at the box centre): a map, then the run is stopped (Stop) and
      a second map arrives; continued, it takes the second map only, then closes its set after the timeout;
    - "STOP STREAMING": a map, then the GUI's action on the running protocol;
    - "no map": an empty folder with the stop file already there.
    """

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.stopFolder, cls.timeoutFolder, guiFolder, emptyFolder = (
            os.path.abspath(cls.getOutputPath(name)) for name in ("stop", "timeout", "gui", "empty"))
        for folder in (cls.stopFolder, cls.timeoutFolder, guiFolder, emptyFolder):
            os.makedirs(folder)
        Path(guiFolder, "only.mrc").write_bytes(map_bytes(seed=5))
        Path(emptyFolder, "DONE").touch()
        emptyRun = cls.newProtocol(ProtHaruspexImportMapsStreaming, filesPath=emptyFolder, samplingRate=1.0,
                                   endTokenFile="DONE")
        cls.proj.launchProtocol(emptyRun, wait=False)
        cls.guiId = start_import(cls, guiFolder, 1.0).getObjId()
        Path(cls.stopFolder, "first.mrc").write_bytes(map_bytes((1.0, 2.0, 3.0), seed=1))
        Path(cls.stopFolder, "notes.mrc").write_text("not a map\n" * 200)
        stopRun = start_import(cls, cls.stopFolder, 1.5, filesPattern="*.mrc", endTokenFile="DONE",
                               fileTimeout="3")
        timeoutRun = start_import(cls, cls.timeoutFolder, 2.0, filesPattern="map_*.mrc", timeout="5",
                                  originFrom=ProtHaruspexImportMapsStreaming.ORIGIN_CENTRE, copyFiles=True)
        cls.stopId, cls.timeoutId = stopRun.getObjId(), timeoutRun.getObjId()

        Path(cls.timeoutFolder, "map_1.mrc").write_bytes(map_bytes(seed=3))
        cls.wait(cls.timeoutId, "map_1.mrc registered", lambda run: len(imported_files(run)) == 1)
        cls.proj.stopProtocol(cls.current(cls.timeoutId))
        cls.stoppedStatus = cls.current(cls.timeoutId).getStatus()
        Path(cls.timeoutFolder, "map_2.mrc").write_bytes(map_bytes(seed=4))
        cls.proj.launchProtocol(cls.current(cls.timeoutId))  # Continue

        cls.wait(cls.stopId, "first.mrc registered", lambda run: len(imported_files(run)) == 1)
        second = map_bytes(seed=2)
        with open(os.path.join(cls.stopFolder, "second.mrc"), "wb") as stream:
            stream.write(second[:2000])
            stream.flush()
            time.sleep(2)  # two polls see second.mrc half written (and not older than its file timeout, 3 s)
            cls.registeredWhileHalfWritten = imported_files(cls.current(cls.stopId))
            stream.write(second[2000:])
        Path(cls.stopFolder, "DONE").touch()

        running = cls.wait(cls.guiId, "only.mrc registered", lambda run: len(imported_files(run)) == 1)
        cls.guiActions = dict(running.getActions())
        cls.guiActions["STOP STREAMING"](None)

        cls.stopped = cls.wait(cls.stopId, "the stop file run finished", lambda run: run.isFinished())
        cls.timedOut = cls.wait(cls.timeoutId, "the timeout run finished", lambda run: run.isFinished())
        cls.guiStopped = cls.wait(cls.guiId, "the STOP STREAMING run finished", lambda run: run.isFinished())
        cls.noMap = cls.wait(emptyRun.getObjId(), "the run without maps failed", lambda run: run.isFailed())

    @classmethod
    def current(cls, runId: int):
        return refreshed_run(cls.proj, runId)

    @classmethod
    def wait(cls, runId: int, what: str, condition):
        return wait_for_run(cls.proj, runId, what, condition, timeout_s=120)

    def log(self, run) -> str:
        return Path(run.getStdoutLog()).read_text(errors="replace")

    def test_the_stop_file_closes_the_set_with_the_complete_maps(self):
        volumes = getattr(self.stopped, OUTPUT_NAME)
        self.assertIsInstance(volumes, SetOfVolumes)
        self.assertTrue(volumes.isStreamClosed())
        self.assertEqual(imported_files(self.stopped), {1: "first.mrc", 2: "second.mrc"})
        self.assertEqual(self.registeredWhileHalfWritten, {1: "first.mrc"})
        self.assertIn("stop asked for", self.log(self.stopped))

    def test_items_link_the_maps_with_the_sampling_and_the_header_origin(self):
        first = getattr(self.stopped, OUTPUT_NAME)[1]
        self.assertEqual(first.getSamplingRate(), 1.5)
        np.testing.assert_allclose(first.getOrigin(force=True).getShifts(), (1.0, 2.0, 3.0))
        path = first.getFileName().replace(":mrc", "")
        self.assertTrue(os.path.islink(path))
        self.assertTrue(os.path.samefile(path, os.path.join(self.stopFolder, "first.mrc")))
        self.assertEqual(read_mrc(path)[0].shape, SHAPE_ZYX)

    def test_a_file_that_is_not_a_map_is_reported_and_not_registered(self):
        self.assertNotIn("notes.mrc", imported_files(self.stopped).values())
        log = self.log(self.stopped)
        self.assertEqual(log.count("Skipped"), 1, log)
        self.assertIn(f"Skipped {os.path.join(self.stopFolder, 'notes.mrc')}: not a readable MRC/CCP4 map", log)

    def test_the_timeout_closes_the_set_and_a_continued_run_registers_each_map_once(self):
        self.assertEqual(self.stoppedStatus, STATUS_ABORTED)
        volumes = getattr(self.timedOut, OUTPUT_NAME)
        self.assertTrue(volumes.isStreamClosed())
        self.assertEqual(imported_files(self.timedOut), {1: "map_1.mrc", 2: "map_2.mrc"})
        log = self.log(self.timedOut)
        self.assertIn("Continuing: 1 maps are already in the set.", log)
        self.assertIn("no new file for the timeout", log)

    def test_copies_carry_the_sampling_and_the_origin_chosen(self):
        for volume in getattr(self.timedOut, OUTPUT_NAME):
            path = volume.getFileName().replace(":mrc", "")
            self.assertFalse(os.path.islink(path))
            centre = tuple(-n / 2 * 2.0 for n in SHAPE_ZYX[::-1])
            np.testing.assert_allclose(volume.getOrigin(force=True).getShifts(), centre)
            _, voxel, origin = read_mrc(path)
            np.testing.assert_allclose(voxel, (2.0, 2.0, 2.0))
            np.testing.assert_allclose(origin, centre)

    def test_stop_streaming_in_the_gui_closes_the_set(self):
        self.assertEqual(list(self.guiActions), ["STOP STREAMING"])
        self.assertEqual(self.guiStopped.getActions(), [])  # offered only while the run runs
        self.assertTrue(getattr(self.guiStopped, OUTPUT_NAME).isStreamClosed())
        self.assertEqual(imported_files(self.guiStopped), {1: "only.mrc"})
        self.assertIn("stop asked for", self.log(self.guiStopped))

    def test_a_run_that_ends_without_any_map_fails_saying_so(self):
        self.assertIn("No map arrived in", self.noMap.getErrorMessage())
        self.assertFalse(self.noMap.hasAttribute(OUTPUT_NAME))

    def test_the_form_refuses_a_missing_folder_and_bad_durations(self):
        prot = self.newProtocol(ProtHaruspexImportMapsStreaming, filesPath=os.path.join(self.stopFolder, "no"),
                                samplingRate=1.0, timeout="soon", endTokenFile="a/b")
        errors = "\n".join(prot.validate())
        self.assertIn("no such folder", errors)
        self.assertIn("Timeout: 'soon' is not a duration", errors)
        self.assertIn("must be a file name in the maps folder", errors)
