"""Scenarios month by month: what a team's usage costs on each hosting option, line item by line item.

Storage follows the lifecycle **as** :mod:`workbench.policy` **configures it** (:class:`LifecyclePlan` is
read from :func:`workbench.policy.lifecycle.lifecycle_rules`): raw images and products under ``projects/``
move to Intelligent-Tiering after the rule's days, then through its automatic tiers (and the archive tiers
only when opted in), ``log/`` expires, incomplete multipart uploads are aborted, PMTiles keep their
generations. The simulation is daily (one cohort of uploads a day, 30-day months), so a month bills the
average of what was stored in it, as S3 and R2 do.

Scenarios (:data:`SCENARIOS`): the design's three options, R2 storage with AWS compute, and all-AWS with
a CloudFront flat-rate plan. Every scenario prices the same :class:`Usage`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from workbench.costs import meter
from workbench.costs.meter import DAYS_PER_MONTH, HOURS_PER_MONTH, MIB
from workbench.costs.pricebook import PriceBook
from workbench.errors import CostError

SCENARIOS: dict[str, str] = {
    "onprem-minio": "on-prem compute + MinIO",
    "onprem-r2": "on-prem compute + Cloudflare R2",
    "aws-cloudfront": "AWS compute + S3 + CloudFront (pay as you go)",
    "r2-aws-compute": "Cloudflare R2 storage + AWS compute",
    "aws-cloudfront-flat": "AWS compute + S3 + CloudFront flat-rate plan",
}
ITEMS = ("storage", "requests", "upload acceleration", "processing transfer", "compute", "workspace disk",
         "delivery", "site uplink", "operations")
MAX_MONTHS = 60
INT_TIERS = ("INTELLIGENT_TIERING_FA", "INTELLIGENT_TIERING_IA", "INTELLIGENT_TIERING_AIA",
             "INTELLIGENT_TIERING_AA", "INTELLIGENT_TIERING_DAA")
CLASSES = ("STANDARD", *INT_TIERS)
INT_IA_IDLE_DAYS, INT_AIA_IDLE_DAYS = 30, 90  # Intelligent-Tiering's automatic tiers (S3 user guide)


@dataclasses.dataclass
class Usage:
    """What a team does each month, and how it works. Every field is an input a researcher may vary."""

    months: int = 12
    projects_per_month: float = 4
    images_per_project: int = 1500
    image_mib: float = 10
    products_gib_per_project: float = 20
    pmtiles_gib_per_project: float = 2
    tile_generations: int = 1
    processing_reads: float = 2
    tile_requests_per_month: float = 2_000_000
    tile_kib: float = 40
    downloads_gib_per_month: float = 500
    download_mib: float = 50
    cdn_hit_ratio: float = 0.9
    accelerated_share: float = 0.0
    acceleration_edges: str = "other"  # us_eu_jp | other
    retention_months: int = 0  # raw images and products deleted after this many months (0: kept)
    spot_share: float = 0.8
    compute_scale: float = 1.0  # x the price book's ODM hours per 1,000 images (drone-tm #708's figure)
    nat_in_path: bool = False
    region: str = "us-east-1"
    multipart_threshold_mib: float = 8
    multipart_chunk_mib: float = 8
    archive_tiers: bool = False
    log_gib_per_month: float = 1
    failed_upload_share: float = 0.01
    product_objects_per_project: int = 10

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse inputs no month can have (negative volumes, shares outside 0-1, unknown choices)."""
        if not 1 <= int(self.months) <= MAX_MONTHS:
            raise CostError(f"months must be between 1 and {MAX_MONTHS}, not {self.months}")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or isinstance(value, str):
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise CostError(f"usage {field.name} must be a finite number of at least 0, not {value!r}")
        for name in ("cdn_hit_ratio", "accelerated_share", "spot_share", "failed_upload_share"):
            if getattr(self, name) > 1:
                raise CostError(f"usage {name} is a share: between 0 and 1, not {getattr(self, name)}")
        if self.acceleration_edges not in ("us_eu_jp", "other"):
            raise CostError(f"acceleration_edges must be us_eu_jp or other, not {self.acceleration_edges!r}")
        if self.multipart_chunk_mib < 5 or self.multipart_threshold_mib < 5:
            raise CostError("multipart threshold and chunk size are at least 5 MiB (S3's smallest part)")

    @property
    def images_per_month(self) -> float:
        """Images uploaded a month."""
        return self.projects_per_month * self.images_per_project

    @property
    def upload_gib_per_month(self) -> float:
        """Raw imagery uploaded a month, GiB."""
        return self.images_per_month * self.image_mib / 1024

    def numeric_inputs(self) -> dict[str, float]:
        """The inputs a sensitivity analysis may scale (numbers that are not choices or the horizon)."""
        skip = {"months", "multipart_threshold_mib", "multipart_chunk_mib"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in skip and isinstance(getattr(self, f.name), (int, float))
                and not isinstance(getattr(self, f.name), bool)}

    def replace(self, **changes: Any) -> Usage:
        """A copy with ``changes`` (checked)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise CostError(f"unknown usage input(s): {', '.join(sorted(unknown))}; known: "
                            f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class LifecyclePlan:
    """The lifecycle rules in force, as numbers the simulation uses."""

    tiering_days: int | None = None
    log_expiry_days: int | None = None
    abort_days: int | None = None
    archive_days: int | None = None
    deep_archive_days: int | None = None
    keep_generations: int = 7

    @classmethod
    def from_rules(cls, rules: Iterable[Mapping[str, Any]], archive: tuple[int, int] | None = None,
                   keep_generations: int = 7) -> LifecyclePlan:
        """Read S3 lifecycle rules (as :mod:`workbench.policy.lifecycle` writes them); ``archive`` = opt-in days."""
        tiering = expiry = abort = None
        for rule in rules:
            if rule.get("Status", "Enabled") != "Enabled":
                continue
            prefix = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", ""))
            for transition in rule.get("Transitions", []):
                if transition.get("StorageClass") == "INTELLIGENT_TIERING" and "projects/".startswith(prefix):
                    tiering = int(transition["Days"])
            if "Expiration" in rule and "Days" in rule["Expiration"] and "log/".startswith(prefix):
                expiry = int(rule["Expiration"]["Days"])
            if "AbortIncompleteMultipartUpload" in rule:
                abort = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        archive_days, deep_days = archive if archive else (None, None)
        return cls(tiering, expiry, abort, archive_days, deep_days, keep_generations)

    @classmethod
    def workbench(cls, transitions: bool = True, archive_tiers: bool = False) -> LifecyclePlan:
        """The plan of the rules ``workbench policy apply`` writes (archive tiers only when opted in)."""
        from workbench.policy.generations import DEFAULT_KEEP
        from workbench.policy.lifecycle import lifecycle_rules

        return cls.from_rules(lifecycle_rules(transitions), (90, 180) if archive_tiers else None, DEFAULT_KEEP)


@dataclasses.dataclass
class _Cohorts:
    """Daily cohorts of one kind of object: ages (cohort x day) and what each cohort adds."""

    ages: np.ndarray
    alive: np.ndarray
    gb_per_cohort: np.ndarray
    objects_per_cohort: np.ndarray

    def monthly(self, mask: np.ndarray, per: str = "gb") -> np.ndarray:
        """GB-month (or object-months) a month for the cells where ``mask`` holds."""
        weights = self.gb_per_cohort if per == "gb" else self.objects_per_cohort
        daily = weights @ (mask & self.alive)
        return daily.reshape(-1, DAYS_PER_MONTH).sum(axis=1) / DAYS_PER_MONTH


def _cohorts(months: int, gb_per_month: float, objects_per_month: float, keep_days: int | None) -> _Cohorts:
    days = months * DAYS_PER_MONTH
    ages = np.arange(days)[None, :] - np.arange(days)[:, None]
    alive = ages >= 0
    if keep_days:
        alive &= ages < keep_days
    gb = np.full(days, gb_per_month / DAYS_PER_MONTH)
    objects = np.full(days, objects_per_month / DAYS_PER_MONTH)
    return _Cohorts(ages, alive, gb, objects)


def s3_tiers(ages: np.ndarray, plan: LifecyclePlan) -> np.ndarray:
    """The storage class index (into :data:`CLASSES`) of an object of each age under ``plan``."""
    classes = np.zeros(ages.shape, dtype=np.int8)
    if plan.tiering_days is None:
        return classes
    idle = ages - plan.tiering_days  # read while processed, before the transition; then not again
    conditions, choices = [], []
    if plan.deep_archive_days:
        conditions.append(idle >= plan.deep_archive_days)
        choices.append(5)
    if plan.archive_days:
        conditions.append(idle >= plan.archive_days)
        choices.append(4)
    conditions += [idle >= INT_AIA_IDLE_DAYS, idle >= INT_IA_IDLE_DAYS, idle >= 0]
    choices += [3, 2, 1]
    classes[:] = np.select(conditions, choices, default=0)
    return classes


@dataclasses.dataclass
class Volumes:
    """Monthly quantities every scenario prices (arrays over months)."""

    usage: Usage
    plan: LifecyclePlan
    project_gb_by_class: dict[str, np.ndarray]
    project_objects_by_class: dict[str, np.ndarray]
    transitions: np.ndarray
    project_gb: np.ndarray
    project_gb_peak: np.ndarray
    pmtiles_gb: np.ndarray
    logs_gb: np.ndarray
    incomplete_gb: np.ndarray

    @property
    def months(self) -> int:
        """The horizon."""
        return self.usage.months

    def stored_gb(self) -> np.ndarray:
        """Everything stored, GB-month a month."""
        return self.project_gb + self.pmtiles_gb + self.logs_gb + self.incomplete_gb


def volumes(usage: Usage, plan: LifecyclePlan) -> Volumes:
    """Simulate what is stored, in which class, day by day; summed by month."""
    months = usage.months
    keep = usage.retention_months * DAYS_PER_MONTH or None
    project_gb = usage.upload_gib_per_month + usage.projects_per_month * usage.products_gib_per_project
    project_objects = usage.images_per_month + usage.projects_per_month * usage.product_objects_per_project
    cohorts = _cohorts(months, project_gb, project_objects, keep)
    tiers = s3_tiers(cohorts.ages, plan)
    by_class = {name: cohorts.monthly(tiers == i) for i, name in enumerate(CLASSES)}
    objects = {name: cohorts.monthly(tiers == i, per="objects") for i, name in enumerate(CLASSES)}
    entering = (cohorts.ages == plan.tiering_days) if plan.tiering_days is not None else np.zeros_like(cohorts.alive)
    transitions = (cohorts.objects_per_cohort @ (entering & cohorts.alive)).reshape(-1, DAYS_PER_MONTH).sum(axis=1)
    peak = (cohorts.gb_per_cohort @ cohorts.alive).reshape(-1, DAYS_PER_MONTH).max(axis=1)
    generations = min(max(usage.tile_generations, 1), plan.keep_generations)
    pmtiles = _cohorts(months, usage.projects_per_month * usage.pmtiles_gib_per_project * generations, 1, None)
    logs = _cohorts(months, usage.log_gib_per_month, 1, plan.log_expiry_days)
    incomplete = _cohorts(months, usage.upload_gib_per_month * usage.failed_upload_share, 1, plan.abort_days)
    return Volumes(usage, plan, by_class, objects, transitions, sum(by_class.values()), peak,
                   pmtiles.monthly(pmtiles.alive), logs.monthly(logs.alive), incomplete.monthly(incomplete.alive))


# -- line items ----------------------------------------------------------------------------------------


def _write_requests(u: Usage) -> float:
    """Write requests a month: images as boto3 uploads them, products, PMTiles archives."""
    image = meter.multipart_requests(u.image_mib * MIB, u.multipart_threshold_mib, u.multipart_chunk_mib)
    pmtiles = meter.multipart_requests(u.pmtiles_gib_per_project * 1024 * MIB, u.multipart_threshold_mib,
                                       u.multipart_chunk_mib)
    return u.images_per_month * image + u.projects_per_month * (u.product_objects_per_project + pmtiles)


def _delivery(u: Usage) -> tuple[float, float]:
    """GB and requests delivered to users a month (map tiles and downloads)."""
    gb = u.tile_requests_per_month * u.tile_kib / 1024**2 + u.downloads_gib_per_month
    requests = u.tile_requests_per_month + u.downloads_gib_per_month * 1024 / max(u.download_mib, 1e-9)
    return gb, requests


def _processing_gb(u: Usage) -> float:
    return u.upload_gib_per_month * u.processing_reads


def _s3_storage(book: PriceBook, v: Volumes) -> np.ndarray:
    region = v.usage.region
    out = np.zeros(v.months)
    monitoring = book.aws(region, "s3/monitoring")
    for m in range(v.months):
        standard = v.project_gb_by_class["STANDARD"][m] + v.pmtiles_gb[m] + v.logs_gb[m] + v.incomplete_gb[m]
        total = meter.tiered(standard, book.aws(region, "s3/storage/STANDARD"), free=0)
        for name in INT_TIERS:
            total += meter.tiered(v.project_gb_by_class[name][m], book.aws(region, f"s3/storage/{name}"), free=0)
        int_objects = sum(v.project_objects_by_class[name][m] for name in INT_TIERS)
        total += int_objects / 1000 * monitoring.usd  # workbench objects are >= 128 KiB (images, products)
        out[m] = total
    return out


def _s3_requests(book: PriceBook, v: Volumes) -> np.ndarray:
    u, region = v.usage, v.usage.region
    standard = book.aws(region, "s3/requests/STANDARD")
    delivery_requests = _delivery(u)[1]
    gets = u.images_per_month * u.processing_reads + delivery_requests * (1 - u.cdn_hit_ratio)
    month = meter.requests(_write_requests(u), standard, "put") + meter.requests(gets, standard, "get")
    transitions = v.transitions / 1000 * float(book.aws(region, "s3/requests/INTELLIGENT_TIERING")["transition_in"])
    return month + transitions


def _aws_compute(book: PriceBook, u: Usage) -> tuple[float, float]:
    """(compute, workspace disk) USD a month for ODM on EC2, spot with on-demand fallback."""
    split = int(book["odm/split_above_images"]["images"])
    images = min(u.images_per_project, split)
    instance, price = meter.instance_for(book, u.region, meter.odm_ram_gib(book, images), u.spot_share)
    per_1000 = book["odm/hours_per_1000_images"]
    hours = (u.images_per_project / 1000 * float(per_1000["hours"]) * u.compute_scale
             * float(per_1000["vcpu"]) / float(price["vcpu"]))
    compute = u.projects_per_month * hours * meter.hourly(book, u.region, instance, u.spot_share)
    disk_gb = images * float(book["odm/ebs_gb_per_image"]["gb"])
    disk = u.projects_per_month * disk_gb * hours / HOURS_PER_MONTH * book.aws(u.region, "ec2/ebs_gp3").usd
    return compute, disk


def _onprem_compute(book: PriceBook, u: Usage) -> tuple[float, float]:
    """(hardware + power, admin) USD a month for ODM on the team's own servers."""
    server = book["onprem/compute_server/server"]
    per_1000 = book["odm/hours_per_1000_images"]
    busy = (u.images_per_month / 1000 * float(per_1000["hours"]) * u.compute_scale
            * float(per_1000["vcpu"]) / float(server["vcpu"]))
    utilisation = float(book["onprem/compute_server/max_utilisation"]["ratio"])
    servers = max(1, math.ceil(busy / (HOURS_PER_MONTH * utilisation)))
    capex = servers * server.usd / float(book["onprem/compute_server/amortisation_months"]["months"])
    watts_busy = float(book["onprem/compute_server/watts_busy"]["watts"])
    watts_idle = float(book["onprem/compute_server/watts_idle"]["watts"])
    kwh = (busy * watts_busy + max(0.0, servers * HOURS_PER_MONTH - busy) * watts_idle) / 1000
    power = _kwh_usd(book, kwh)
    admin = float(book["onprem/compute_server/admin_hours_per_month"]["hours"]) * book["onprem/admin_hourly"].usd
    return capex + power, admin


