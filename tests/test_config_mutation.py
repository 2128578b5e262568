"""Mutated valid configs: the loader returns a Config or raises ConfigError, nothing else.

Two valid starting documents: the bundled Birmingham config, and a richer one
built here (several bonds, a universe with an areas CSV, a history file,
measurements, per-unit, threshold and binary mechanisms, control groups,
baselines and baskets). ``strategies.mutated_documents`` drops, renames,
retypes, perturbs and duplicates fields of them, 1 to 3 times.
"""

from __future__ import annotations

import copy
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from lobsim.errors import ConfigError, LobsimWarning
from lobsim.model.config import Config, parse_config
from strategies import get, locations, mutated_documents, typos

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "configs" / "birmingham_jsa.toml"
SOURCE = "mutated.toml"

RICH = """
name = "rich mutation base"
description = "Several bonds, a universe, measurements, every mechanism and baskets."

[simulation]
scenarios = 2000
seed = 11
block_size = 512

[[departments]]
id = "DWP"
name = "Department for Work and Pensions"

[[departments]]
id = "DH"

[[departments]]
id = "MoJ"

[[agencies]]
id = "JCP"
department = "DWP"

[[agencies]]
id = "NHS"
department = "DH"

[[agencies]]
id = "PROB"
name = "Probation service"
department = "MoJ"

[[interventions]]
id = "employment"
success_mean = 0.7
success_sd = 0.1
rho_type = 0.3
rho_global = 0.1
ramp_years = 2.0
relapse_rate = 0.05

[[interventions]]
id = "rehab"
success_mean = 0.5
success_sd = 0.2
rho_type = 0.4
rho_global = 0.2
ramp_profile = [0.25, 0.75, 1.0]
relapse_rate = 0.2

[[providers]]
id = "cso_a"
failure_hazard = 0.02

[[providers]]
id = "cso_b"
name = "Second provider"
failure_hazard = 0.05

[[outcomes]]
id = "jsa"
name = "JSA claimants"
kind = "count"
unit = "claimant"
history = "history.csv"

[outcomes.process]
national_phi = 0.9
national_sigma = 0.02
regional_phi = 0.8
regional_sigma = 0.01
area_phi = 1.0
area_sigma = 0.03
measurement_sigma = 0.01
national_loading = 1.0
regional_loading = 0.5

[[outcomes.savings]]
department = "DWP"
amount = 3224.0
basis = "per_unit_year"

[[outcomes.savings]]
department = "DH"
amount = 150
basis = "per_unit"

[[outcomes]]
id = "reoffending"
kind = "percent"
unit = "percentage point"

[[outcomes.savings]]
department = "MoJ"
amount = 5000.0

[universe]
areas = "areas.csv"
period = "quarter"

[[bonds]]
id = "b-jsa-A1"
provider = "cso_a"
area = "A1"
outcome = "jsa"
intervention = "employment"
target_units = 2000
cost_per_unit = 2000
basket_risk = 0.1
return_premium = 0.07
start = 0.0
maturity = 4.0

[bonds.payment]
mechanism = "per_unit"
cap = 2000

[[bonds.payment.measurements]]
at = 2.0
cap = 1000

[[bonds.payment.measurements]]
at = 4.0

[[bonds.payers]]
agency = "JCP"
share = 0.6
agency_premium = 500.0

[[bonds.payers]]
agency = "NHS"
share = 0.4

[bonds.control]
donors = 3
weights = "synthetic"
match_on = ["deprivation", "population"]
pre_periods = 8
covariate_weights = { deprivation = 1.0, population = 0.5 }

[bonds.baseline]
department = "DWP"
agency = "JCP"
units = 50000
cost_per_unit_year = 3224.0

[[bonds]]
id = "b-reoff-A2"
provider = "cso_b"
area = "A2"
outcome = "reoffending"
intervention = "rehab"
target_units = 10
cost_per_unit = 50000.0
basket_risk = 0.2
start = 1.0
maturity = 5.0

[bonds.payment]
mechanism = "threshold"
threshold = 0.075
cap = 10

[[bonds.payment.measurements]]
at = 3.0
threshold = 0.1

[[bonds.payment.measurements]]
at = 5.0

[[bonds.payers]]
agency = "PROB"
share = 1.0

[bonds.control]
donor_areas = ["A4", "A5", "A6"]
weights = "equal"

[[bonds]]
id = "b-jsa-A3"
provider = "cso_b"
area = "A3"
outcome = "jsa"
intervention = "employment"
target_units = 500
cost_per_unit = 1500.0
maturity = 3.0

[bonds.payment]
mechanism = "binary"
trigger = 0.8
amount = 900000.0

[[bonds.payers]]
agency = "JCP"
share = 0.5

[[bonds.payers]]
agency = "NHS"
share = 0.25

[[bonds.payers]]
agency = "PROB"
share = 0.25

[[baskets]]
id = "north"
where = { regions = ["north"], maturity_max = 5.0 }

[[baskets]]
id = "explicit"
name = "Employment bonds"
bonds = ["b-jsa-A1", "b-jsa-A3"]

[baskets.where]
providers = ["cso_a", "cso_b"]
outcomes = ["jsa"]
interventions = ["employment"]
maturity_min = 1.0

[[baskets.tranches]]
id = "senior"
share = 0.6
seniority = 1
premium = 0.03

[[baskets.tranches]]
id = "junior"
share = 0.4
seniority = 2
premium = 0.1

[[investor_classes]]
id = "sitr"
relief = 0.3
tax_rate = 0.4
bonds = ["b-jsa-A3"]
tranches = ["explicit/junior"]

[[investor_classes]]
id = "bank"
tax_rate = 0.25
tranches = ["explicit/senior"]
baskets = ["north"]
"""

