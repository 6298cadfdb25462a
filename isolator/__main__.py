"""``python -m isolator``: the command line (``isolator.cli``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
