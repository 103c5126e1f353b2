"""`python -m nntui`: through the same launcher as the `nntui` console script, so that a
Ctrl+C while Textual and numpy import is one line (see nnlib_launcher.py)."""

import sys

from nnlib_launcher import nntui

if __name__ == "__main__":
    sys.exit(nntui())
