"""rentprice: domain code shared by the DVC stages that predict Amsterdam apartment rents.

A process that DVC runs as a stage command (DVC sets ``DVC_STAGE``) asks Linux, as its first act on
importing the package and before the seconds its heavy imports take, for SIGTERM when its parent
dies (``prctl(PR_SET_PDEATHSIG)``): a stage whose `dvc repro` is killed then stops instead of
running on alone and writing its outputs later. ``rentprice.logs.run_stage`` turns that SIGTERM into
SystemExit, so temporary files are removed (docs/storage.md, Interrupted runs).
"""

import os
import sys

__version__ = "0.1.0"

#: linux/prctl.h
PR_SET_PDEATHSIG = 1
SIGTERM = 15

if sys.platform == "linux" and os.environ.get("DVC_STAGE"):
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, SIGTERM)
