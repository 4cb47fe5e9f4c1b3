"""Moved to :mod:`i2vkit.emulator.clips` (clip synthesis belongs to the emulator).

This name stays only because tests outside the emulator's own (clitools, test_cli_batch,
test_security) import :func:`probe` and :func:`synthesize_clip` from here; once they import
from :mod:`i2vkit.emulator.clips`, delete this module.
"""

from i2vkit.emulator.clips import ImageLoadError, output_size, pad_mp4, probe, synthesize_clip

__all__ = ["ImageLoadError", "output_size", "pad_mp4", "probe", "synthesize_clip"]
