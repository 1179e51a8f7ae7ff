"""*annotate map* and *build nucleic acids* scheduled on a SetOfVolumes that its producer is still filling (Scipion
streaming), in a headless project, with the real worker.

The producer is the plugin's *import maps (streaming)* watching a folder, running in its own process
(``streaming_import.start_import``); the test copies map files into the folder over time. The producer takes each
map's id from the digits of its file name (pattern ``map_###.mrc``), so the maps arrive out of id and name order.
The consumer is scheduled with ``project.scheduleProtocol`` as soon as the producer's set exists (with its first
map), and runs in its own process too. One scenario per protocol:

1. the map of id 4 arrives, then, once the consumer has registered it, the map of id 2, and the test waits until
   the consumer has registered it too (its output sets open);
2. with nothing left to do but wait, the consumer is stopped (what the Stop button does; no worker is interrupted,
   so every map's work can be counted) and the map of id 5 arrives while it is stopped (the producer registers
   it); the consumer is continued (Continue) and registers it;
3. the test notes what the consumer has registered, then the map of id 1 arrives and with it the producer's stop
   file: the producer takes map 1 and closes its set, before the map of id 3 the test had planned;
4. the consumer registers map 1, closes its output sets and finishes.

Annotation uses the bundled demo model; building uses the demo detector on simulated maps of ideal RNA strands of
different lengths (``haruspex_engine.testing.oracle_detection example``, the maps the build tests use), refined with
servalcat. Each scenario takes about 1 min on 2 CPU cores, most of it the worker runs (one or three per map).
"""
from __future__ import annotations

import os
import re
import shutil
from functools import partial
from pathlib import Path

import numpy as np
from pwem.objects import AtomStruct, SetOfAtomStructs, SetOfVolumes
from pyworkflow.protocol import STATUS_ABORTED
from pyworkflow.tests import BaseTest, setupTestProject

from haruspex_plugin.constants import (
    BATCH_OUTPUT_NAMES,
    CLASSES,
    NA_BATCH_MAP_OUTPUTS,
    NA_BATCH_MASKED_MAP_OUTPUT,
    NA_BATCH_MODEL_OUTPUT,
    NA_BATCH_MODEL_REFINED_OUTPUT,
)
from haruspex_plugin.protocols import ProtHaruspexAnnotate, ProtHaruspexBuildNucleicAcids
from haruspex_plugin.protocols.map_stream import CLOSE_STEP
from haruspex_plugin.protocols.protocol_import_maps_streaming import OUTPUT_NAME
from haruspex_plugin.tests.helpers import (
    ORIGIN_XYZ,
    VOXEL_SIZE,
    read_mrc,
    synthetic_map,
    write_mrc,
    write_oracle_example,
)
from haruspex_plugin.tests.streaming_import import imported_files, refreshed_run, start_import, wait_for_run
from haruspex_plugin.viewers.viewer_nucleic import build_files

BEFORE_STOP = (4, 2)  # arrive first, in this order
WHILE_STOPPED = 5  # arrives while the consumer is stopped
LAST = 1  # arrives last, just before the producer stops streaming
NEVER_SENT = 3  # planned, but the producer stops streaming first
ARRIVED = {*BEFORE_STOP, WHILE_STOPPED, LAST}
PATTERN = "map_###.mrc"  # the producer reads each map's id from its file name
STOP_FILE = "DONE"  # the producer's stop file
TIMEOUT_S = 300  # for each wait; a map takes 10-20 s on 2 CPU cores


def file_name(mapId: int) -> str:
    """The name under which map *mapId* arrives in the watched folder (its id in the name, as PATTERN reads it)."""
    return f"map_{mapId:03d}.mrc"


