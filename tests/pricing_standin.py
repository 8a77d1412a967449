"""A stand-in for the AWS Price List API (moto has none): a real HTTP server on 127.0.0.1 answering GetProducts in
the real response shape (each PriceList item a JSON string: product, attributes, OnDemand terms), recording every
request it receives. boto3 reaches it through AWS_ENDPOINT_URL_PRICING."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Figures of the stand-in's own, unlike any real price, so a test knows which source answered.
DEFAULT_PRICES = {("EU (Frankfurt)", "EUC1-Train:ml.m5.large"): "0.1370000000",
                  ("EU (Frankfurt)", "EUC1-Train:ml.m5.xlarge"): "0.2740000000"}


def product(location: str, usage_type: str, usd: str) -> dict:
    sku = "STANDIN" + str(abs(hash((location, usage_type))) % 10**8)
    return {
        "product": {"productFamily": "ML Instance", "sku": sku, "attributes": {
            "usagetype": usage_type, "location": location, "locationType": "AWS Region",
            "servicecode": "AmazonSageMaker", "servicename": "Amazon SageMaker", "operation": "RunInstance",
            "instanceName": usage_type.split(":", 1)[1], "component": "Training"}},
        "serviceCode": "AmazonSageMaker",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "sku": sku, "offerTermCode": "JRTCKXETXF", "effectiveDate": "2026-11-01T00:00:00Z", "termAttributes": {},
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7", "unit": "Hrs", "beginRange": "0", "endRange": "Inf",
                "appliesTo": [], "description": f"${usd} per Training {usage_type}", "pricePerUnit": {"USD": usd}}}}}},
        "version": "20261101000000", "publicationDate": "2026-11-01T00:00:00Z",
    }


class PriceListStandIn:
    def __init__(self):
        self.requests: list[tuple[str, dict]] = []  # (X-Amz-Target, JSON body), in order
        self.prices: dict[tuple[str, str], str] = {}
        self.refusal: tuple[int, str, str] | None = None  # (HTTP status, error code, message) to answer instead
        self.reset()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                standin.requests.append((self.headers.get("X-Amz-Target", ""), body))
                if standin.refusal:
                    status, code, message = standin.refusal
                    self._answer(status, {"__type": code, "Message": message})
                    return
                wanted = {f["Field"]: f["Value"] for f in body.get("Filters", [])}
                found = [json.dumps(product(location, usage, usd)) for (location, usage), usd in standin.prices.items()
                         if wanted.get("location") in (None, location) and wanted.get("usagetype") in (None, usage)]
                self._answer(200, {"FormatVersion": "aws_v1", "PriceList": found})

            def _answer(self, status, document):
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reset(self) -> None:
        self.requests.clear()
        self.prices = dict(DEFAULT_PRICES)
        self.refusal = None

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
