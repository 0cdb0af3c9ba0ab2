"""What every stage shares: run a main() so that expected failures print one line, not a traceback."""
from __future__ import annotations

import sys
from typing import Callable

from .io import DataError, one_line
from .validators import ParamError

EXPECTED = (ParamError, DataError, FileNotFoundError, ValueError, FloatingPointError, RuntimeError, OSError,
            MemoryError)


def run_stage(main: Callable[[], None]) -> None:
    """Call main(); on an expected error print 'error: <one line>' to stderr and exit 1."""
    try:
        main()
    except EXPECTED as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(1)