class StreamingScenario:
    """The scenario of the module docstring, run once for a consumer protocol (shared by the checks): a mixin of
    BaseTest classes, which give the maps, the consumer, the output sets every map gets an item in, and the worker
    command run per map."""
    SAMPLING: float
    MAP_OUTPUTS: tuple[str, ...]
    WORKER_COMMAND: str

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.maps = cls.writeMaps()
        cls.folder = os.path.abspath(cls.getOutputPath("arriving"))
        os.makedirs(cls.folder)
        cls.producerId = start_import(cls, cls.folder, cls.SAMPLING, filesPattern=PATTERN, endTokenFile=STOP_FILE,
                                      timeout="1h").getObjId()

        cls.send(BEFORE_STOP[0])
        consumer = cls.newConsumer()
        cls.connect(consumer)
        cls.proj.scheduleProtocol(consumer)
        cls.consumerId = consumer.getObjId()
        for count, mapId in enumerate(BEFORE_STOP, start=1):
            if count > 1:
                cls.send(mapId)
            run = cls.waitFor(f"map {mapId} done", lambda r, n=count: cls.settled(r, BEFORE_STOP[:n]))
        cls.openWhileStreaming = all(getattr(run, name).isStreamOpen() for name in cls.MAP_OUTPUTS)
        cls.proj.stopProtocol(run)
        cls.stoppedStatus = cls.refreshed().getStatus()
        cls.workerFilesBeforeStop = {mapId: cls.workerFileTimes(run, mapId) for mapId in BEFORE_STOP}

        cls.send(WHILE_STOPPED)
        cls.proj.launchProtocol(cls.refreshed())  # Continue
        run = cls.waitFor("the map sent while stopped done", lambda r: cls.settled(r, (*BEFORE_STOP, WHILE_STOPPED)))
        cls.registeredAtLastArrival = cls.registered(run)
        cls.send(LAST, wait=False)
        Path(cls.folder, STOP_FILE).touch()  # stop streaming: map NEVER_SENT never comes
        cls.finished = cls.waitFor("the run finished", lambda r: r.isFinished())
        cls.producer = wait_for_run(cls.proj, cls.producerId, "the producer finished", lambda r: r.isFinished(),
                                    TIMEOUT_S)

    # --- set-up helpers -----------------------------------------------------------------------------------------
    @classmethod
    def writeMaps(cls) -> dict[int, tuple[str, tuple[float, float, float]]]:
        """Map id -> (project-relative MRC file, origin (x, y, z) Å) of every planned map."""
        raise NotImplementedError

    @classmethod
    def newConsumer(cls):
        raise NotImplementedError

    @classmethod
    def workerFiles(cls, run, mapId: int) -> list[str]:
        """The files the worker writes last for map *mapId* (rewritten by every worker run on it)."""
        raise NotImplementedError

    @classmethod
    def send(cls, mapId: int, wait: bool = True) -> None:
        """Copy map *mapId* into the watched folder; with *wait*, wait until the producer has registered it."""
        shutil.copyfile(cls.maps[mapId][0], os.path.join(cls.folder, file_name(mapId)))
        if wait:
            wait_for_run(cls.proj, cls.producerId, f"map {mapId} imported",
                         lambda run: mapId in imported_files(run), TIMEOUT_S)

    @classmethod
    def connect(cls, consumer) -> None:
        """Point the consumer's input at the producer's set, as a workflow connects one (to the producer and its
        output's name, ``<producer id>.outputVolumes``)."""
        consumer.inputVolume.set(refreshed_run(cls.proj, cls.producerId))
        consumer.inputVolume.setExtended(OUTPUT_NAME)

    @classmethod
    def refreshed(cls):
        """The consumer run as the project sees it now (updated from its own database, as the GUI does)."""
        return refreshed_run(cls.proj, cls.consumerId)

    @classmethod
    def registered(cls, run) -> set[int]:
        """Ids of the maps with an item in every output set every map gets one in."""
        ids = [{item.getObjId() for item in getattr(run, name)} if run.hasAttribute(name) else set()
               for name in cls.MAP_OUTPUTS]
        return set.intersection(*ids)

    @classmethod
    def settled(cls, run, mapIds) -> bool:
        """Whether the consumer has registered maps *mapIds* and has nothing left to do but wait for more (every
        step finished but the last one, which waits for the input set to close): the moment the test stops it, so
        that no worker is interrupted (an interrupted step is run again by Continue)."""
        steps = run.loadSteps()
        return (cls.registered(run) >= set(mapIds) and bool(steps)
                and all(step.isFinished() for step in steps if step.funcName.get() != CLOSE_STEP))

    @classmethod
    def waitFor(cls, what: str, condition):
        """The refreshed consumer run once *condition* holds for it (``wait_for_run``)."""
        return wait_for_run(cls.proj, cls.consumerId, what, condition, TIMEOUT_S)

    @classmethod
    def workerFileTimes(cls, run, mapId: int) -> dict[str, int]:
        return {path: os.stat(path).st_mtime_ns for path in cls.workerFiles(run, mapId)}

    def workerLaunches(self, mapId: int) -> int:
        """How many times the consumer launched the worker command on map *mapId*: its command lines in the run's
        log (pyworkflow writes each one; a continued run appends to the log)."""
        folder = os.path.abspath(self.finished.getMapFolder(mapId))
        text = Path(self.finished.getStdoutLog()).read_text(errors="replace")
        return sum(f" {self.WORKER_COMMAND} " in line and f" -o {folder} " in line for line in text.splitlines())

    # --- the checks every consumer passes -----------------------------------------------------------------------
    def test_first_maps_were_registered_while_the_set_was_open_before_the_last_map_arrived(self):
        self.assertTrue(self.openWhileStreaming)
        self.assertEqual(self.registeredAtLastArrival, {*BEFORE_STOP, WHILE_STOPPED})

    def test_every_map_that_arrived_is_registered_once_under_its_own_id(self):
        for name in self.MAP_OUTPUTS:
            with self.subTest(output=name):
                items = [item.getObjId() for item in getattr(self.finished, name)]
                self.assertEqual(sorted(items), sorted(ARRIVED))
                self.assertEqual(getattr(self.finished, name).getSize(), len(ARRIVED))

    def test_stopped_mid_stream_then_continued_every_map_was_processed_exactly_once(self):
        self.assertEqual(self.stoppedStatus, STATUS_ABORTED)
        self.assertEqual({mapId: self.workerLaunches(mapId) for mapId in sorted(ARRIVED)},
                         dict.fromkeys(sorted(ARRIVED), 1))
        for mapId, times in self.workerFilesBeforeStop.items():
            self.assertEqual(self.workerFileTimes(self.finished, mapId), times, mapId)

    def test_the_producer_registered_the_maps_in_arrival_order_under_their_file_ids(self):
        self.assertEqual(imported_files(self.producer), {mapId: file_name(mapId) for mapId in ARRIVED})
        log = Path(self.producer.getStdoutLog()).read_text(errors="replace")
        self.assertEqual([int(mapId) for mapId in re.findall(r"^Map (\d+): ", log, re.MULTILINE)],
                         [*BEFORE_STOP, WHILE_STOPPED, LAST])

    def test_stop_streaming_closes_the_outputs_with_the_maps_that_arrived(self):
        self.assertTrue(getattr(self.producer, OUTPUT_NAME).isStreamClosed())
        self.assertTrue(self.finished.isFinished(), self.finished.getStatus())
        self.assertNotIn(NEVER_SENT, self.registered(self.finished))
        for name, output in self.finished.iterOutputAttributes():
            self.assertTrue(output.isStreamClosed(), name)
        self.assertFalse(os.path.exists(self.finished._getExtraPath(f"map_{NEVER_SENT:03d}")))

    def test_outputs_derive_from_the_stream(self):
        for name, output in self.finished.iterOutputAttributes():
            parents = self.proj.getSourceParents(output)  # the relation keeps the input pointer: producer + name
            self.assertEqual([p.getObjId() for p in parents], [self.producerId], name)

    def assertConvertedInputIsTheMapSent(self, mapId: int, convertedPath: str) -> None:
        """The worker's input for map *mapId* holds the density of the file sent under that id."""
        sent = read_mrc(self.maps[mapId][0])[0]
        np.testing.assert_allclose(read_mrc(convertedPath)[0], sent, atol=1e-6, err_msg=f"map {mapId}")


