"""MapStreamProtocol: work on the maps of an input SetOfVolumes map by map, also while its producer is still adding
maps to it (Scipion streaming)."""
from __future__ import annotations

import json
from collections.abc import Callable

from pwem.objects import SetOfVolumes, Volume
from pyworkflow.object import Set
from pyworkflow.protocol import STATUS_NEW

from .worker_protocol import HaruspexWorkerProtocol

#: The step that closes a streaming run (its name is how a continued run recognises an earlier streaming run).
CLOSE_STEP = "closeOutputsStep"
#: The first step of every map, whose first argument is the map's id (how a continued run finds the map order).
FIRST_MAP_STEP = "convertInputStep"


class MapStreamProtocol(HaruspexWorkerProtocol):
    """Base of the protocols whose ``inputVolume`` is a Volume or a SetOfVolumes worked on map by map.

    A set that is still open (``isStreamOpen()``: its producer is adding maps) is processed in streaming with
    pyworkflow's own machinery, as pwem's streaming protocols are. The run starts with its last step
    (``closeOutputsStep``, inserted first, with no prerequisite yet, waiting while the set is open) and the steps
    of the maps already in the set.
    Between steps, pyworkflow's step executor calls ``_stepsCheck`` every SCIPION_STEPS_CHECK_SEC seconds (5 by
    default) and keeps the run alive while a step waits: ``_stepsCheck`` reads the input set again, inserts the
    steps of each new map (the last of them becomes a prerequisite of the waiting step) and, once the set is
    closed, releases the waiting step, which runs after every map's steps and closes the outputs. Each map's last
    steps register its results in the output sets at once (``appendToOutputSet``): they grow item by item, each
    item with the id of its input map, and stay open until the end.

    Exactly once: a continued run (after a failure, or a stop while the producer kept adding maps) lays out its
    steps in the order of the earlier run (read from its steps file), then the maps that arrived since, so
    pyworkflow's own comparison of old and new steps finds every finished step and runs none of them again; a
    registration step run again skips the items already registered. A run that started on an open set stays a
    streaming run when continued, even if the set has been closed since.

    Subclasses implement ``_insertMapSteps`` (steps of one map; the first is FIRST_MAP_STEP with the map id as
    first argument) and call ``_insertStreamSteps`` from ``_insertAllSteps`` when ``streamsMaps()``.
    """

    # --------------------------- STEPS functions ----------------------------------------------------------------
    def closeOutputsStep(self):
        """Last step of a streaming run, released once the input set is closed, after the steps of every map:
        close the output sets. A set closed without any map is an error (nothing was produced)."""
        if not self.getInputMaps():
            raise RuntimeError(f"The input set {self.getObjectTag('inputVolume')} was closed without any map: "
                               "there was nothing to process.")
        self._closeOutputSet()

    # --------------------------- streaming ----------------------------------------------------------------------
    def streamsMaps(self) -> bool:
        """Whether this run lays out its steps for streaming: the input set is still open, or an earlier run of
        this protocol (now continued) did so."""
        if not self.isBatch():
            return False
        return self.isInputOpen() or any(step.funcName.get() == CLOSE_STEP for step in self._previousSteps())

    def isInputOpen(self) -> bool:
        """Whether the input is a set its producer may still add maps to (read from its file, not the copy loaded
        with the protocol, which may be older)."""
        return self.isBatch() and self._readInputSet()[1]

    def _insertStreamSteps(self) -> None:
        """The last step (waiting while the input set is open), then the steps of the maps already in the input
        set: first those of an earlier run of this protocol, in its order, then the others by id."""
        present, isOpen = self._readInputSet()
        self._mapLastSteps: dict[int, int] = {}
        self._closeStepIndex = self._insertFunctionStep(CLOSE_STEP, prerequisites=[], wait=isOpen, needsGPU=False)
        earlier = [json.loads(step.argsStr.get())[0] for step in self._previousSteps()
                   if step.funcName.get() == FIRST_MAP_STEP]
        for mapId in [i for i in earlier if i in present] + [i for i in present if i not in earlier]:
            self._addMapSteps(mapId)

    def _insertMapSteps(self, mapId: int) -> int:
        """Insert the steps of the input set's map *mapId* (the first one FIRST_MAP_STEP with *mapId* as its first
        argument, prerequisites given explicitly); return the index of the last one."""
        raise NotImplementedError

    def _addMapSteps(self, mapId: int) -> None:
        last = self._insertMapSteps(mapId)
        self._mapLastSteps[mapId] = last
        self._steps[self._closeStepIndex - 1].addPrerequisites(last)

    def _stepsCheck(self):
        """Called by pyworkflow's step executor between steps: insert the steps of maps new in the input set and,
        once the set is closed, release the last step. Nothing to do for a run that does not stream."""
        if getattr(self, "_closeStepIndex", None) is None or not self.isRunning():
            return
        present, isOpen = self._readInputSet()
        new = [mapId for mapId in present if mapId not in self._mapLastSteps]
        for mapId in new:
            self.info(f"New map in the input set: {mapId}")
            self._addMapSteps(mapId)
        if new:
            self.updateSteps()
        closeStep = self._steps[self._closeStepIndex - 1]
        if not isOpen and closeStep.isWaiting():
            self.info("The input set is closed: the outputs are closed after its last maps.")
            closeStep.setStatus(STATUS_NEW)

    def appendToOutputSet(self, name: str, item, newSet: Callable[[], Set], sources: list = ()) -> None:
        """Register *item* (its id: the input map's) in the output set *name*, made by *newSet* the first time (and
        then derived from the input maps and the other *sources*), and keep the set open; an item already
        registered (a registration step run again) is not added twice."""
        output = getattr(self, name, None)
        first = output is None
        if first:
            output = newSet()
        else:
            output.enableAppend()
        if first or output[item.getObjId()] is None:
            output.append(item)
        self._updateOutputSet(name, output, Set.STREAM_OPEN)
        if first:
            for source in (self.inputVolume, *sources):
                self._defineSourceRelation(source, output)

    def _readInputSet(self) -> tuple[list[int], bool]:
        """(ids of the maps in the input set, whether it is still open), read from the set's file."""
        given = self.inputVolume.get()
        current = type(given)(filename=given.getFileName())
        try:
            current.loadAllProperties()
            return sorted(current.getIdSet()), current.isStreamOpen()
        finally:
            current.close()

    def _previousSteps(self) -> list:
        """The steps of the run this one continues (none for a new run or a restart)."""
        return self.loadSteps() if self.isContinued() else []

    # --------------------------- input maps ---------------------------------------------------------------------
    def isBatch(self) -> bool:
        """Whether the input is a set of maps (worked on map by map) rather than one Volume."""
        return isinstance(self.inputVolume.get(), SetOfVolumes)

    def getInputMaps(self) -> list[Volume]:
        """The maps to work on: the input Volume, or copies of the input set's maps (those it holds now) in id
        order."""
        given = self.inputVolume.get()
        if isinstance(given, SetOfVolumes):
            return [volume.clone() for volume in given.iterItems(orderBy="id")]
        return [given]

    def getInputMap(self, mapId: int | None = None) -> Volume:
        """The input Volume, or the input set's map of id *mapId* (which a set input requires)."""
        given = self.inputVolume.get()
        if not isinstance(given, SetOfVolumes):
            return given
        volume = given[mapId] if mapId is not None else None
        if volume is None:
            raise ValueError(f"{given.getFileName()}: the input set of maps has no map of id {mapId}")
        return volume

    def getSampledInputMap(self, mapId: int | None = None) -> Volume:
        """``getInputMap``, refusing a map without a sampling rate (in streaming, maps arrive after the form was
        validated)."""
        volume = self.getInputMap(mapId)
        if not (volume.getSamplingRate() or 0) > 0:
            name = f"Map {mapId} of the input set" if self.isBatch() else "The input map"
            raise ValueError(f"{name} has no sampling rate: set it (Å/voxel) in the protocol that produced it.")
        return volume

    def getMapFolder(self, mapId: int | None = None) -> str:
        """Folder of one map's files: the extra folder for an input Volume, extra/map_<id> for the input set's map
        of id *mapId*."""
        if not self.isBatch():
            return self._getExtraPath()
        if mapId is None:
            raise ValueError(f"{self.getRunName()} works on a set of maps: its files are per map, in "
                             f"{self._getExtraPath('map_<id>')}")
        return self._getExtraPath(f"map_{self.getInputMap(mapId).getObjId():03d}")

    def mapErrors(self, maps: list[Volume]) -> list[str]:
        """The problems of the input maps *maps* the form can see: an empty set that its producer has closed, maps
        without a sampling rate."""
        errors = []
        if self.isBatch() and not maps and not self.inputVolume.get().isStreamOpen():
            errors.append("The input set of maps is empty.")
        for volume in maps:
            if not (volume.getSamplingRate() or 0) > 0:
                errors.append(f"{self._mapName(volume).capitalize()} has no sampling rate: set it (Å/voxel) when "
                              "importing the map.")
        return errors

    def _mapName(self, volume: Volume) -> str:
        return f"map {volume.getObjId()} of the input set" if self.isBatch() else "the input map"
