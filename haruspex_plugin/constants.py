"""Names shared by the Haruspex Scipion plugin: configuration variables, binaries, output names and colours."""

# Configuration variables (environment or scipion.conf). Names are global across Scipion plugins, hence the prefix.
HARUSPEX_HOME = "HARUSPEX_HOME"
HARUSPEX_WORKER_PYTHON = "HARUSPEX_WORKER_PYTHON"
HARUSPEX_CACHE = "HARUSPEX_CACHE"
HARUSPEX_CHECKPOINT = "HARUSPEX_CHECKPOINT"

# Distribution that carries both the plugin and the engine, and the engine's import name.
DISTRIBUTION = "scipion-em-haruspex"
ENGINE_MODULE = "haruspex_engine"

# `scipion3 installb <name>` targets defined by Plugin.defineBinaries.
WORKER_BINARY = "haruspex-worker"
WEIGHTS_BINARY = "haruspex-weights"

# Sub-directories of HARUSPEX_HOME.
WORKER_ENV_DIR = "worker-env"
WEIGHTS_DIR = "weights"

# How the worker starts its one-line error message (docs/worker-contract.md).
WORKER_ERROR_PREFIX = "haruspex: error:"

# Seconds allowed to the quick worker checks run while validating a protocol.
CHECK_TIMEOUT_S = 30

# Classes in the order of the label map values (0 unassigned, 1 helix, 2 sheet, 3 nucleic acid).
CLASSES = ("unassigned", "helix", "sheet", "nucleic")
# Classes in the order they are shown (summaries, plots, ChimeraX models).
DISPLAY_ORDER = ("helix", "sheet", "nucleic", "unassigned")
CLASS_LABELS = {"unassigned": "unassigned", "helix": "α-helix", "sheet": "β-sheet", "nucleic": "nucleic acid"}
# Paper colours: helix red, sheet blue, nucleic acid orange, unassigned grey (ChimeraX/matplotlib colour names).
CLASS_COLORS = {"helix": "red", "sheet": "blue", "nucleic": "orange", "unassigned": "grey"}

# Protocol output attribute name for each worker output key.
OUTPUT_NAMES = {
    "helix": "outputHelix",
    "sheet": "outputSheet",
    "nucleic": "outputNucleic",
    "unassigned": "outputUnassigned",
    "labels": "outputLabels",
}
WEIGHTED_OUTPUT = "outputWeighted"
WEIGHTED_SUFFIX = "_weighted"

# Nucleic-acid building (ProtHaruspexBuildNucleicAcids): protocol outputs, and the Scipion attribute (pwem's
# _scipion_attributes mmCIF category, per residue) carrying the worker's per-residue confidence 0..1.
NA_DETECTION_OUTPUT = "outputDetectionMaps"
NA_MAP_OUTPUTS = {"sugar": "outputSugar", "phosphate": "outputPhosphate", "protein": "outputProtein"}
NA_MODEL_OUTPUT = "outputModel"
NA_MODEL_NO_SEQUENCE_OUTPUT = "outputModelNoSequence"
NA_CONFIDENCE_ATTRIBUTE = "haruspex_confidence"
# The build's nucleic-acid-masked map (1 Å working grid) and its servalcat-refined model.
NA_MASKED_MAP_OUTPUT = "outputMaskedMap"
NA_MODEL_REFINED_OUTPUT = "outputModelRefined"

# Nucleic-acid building on a SetOfVolumes: one set per output kind, whose item of id i comes from the input set's map
# of id i (the sets of models only hold the maps where a model was built).
NA_BATCH_MAP_OUTPUTS = {"sugar": "outputSugarMaps", "phosphate": "outputPhosphateMaps", "protein": "outputProteinMaps"}
NA_BATCH_MASKED_MAP_OUTPUT = "outputMaskedMaps"
NA_BATCH_MODEL_OUTPUT = "outputModels"
NA_BATCH_MODEL_NO_SEQUENCE_OUTPUT = "outputModelsNoSequence"
NA_BATCH_MODEL_REFINED_OUTPUT = "outputModelsRefined"

# Refinement (ProtHaruspexRefineNucleicAcids): the refined model.
REFINED_MODEL_OUTPUT = "outputModel"

# Batch annotation (ProtHaruspexAnnotate on a SetOfVolumes): one SetOfVolumes per worker output key, whose item of
# id i is the annotation of the input set's map of id i; with density weighting, one more set per class.
BATCH_OUTPUT_NAMES = {
    "helix": "outputHelixMaps",
    "sheet": "outputSheetMaps",
    "nucleic": "outputNucleicMaps",
    "unassigned": "outputUnassignedMaps",
    "labels": "outputLabelMaps",
}
BATCH_WEIGHTED_OUTPUT_NAMES = {
    "helix": "outputHelixWeightedMaps",
    "sheet": "outputSheetWeightedMaps",
    "nucleic": "outputNucleicWeightedMaps",
    "unassigned": "outputUnassignedWeightedMaps",
}

# Validation (ProtHaruspexValidate): the model with per-residue Scipion attributes (pwem's _scipion_attributes),
# each taken from a column of `haruspex validate`'s table. Classes are label values (0 unassigned, 1 helix, 2 sheet,
# 3 nucleic acid); agreement is 1 where the predicted class is the model's; residues off the map have none.
VALIDATION_MODEL_OUTPUT = "outputModel"
VALIDATION_AGREEMENT_ATTRIBUTE = "haruspex_agreement"
VALIDATION_ATTRIBUTES = {
    VALIDATION_AGREEMENT_ATTRIBUTE: "agreement",
    "haruspex_predicted_class": "predicted_class",
    "haruspex_model_class": "model_class",
    "haruspex_model_class_probability": "model_class_probability",
    "haruspex_backbone_density": "backbone_density_rmsd",
}

# Training (ProtHaruspexTrain): the trained checkpoint, an EMFile whose file name is the checkpoint prefix
# (``.../model.ckpt-<step>``, what `haruspex annotate --checkpoint` takes; the files are PREFIX.index and
# PREFIX.data-00000-of-00001).
TRAINED_CHECKPOINT_OUTPUT = "outputCheckpoint"
