"""The shipped price table: made from Price List offer files (tests/fixtures/prices/offer.json, in the offer files'
layout, with figures of its own so each kind of use is told apart), read by the product, each kind of use at its
own rate in its own region; and the table shipped in src/sagemake/prices.json."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, copy_repo

from sagemake import pricing
from sagemake.cli import UserError
from sagemake.price_list import commercial_regions, dump, offer_prices, table_from
from sagemake.pricing import (
    HOSTING,
    KINDS,
    PROCESSING,
    SHIPPED,
    TRAINING,
    TRANSFORM,
    Prices,
    Table,
    plan_line,
    used_line,
)

OFFER = Path(__file__).resolve().parents[1] / "fixtures/prices/offer.json"
TYPES = ["ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge", "ml.g5.2xlarge"]


@pytest.fixture
def offer_table(monkeypatch, tmp_path):
    """The product reading the table the fixture offer file makes (and no cached price)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    table = table_from([OFFER], TYPES, commercial_regions())
    monkeypatch.setattr(pricing, "TABLE", table)
    return table


def test_an_offer_file_gives_each_kind_of_use_its_own_rate_in_its_own_region():
    table = table_from([OFFER], TYPES, commercial_regions())
    assert table.prices == {
        "eu-central-1": {TRAINING: {"ml.m5.xlarge": 0.2999}},  # its $0 (free tier) product is no price
        "eu-west-1": {TRAINING: {"ml.m5.large": 0.1111}, PROCESSING: {"ml.m5.large": 0.2222},
                      TRANSFORM: {"ml.m5.large": 0.3333}, HOSTING: {"ml.m5.large": 0.4444, "ml.g5.2xlarge": 1.6666}},
        "us-east-1": {TRAINING: {"ml.m5.large": 0.1212}, PROCESSING: {"ml.m5.large": 2.3232},
                      TRANSFORM: {"ml.c5.xlarge": 0.3434}},
    }  # not: notebooks, storage, an instance type the table does not list, an Outpost, GovCloud
    read = offer_prices(json.loads(OFFER.read_text()), TYPES, commercial_regions())
    assert {kind for kinds in read.values() for kind in kinds} == set(KINDS)  # only the kinds sagemake prices
    assert (table.source, table.date) == (
        "AWS Price List, offer AmazonSageMaker version 20261201000000 (published 2026-12-01)", "2026-12-01")
    assert "us-gov-west-1" not in table.regions and {"eu-west-1", "eu-central-1", "us-east-1"} <= set(table.regions)


def test_the_product_prices_each_kind_at_its_own_rate_and_says_unknown_for_what_the_table_lacks(offer_table):
    ireland = Prices("eu-west-1")
    rates = {kind: ireland.hourly("ml.m5.large", kind).hourly for kind in KINDS}
    assert rates == {TRAINING: 0.1111, PROCESSING: 0.2222, TRANSFORM: 0.3333, HOSTING: 0.4444}
    assert ireland.hourly("ml.m5.large", PROCESSING).source == "the shipped table of 2026-12-01"
    missing = ireland.hourly("ml.g5.2xlarge", TRAINING)  # hosting has it, training does not: never hosting's
    assert missing.hourly is None
    assert missing.source == ("unknown: the shipped table of 2026-12-01 has no training price for ml.g5.2xlarge in "
                              "eu-west-1")
    assert Prices("eu-west-2").hourly("ml.m5.large", TRAINING).hourly is None  # never another region's

    request = {"ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
               "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}
    assert plan_line(request, Prices("eu-west-1")).startswith(
        "cost on SageMaker: ml.m5.large $0.1111/h x 2 instances = $0.2222/h; at most $0.22 for")
    frankfurt = Prices("eu-central-1", hypothetical=True)
    assert used_line(TRANSFORM, "ml.m5.xlarge", 1, 60, frankfurt) == (
        "would have cost on SageMaker: 1 x ml.m5.xlarge for 60 s: unknown (prices for eu-central-1: unknown: the "
        "shipped table of 2026-12-01 has no batch transform price for ml.m5.xlarge in eu-central-1)")
    assert used_line(TRANSFORM, "ml.m5.large", 3, 1800, Prices("eu-west-1")) == (
        "cost on SageMaker: 3 x ml.m5.large for 1800 s at $0.3333/h of batch transform = $0.50 (prices for "
        "eu-west-1: the shipped table of 2026-12-01)")


def test_offer_files_that_disagree_or_are_not_sagemakers_are_refused(tmp_path):
    offer = json.loads(OFFER.read_text())
    other = tmp_path / "other.json"
    sku = "FIXEUPROCM5L00002"
    offer["terms"]["OnDemand"][sku][f"{sku}.JRTCKXETXF"]["priceDimensions"][f"{sku}.JRTCKXETXF.6YS6EN2CT7"][
        "pricePerUnit"]["USD"] = "0.2000000000"
    other.write_text(json.dumps(offer))
    with pytest.raises(UserError, match=r"two offer files price Processing:ml.m5.large in eu-west-1 differently "
                                        r"\(0.2222 and 0.2\): give the files of one Price List version"):
        table_from([OFFER, other], TYPES, commercial_regions())
    ec2 = tmp_path / "ec2.json"
    ec2.write_text(json.dumps({"offerCode": "AmazonEC2", "products": {}}))
    with pytest.raises(UserError, match="not a SageMaker offer file .offerCode 'AmazonEC2'.: give the Price List's"):
        table_from([ec2], TYPES, commercial_regions())
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(UserError, match=rf"^{listed} is not a Price List offer file \(its JSON is a list, not an "
                                        r"object\): give the Price List's offers/v1.0/aws/AmazonSageMaker/current"):
        table_from([listed], TYPES, commercial_regions())
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"offerCode": "AmazonSageMaker", "version": "1", "products": {}}))
    with pytest.raises(UserError, match=rf"^the offer file {empty} lists no products: give the Price List's "):
        table_from([empty], TYPES, commercial_regions())
    with pytest.raises(UserError, match=r"^the offer files price none of the table's 1 instance types in its 2 "
                                        r"commercial regions: give the Price List's"):
        table_from([OFFER], ["ml.nothing.large"], ["us-east-1", "eu-west-1"])