def _kwh_usd(book: PriceBook, kwh: float) -> float:
    electricity = book["onprem/electricity"]
    return kwh * electricity.usd * float(electricity["pue"])


def minio_storage(book: PriceBook, usable_gb: float) -> tuple[float, float]:
    """(hardware + power, admin) USD a month for ``usable_gb`` on on-prem MinIO (parametric, §4)."""
    base = "onprem/minio_storage"
    raw_tb = usable_gb / 1024 * float(book[f"{base}/ec_overhead"]["ratio"])
    months = float(book[f"{base}/amortisation_months"]["months"])
    chassis_price = book[f"{base}/chassis"]
    chassis = max(1, math.ceil(raw_tb / float(chassis_price["tb_raw_per_chassis"])))
    capex = (raw_tb * book[f"{base}/drive"].usd + chassis * chassis_price.usd) / months
    power = _kwh_usd(book, chassis * float(book[f"{base}/watts_per_chassis"]["watts"]) * HOURS_PER_MONTH / 1000)
    admin = float(book[f"{base}/admin_hours_per_month"]["hours"]) * book["onprem/admin_hourly"].usd
    return capex + power, admin


def _uplink(book: PriceBook, gb_in: float, gb_out: float) -> float:
    """The site's internet lines: enough of them for the month's busiest direction, at least one."""
    line = book["onprem/isp_uplink"]
    mbit = max(gb_in, gb_out) * 1024**3 * 8 / (HOURS_PER_MONTH * 3600) / 1e6
    return max(1, math.ceil(mbit / float(line["mbit"]))) * line.usd


