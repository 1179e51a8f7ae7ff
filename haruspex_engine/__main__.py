"""`python -m haruspex_engine` is the `haruspex` command (how Scipion launches the worker)."""
import sys

from haruspex_engine.cli import main

sys.exit(main())
