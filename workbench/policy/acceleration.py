"""S3 Transfer Acceleration on the bucket (AWS only): read, set and verify."""

from __future__ import annotations

from workbench.errors import PolicyError
from workbench.storage import Storage


def acceleration_status(storage: Storage) -> bool:
    """Whether Transfer Acceleration is enabled on the bucket."""
    with storage.errors("read Transfer Acceleration status"):
        status = storage.client.get_bucket_accelerate_configuration(Bucket=storage.bucket).get("Status")
    return status == "Enabled"


def set_acceleration(storage: Storage, enabled: bool = True) -> bool:
    """Enable (or suspend) Transfer Acceleration; return whether it changed anything."""
    if storage.settings.profile != "aws":
        raise PolicyError(f"Transfer Acceleration exists only on AWS S3, not on profile {storage.settings.profile!r}")
    if "." in storage.bucket:
        raise PolicyError(f"bucket {storage.bucket!r} has a dot in its name: AWS cannot accelerate it")
    if acceleration_status(storage) == enabled:
        return False
    with storage.errors("write Transfer Acceleration status"):
        storage.client.put_bucket_accelerate_configuration(
            Bucket=storage.bucket, AccelerateConfiguration={"Status": "Enabled" if enabled else "Suspended"}
        )
    if acceleration_status(storage) != enabled:
        raise PolicyError("Transfer Acceleration status did not change: check s3:PutAccelerateConfiguration permission")
    return True
