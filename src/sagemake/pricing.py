"""What SageMaker training costs: $ per instance-hour by instance type and region, and what a job may cost or did.

A price comes from, in order:
  1. the cache of earlier Price List answers, in the user's cache folder ($XDG_CACHE_HOME/sagemake/pricing.json,
     by default ~/.cache/sagemake/pricing.json: prices are the same for every project), kept CACHE_DAYS days, each
     entry with its date;
  2. the AWS Price List API (pricing GetProducts: service AmazonSageMaker, the region's location and its training
     usage type `<prefix>-Train:<instance type>`), when an AWS session is given and its credentials allow;
  3. TABLE, the on-demand training prices shipped here, dated TABLE_DATE, for a few regions.
Every answer says which one it came from. A price none of them knows is unknown (None), never 0.

SageMaker bills training by the second, per instance, at the on-demand rate: managed spot bills fewer seconds
(BillableTimeInSeconds), and a warm pool bills the time it kept the instances (ResourceRetainedBillableTimeInSeconds).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sagemake import jsonfile
from sagemake.cli import AwsError

CACHE = "sagemake/pricing.json"  # under the user's cache folder
CACHE_DAYS = 7
PRICING_REGION = "us-east-1"  # the Price List API answers from us-east-1 (and a few others), for every region
DEFAULT_REGION = "us-east-1"  # local jobs without AWS_REGION are priced as if there
SERVICE = "AmazonSageMaker"
TRAINING, HOSTING = "Train", "Host"  # the usage types: <location prefix>-Train:<type>, -Host:<type> (endpoints)

# The Price List's name of each region (its `location` attribute) and the prefix of its usage types.
LOCATIONS = {
    "us-east-1": ("US East (N. Virginia)", "USE1"),
    "us-east-2": ("US East (Ohio)", "USE2"),
    "us-west-1": ("US West (N. California)", "USW1"),
    "us-west-2": ("US West (Oregon)", "USW2"),
    "ca-central-1": ("Canada (Central)", "CAN1"),
    "eu-west-1": ("EU (Ireland)", "EU"),
    "eu-west-2": ("EU (London)", "EUW2"),
    "eu-west-3": ("EU (Paris)", "EUW3"),
    "eu-central-1": ("EU (Frankfurt)", "EUC1"),
    "eu-north-1": ("EU (Stockholm)", "EUN1"),
    "ap-south-1": ("Asia Pacific (Mumbai)", "APS3"),
    "ap-northeast-1": ("Asia Pacific (Tokyo)", "APN1"),
    "ap-northeast-2": ("Asia Pacific (Seoul)", "APN2"),
    "ap-southeast-1": ("Asia Pacific (Singapore)", "APS1"),
    "ap-southeast-2": ("Asia Pacific (Sydney)", "APS2"),
    "sa-east-1": ("South America (Sao Paulo)", "SAE1"),
}

# On-demand SageMaker training, USD per instance-hour: AWS's published rates for US East (N. Virginia), which
# US East (Ohio) and US West (Oregon) share for these types. Refresh with the API (any ENV but local writes the
# cache); other regions differ and are left to the API rather than guessed.
TABLE_DATE = "2026-12-02"
_US = {
    "ml.m5.large": 0.115, "ml.m5.xlarge": 0.23, "ml.m5.2xlarge": 0.461, "ml.m5.4xlarge": 0.922,
    "ml.m5.12xlarge": 2.765, "ml.m5.24xlarge": 5.53,
    "ml.c5.xlarge": 0.204, "ml.c5.2xlarge": 0.408, "ml.c5.4xlarge": 0.816, "ml.c5.9xlarge": 1.836,
    "ml.c5.18xlarge": 3.672,
    "ml.g4dn.xlarge": 0.736, "ml.g4dn.2xlarge": 0.94, "ml.g4dn.4xlarge": 1.505, "ml.g4dn.8xlarge": 2.72,
    "ml.g4dn.12xlarge": 4.89, "ml.g4dn.16xlarge": 5.44,
    "ml.g5.xlarge": 1.408, "ml.g5.2xlarge": 1.515, "ml.g5.4xlarge": 2.03, "ml.g5.8xlarge": 3.06,
    "ml.g5.12xlarge": 7.09, "ml.g5.16xlarge": 4.1, "ml.g5.24xlarge": 10.18, "ml.g5.48xlarge": 20.36,
    "ml.p3.2xlarge": 3.825, "ml.p3.8xlarge": 14.688, "ml.p3.16xlarge": 28.152,
    "ml.trn1.2xlarge": 1.5484, "ml.trn1.32xlarge": 24.7726,
}
TABLE = {"us-east-1": _US, "us-east-2": _US, "us-west-2": _US}


@dataclass(frozen=True)
class Price:
    instance_type: str
    region: str
    hourly: float | None  # USD per instance-hour; None: unknown
    source: str  # where it came from, for the user


class Prices:
    """Prices in one region, each asked for once. With `aws` (a boto3 session) the Price List API is asked for what
    the cache does not hold; without, only the cache and the table are read."""

    def __init__(self, region: str, aws=None, hypothetical: bool = False, today: date | None = None,
                 usage: str = TRAINING):
        self.region, self.aws, self.hypothetical, self.usage = region, aws, hypothetical, usage
        self.today = today or date.today()
        self.cache_path = cache_path()
        self.problem: str | None = None  # why the API did not answer, once it failed
        self._known: dict[str, Price] = {}

    def hourly(self, instance_type: str) -> Price:
        if instance_type not in self._known:
            self._known[instance_type] = self._find(instance_type)
        return self._known[instance_type]

    def sources(self) -> str:
        """Where the prices used so far came from, one phrase."""
        used = sorted({p.source for p in self._known.values()})
        said = "; ".join(used) or "none asked"
        return f"prices for {self.region}: {said}" + (f" (Price List API: {self.problem})" if self.problem else "")

    def _find(self, instance_type: str) -> Price:
        key = f"{self.region} {instance_type if self.usage == TRAINING else f'{self.usage}:{instance_type}'}"
        cache = self._read_cache()
        entry = cache.get(key)
        if entry and self.today - date.fromisoformat(entry["date"]) <= timedelta(days=CACHE_DAYS):
            if entry["hourly"] is not None:
                return Price(instance_type, self.region, entry["hourly"],
                             f"AWS Price List API as of {entry['date']} (cached in {self.cache_path})")
            return self._table(instance_type, f"the Price List API had none on {entry['date']}")
        if self.aws is not None and self.problem is None:
            try:
                hourly = self._ask(instance_type)
            except AwsError as err:
                self.problem = str(err)
            else:
                cache[key] = {"hourly": hourly, "date": self.today.isoformat()}
                self._write_cache(cache)
                if hourly is not None:
                    return Price(instance_type, self.region, hourly, f"AWS Price List API, {self.today.isoformat()}")
                return self._table(instance_type, "the Price List API has none")
        return self._table(instance_type, None)

    def _table(self, instance_type: str, why: str | None) -> Price:
        hourly = TABLE.get(self.region, {}).get(instance_type) if self.usage == TRAINING else None
        if hourly is not None:
            return Price(instance_type, self.region, hourly, f"the shipped table of {TABLE_DATE}")
        if self.usage != TRAINING:
            said = f"{why}, and" if why else "not asked (no AWS session), and"
            return Price(instance_type, self.region, None, f"unknown: {said} the shipped table holds training prices "
                                                           "only")
        regions = ", ".join(TABLE)
        said = f"{why}, and it is not in" if why else "not in"
        return Price(instance_type, self.region, None,
                     f"unknown: {said} the shipped table of {TABLE_DATE} ({regions})")

    def _ask(self, instance_type: str) -> float | None:
        """GetProducts for the training usage type of instance_type in this region; None when it lists none."""
        from botocore.config import Config

        from sagemake.aws.api import call  # boto3: only when AWS is asked

        if self.region not in LOCATIONS:
            raise AwsError(f"no Price List location known for region {self.region}")
        location, prefix = LOCATIONS[self.region]
        client = call(self.aws.client, service_name="pricing", region_name=PRICING_REGION, config=Config(
            retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=15))
        answer = call(client.get_products, ServiceCode=SERVICE, FormatVersion="aws_v1", MaxResults=10, Filters=[
            {"Type": "TERM_MATCH", "Field": "location", "Value": location},
            {"Type": "TERM_MATCH", "Field": "usagetype", "Value": f"{prefix}-{self.usage}:{instance_type}"},
        ])
        return on_demand_hourly(answer.get("PriceList", []), f"{prefix}-{self.usage}:{instance_type}")

    def _read_cache(self) -> dict:
        return jsonfile.read(self.cache_path, {})

    def _write_cache(self, cache: dict) -> None:
        try:
            jsonfile.write(self.cache_path, cache, indent=1, sort_keys=True)
        except OSError:  # a read-only checkout: the answer is still used, only not kept
            pass


def cache_path() -> Path:
    """$XDG_CACHE_HOME/sagemake/pricing.json, or ~/.cache/sagemake/pricing.json."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / CACHE