AREAS_CSV = """\
area,region,deprivation,population,claimant_rate
A1,north,0.30,50000,0.041
A2,north,0.52,42000,0.038
A3,south,0.11,61000,0.029
A4,south,0.70,39000,0.052
A5,north,0.45,47000,0.044
A6,south,0.25,55000,0.031
A7,north,0.61,40500,0.047
A8,south,0.38,58000,0.035
"""

# Ten quarters of every area (the first bond fits on the last 8), 2008-Q1 to 2010-Q2.
HISTORY_CSV = "area,region,period,value\n" + "".join(
    f"A{a},{'north' if a in (1, 2, 5, 7) else 'south'},{2008 + q // 4}-Q{q % 4 + 1},"
    f"{1000 * a + 10 * q + (q * a) % 7}\n"
    for a in range(1, 9) for q in range(10))


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], Path]]:
    """Each valid starting document with the folder its data paths resolve against."""
    rich_dir = tmp_path_factory.mktemp("rich")
    (rich_dir / "areas.csv").write_text(AREAS_CSV, encoding="utf-8")
    (rich_dir / "history.csv").write_text(HISTORY_CSV, encoding="utf-8")
    with BUNDLED.open("rb") as fh:
        bundled = tomllib.load(fh)
    return {
        "birmingham": (bundled, BUNDLED.parent),
        "rich": (tomllib.loads(RICH), rich_dir),
    }


BASE_NAMES = ["birmingham", "rich"]


def _load(doc: dict[str, Any], base_dir: Path) -> Config:
    """Load a document; a LobsimWarning (a valid config with a setting that has no
    effect) must be one line naming this document."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LobsimWarning)
        cfg = parse_config(doc, source=SOURCE, base_dir=base_dir)
    for w in caught:
        assert issubclass(w.category, LobsimWarning), w
        text = str(w.message)
        assert text.startswith(f"{SOURCE}: bonds[") and "\n" not in text, text
    return cfg


@pytest.mark.parametrize("name", BASE_NAMES)
def test_starting_documents_are_valid(name: str, bases) -> None:
    doc, base_dir = bases[name]
    cfg = _load(copy.deepcopy(doc), base_dir)
    assert isinstance(cfg, Config)
    if name == "rich":
        assert [b.payment.mechanism for b in cfg.bonds] == ["per_unit", "threshold", "binary"]
        assert len(cfg.bonds[0].payment.measurements) == 2
        assert cfg.universe is not None and cfg.universe.period == "quarter"
        assert [k.id for k in cfg.baskets] == ["north", "explicit"]
        assert [ic.id for ic in cfg.investor_classes] == ["sitr", "bank"]


@pytest.mark.parametrize("name", BASE_NAMES)
@given(data=st.data())
def test_mutated_config_loads_or_raises_config_error(name: str, bases, data: st.DataObject
                                                     ) -> None:
    doc, base_dir = bases[name]
    mutated, log = data.draw(mutated_documents(doc), label="mutated document")
    for entry in log:
        note(entry)
    try:
        result = _load(mutated, base_dir)
    except ConfigError as exc:
        msg = str(exc)
        assert exc.reason, msg
        # The message names a file: this document, or a data file it points at.
        assert exc.source is not None
        assert exc.source == SOURCE or Path(exc.source).is_file(), msg
        assert msg.startswith(exc.source), msg
        if exc.path:
            assert msg.startswith(f"{exc.source}: {exc.path}: "), msg
    else:
        assert isinstance(result, Config)
        assert result.source == SOURCE
        assert len(result.hash) == 64


# --------------------------------------------------------------------------
# The strategies do what they claim (so that the property test can fail)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", BASE_NAMES)
@settings(max_examples=50)
@given(data=st.data())
def test_mutations_change_the_document(name: str, bases, data: st.DataObject) -> None:
    doc, _ = bases[name]
    before = copy.deepcopy(doc)
    mutated, log = data.draw(mutated_documents(doc, max_mutations=1))
    assert doc == before, "the starting document must not be mutated in place"
    assert len(log) == 1
    # repr, not ==: 1 == 1.0 == True, but changing the type is a change.
    assert repr(mutated) != repr(doc), log


def test_locations_cover_nested_tables_and_arrays() -> None:
    doc = tomllib.loads(RICH)
    where = set(locations(doc))
    assert ("bonds", 0, "payment", "measurements", 1, "at") in where
    assert ("bonds", 0, "control", "covariate_weights", "population") in where
    assert ("interventions", 1, "ramp_profile", 2) in where
    assert get(doc, ("bonds", 2, "payers", 1, "share")) == 0.25


@given(word=st.sampled_from(["target_units", "share", "a", ""]), data=st.data())
def test_typos_differ_from_the_word(word: str, data: st.DataObject) -> None:
    assert data.draw(typos(word)) != word


@pytest.mark.parametrize(
    "location,replacement",
    [
        (("bonds", 0, "payers", 0, "share"), 0.7),
        (("bonds", 0, "maturity"), "four"),
        (("bonds", 0, "cost_per_unit"), float("nan")),
        (("providers", 0, "id"), "someone_else"),
    ],
)
def test_known_mutations_are_rejected(location: tuple[Any, ...], replacement: Any, bases) -> None:
    """Single hand-picked mutations of the kind the strategy makes raise ConfigError."""
    doc, base_dir = bases["birmingham"]
    mutated = copy.deepcopy(doc)
    parent = get(mutated, location[:-1])
    parent[location[-1]] = replacement
    with pytest.raises(ConfigError):
        _load(mutated, base_dir)
