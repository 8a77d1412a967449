"""What SageMaker costs: $ per instance-hour by instance type, region and kind of use, and what a job may cost or did.

SageMaker bills each kind of use at its own rate, named by the Price List's usage type
`<location prefix>-<kind>:<instance type>`: training (Train), processing (Processing), batch transform (Tsform)
and endpoints (Host). A price comes from, in order:
  1. the cache of earlier Price List answers, in the user's cache folder ($XDG_CACHE_HOME/sagemake/pricing.json,
     by default ~/.cache/sagemake/pricing.json: prices are the same for every project), kept CACHE_DAYS days, each
     entry with its date;
  2. the AWS Price List API (pricing GetProducts: service AmazonSageMaker, the region's location and the kind's
     usage type), when an AWS session is given and its credentials allow;
  3. the shipped table, prices.json beside this file: on-demand prices for the instance types it lists in the
     commercial regions, each kind apart, dated and with its source (scripts/update_prices.sh makes it from the
     Price List's offer files).
Every answer says which one it came from. A price none of them knows is unknown (None), never 0, and never another
kind's or another region's.

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
SHIPPED = Path(__file__).with_name("prices.json")

# The kinds of use, as the Price List's usage types name them (<location prefix>-<kind>:<instance type>), and as
# the user reads them.
TRAINING, PROCESSING, TRANSFORM, HOSTING = "Train", "Processing", "Tsform", "Host"
KINDS = {TRAINING: "training", PROCESSING: "processing", TRANSFORM: "batch transform", HOSTING: "endpoint"}

# The Price List's name of each region (its `location` attribute) and the prefix of its usage types, for the
# GetProducts question; the shipped table needs neither (its offer files name each product's regionCode).
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


@dataclass(frozen=True)
class Table:
    """The shipped prices: {region: {kind: {instance type: USD per instance-hour}}}, what they came from and when."""
    source: str
    date: str
    instance_types: list[str]
    regions: list[str]
    prices: dict[str, dict[str, dict[str, float]]]

    @classmethod
    def read(cls, path: Path) -> Table:
        document = json.loads(path.read_text())
        return cls(document["source"], document["date"], document["instance_types"], document["regions"],
                   document["prices"])

    def hourly(self, region: str, kind: str, instance_type: str) -> float | None:
        return self.prices.get(region, {}).get(kind, {}).get(instance_type)


TABLE = Table.read(SHIPPED)


@dataclass(frozen=True)
class Price:
    instance_type: str
    region: str
    hourly: float | None  # USD per instance-hour; None: unknown
    source: str  # where it came from, for the user


class Prices:
    """Prices in one region, each (instance type, kind) asked for once. With `aws` (a boto3 session) the Price List
    API is asked for what the cache does not hold; without, only the cache and the shipped table are read."""

    def __init__(self, region: str, aws=None, hypothetical: bool = False, today: date | None = None):
        self.region, self.aws, self.hypothetical = region, aws, hypothetical
        self.today = today or date.today()
        self.cache_path = cache_path()
        self.problem: str | None = None  # why the API did not answer, once it failed
        self._known: dict[tuple[str, str], Price] = {}

    def hourly(self, instance_type: str, kind: str) -> Price:
        """The on-demand price of one instance of instance_type for an hour of `kind` (TRAINING, PROCESSING,
        TRANSFORM, HOSTING) in this region."""
        if (instance_type, kind) not in self._known:
            self._known[instance_type, kind] = self._find(instance_type, kind)
        return self._known[instance_type, kind]

    def sources(self) -> str:
        """Where the prices used so far came from, one phrase."""
        used = sorted({p.source for p in self._known.values()})
        said = "; ".join(used) or "none asked"
        return f"prices for {self.region}: {said}" + (f" (Price List API: {self.problem})" if self.problem else "")

    def _find(self, instance_type: str, kind: str) -> Price:
        key = f"{self.region} {instance_type if kind == TRAINING else f'{kind}:{instance_type}'}"
        cache = self._read_cache()
        entry = cache.get(key)
        if entry and self.today - date.fromisoformat(entry["date"]) <= timedelta(days=CACHE_DAYS):
            if entry["hourly"] is not None:
                return Price(instance_type, self.region, entry["hourly"],
                             f"AWS Price List API as of {entry['date']} (cached in {self.cache_path})")
            return self._table(instance_type, kind, f"the Price List API had none on {entry['date']}")
        if self.aws is not None and self.problem is None:
            try:
                hourly = self._ask(instance_type, kind)
            except AwsError as err:
                self.problem = str(err)
            else:
                cache[key] = {"hourly": hourly, "date": self.today.isoformat()}
                self._write_cache(cache)
                if hourly is not None:
                    return Price(instance_type, self.region, hourly, f"AWS Price List API, {self.today.isoformat()}")
                return self._table(instance_type, kind, "the Price List API has none")
        return self._table(instance_type, kind, None)

    def _table(self, instance_type: str, kind: str, why: str | None) -> Price:
        hourly = TABLE.hourly(self.region, kind, instance_type)
        if hourly is not None:
            return Price(instance_type, self.region, hourly, f"the shipped table of {TABLE.date}")
        said = f"{why}, and " if why else ""
        return Price(instance_type, self.region, None, f"unknown: {said}the shipped table of {TABLE.date} has no "
                                                       f"{KINDS[kind]} price for {instance_type} in {self.region}")

    def _ask(self, instance_type: str, kind: str) -> float | None:
        """GetProducts for the kind's usage type of instance_type in this region; None when it lists none."""
        from botocore.config import Config

        from sagemake.aws.api import call  # boto3: only when AWS is asked

        if self.region not in LOCATIONS:
            raise AwsError(f"no Price List location known for region {self.region}")
        location, prefix = LOCATIONS[self.region]
        usage_type = f"{prefix}-{kind}:{instance_type}"
        client = call(self.aws.client, service_name="pricing", region_name=PRICING_REGION, config=Config(
            retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=15))
        answer = call(client.get_products, ServiceCode=SERVICE, FormatVersion="aws_v1", MaxResults=10, Filters=[
            {"Type": "TERM_MATCH", "Field": "location", "Value": location},
            {"Type": "TERM_MATCH", "Field": "usagetype", "Value": usage_type},
        ])
        for item in answer.get("PriceList", []):
            product = json.loads(item) if isinstance(item, str) else item
            if product.get("product", {}).get("attributes", {}).get("usagetype") == usage_type:
                hourly = on_demand_hourly(product.get("terms", {}).get("OnDemand", {}))
                if hourly is not None:
                    return hourly
        return None

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