def on_demand_hourly(price_list: list, usage_type: str) -> float | None:
    """The USD hourly on-demand rate in GetProducts' PriceList (each item a JSON string) for usage_type."""
    for item in price_list:
        product = json.loads(item) if isinstance(item, str) else item
        if product.get("product", {}).get("attributes", {}).get("usagetype") != usage_type:
            continue
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if dimension.get("unit", "").lower().startswith("hr") and usd and float(usd) > 0:
                    return float(usd)
    return None


def cost(hourly: float | None, seconds: float, count: int) -> float | None:
    """$ for `count` instances for `seconds` each; None when the price is unknown."""
    return None if hourly is None else hourly * count * seconds / 3600


def money(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def rate(hourly: float) -> str:
    """$ per hour as the price list gives it (up to 4 decimals: $0.115, $1.5484)."""
    return "$" + f"{hourly:,.4f}".rstrip("0").rstrip(".")


def plan_line(request: dict, prices: Prices) -> str:
    """What the request may cost on SageMaker: $/h x instances, and the worst case (MaxRuntime; MaxWait with spot),
    plus a warm pool's kept time."""
    resources, stopping = request["ResourceConfig"], request["StoppingCondition"]
    kind, count = resources["InstanceType"], resources["InstanceCount"]
    price = prices.hourly(kind)
    where = "on SageMaker (this job runs locally, for nothing)" if prices.hypothetical else "on SageMaker"
    if price.hourly is None:
        return f"cost {where}: {kind} x {count}: unknown ({price.source}, {prices.region})"
    if request.get("EnableManagedSpotTraining"):
        limit, bound = stopping["MaxWaitTimeInSeconds"], "MaxWaitTimeInSeconds"
        note = "; spot bills only the seconds it trains, at most MaxRuntime's, usually far less"
    else:
        limit, bound, note = stopping["MaxRuntimeInSeconds"], "MaxRuntimeInSeconds", ""
    line = (f"cost {where}: {kind} {rate(price.hourly)}/h x {count} instance{'s' if count != 1 else ''} = "
            f"{rate(price.hourly * count)}/h; at most {money(cost(price.hourly, limit, count))} for {bound}={limit} s"
            f"{note}")
    keep = resources.get("KeepAlivePeriodInSeconds")
    if keep:
        line += f"; a warm pool kept {keep} s adds up to {money(cost(price.hourly, keep, count))}"
    return f"{line} ({prices.sources()})"


@dataclass
class Entry:
    """One job in the ledger: the seconds SageMaker bills (or would), its $ and what spot saved."""
    billable: int | None
    cost: float | None
    saved: float | None
    known: bool  # whether the price was known (a cost of None with known=True: nothing billed yet)
    saved_unknown: bool = False  # a local spot job or drill: what spot would have saved cannot be known


def ledger_entry(record: dict, prices: Prices) -> Entry:
    """A DescribeTrainingJob record's bill: BillableTimeInSeconds (TrainingTimeInSeconds for a job that has no
    billable time: a local one, what SageMaker would bill), plus a warm pool's kept seconds, per instance.

    A local job bills (would bill) on demand; with USE_SPOT or SPOT_DRILL_SECONDS, what spot would have saved is
    unknown, not nothing: SageMaker's billable seconds for a spot job carry the spot market's discount at the
    time, which no local run can know."""
    resources = record.get("ResourceConfig", {})
    count = resources.get("InstanceCount", 1)
    price = prices.hourly(resources.get("InstanceType", ""))
    training = record.get("TrainingTimeInSeconds")
    billable = record.get("BillableTimeInSeconds", training)
    if billable is None:
        return Entry(None, None, None, price.hourly is not None)
    kept = (record.get("WarmPoolStatus") or {}).get("ResourceRetainedBillableTimeInSeconds") or 0
    spent = cost(price.hourly, billable + kept, count)
    saved = None
    if record.get("EnableManagedSpotTraining") and training and billable < training:
        saved = cost(price.hourly, training - billable, count)
    local_spot = "LocalRuntime" in record and bool(record.get("EnableManagedSpotTraining")
                                                   or record.get("LocalSpotDrillSeconds"))
    return Entry(billable, spent, saved, price.hourly is not None, saved is None and local_spot)


def bill_cells(entry: Entry) -> list[str]:
    """One job's bill as the ledgers show it: billable seconds, $ and spot savings ("-" for none yet)."""
    return ["-" if entry.billable is None else f"{entry.billable}s",
            money(entry.cost) if entry.billable is not None else "-",
            money(entry.saved) if entry.saved is not None else "unknown" if entry.saved_unknown else "-"]


def total_cells(entries: list[Entry]) -> list[str]:
    """The jobs' total bill as the ledgers show it: billable seconds, $ and spot savings, each saying how many of
    the jobs' prices (or savings) are unknown."""
    unknown = sum(e.billable is not None and not e.known for e in entries)
    unsaved = sum(e.saved_unknown for e in entries)
    return [f"{sum(e.billable or 0 for e in entries)}s",
            money(sum(e.cost or 0 for e in entries)) + (f" + {unknown} unknown" if unknown else ""),
            money(sum(e.saved or 0 for e in entries)) + (f" + {unsaved} unknown" if unsaved else "")]
