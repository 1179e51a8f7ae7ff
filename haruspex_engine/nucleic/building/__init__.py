"""Model building, the second half of CryoREAD: nodes, sugar graph, backbone tracing (OR-Tools), phosphate and
base attachment, sequence assignment (DP + CP-SAT), full atoms, evaluation, and the build-na / evaluate-na
commands. Shares only the class names and the summary reader with detection."""

#: Where build-na's sugar nodes come from, the default first: the phosphate anchors (``sugar_anchors``) or the modes
#: of the sugar map (CryoREAD's nodes).
SUGAR_NODE_SOURCES = ("anchored", "mean-shift")
