"""`python -m nnlib.cli`: the `nnlib` command."""

import sys

from .main import main

if __name__ == "__main__":  # imported, as a test imports every module, it runs nothing
    sys.exit(main())
