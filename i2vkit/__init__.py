"""i2vkit: a folder of images and a file of prompts in, a folder of image-to-video clips out.

The data's path through the package: images.py (scan) -> upload.py (cached CDN uploads)
-> pairing.py (image x prompt) -> batch.py (ledger, submit, poll) -> download.py (mp4s)
-> gallery.py (notebooks). store.py is the ledger under all of it; fal.py talks to fal
(or the built-in emulator.py).
"""

from .config import Settings, load_settings
from .errors import (
    ConfigError,
    DownloadError,
    FalAuthError,
    FalError,
    FalLockedError,
    FalTransientError,
    FalValidationError,
    I2vkitError,
    InputError,
    ModelError,
    StoreError,
    UploadError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DownloadError",
    "FalAuthError",
    "FalError",
    "FalLockedError",
    "FalTransientError",
    "FalValidationError",
    "I2vkitError",
    "InputError",
    "ModelError",
    "Settings",
    "StoreError",
    "UploadError",
    "__version__",
    "load_settings",
]
