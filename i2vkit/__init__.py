"""i2vkit: a folder of images and a file of prompts in, a folder of image-to-video clips out.

The library API: ``i2vkit.workspace.Workspace`` (settings -> backend, ledger, catalogue,
opened once), ``i2vkit.planning`` (``BatchRequest``, ``plan_batch``, ``plan_retry``) and
``i2vkit.engine`` (``run_batch`` blocks, ``run_batch_async`` is the coroutine; likewise
``retry_batch``). The data's path through the package reads from the module names:
request -> workspace -> planning -> uploads -> jobs (store) -> fal -> download -> gallery;
engine/ drives a batch along it, cli.py and notebook/ are thin layers over it, and
emulator/ is the built-in stand-in for fal. docs/architecture.md has one line per module.
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
