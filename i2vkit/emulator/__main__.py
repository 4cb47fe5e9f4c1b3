"""``python -m i2vkit.emulator``: the same as ``i2vkit emulator``."""

import sys

from .cli import main

sys.exit(main())
