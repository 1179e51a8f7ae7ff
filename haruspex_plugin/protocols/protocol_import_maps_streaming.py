"""ProtHaruspexImportMapsStreaming: import the maps that appear in a folder, one by one while the protocol runs, into
an open SetOfVolumes (Scipion streaming), for protocols downstream to process each map as it arrives.

pwem's *import volumes* reads its folder once; its streaming imports (movies, micrographs) do not take volumes.
This protocol follows their pattern: one step polls the folder every SCIPION_EM_NEW_FILE_CHECK_SEC seconds (pwem's
setting, 10 by default), links (or copies) each new complete map into the run's extra folder and registers it at
once in ``outputVolumes``, kept open (``STREAM_OPEN``). It closes the set (``STREAM_CLOSED``) and finishes when
no new file has appeared for the timeout, when the stop file appears in the folder (an acquisition pipeline's
"done"), or at *STOP STREAMING* (right-click on the running protocol, as on pwem's imports). Files still changing
delay all three. Which files are complete, and which are skipped as unusable, is decided by ``MapFolderWatch``.

Parameter names are those of pwem's imports (``filesPath``, ``filesPattern``, ``copyFiles``, ``samplingRate``, the
origin's ``x``/``y``/``z``, ``timeout``, ``fileTimeout``), so workflows read alike. The set exists from the first
map on (as with pwem's imports): protocols connected to it before wait for it (Schedule).

*Stop* (not *STOP STREAMING*) kills the run and leaves the set open, as with pwem's imports; *Continue* watches the
folder again, without registering again the maps already in the set. A run that ends before any map arrived
fails, saying so (there is no set for the protocols downstream: Scipion cannot store an empty set).
"""
from __future__ import annotations

import os
import re
import shutil
import time

import mrcfile
import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem import Config as EmConfig
from pwem.objects import SetOfVolumes, Transform, Volume
from pwem.protocols import ProtImportFiles
from pyworkflow.constants import BETA
from pyworkflow.object import Set

from ..map_header import MapHeader
from .map_folder_watch import MapFolderWatch

OUTPUT_NAME = "outputVolumes"
#: How the origin of each map is set (choices of ``originFrom``, in order).
ORIGIN_CHOICES = ("from the file header", "centre of the box", "given coordinates")
#: Written in the extra folder by STOP STREAMING (pwem's imports use the same name).
STOP_STREAMING_FILE = "STOP_STREAMING.TXT"
#: A duration as pwem's imports take it: numbers with an optional unit d, h, m or s (seconds), space-separated.
DURATION = re.compile(r"(\d+(?:\.\d*)?)([dhms]?)")
DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}
#: Relative difference between a header's voxel size and the sampling rate given that is worth a note in the log.
VOXEL_NOTE_TOLERANCE = 1e-3


def duration_seconds(text: str) -> float:
    """Seconds in a duration such as "12h", "30", "1m 30s" (pwem's format); ValueError for anything else."""
    parts = text.split()
    matches = [DURATION.fullmatch(part) for part in parts]
    if not parts or not all(matches):
        raise ValueError(f"'{text}' is not a duration: use numbers with an optional unit d, h, m or s (seconds), "
                         "e.g. 12h, 30, 1m 30s")
    return sum(float(m.group(1)) * DURATION_UNITS[m.group(2)] for m in matches)


