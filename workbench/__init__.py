"""A Jupyter-first workbench for drone imagery in S3-compatible buckets.

``import workbench as wb``; start with :func:`load_settings` (or :func:`local_s3` for an embedded
server), then :class:`Storage`, :class:`Presigner` and :mod:`workbench.policy`.
"""

from workbench.config import Settings, load_settings
from workbench.errors import WorkbenchError
from workbench.local import LocalS3, local_s3
from workbench.presign import Presigner
from workbench.storage import Storage
from workbench.transfer import download_file, upload_file, upload_folder

__version__ = "0.1.0"

__all__ = [
    "LocalS3", "Presigner", "Settings", "Storage", "WorkbenchError", "download_file", "load_settings",
    "local_s3", "upload_file", "upload_folder", "__version__",
]