def _r2_month(book: PriceBook, u: Usage, gb_month: float, reads_by_r2: bool, delivery_from_r2: bool) -> tuple[float, float]:
    """(storage, operations) USD for one month of R2."""
    class_b = (u.images_per_month * u.processing_reads if reads_by_r2 else 0.0)
    if delivery_from_r2:
        class_b += _delivery(u)[1]
    parts = meter.r2_month(book, "standard", gb_month, _write_requests(u), class_b)
    return parts["storage"], parts["class_a"] + parts["class_b"]


def _acceleration(book: PriceBook, u: Usage) -> float:
    rate = float(book.aws(u.region, "s3/transfer_acceleration")[f"in_{u.acceleration_edges}"])
    return u.upload_gib_per_month * u.accelerated_share * rate


def _nat(book: PriceBook, u: Usage) -> float:
    return _processing_gb(u) * book.aws(u.region, "nat_gateway").usd if u.nat_in_path else 0.0


ScenarioFn = Callable[[PriceBook, Volumes], dict[str, np.ndarray]]


def _months(value: float, months: int) -> np.ndarray:
    return np.full(months, float(value))


def _aws(book: PriceBook, v: Volumes, flat: bool) -> dict[str, np.ndarray]:
    u, n = v.usage, v.months
    compute, disk = _aws_compute(book, u)
    gb, requests = _delivery(u)
    if flat:
        try:
            delivery = meter.cloudfront_flat(book, u.region, gb, requests)[1]
        except CostError:  # above every plan's allowance: what AWS would bill instead of throttling
            delivery = meter.cloudfront_payg(book, u.region, gb, requests)
    else:
        delivery = meter.cloudfront_payg(book, u.region, gb, requests)
    return {"storage": _s3_storage(book, v), "requests": _s3_requests(book, v),
            "upload acceleration": _months(_acceleration(book, u), n), "processing transfer": _months(_nat(book, u), n),
            "compute": _months(compute, n), "workspace disk": _months(disk, n), "delivery": _months(delivery, n)}