def on_demand_hourly(terms: dict) -> float | None:
    """The USD hourly rate in one product's OnDemand terms ({term code: term}, as GetProducts and the offer files
    give them); None when they hold none above $0 (a free tier's rate is not the price)."""
    for term in terms.values():
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
    """What the training request may cost on SageMaker: $/h x instances, and the worst case (MaxRuntime; MaxWait
    with spot), plus a warm pool's kept time."""
    resources, stopping = request["ResourceConfig"], request["StoppingCondition"]
    instance_type, count = resources["InstanceType"], resources["InstanceCount"]
    price = prices.hourly(instance_type, TRAINING)
    where = "on SageMaker (this job runs locally, for nothing)" if prices.hypothetical else "on SageMaker"
    if price.hourly is None:
        return f"cost {where}: {instance_type} x {count}: unknown ({prices.sources()})"
    if request.get("EnableManagedSpotTraining"):
        limit, bound = stopping["MaxWaitTimeInSeconds"], "MaxWaitTimeInSeconds"
        note = "; spot bills only the seconds it trains, at most MaxRuntime's, usually far less"
    else:
        limit, bound, note = stopping["MaxRuntimeInSeconds"], "MaxRuntimeInSeconds", ""
    line = (f"cost {where}: {instance_type} {rate(price.hourly)}/h x {count} instance{'s' if count != 1 else ''} = "
            f"{rate(price.hourly * count)}/h; at most {money(cost(price.hourly, limit, count))} for {bound}={limit} s"
            f"{note}")
    keep = resources.get("KeepAlivePeriodInSeconds")
    if keep:
        line += f"; a warm pool kept {keep} s adds up to {money(cost(price.hourly, keep, count))}"
    return f"{line} ({prices.sources()})"


def used_line(kind: str, instance_type: str, count: int, seconds: int, prices: Prices) -> str:
    """What `count` instances of instance_type used for `seconds` of `kind` cost (or, locally, would have) on
    SageMaker, at that kind's rate in the prices' region."""
    price = prices.hourly(instance_type, kind)
    where = "would have cost on SageMaker" if prices.hypothetical else "cost on SageMaker"
    used = f"{count} x {instance_type} for {seconds} s"
    if price.hourly is None:
        return f"{where}: {used}: unknown ({prices.sources()})"
    return (f"{where}: {used} at {rate(price.hourly)}/h of {KINDS[kind]} = "
            f"{money(cost(price.hourly, seconds, count))} ({prices.sources()})")


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
    price = prices.hourly(resources.get("InstanceType", ""), TRAINING)
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