class TestAnnotateStreaming(StreamingScenario, BaseTest):
    """*annotate map* (demo model) on the stream."""
    SAMPLING = VOXEL_SIZE
    MAP_OUTPUTS = tuple(BATCH_OUTPUT_NAMES.values())
    WORKER_COMMAND = "annotate"

    @classmethod
    def writeMaps(cls):
        os.makedirs(cls.getOutputPath("maps"), exist_ok=True)
        return {mapId: (os.path.relpath(write_mrc(cls.getOutputPath("maps", f"map_{mapId}.mrc"),
                                                  synthetic_map(seed=10 + mapId))), ORIGIN_XYZ)
                for mapId in (*ARRIVED, NEVER_SENT)}

    @classmethod
    def newConsumer(cls):
        return cls.newProtocol(ProtHaruspexAnnotate, useDemoModel=True, useGpu=False)

    @classmethod
    def workerFiles(cls, run, mapId):
        return [run.getSummaryPath(mapId)]

    def test_each_item_is_the_annotation_of_its_own_map(self):
        for mapId in sorted(ARRIVED):
            with self.subTest(map=mapId):
                self.assertConvertedInputIsTheMapSent(mapId, self.finished.getInputMapPath(mapId))
                self.assertEqual(Path(self.finished.getInputMapPath(mapId)).name, file_name(mapId))
                items = {name: getattr(self.finished, name)[mapId] for name in self.MAP_OUTPUTS}
                for item in items.values():
                    self.assertTrue(os.path.samefile(os.path.dirname(item.getFileName()),
                                                     self.finished.getMapFolder(mapId)))
                    self.assertEqual(item.getSamplingRate(), VOXEL_SIZE)
                    np.testing.assert_allclose(item.getOrigin(force=True).getShifts(), ORIGIN_XYZ)
                probabilities = np.stack([read_mrc(items[BATCH_OUTPUT_NAMES[c]].getFileName())[0] for c in CLASSES])
                np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
                summary = self.finished.getWorkerSummary(mapId)
                self.assertTrue(any(w.startswith("DEMO MODEL") for w in summary["warnings"]), summary["warnings"])

    def test_a_map_registered_again_is_not_added_twice(self):
        prot = self.newProtocol(ProtHaruspexAnnotate, useDemoModel=True, useGpu=False)
        self.connect(prot)
        self.proj.saveProtocol(prot)
        prot.makePathsAndClean()
        item = getattr(self.producer, OUTPUT_NAME)[LAST].clone()
        for _ in range(2):  # a registration step run again by a continued run
            prot.appendToOutputSet("outputTest", item.clone(), partial(prot._createSetOfVolumes, "Test"))
        self.assertEqual([volume.getObjId() for volume in prot.outputTest], [LAST])
        self.assertTrue(prot.outputTest.isStreamOpen())

    def test_outputs_are_sets_of_volumes_and_the_summary_counts_every_map(self):
        for name in self.MAP_OUTPUTS:
            self.assertIsInstance(getattr(self.finished, name), SetOfVolumes)
            self.assertEqual(getattr(self.finished, name).getSamplingRate(), VOXEL_SIZE)
        text = "\n".join(self.finished.summary())
        self.assertIn(f"{len(ARRIVED)} of {len(ARRIVED)} maps annotated", text)
        self.assertNotIn("still open", text)


