"""``python -m rnnimg``: the same command line as the ``rnnimg`` script."""

import sys

from rnnimg.cli import main

if __name__ == "__main__":
    sys.exit(main())
