"""Price sheets: YAML files that turn metered quantities into money.

A sheet names its currency and, per kind (`function`, `queue`, ...) and metric (`requests`,
`gb_seconds`, ...), a price per `per` units; what it does not price is free. The default sheet
holds AWS's published list prices (aws-us-east-1.yaml, each price with its source page).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from nimbus.errors import InvalidRequest
from nimbus.ops.usage.catalog import METRICS, PricedKind
from nimbus.spec.base import Model
from nimbus.spec.errors import describe

DEFAULT_SHEET = Path(__file__).with_name("aws-us-east-1.yaml")
DATA_DIR_SHEET = "prices.yaml"
"""A sheet in the data folder replaces the default one (`nimbus up --prices` wins over both)."""
MAX_SHEET_BYTES = 1 << 20


class Price(Model):
    price: float = Field(ge=0, le=1e9)
    per: float = Field(1.0, gt=0, le=1e15, description="units the price is for")
    source: str | None = Field(None, max_length=2048, description="where the price comes from")


class PriceSheet(Model):
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    as_of: str | None = Field(None, max_length=64)
    prices: dict[PricedKind, dict[str, Price]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_metrics(self) -> PriceSheet:
        for kind, priced in self.prices.items():
            unknown = sorted(set(priced) - set(METRICS[kind]))
            if unknown:
                known = ", ".join(METRICS[kind])
                raise ValueError(f"{kind} has no metric {unknown[0]!r} (it has: {known})")
        return self

    def costs(self, kind: PricedKind, usage: Mapping[str, float]) -> dict[str, float]:
        """The cost of each priced metric of `usage` (metrics the sheet does not price are free,
        and left out)."""
        priced = self.prices.get(kind, {})
        return {
            metric: quantity / priced[metric].per * priced[metric].price
            for metric, quantity in usage.items()
            if metric in priced
        }


def load_sheet(path: Path) -> PriceSheet:
    """Read and validate a sheet; a clear InvalidRequest for any problem."""
    try:
        with path.open("rb") as handle:
            text = handle.read(MAX_SHEET_BYTES + 1)
    except OSError as error:
        raise InvalidRequest(f"cannot read the price sheet {path}: {error.strerror}") from None
    if len(text) > MAX_SHEET_BYTES:
        raise InvalidRequest(f"the price sheet {path} is larger than {MAX_SHEET_BYTES} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidRequest(f"the price sheet {path} is not valid YAML: {error}") from None
    return parse_sheet(data, str(path))


def parse_sheet(data: object, where: str) -> PriceSheet:
    try:
        return PriceSheet.model_validate(data)
    except ValidationError as error:
        raise InvalidRequest(describe(error, lambda loc: f"price sheet {where}")) from None


def sheet_for(data_dir: Path, chosen: Path | None) -> PriceSheet:
    """The sheet a platform uses: `chosen`, else the data folder's prices.yaml, else AWS's."""
    if chosen is not None:
        return load_sheet(chosen)
    own = data_dir / DATA_DIR_SHEET
    return load_sheet(own if own.exists() else DEFAULT_SHEET)