def test_the_shipped_table_is_dated_sourced_and_as_the_script_writes_it():
    table = Table.read(SHIPPED)
    assert table.date and table.source
    assert SHIPPED.read_text() == dump(table)  # what scripts/update_prices.sh would write for the same prices
    assert {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1"} <= set(table.regions)
    assert table.regions == sorted(table.regions) and not [r for r in table.regions if r.startswith(("cn-", "us-gov-"))]
    for region, kinds in table.prices.items():
        assert region in table.regions and set(kinds) <= set(KINDS)
        for prices in kinds.values():
            assert set(prices) <= set(table.instance_types) and all(price > 0 for price in prices.values())


def test_with_the_shipped_table_a_kind_it_holds_no_price_for_is_unknown_not_trainings(monkeypatch, tmp_path):
    shipped = Table.read(SHIPPED)
    training = shipped.hourly("us-east-1", TRAINING, "ml.m5.large")
    assert training is not None
    for kind in (PROCESSING, TRANSFORM, HOSTING):  # the shipped table, each other kind left out in turn
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / kind))
        prices = {region: {k: p for k, p in kinds.items() if (region, k) != ("us-east-1", kind)}
                  for region, kinds in shipped.prices.items()}
        monkeypatch.setattr(pricing, "TABLE", Table(shipped.source, shipped.date, shipped.instance_types,
                                                    shipped.regions, prices))
        east = Prices("us-east-1")
        assert east.hourly("ml.m5.large", TRAINING).hourly == training
        assert east.hourly("ml.m5.large", kind).hourly is None


def test_update_prices_rewrites_the_table_from_offer_files(tmp_path):
    repo = copy_repo(tmp_path / "repo", trainer=None)
    done = subprocess.run([str(repo / "scripts/update_prices.sh"), str(OFFER)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "VENV": str(ROOT / ".venv"),
                                                       "PYTHONPATH": str(repo / "src")})
    assert done.returncode == 0, done.stderr
    written = Table.read(repo / "src/sagemake/prices.json")
    assert written.date == "2026-12-01" and written.instance_types == Table.read(SHIPPED).instance_types
    assert written.prices["eu-west-1"][TRANSFORM] == {"ml.m5.large": 0.3333}
    types, regions = len(written.instance_types), len(commercial_regions())
    assert done.stderr.strip().endswith(
        f"prices: {repo / 'src/sagemake/prices.json'}: 9 of {types * regions * 4} prices ({types} instance types x "
        f"{regions} regions x 4 kinds) from AWS Price List, offer "
        "AmazonSageMaker version 20261201000000 (published 2026-12-01); the rest are unknown")
    assert Table.read(SHIPPED).date != "2026-12-01"  # this checkout's table untouched

    missing = subprocess.run([str(repo / "scripts/update_prices.sh")], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "VENV": str(ROOT / ".venv")})
    assert missing.returncode != 0 and missing.stdout == ""
    assert missing.stderr.startswith("update_prices.sh: usage: scripts/update_prices.sh OFFER.json")


def test_a_cached_price_of_one_kind_is_never_anothers(offer_table):
    from datetime import date

    from sagemake.pricing import cache_path

    today = date.today().isoformat()
    cache_path().parent.mkdir(parents=True)
    cache_path().write_text(json.dumps({"eu-west-1 ml.m5.large": {"hourly": 9.99, "date": today},
                                        "eu-west-1 Host:ml.m5.large": {"hourly": 8.88, "date": today}}))
    ireland = Prices("eu-west-1")
    assert ireland.hourly("ml.m5.large", TRAINING).hourly == 9.99  # the Price List API's answer, cached
    assert ireland.hourly("ml.m5.large", HOSTING).hourly == 8.88
    assert ireland.hourly("ml.m5.large", PROCESSING).hourly == 0.2222  # none cached: the table's
    assert ireland.sources() == (f"prices for eu-west-1: AWS Price List API as of {today} (cached in {cache_path()}); "
                                 "the shipped table of 2026-12-01")
