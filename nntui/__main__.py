"""`python -m nntui` and the `nntui` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
