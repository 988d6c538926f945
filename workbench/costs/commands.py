"""``workbench costs compare|bucket|run|refresh``: thin commands over :mod:`workbench.costs`."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.costs import pricebook
from workbench.storage import Storage

if TYPE_CHECKING:  # pandas and the scenarios load only when a costs command runs (the CLI starts fast)
    import pandas as pd


@contextmanager
def _book(args: argparse.Namespace) -> Iterator[pricebook.PriceBook]:
    """The price book; staleness becomes one note on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pricebook.StalePriceWarning)
        book = pricebook.load(args.pricebook)
    for warning in caught:
        print(f"workbench: note: {warning.message}", file=sys.stderr)
    yield book


def _print_frame(frame: pd.DataFrame) -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 120):
        print(frame.to_string())


def cmd_compare(args: argparse.Namespace) -> int:
    from workbench.costs import dronetm, scenarios
    from workbench.costs.scenarios import monthly_costs, parse_usage, summary, totals

    with _book(args) as book:
        if args.dronetm:
            _print_frame(dronetm.comparison(book).set_index("item"))
            print("\nS3 storage a month under #708's usage (USD):")
            _print_frame(dronetm.growth(book, args.months or 12).round(2))
            return 0
        usage = parse_usage(args.set, scenarios.Usage(months=args.months or 12, archive_tiers=args.archive_tiers))
        costs = monthly_costs(usage, book, scenarios=args.scenario or None)
        if args.csv:
            costs.to_csv(args.csv, index=False)
            print(f"line items written to {args.csv}")
        table = totals(costs).round(2)
        _print_frame(table)
        print()
        print("\n".join(summary(costs)))
        print(f"oldest price in the {book.origin} book: {book.as_of}; `--set NAME=VALUE` changes an input")
    return 0


def cmd_bucket(args: argparse.Namespace, storage: Storage) -> int:
    from workbench.costs.bucket import report

    with _book(args) as book:
        result = report(storage, book, prefix=args.prefix, inventory=args.inventory, depth=args.depth,
                        provider=args.provider, months=args.months or 12)
    if len(result.groups):
        shown = result.groups.assign(GiB=(result.groups["bytes"] / 2**30).round(3)).drop(columns=["bytes", "billable", "monitored"])
        _print_frame(shown)
    print("\n".join(result.lines()))
    return 0


def cmd_run(args: argparse.Namespace, storage: Storage) -> int:
    from workbench import layout
    from workbench.costs.receipt import lines, write_receipt
    from workbench.engines.runs import RUN_RECORD, read_record
    from workbench.errors import NotFoundError

    record = read_record(storage, layout.product_key(args.org, args.project, args.run, RUN_RECORD))
    if record is None:
        raise NotFoundError(f"run {args.run} of {args.org}/{args.project} has no run.json")
    with _book(args) as book:
        cost = write_receipt(storage, record, book, instance_type=args.instance_type, spot_share=args.spot_share,
                             compute_region=args.compute_region)
    print("\n".join(lines(cost)))
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from workbench.costs.refresh import refresh

    book = pricebook.load(user=False, warn=False)
    output, changed = refresh([Path(f) for f in args.offer_file], args.offer_region, book, args.output)
    print("\n".join(changed))
    print(f"price book written: {output} (laid over the packaged one when costs are computed)")
    return 0


def add_commands(commands: Any, command: Callable[..., argparse.ArgumentParser],
                 with_storage: Callable[[Callable[[argparse.Namespace, Storage], int]], Callable[[argparse.Namespace], int]]) -> None:
    """Register ``costs`` and its actions on the CLI's subparsers."""
    costs = commands.add_parser("costs", help="prices: scenarios, the bucket's bill, run receipts, price refresh")
    actions = costs.add_subparsers(dest="costs_command", required=True, metavar="ACTION")

    def action(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = command(name, func, help_text, actions)
        sub.add_argument("--pricebook", help="a price book laid over the packaged one (default: the user's, if any)")
        return sub

    compare = action("compare", cmd_compare, "what a usage costs on each hosting option, month by month")
    compare.add_argument("--months", type=int, help="horizon (default 12)")
    compare.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                         help="a usage input, repeatable (e.g. images_per_project=3000, downloads_gib_per_month=2000)")
    compare.add_argument("--scenario", action="append", help="only this scenario (repeatable): onprem-minio, onprem-r2, "
                         "aws-cloudfront, r2-aws-compute, aws-cloudfront-flat")
    compare.add_argument("--archive-tiers", action="store_true", help="opt in to Intelligent-Tiering's archive tiers")
    compare.add_argument("--csv", help="write every line item to this CSV file")
    compare.add_argument("--dronetm", action="store_true", help="drone-tm #708's estimate reproduced and corrected")

    bucket = action("bucket", with_storage(cmd_bucket), "what the bucket costs now and under its lifecycle rules")
    bucket.add_argument("--prefix", default="", help="only keys under this prefix")
    bucket.add_argument("--inventory", help="key of an S3 Inventory manifest.json in the bucket (instead of listing)")
    bucket.add_argument("--depth", type=int, default=2, help="folders that make a prefix group (default 2)")
    bucket.add_argument("--provider", choices=["s3", "r2"], help="price as (default: from the profile)")
    bucket.add_argument("--months", type=int, help="projection horizon (default 12)")

    run = action("run", with_storage(cmd_run), "a run's cost receipt (written to products/{run}/cost.json)")
    run.add_argument("run")
    run.add_argument("--org", required=True)
    run.add_argument("--project", required=True)
    run.add_argument("--instance-type", help="EC2 type the run used (default $WORKBENCH_INSTANCE_TYPE; none: your machine)")
    run.add_argument("--spot-share", type=float, default=0.0, help="share of its hours on spot (default 0)")
    run.add_argument("--compute-region", help="region the instance ran in (default: the bucket's)")

    refresh = action("refresh", cmd_refresh, "rebuild AWS prices from Price List offer files (JSON) you downloaded")
    refresh.add_argument("--offer-file", action="append", required=True, help="AmazonS3, AWSDataTransfer or AmazonEC2 "
                         "region offer file (repeatable)")
    refresh.add_argument("--offer-region", default="us-east-1", help="region to read from the files (default us-east-1)")
    refresh.add_argument("--output", help="where to write the book (default ~/.local/share/workbench/pricebook.yaml)")
