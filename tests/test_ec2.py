"""EC2 clusters against moto's EC2 and S3: region choice, narrow security groups, the whole lifecycle."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import boto3
import pytest

from workbench import ec2 as wb_ec2
from workbench.config import Secret, Settings
from workbench.errors import WorkbenchError
from workbench.storage import Storage


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    return moto_endpoint


def _bucket(endpoint: str, name: str, location: str | None) -> Storage:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    if location:
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": location})
    else:
        client.create_bucket(Bucket=name)
    return Storage(Settings(endpoint=endpoint, bucket=name, access_key="testing", secret_key=Secret("testing"), path_style=True))


def test_bucket_region_normalises_none_and_eu(aws_env: str) -> None:
    assert wb_ec2.bucket_region(_bucket(aws_env, "reg-use1", None)) == "us-east-1"
    assert wb_ec2.bucket_region(_bucket(aws_env, "reg-euw1", "eu-west-1")) == "eu-west-1"
    assert wb_ec2.bucket_region(_bucket(aws_env, "reg-eu", "EU")) == "eu-west-1"
    assert wb_ec2.normalise_region(None) == "us-east-1"


def test_another_region_is_refused_with_the_transfer_cost(aws_env: str) -> None:
    storage = _bucket(aws_env, "reg-cost", "eu-west-1")
    storage.put_bytes("projects/o/p/raw/a.bin", b"x" * 5_000_000)
    assert wb_ec2.choose_region(storage, None) == "eu-west-1"
    with pytest.raises(WorkbenchError, match=r"is in eu-west-1, not us-east-1.*0\.0 GiB.*\$0\.00 at \$0\.02/GB, price of 20\d\d-\d\d-\d\d"):
        wb_ec2.choose_region(storage, "us-east-1", "o", "p")
    assert wb_ec2.choose_region(storage, "us-east-1", "o", "p", allow_cross_region=True) == "us-east-1"
    usd, price = wb_ec2.cross_region_cost(500 * 2**30, "eu-west-1")
    assert usd == pytest.approx(500 * price.usd) and price.path == "aws/regions/eu-west-1/inter_region"


def test_narrow_security_group_never_opens_to_the_world(aws_env: str) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    group = wb_ec2.narrow_security_group("us-east-1", vpc, "wb-narrow", "10.0.0.0/16")
    rules = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["IpPermissions"]
    ranges = [r["CidrIp"] for rule in rules for r in rule.get("IpRanges", [])]
    assert ranges == ["10.0.0.0/16"] and "0.0.0.0/0" not in ranges
    with pytest.raises(WorkbenchError, match="whole internet"):
        wb_ec2.narrow_security_group("us-east-1", vpc, "wb-wide", "0.0.0.0/0")


def test_options_require_security_groups_and_an_image() -> None:
    with pytest.raises(WorkbenchError, match="security_groups"):
        wb_ec2.EC2Options(ami="ami-1", security_groups=())
    assert wb_ec2.pinned_image().startswith("ghcr.io/dask/dask:")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def fake_vms(aws_env: str, monkeypatch: pytest.MonkeyPatch):
    """Moto runs no VMs: the scheduler VM's address is swapped for a real scheduler on 127.0.0.1."""
    from dask_cloudprovider.aws import ec2 as dcp_ec2
    from dask_cloudprovider.generic import vmcluster

    port = _free_port()
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--dashboard-address", "127.0.0.1:0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    original = dcp_ec2.EC2Scheduler.configure_vm

    async def configure_vm(self, client):
        await original(self, client)  # tags and IPs from moto, for real
        return "127.0.0.1", None

    def is_socket_open(ip, port_):  # never probe moto's fake public IPs
        if ip != "127.0.0.1":
            return False
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((ip, int(port_))) == 0

    monkeypatch.setattr(dcp_ec2.EC2Scheduler, "configure_vm", configure_vm)
    monkeypatch.setattr(vmcluster, "is_socket_open", is_socket_open)
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    group = wb_ec2.narrow_security_group("us-east-1", vpc, f"wb-{port}", "172.31.0.0/16")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    options = wb_ec2.EC2Options(ami=ami, security_groups=(group,), worker_instance_type="m5.large",
                                scheduler_instance_type="t3.small", spot=True, security=False, scheduler_port=port,
                                use_private_ip=False, bootstrap=False)
    yield ec2, options
    scheduler.kill()
    scheduler.wait(10)


def _instances(ec2, run_id: str) -> list[dict]:
    reservations = ec2.describe_instances(Filters=[{"Name": f"tag:{wb_ec2.RUN_TAG}", "Values": [run_id]}])["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_ec2_lifecycle_create_scale_close_terminates_everything(fake_vms) -> None:
    ec2, options = fake_vms
    managed = wb_ec2.ManagedEC2Cluster(options, "us-east-1", project="demo")
    with managed as cluster:
        running = lambda: [i for i in _instances(ec2, managed.run_id) if i["State"]["Name"] == "running"]  # noqa: E731
        assert len(running()) == 1  # the scheduler, on demand
        scheduler = running()[0]
        assert scheduler["InstanceType"] == "t3.small" and "InstanceLifecycle" not in scheduler
        cluster.scale(2)
        _wait_for(lambda: len(running()) == 3)
        workers = [i for i in running() if i["InstanceId"] != scheduler["InstanceId"]]
        assert {w["InstanceType"] for w in workers} == {"m5.large"}
        assert {w.get("InstanceLifecycle") for w in workers} == {"spot"}
        tags = {t["Key"]: t["Value"] for t in workers[0]["Tags"]}
        assert tags[wb_ec2.PROJECT_TAG] == "demo" and tags[wb_ec2.RUN_TAG] == managed.run_id
        cluster.scale(0)
        _wait_for(lambda: len(running()) == 1)
    states = {i["State"]["Name"] for i in _instances(ec2, managed.run_id)}
    assert states == {"terminated"}
    every = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
             if any(t["Key"] == wb_ec2.RUN_TAG for t in i.get("Tags", []))]
    assert all(i["State"]["Name"] == "terminated" for i in every)


@pytest.mark.slow
def test_an_error_inside_the_block_still_terminates_everything(fake_vms) -> None:
    ec2, options = fake_vms
    managed = wb_ec2.ManagedEC2Cluster(options, "us-east-1", project="demo")
    with pytest.raises(KeyboardInterrupt):
        with managed as cluster:
            cluster.scale(1)
            _wait_for(lambda: len(_instances(ec2, managed.run_id)) == 2)
            # an instance created outside dask-cloudprovider's knowledge (e.g. a crash between calls)
            ec2.run_instances(ImageId=options.ami, MinCount=1, MaxCount=1, TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": wb_ec2.RUN_TAG, "Value": managed.run_id}]}])
            raise KeyboardInterrupt
    assert {i["State"]["Name"] for i in _instances(ec2, managed.run_id)} == {"terminated"}
    assert len(_instances(ec2, managed.run_id)) == 3
