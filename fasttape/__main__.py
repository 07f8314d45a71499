"""``python -m fasttape``: the command line (see fasttape/cli.py)."""

import sys

from fasttape.cli import main

if __name__ == "__main__":
    sys.exit(main())