#: Strands of different lengths: each map's grid, and so each map's results, differ.
SEQUENCES = {4: "GGCAUC", 2: "GGCAUCAG", 5: "GCAUCAGUCC", 1: "GGCAUCAGUCCA", 3: "GGAUCCA"}


class TestBuildNucleicAcidsStreaming(StreamingScenario, BaseTest):
    """*build nucleic acids* (demo detector, refinement on) on the stream."""
    SAMPLING = 1.0
    MAP_OUTPUTS = (*NA_BATCH_MAP_OUTPUTS.values(), NA_BATCH_MASKED_MAP_OUTPUT)
    WORKER_COMMAND = "detect-na"

    @classmethod
    def writeMaps(cls):
        os.makedirs(cls.getOutputPath("maps"), exist_ok=True)
        maps = {}
        for mapId, sequence in SEQUENCES.items():
            path = cls.getOutputPath("maps", f"map_{mapId}.mrc")
            write_oracle_example(cls.getOutputPath("maps", f"map_{mapId}.cif"), path, "--sequence", sequence)
            maps[mapId] = (os.path.relpath(path), read_mrc(path)[2])
        return maps

    @classmethod
    def newConsumer(cls):
        return cls.newProtocol(ProtHaruspexBuildNucleicAcids, resolution=3.5, useDemoModel=True, useGpu=False,
                               traceSolutions=100, traceTimeLimit=30.0, assignTimeLimit=10.0)

    @classmethod
    def workerFiles(cls, run, mapId):
        return [run.getDetectionSummaryPath(mapId), run.getBuildReportPath(mapId)]

    def test_each_item_is_the_build_of_its_own_map(self):
        shapes = set()
        for mapId in sorted(ARRIVED):
            with self.subTest(map=mapId):
                self.assertConvertedInputIsTheMapSent(mapId, self.finished.getInputMapPath(mapId))
                grid = self.finished.getDetectionSummary(mapId)["working_grid"]
                shapes.add(tuple(grid["shape_zyx"]))
                for name in self.MAP_OUTPUTS:
                    item = getattr(self.finished, name)[mapId]
                    self.assertTrue(os.path.samefile(os.path.dirname(item.getFileName()),
                                                     self.finished.getMapFolder(mapId)), name)
                    np.testing.assert_allclose(item.getOrigin(force=True).getShifts(), grid["origin_xyz"])
                    self.assertEqual(read_mrc(item.getFileName())[0].shape, tuple(grid["shape_zyx"]), name)
        self.assertEqual(len(shapes), len(ARRIVED))  # the maps are told apart by their grids

    def test_models_are_registered_for_the_maps_where_one_was_built_and_refined(self):
        built = {mapId for mapId in ARRIVED if self.finished.getBuildReport(mapId)["residues"] > 0}
        self.assertTrue(built)  # the demo detector finds part of each strand
        for name in (NA_BATCH_MODEL_OUTPUT, NA_BATCH_MODEL_REFINED_OUTPUT):
            with self.subTest(output=name):
                models = getattr(self.finished, name)
                self.assertIsInstance(models, SetOfAtomStructs)
                self.assertEqual({model.getObjId() for model in models}, built)
                for mapId in built:
                    model = models[mapId]
                    self.assertIsInstance(model, AtomStruct)
                    self.assertTrue(os.path.isfile(model.getFileName()))
                    self.assertTrue(os.path.samefile(model.getVolume().getFileName().replace(":mrc", ""),
                                                     os.path.join(self.folder, file_name(mapId))))
        text = "\n".join(self.finished.summary())
        self.assertIn(f"{len(ARRIVED)} of {len(ARRIVED)} maps built", text)
        self.assertNotIn("still open", text)
        self.assertIn(f"Refined with servalcat: the models of {len(built)} map", text)
        self.assertIn("demo detection network", "\n".join(self.finished.methods()))

    def test_the_single_map_viewer_says_the_files_are_per_map(self):
        with self.assertRaisesRegex(ValueError, "works on a set of maps: its files are per map"):
            build_files(self.finished)