def _r2_aws(book: PriceBook, v: Volumes) -> dict[str, np.ndarray]:
    u, n = v.usage, v.months
    compute, disk = _aws_compute(book, u)
    storage, ops = zip(*(_r2_month(book, u, gb, True, True) for gb in v.stored_gb()))
    return {"storage": np.array(storage), "requests": np.array(ops), "compute": _months(compute, n),
            "workspace disk": _months(disk, n)}


def _onprem_r2(book: PriceBook, v: Volumes) -> dict[str, np.ndarray]:
    u, n = v.usage, v.months
    hardware, admin = _onprem_compute(book, u)
    storage, ops = zip(*(_r2_month(book, u, gb, True, True) for gb in v.stored_gb()))
    site_in = _processing_gb(u)
    site_out = u.projects_per_month * (u.products_gib_per_project + u.pmtiles_gib_per_project)
    return {"storage": np.array(storage), "requests": np.array(ops), "compute": _months(hardware, n),
            "site uplink": _months(_uplink(book, site_in, site_out), n), "operations": _months(admin, n)}


def _onprem_minio(book: PriceBook, v: Volumes) -> dict[str, np.ndarray]:
    u, n = v.usage, v.months
    hardware, admin = _onprem_compute(book, u)
    storage, storage_admin = zip(*(minio_storage(book, gb) for gb in v.project_gb_peak + v.pmtiles_gb + v.logs_gb))
    site_out = _delivery(u)[0]
    return {"storage": np.array(storage), "compute": _months(hardware, n),
            "site uplink": _months(_uplink(book, u.upload_gib_per_month, site_out), n),
            "operations": np.array(storage_admin) + admin}


