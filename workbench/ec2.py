"""Dask clusters on EC2, next to the bucket (dask-cloudprovider ``EC2Cluster`` with safe defaults).

* The region is the bucket's own (HeadBucket's ``BucketRegion``, else GetBucketLocation, where
  ``None`` means us-east-1 and the legacy ``EU`` means eu-west-1). Another region is refused unless
  ``allow_cross_region=True``, and the refusal states what moving the project's bytes would cost.
* Security groups are the caller's, or one made by :func:`narrow_security_group` that opens the Dask
  ports only to a CIDR you name (dask-cloudprovider's default opens 8786-8787 to the world, and is
  broken in 2025.9.0: issue #481).
* The Docker image is pinned to the local ``distributed`` version and Python; ``worker_instance_type``
  and ``scheduler_instance_type`` are set explicitly (the ``instance_type`` config key is ignored for
  VM types); the scheduler gets an ``idle_timeout`` so a forgotten cluster stops itself; spot workers
  are an option; private IPs are used when this machine is itself an EC2 instance.
* :class:`ManagedEC2Cluster` closes the cluster on any exit (errors and KeyboardInterrupt included) and
  then terminates every instance still tagged with its run id, so nothing leaks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from workbench import layout
from workbench.costs.pricebook import Price, PriceBook
from workbench.costs.pricebook import load as load_price_book
from workbench.errors import WorkbenchError
from workbench.storage import Storage

RUN_TAG = "workbench-run"
PROJECT_TAG = "workbench-project"
DASK_PORTS = (8786, 8787)
_LEGACY_REGIONS = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}


def normalise_region(value: str | None) -> str:
    """A bucket location as a region name (``None``/empty -> us-east-1, ``EU`` -> eu-west-1)."""
    return _LEGACY_REGIONS.get(value, value)  # type: ignore[return-value]


def bucket_region(storage: Storage) -> str:
    """The region the bucket lives in, from HeadBucket (works even when access is denied) or GetBucketLocation."""
    region = None
    try:
        response = storage.client.head_bucket(Bucket=storage.bucket)
        region = response.get("BucketRegion") or response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")
    except botocore.exceptions.ClientError as exc:
        region = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
    if not region:
        with storage.errors(f"find the region of bucket {storage.bucket}"):
            region = storage.client.get_bucket_location(Bucket=storage.bucket).get("LocationConstraint")
    return normalise_region(region)


def cross_region_cost(nbytes: int, region: str = "us-east-1", book: PriceBook | None = None) -> tuple[float, Price]:
    """Estimated USD to move ``nbytes`` out of ``region`` to another AWS region once, and the price used."""
    book = book or load_price_book(warn=False)
    price = book.aws(region if region in book.regions() else "us-east-1", "inter_region")
    return nbytes / book.gb_bytes * price.usd, price


def choose_region(storage: Storage, region: str | None = None, org: str | None = None, project: str | None = None,
                  allow_cross_region: bool = False) -> str:
    """The region to compute in: the bucket's, unless another is asked for and explicitly allowed."""
    home = bucket_region(storage)
    if region is None or region == home:
        return home
    if not allow_cross_region:
        prefix = layout.project_prefix(org, project) if org and project else ""
        nbytes = sum(info.size for info in storage.list(prefix))
        scope = f"project {org}/{project}" if prefix else f"bucket {storage.bucket}"
        usd, price = cross_region_cost(nbytes, home)
        raise WorkbenchError(
            f"bucket {storage.bucket} is in {home}, not {region}: processing {scope} there would move "
            f"{nbytes / 2**30:.1f} GiB across regions (about ${usd:,.2f} at ${price.usd}/GB, price of "
            f"{price.as_of}, each time it is read); use region {home}, or pass allow_cross_region=True"
        )
    return region


def pinned_image() -> str:
    """The Dask Docker image matching this machine's ``distributed`` and Python versions."""
    import distributed

    return f"ghcr.io/dask/dask:{distributed.__version__}-py{sys.version_info.major}.{sys.version_info.minor}"


def running_on_ec2() -> bool:
    """Whether this machine is an EC2 instance (from DMI data; no network request)."""
    for path in ("/sys/devices/virtual/dmi/id/board_vendor", "/sys/devices/virtual/dmi/id/sys_vendor"):
        with contextlib.suppress(OSError):
            if "amazon" in Path(path).read_text().lower():
                return True
    return False


