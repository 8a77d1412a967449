"""The shipped price table (prices.json beside pricing.py) made from AWS Price List offer files for SageMaker.

Usage: scripts/update_prices.sh OFFER.json [OFFER.json ...]   (python -m sagemake.price_list OFFER.json ...)

An offer file is the Price List's bulk answer for the service AmazonSageMaker: the whole service
(offers/v1.0/aws/AmazonSageMaker/current/index.json) or one region's
(offers/v1.0/aws/AmazonSageMaker/current/<region>/index.json). Each product is an "ML Instance" whose usage type
`<location prefix>-<kind>:<instance type>` names its kind of use (Train, Processing, Tsform, Host) and whose
regionCode names its region; its on-demand terms give the USD rate per instance-hour. The table keeps, for the
instance types it already lists, each kind's rate in every commercial region (the "aws" partition as botocore
lists it); what no offer file prices stays out, and sagemake says "unknown" for it. The table's source and date
are the offer files' own (their version and publicationDate).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from sagemake.cli import Exit, UserError, say
from sagemake.pricing import KINDS, SHIPPED, TABLE, Table, on_demand_hourly

OFFER_FILES = "the Price List's offers/v1.0/aws/AmazonSageMaker/current[/<region>]/index.json"
# <location prefix>-<kind>:<instance type>, e.g. EU-Train:ml.m5.large, USE1-Tsform:ml.c5.xlarge
USAGE_TYPE = re.compile(r"[A-Z0-9]+-(?P<kind>\w+):(?P<instance_type>ml\.[\w.-]+)")


def commercial_regions() -> list[str]:
    """The regions of AWS's commercial partition ("aws": not China, GovCloud or the isolated ones), as botocore's
    endpoint data lists them."""
    from botocore.loaders import create_loader

    partitions = create_loader().load_data("endpoints")["partitions"]
    return sorted(next(p for p in partitions if p["partition"] == "aws")["regions"])


def offer_prices(offer: dict, instance_types: list[str], regions: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """{region: {kind: {instance type: USD per instance-hour}}} for the given instance types and regions, from one
    offer file; two products that price the same thing differently are refused."""
    if offer.get("offerCode") != "AmazonSageMaker":
        raise UserError(f"not a SageMaker offer file (offerCode {offer.get('offerCode')!r}): give {OFFER_FILES}")
    wanted_types, wanted_regions = set(instance_types), set(regions)
    on_demand = offer.get("terms", {}).get("OnDemand", {})
    found: dict[str, dict[str, dict[str, float]]] = {}
    for sku, product in offer.get("products", {}).items():
        attributes = product.get("attributes", {})
        usage = USAGE_TYPE.fullmatch(attributes.get("usagetype", ""))
        if (product.get("productFamily") != "ML Instance" or usage is None or usage["kind"] not in KINDS
                or attributes.get("locationType") != "AWS Region"):
            continue
        region, instance_type = attributes.get("regionCode"), usage["instance_type"]
        if region not in wanted_regions or instance_type not in wanted_types:
            continue
        hourly = on_demand_hourly(on_demand.get(sku, {}))
        if hourly is None:
            continue
        kind = found.setdefault(region, {}).setdefault(usage["kind"], {})
        if kind.get(instance_type, hourly) != hourly:
            raise UserError(f"the offer file prices {attributes['usagetype']} in {region} twice ({kind[instance_type]} "
                            f"and {hourly}, product {sku}): give the files of one Price List version")
        kind[instance_type] = hourly
    return found


def merge(into: dict, more: dict) -> None:
    for region, kinds in more.items():
        for kind, prices in kinds.items():
            known = into.setdefault(region, {}).setdefault(kind, {})
            for instance_type, hourly in prices.items():
                if known.get(instance_type, hourly) != hourly:
                    raise UserError(f"two offer files price {kind}:{instance_type} in {region} differently "
                                    f"({known[instance_type]} and {hourly}): give the files of one Price List version")
                known[instance_type] = hourly


def table_from(paths: list[Path], instance_types: list[str], regions: list[str]) -> Table:
    """The table the offer files make: their prices for these instance types and regions, their version and date."""
    prices: dict = {}
    versions, dates = set(), set()
    for path in paths:
        try:
            offer = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read the offer file {path}: {err}: give a Price List offer file (JSON)") from err
        if not isinstance(offer, dict):
            raise UserError(f"{path} is not a Price List offer file (its JSON is a {type(offer).__name__}, not an "
                            f"object): give {OFFER_FILES}")
        found = offer_prices(offer, instance_types, regions)
        if not offer.get("products"):
            raise UserError(f"the offer file {path} lists no products: give {OFFER_FILES}, downloaded in full")
        merge(prices, found)
        versions.add(offer.get("version", "?"))
        dates.add(offer.get("publicationDate", "")[:10])
    if not prices:
        raise UserError(f"the offer files price none of the table's {len(instance_types)} instance types in its "
                        f"{len(regions)} commercial regions: give {OFFER_FILES} (the whole service's, or those "
                        "regions')")
    ordered = {region: {kind: dict(sorted(prices[region][kind].items(), key=lambda i: instance_types.index(i[0])))
                        for kind in KINDS if kind in prices[region]} for region in regions if region in prices}
    return Table(f"AWS Price List, offer AmazonSageMaker version {', '.join(sorted(versions))} "
                 f"(published {', '.join(sorted(dates))})", max(dates), instance_types, regions, ordered)


def dump(table: Table) -> str:
    """The table as prices.json holds it: its source and date first, one line per region and kind."""
    lines = ["{", f' "source": {json.dumps(table.source)},', f' "date": {json.dumps(table.date)},',
             f' "instance_types": {json.dumps(table.instance_types)},', f' "regions": {json.dumps(table.regions)},',
             ' "prices": {']
    regions = list(table.prices.items())
    for r, (region, kinds) in enumerate(regions):
        lines.append(f"  {json.dumps(region)}: {{")
        for k, (kind, prices) in enumerate(kinds.items()):
            lines.append(f"   {json.dumps(kind)}: {json.dumps(prices)}" + ("," if k < len(kinds) - 1 else ""))
        lines.append("  }" + ("," if r < len(regions) - 1 else ""))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        raise UserError("usage: scripts/update_prices.sh OFFER.json [OFFER.json ...] (AWS Price List offer files "
                        "for AmazonSageMaker)")
    table = table_from([Path(a) for a in argv], TABLE.instance_types, commercial_regions())
    SHIPPED.write_text(dump(table))
    priced = sum(len(p) for kinds in table.prices.values() for p in kinds.values())
    possible = len(table.instance_types) * len(table.regions) * len(KINDS)
    say(f"prices: {SHIPPED}: {priced} of {possible} prices ({len(table.instance_types)} instance types x "
        f"{len(table.regions)} regions x {len(KINDS)} kinds) from {table.source}; the rest are unknown")
    return Exit.OK


if __name__ == "__main__":
    from sagemake.__main__ import run

    run(main, sys.argv[1:])