_BUILDERS: dict[str, ScenarioFn] = {
    "onprem-minio": _onprem_minio,
    "onprem-r2": _onprem_r2,
    "aws-cloudfront": lambda book, v: _aws(book, v, flat=False),
    "r2-aws-compute": _r2_aws,
    "aws-cloudfront-flat": lambda book, v: _aws(book, v, flat=True),
}


def plan_for(usage: Usage, plan: LifecyclePlan | None) -> LifecyclePlan:
    """``plan``, or the workbench's own rules with the usage's archive opt-in."""
    return plan if plan is not None else LifecyclePlan.workbench(transitions=True, archive_tiers=usage.archive_tiers)


def monthly_costs(usage: Usage, book: PriceBook, plan: LifecyclePlan | None = None,
                  scenarios: Iterable[str] | None = None) -> pd.DataFrame:
    """Long table: one row per scenario, month (1-based) and line item, with USD."""
    names = list(scenarios or SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise CostError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    v = volumes(usage, plan_for(usage, plan))
    rows = []
    for name in names:
        for item, values in _BUILDERS[name](book, v).items():
            for month, usd in enumerate(values, start=1):
                rows.append((name, month, item, float(usd)))
    return pd.DataFrame(rows, columns=["scenario", "month", "item", "usd"])


def totals(costs: pd.DataFrame) -> pd.DataFrame:
    """USD by month (rows) and scenario (columns)."""
    return costs.pivot_table(index="month", columns="scenario", values="usd", aggfunc="sum")[
        [s for s in SCENARIOS if s in set(costs["scenario"])]]


def cheapest(costs: pd.DataFrame) -> pd.Series:
    """The cheapest scenario each month (by that month's bill)."""
    return totals(costs).idxmin(axis=1)


def horizon_totals(costs: pd.DataFrame) -> pd.Series:
    """USD over the whole horizon, by scenario, cheapest first."""
    return totals(costs).sum().sort_values()


def summary(costs: pd.DataFrame) -> list[str]:
    """Sentences a researcher reads first: totals and which scenario is cheapest when."""
    by_month = cheapest(costs)
    lines = [f"{SCENARIOS[name]}: ${usd:,.0f} over {len(by_month)} months" for name, usd in horizon_totals(costs).items()]
    runs, start = [], 1
    for month in range(2, len(by_month) + 2):
        if month > len(by_month) or by_month[month] != by_month[start]:
            runs.append(f"months {start}-{month - 1}: {SCENARIOS[by_month[start]]}" if month - 1 > start
                        else f"month {start}: {SCENARIOS[by_month[start]]}")
            start = month
    return lines + ["cheapest: " + "; ".join(runs)]


def parse_usage(pairs: Iterable[str], base: Usage | None = None) -> Usage:
    """``NAME=VALUE`` pairs (the CLI's ``--set``) applied to ``base``: numbers, yes/no and text, checked."""
    from workbench.options import parse_number

    usage = base or Usage()
    kinds = {f.name: type(getattr(usage, f.name)) for f in dataclasses.fields(usage)}
    changes: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in kinds:
            raise CostError(f"--set takes NAME=VALUE with NAME one of: {', '.join(kinds)} (got {pair!r})")
        if kinds[name] is bool:
            if text.strip().lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise CostError(f"{name} is yes or no, not {text!r}")
            changes[name] = text.strip().lower() in ("true", "yes", "1")
        elif kinds[name] is str:
            changes[name] = text.strip()
        else:
            changes[name] = parse_number(text.strip(), kinds[name], name)
    return usage.replace(**changes)