def narrow_security_group(region: str, vpc_id: str, name: str, cidr: str, endpoint: str | None = None) -> str:
    """Create a security group that opens the Dask ports only to ``cidr`` and to its own members."""
    if cidr in ("0.0.0.0/0", "::/0"):
        raise WorkbenchError("refusing to open the Dask ports to the whole internet: give a narrow CIDR (e.g. your VPC's)")
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=endpoint)
    group_id = ec2.create_security_group(GroupName=name, Description="workbench dask cluster", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": DASK_PORTS[0], "ToPort": DASK_PORTS[1], "IpRanges": [{"CidrIp": cidr}]},
        {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": group_id}]},
    ])
    return group_id


@dataclasses.dataclass(frozen=True)
class EC2Options:
    """What an EC2 Dask cluster is made of. ``ami`` must have Docker (see the README)."""

    ami: str
    security_groups: tuple[str, ...]
    subnet_id: str | None = None
    worker_instance_type: str = "m6i.large"
    scheduler_instance_type: str = "t3.medium"
    n_workers: int = 0
    spot: bool = False
    idle_timeout: str = "30 minutes"
    use_private_ip: bool | None = None  # None: private when this machine runs on EC2
    iam_instance_profile: dict[str, str] | None = None
    docker_image: str | None = None  # None: pinned to the local versions
    bootstrap: bool = True
    security: bool = True
    scheduler_port: int = DASK_PORTS[0]

    def __post_init__(self) -> None:
        if not self.security_groups:
            raise WorkbenchError("EC2 clusters need security_groups (see narrow_security_group); "
                                 "dask-cloudprovider's default opens the Dask ports to the world")
        if not self.ami:
            raise WorkbenchError("EC2 clusters need an ami with Docker installed")


class ManagedEC2Cluster:
    """An ``EC2Cluster`` whose every instance is terminated on exit, whatever happens inside the block."""

    def __init__(self, options: EC2Options, region: str, project: str, run_id: str | None = None) -> None:
        self.options = options
        self.region = region
        self.run_id = run_id or layout.new_id()
        self.project = project
        self.cluster: Any = None

    def start(self) -> Any:
        """Create the scheduler VM (and ``n_workers`` workers); return the ``EC2Cluster``."""
        from dask_cloudprovider.aws import EC2Cluster

        o = self.options
        private = running_on_ec2() if o.use_private_ip is None else o.use_private_ip
        kwargs: dict[str, Any] = dict(
            region=self.region, ami=o.ami, security_groups=list(o.security_groups), subnet_id=o.subnet_id,
            scheduler_instance_type=o.scheduler_instance_type, worker_instance_type=o.worker_instance_type,
            n_workers=o.n_workers, spot=o.spot, use_private_ip=private, docker_image=o.docker_image or pinned_image(),
            bootstrap=o.bootstrap, security=o.security,
            scheduler_options={"idle_timeout": o.idle_timeout, "port": o.scheduler_port},
            instance_tags={RUN_TAG: self.run_id, PROJECT_TAG: self.project},
            volume_tags={RUN_TAG: self.run_id, PROJECT_TAG: self.project},
        )
        if o.iam_instance_profile:
            kwargs["iam_instance_profile"] = o.iam_instance_profile
        try:
            self.cluster = EC2Cluster(**kwargs)
        except BaseException:
            self.terminate_leftovers()
            raise
        return self.cluster

    def close(self) -> list[str]:
        """Close the cluster, then terminate anything still tagged with this run; return what was swept."""
        try:
            if self.cluster is not None:
                self.cluster.close()
        finally:
            swept = self.terminate_leftovers()
        return swept

    def terminate_leftovers(self) -> list[str]:
        """Terminate instances of this run that are not terminated yet (a crash between calls can leave some)."""
        ec2 = boto3.client("ec2", region_name=self.region)
        reservations = ec2.describe_instances(Filters=[
            {"Name": f"tag:{RUN_TAG}", "Values": [self.run_id]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ])["Reservations"]
        ids = [i["InstanceId"] for r in reservations for i in r["Instances"]]
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
        return ids

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def ec2_client(storage: Storage, options: EC2Options, project: str, region: str | None = None,
               allow_cross_region: bool = False, org: str | None = None) -> tuple[Any, ManagedEC2Cluster]:
    """A Dask client on a new EC2 cluster in the bucket's region, and the manager that must close it."""
    from distributed import Client

    managed = ManagedEC2Cluster(options, choose_region(storage, region, org, project, allow_cross_region), project)
    cluster = managed.start()
    try:
        return Client(cluster), managed
    except BaseException:
        managed.close()
        raise