class ProtHaruspexImportMapsStreaming(ProtImportFiles):
    """Imports the maps that appear in a folder while the protocol runs, each as soon as its file is complete, into
    a set of volumes that stays open (streaming): protocols connected to it (annotate map, build nucleic acids)
    process each map as it arrives. The set is closed when no new map has come for the timeout, when the stop file
    appears in the folder, or with STOP STREAMING. Files that are not readable maps are reported in the log and
    skipped.
    """
    _label = "import maps (streaming)"
    _devStatus = BETA
    _possibleOutputs = {OUTPUT_NAME: SetOfVolumes}
    ORIGIN_HEADER, ORIGIN_CENTRE, ORIGIN_GIVEN = range(len(ORIGIN_CHOICES))

    # --------------------------- DEFINE param functions ---------------------------------------------------------
    def _defineParams(self, form):
        form.addSection(label="Import")
        form.addParam("filesPath", params.PathParam, important=True,
                      label="Maps folder",
                      help="The folder where the maps arrive (e.g. where a refinement or classification pipeline "
                           "writes them). It may be empty when the protocol starts.")
        form.addParam("filesPattern", params.StringParam, default="*.mrc",
                      label="Map file pattern",
                      help="Which files of the folder are maps: a pattern with * and ?, e.g. *.mrc or "
                           "run_class*.mrc. Digits marked with # give the map's id in the set (run_it###.mrc: "
                           "run_it025.mrc is map 25); without #, maps are numbered as they arrive.")
        form.addParam("samplingRate", params.FloatParam, validators=[params.Positive],
                      label=pwutils.Message.LABEL_SAMP_RATE,
                      help="Voxel size of every map, in Å (the file headers are not used for it; a header that "
                           "says otherwise is noted in the log).")
        form.addParam("originFrom", params.EnumParam, choices=list(ORIGIN_CHOICES), default=self.ORIGIN_HEADER,
                      label="Origin of coordinates",
                      help="from the file header: each map keeps the position its header gives (the origin, or "
                           "the start indices times the voxel size when the origin is 0), so it overlays the "
                           "models built in it.\n"
                           "centre of the box: the origin at the centre of each map, as pwem's import volumes "
                           "sets it by default.\n"
                           "given coordinates: the map centre coordinates x, y, z in Å, as in pwem's import "
                           "volumes (Set origin of coordinates).")
        line = form.addLine("Offset", condition=f"originFrom == {self.ORIGIN_GIVEN}",
                            help="Coordinates of the map centre, in Å (pixels × sampling), for every map.")
        line.addParam("x", params.FloatParam, default=0.0, label="x")
        line.addParam("y", params.FloatParam, default=0.0, label="y")
        line.addParam("z", params.FloatParam, default=0.0, label="z")
        form.addParam("copyFiles", params.BooleanParam, default=False, expertLevel=params.LEVEL_ADVANCED,
                      label="Copy files?",
                      help="By default each map is linked into the project, not copied. A copy gets the sampling "
                           "rate and origin above written into its header.")

        form.addSection(label="Streaming")
        form.addParam("timeout", params.StringParam, default="12h",
                      label="Timeout",
                      help="The set is closed and the protocol finishes when no new file has appeared for this "
                           "long. Durations: 12h, 30m, 45s or 90 (seconds), 1h 30m.")
        form.addParam("fileTimeout", params.StringParam, default="30",
                      label="File timeout",
                      help="A map is taken once its file has not changed for this long (and its size did not "
                           "change between two checks of the folder, and its header announces no more data than "
                           "the file holds). Same format as the timeout.")
        form.addParam("endTokenFile", params.StringParam, default=STOP_STREAMING_FILE, allowsNull=True,
                      label="Stop file",
                      help="When a file of this name appears in the maps folder, the protocol takes the maps that "
                           "are there, closes the set and finishes. Empty: no stop file. The folder is checked "
                           f"every SCIPION_EM_NEW_FILE_CHECK_SEC seconds ({EmConfig.SCIPION_EM_NEW_FILE_CHECK_SEC} "
                           "here, a Scipion setting).")

    # --------------------------- INSERT steps functions ---------------------------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.importMapsStep, self.getPattern(), needsGPU=False)

    # --------------------------- STEPS functions ----------------------------------------------------------------
    def importMapsStep(self, pattern: str):
        """Watch the folder, register each complete map as it arrives, close the set when the watch is over."""
        self.info(f"Watching {pattern} (stop file: {self.getStopFilePath() or 'none'}).")
        volumes = self._continuedOutputSet()
        registered = set() if volumes is None else self._registeredNames(volumes)
        if registered:
            self.info(f"Continuing: {len(registered)} maps are already in the set.")
        watch = MapFolderWatch(duration_seconds(self.fileTimeout.get()), duration_seconds(self.timeout.get()),
                               taken=[path for path, _ in self.iterFiles() if self._uniqueName(path) in registered])
        while True:
            files = {path: fileId for path, fileId in self.iterFiles() if path != self.getStopFilePath()}
            found = watch.poll(files)
            for path, reason in found.skipped:
                self.warning(f"Skipped {path}: {reason}; it is not registered (looked at again if it changes).")
            for path, header in found.ready:
                volumes = self._registerMap(volumes, path, header, files[path])
            why = watch.finished(self.isStopRequested())
            if why:
                break
            time.sleep(EmConfig.SCIPION_EM_NEW_FILE_CHECK_SEC)
        if volumes is None:
            raise RuntimeError(f"No map arrived in {self._folder()} matching {self.filesPattern.get()} ({why}): "
                               "there is no set of maps for the protocols downstream.")
        volumes.enableAppend()
        self._updateOutputSet(OUTPUT_NAME, volumes, Set.STREAM_CLOSED)
        self.info(f"Set closed with {volumes.getSize()} maps: {why}.")

    def _continuedOutputSet(self) -> SetOfVolumes | None:
        """The output set of the run this one continues (None for a new run, or one stopped before any map)."""
        volumes = getattr(self, OUTPUT_NAME, None) if self.isContinued() else None
        pwutils.cleanPath(self._getExtraPath(STOP_STREAMING_FILE))  # asked for by a run that was stopped since
        if volumes is not None:
            volumes.loadAllProperties()
        return volumes

    def _registeredNames(self, volumes: SetOfVolumes) -> set[str]:
        """The names in the extra folder of the maps already in *volumes*, read from a copy of the set (a set that
        was iterated cannot be appended to: pyworkflow's mapper then sets up its insertions wrongly)."""
        copy = SetOfVolumes(filename=volumes.getFileName())
        try:
            return {os.path.basename(volume.getFileName().replace(":mrc", "")) for volume in copy}
        finally:
            copy.close()

    def _registerMap(self, volumes: SetOfVolumes | None, path: str, header: MapHeader,
                     fileId: int | None) -> SetOfVolumes:
        """Link or copy the map file *path* into the extra folder and add it to the set (id *fileId*, or the next
        one), which is created (the first time) and kept open; return the set."""
        if volumes is None:
            volumes = self._createSetOfVolumes()
            volumes.setSamplingRate(self.samplingRate.get())
        else:
            volumes.enableAppend()
            if fileId is not None and volumes[fileId] is not None:
                self.warning(f"Skipped {path}: map {fileId} is already in the set "
                             f"({volumes[fileId].getObjComment()}).")
                return volumes
        sampling = self.samplingRate.get()
        origin = self._originShifts(header)
        destination = self._getExtraPath(self._uniqueName(path))
        if self.copyFiles:
            _copy_with_header(path, destination, sampling, origin)
        else:
            pwutils.createAbsLink(os.path.abspath(path), destination)
        volume = Volume(location=f"{destination}:mrc")  # every file taken is an MRC/CCP4 map
        volume.setSamplingRate(sampling)
        transform = Transform()
        transform.setShifts(*origin)
        volume.setOrigin(transform)
        volume.setObjId(fileId)
        volume.setObjComment(path)
        volumes.append(volume)
        self._updateOutputSet(OUTPUT_NAME, volumes, Set.STREAM_OPEN)
        voxel = max(header.voxel_size)
        note = ""
        if voxel > 0 and abs(voxel - sampling) > VOXEL_NOTE_TOLERANCE * sampling:
            note = f"; its header says {voxel:.4g} Å/voxel, {sampling:.4g} is used"
        self.info(f"Map {volume.getObjId()}: {path}, {'x'.join(map(str, header.shape_xyz))} voxels{note}.")
        return volumes

    # --------------------------- streaming control --------------------------------------------------------------
    def getStopFilePath(self) -> str | None:
        """The stop file in the maps folder, or None when there is none."""
        name = (self.endTokenFile.get() or "").strip()
        return os.path.join(self._folder(), name) if name else None

    def isStopRequested(self) -> bool:
        """Whether the stop file is in the folder or STOP STREAMING was chosen."""
        stopFile = self.getStopFilePath()
        return os.path.exists(self._getExtraPath(STOP_STREAMING_FILE)) or bool(stopFile and os.path.exists(stopFile))

    def getActions(self):
        """The GUI's right-click action on the running protocol: STOP STREAMING (pwem's imports offer the same)."""
        return [("STOP STREAMING", self.requestStopStreaming)] if self.isRunning() else []

    def requestStopStreaming(self, event=None):
        """Ask the running protocol (another process) to close its set: a file in its extra folder, which it
        checks at each poll."""
        open(self._getExtraPath(STOP_STREAMING_FILE), "w").close()

    # --------------------------- INFO functions -----------------------------------------------------------------
    def _validate(self):
        errors = []
        folder = self._folder()
        if not folder:
            errors.append("Give the folder where the maps arrive.")
        elif any(char in folder for char in "*?#"):
            errors.append(f"{folder}: give the folder itself, without wildcards (they go in the pattern).")
        elif not os.path.isdir(folder):
            errors.append(f"{folder}: no such folder.")
        if not (self.filesPattern.get() or "").strip():
            errors.append("Give the pattern of the map files (e.g. *.mrc).")
        for label, value in (("Timeout", self.timeout.get()), ("File timeout", self.fileTimeout.get())):
            try:
                duration_seconds(value or "")
            except ValueError as exc:
                errors.append(f"{label}: {exc}")
        stopName = (self.endTokenFile.get() or "").strip()
        if os.sep in stopName:
            errors.append(f"Stop file: '{stopName}' must be a file name in the maps folder, not a path.")
        return errors

    def _summary(self):
        volumes = getattr(self, OUTPUT_NAME, None)
        if volumes is None:
            return [f"Will watch {self.getPattern()}."]
        state = "the set is open: still watching" if volumes.isStreamOpen() else "the set is closed"
        return [f"{volumes.getSize()} maps imported from {self.getPattern()} "
                f"({volumes.getSamplingRate():.4g} Å/voxel); {state}."]

    def _methods(self):
        volumes = getattr(self, OUTPUT_NAME, None)
        if volumes is None:
            return []
        return [f"{volumes.getSize()} maps were imported as they appeared in the folder {self._folder()}, with a "
                f"sampling rate of {volumes.getSamplingRate():.4g} Å/voxel (origin "
                f"{ORIGIN_CHOICES[self.originFrom.get()]})."]

    # --------------------------- UTILS functions ----------------------------------------------------------------
    def _folder(self) -> str:
        return pwutils.expandPattern((self.filesPath.get() or "").strip())

    def _uniqueName(self, path: str) -> str:
        """The name of a map file in the extra folder: its path below the maps folder, "/" written "_"."""
        return os.path.relpath(path, self._folder()).replace(os.sep, "_")

    def _registeredName(self, volume: Volume) -> str:
        return os.path.basename(volume.getFileName().replace(":mrc", ""))

    def _originShifts(self, header: MapHeader) -> tuple[float, float, float]:
        """Scipion's origin shifts (x, y, z) in Å for a map of header *header*, as chosen in the form."""
        sampling = self.samplingRate.get()
        choice = self.originFrom.get()
        if choice == self.ORIGIN_GIVEN:
            return -self.x.get(), -self.y.get(), -self.z.get()
        if choice == self.ORIGIN_CENTRE:
            return tuple(-n / 2.0 * sampling for n in header.shape_xyz)
        return header.first_voxel_position(sampling)


def _copy_with_header(source: str, destination: str, sampling: float, origin: tuple[float, float, float]) -> None:
    """Copy the map *source* to *destination* with *sampling* (Å/voxel) and the origin *origin* (x, y, z Å) in
    its header (start indices 0), as pwem's import volumes writes the copies it makes."""
    shutil.copyfile(source, destination)
    with mrcfile.mmap(destination, mode="r+") as mrc:
        mrc.voxel_size = sampling
        mrc.header.origin = origin
        mrc.header.nxstart = mrc.header.nystart = mrc.header.nzstart = 0
