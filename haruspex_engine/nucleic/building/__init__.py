"""Model building, the second half of CryoREAD: nodes, sugar graph, backbone tracing (OR-Tools), phosphate and
base attachment, sequence assignment (DP + CP-SAT), full atoms, evaluation, and the build-na / evaluate-na
commands. Shares only the class names and the summary reader with detection."""

#: Where build-na's sugar nodes come from, the default first: the phosphate anchors (``sugar_anchors``) or the modes
#: of the sugar map (CryoREAD's nodes).
SUGAR_NODE_SOURCES = ("anchored", "mean-shift")
#: Default search budget of the backbone tracing (``trace``), in routing solutions. The original stops after 1000; on
#: the corpus's oracle maps (clean and realistic, 9 builds) 300 gave the same coverage on average (±0.03 per build) in a
#: third of the time. Since the nodes are moved onto the density (``nodes.moved_onto_density``) the first solution is
#: better and the improving solutions come more slowly: on the clean 16S rRNA 3JBV_A the 300th came after 105 s (the
#: 150th after 18 s), and the build stopped on the time limit. 150: that build's model is as good (coverage / precision
#: / sequence recall / register recall 0.988 / 0.995 / 0.968 / 0.941 at 300, 0.988 / 0.994 / 0.965 / 0.935 at 150), and
#: on the corpus (10 entries × clean / realistic × seeds 0–2) 49 of 60 builds are the same, realistic register recall
#: 0.564 → 0.559 (BENCHMARKS.md, 2026-12-07).
SOLUTION_LIMIT = 150
