"""Write configs/basket_demo.toml, the demo book, from configs/basket_demo_noisy.toml.

The noisy demo contracts every bond against a control group with targets of
1.5% to 5% of an area's claimants, below the sd of the comparison's
prediction error (signal-to-noise 0.3 to 2): most of its bonds are lotteries
on measurement noise. Real outcome contracts are mostly rate cards paying on
verified outcomes and pay a median 0.88 of their maximum (GO Lab INDIGO); of
about 50 completed impact bonds investors were repaid in all but two
(Brookings). This script derives a book a bank could structure, with the same
areas, providers, payers, mechanisms and baskets, by four rules:

1. **Measurement.** Bonds with synthetic-control weights (but ``RATE_CARD``) stay measured against
   their control group, with their targets (and caps, cohort caps pro rata)
   resized so that signal-to-noise is ``SNR_TARGET``; the sd of the
   prediction error does not depend on the target, so it is measured once on
   the noisy demo (``SIZING_SCENARIOS`` scenarios, the config's seed). The
   ``NOISY`` claimant bonds (signal-to-noise below 0.36) are kept as they are,
   so that the book holds a few noise-dominated bonds for the report to flag.
   Every other bond pays on verified outcomes (a rate card).
2. **Evidence.** A contract's target is set from what the evidence says the
   programme delivers (a 25% success rate in adolescence is a target of 25%
   of the cohort), so the success fraction of the *target* has a mean near 0.9;
   and it counts outcomes once sustained, which relapse more slowly after.
3. **Pricing.** ``basket_risk`` is raised by ``RISK_LOADING_STEP`` (0.10 to
   0.30): the maximum payment is then about 1.37 times the principal, and a
   bond breaks even at about 73% of its target.
4. **Providers.** Failure hazards are half the noisy demo's (established
   providers: among completed impact bonds few providers failed).
5. **A pooled basket.** One basket is added, ``POOL_ID``: the largest group of
   control-group-measured bonds a bank could pool (paid per measured unit on
   the point basis, one outcome kind, the same measurement dates:
   docs/model.md section 6.13), contracted ``measurement = "separate"`` so
   that ``lobsim design --basket`` compares the pooled rule on common random
   numbers.
6. Everything else (areas, payers, savings, baskets, tranches) is unchanged.

Run from the repository root: ``python tools/size_basket_demo.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOISY_CONFIG = ROOT / "configs" / "basket_demo_noisy.toml"
BOOK_CONFIG = ROOT / "configs" / "basket_demo.toml"
SNR_TARGET = 2.5
SIZING_SCENARIOS = 8192
NOISY = ("north_west_18-jsa", "east_of_england_04-jsa", "east_of_england_08-jsa",
         "south_west_13-jsa")
#: Bonds on a rate card although the noisy demo fits them synthetic weights: Birmingham's
#: claimant bond would be 40% of the book at signal-to-noise 2.5 (a target of 8,300); DWP
#: pays such programmes per verified job outcome (configs/real/dwp_innovation_fund.toml).
RATE_CARD = ("birmingham-jsa",)
RISK_LOADING_STEP = 0.20
#: Providers' failure hazards are the noisy demo's times this (rule 4).
HAZARD_FACTOR = 0.5
#: The pooled-measurement basket the book adds (rule 5).
POOL_ID = "pooled_referrals"
#: Evidence priors on the share of the contracted target delivered, and the annual
#: relapse of a *sustained* outcome (rule 2): (success_mean, success_sd, relapse_rate).
SUCCESS = {"employment_support": (0.92, 0.06, 0.015), "conduct_under10": (0.93, 0.05, 0.01),
           "conduct_adolescent": (0.88, 0.08, 0.01), "substance_misuse": (0.88, 0.08, 0.02),
           "family_support": (0.92, 0.06, 0.01)}

HEADER = '''# The demo book: 60 Local Outcome Bonds in 30 areas of the bundled demo universe,
# sized as a social investment bank would structure them. Written by
# tools/size_basket_demo.py from configs/basket_demo_noisy.toml (same areas,
# providers, payers, mechanisms and baskets); do not edit by hand, edit the
# noisy demo or the script and run it again.
#
# How it was sized (the script's rules):
#   - measurement: {n_cg} bonds with synthetic-control weights (all but
#     Birmingham's claimant bond, which would be 40% of the book at this
#     signal-to-noise and goes on DWP's rate card) are measured against their
#     control group, targets resized to signal-to-noise {snr}
#     (target = {snr} x the sd of the prediction error at maturity); {n_noisy}
#     small-area claimant bonds keep the noisy demo's targets (signal-to-noise
#     below 0.36) and are flagged by the report as noise-dominated; the other
#     {n_ver} bonds pay on verified outcomes (a rate card), as most real outcome
#     contracts do;
#   - evidence: targets are contracted on what the evidence says a programme
#     delivers, so the success fraction of the target has a mean of 0.88-0.93,
#     and count outcomes once sustained (as rate cards pay for 13 or 26 weeks
#     in work), so that they relapse more slowly afterwards (1% to 2% a year);
#   - pricing: basket_risk is the noisy demo's plus {step:.2f}, so that the
#     maximum payment is about 1.37 x the principal (break-even near 73%);
#   - providers: failure hazards are half the noisy demo's;
#   - a basket a bank would pool, {pool_id!r}, is added after the noisy
#     demo's baskets (its comment says how to compare pooled measurement).
# Against real books (run `lobsim run configs/basket_demo.toml`): UK outcome
# contracts paid a median 0.88 of their maximum (GO Lab INDIGO), and of about
# 50 completed impact bonds investors were repaid in all but two (Brookings).
# What follows describes the areas and contracts of the noisy demo, which the
# book shares except for the changes above.
#
'''


def prediction_sd(path: Path) -> dict[str, float]:
    """sd over scenarios of each bond's prediction error at maturity (its units)."""
    sys.path.insert(0, str(ROOT / "src"))
    from lobsim.model.config import load_config
    from lobsim.model.simulate import simulate

    cfg = load_config(path)
    ds = simulate(cfg, scenarios=SIZING_SCENARIOS)
    sd = ds.prediction_error.std("scenario").values
    return {b.id: float(s) for b, s in zip(cfg.bonds, sd, strict=True)}


def pool_members(path: Path) -> tuple[str, tuple[str, ...]]:
    """The outcome and bonds of the largest poolable group of the book at ``path``:
    measured against a control group, paid per measured unit on the point
    basis, grouped by outcome and measurement dates (the first largest group)."""
    sys.path.insert(0, str(ROOT / "src"))
    from lobsim.model.config import load_config

    groups: dict[tuple[str, tuple[float, ...]], list[str]] = {}
    for b in load_config(path).bonds:
        if (b.control.weights != "verified" and b.payment.basis == "point"
                and b.payment.mechanism in ("per_unit", "threshold")):
            key = (b.outcome, tuple(m.at for m in b.payment.measurements))
            groups.setdefault(key, []).append(b.id)
    (outcome, _), members = max(groups.items(), key=lambda kv: len(kv[1]))
    return outcome, tuple(members)


def pool_basket(outcome: str, members: tuple[str, ...]) -> str:
    """The TOML of the pooled-measurement basket (rule 5)."""
    bonds = "".join(f'    "{b}",\n' for b in members)
    return f'''
# A basket a bank would pool (added by tools/size_basket_demo.py, rule 5): the
# {len(members)} {outcome} bonds measured against their own control groups and
# paid per measured unit at the same dates. It is contracted with each bond
# paid on its own measurement; `lobsim design configs/basket_demo.toml
# --basket {POOL_ID}` compares the pooled rule (paid on the bonds' summed
# measured units) on common random numbers, and
# `--set baskets[{POOL_ID}].measurement=pooled` runs it
# (docs/model.md section 6.13).
[[baskets]]
id = "{POOL_ID}"
name = "Control-group-measured {outcome} bonds, paid per unit at one date"
measurement = "separate"
bonds = [
{bonds}]
'''


def _number(x: float, unit_is_count: bool) -> str:
    return f"{round(x / 5) * 5:.1f}" if unit_is_count else f"{round(x * 2) / 2:.1f}"


def resize_bond(block: str, sd: dict[str, float]) -> tuple[str, str]:
    """One ``[[bonds]]`` block of the noisy demo, rewritten by the rules; and its design."""
    bid = re.search(r'^id = "([^"]+)"', block, re.M).group(1)  # type: ignore[union-attr]
    risk = re.search(r"^basket_risk = ([0-9.]+)", block, re.M)
    assert risk is not None
    block = block.replace(risk.group(0), f"basket_risk = {float(risk.group(1)) + RISK_LOADING_STEP:.2f}")
    if bid in NOISY:
        return block, "noisy"
    if 'weights = "synthetic"' not in block or bid in RATE_CARD:
        block = re.sub(r"\[bonds\.control\]\n(?:donors = \d+\n)?weights = \"(?:equal|synthetic)\"",
                       '[bonds.control]\nweights = "verified"      # a rate card: outcomes '
                       "verified one by one", block)
        return block, "verified"
    m = re.search(r"^target_units = ([0-9_.]+)( *#.*)?$", block, re.M)
    assert m is not None
    old = float(m.group(1).replace("_", ""))
    count = '"claimants"' in block.split("[bonds.payment]")[0]
    new = float(_number(SNR_TARGET * sd[bid], count))
    f = new / old
    block = block.replace(m.group(0), f"target_units = {new:.1f}         # signal-to-noise "
                                      f"{SNR_TARGET} (noisy demo: {old:g})")

    def cap(c: re.Match[str]) -> str:
        return f"cap = {float(_number(float(c.group(1)) * f, count)):.1f}"
    block = re.sub(r"^cap = ([0-9_.]+)", cap, block, flags=re.M)
    return block, "control group"


def main() -> int:
    text = NOISY_CONFIG.read_text(encoding="utf-8")
    sd = prediction_sd(NOISY_CONFIG)
    head, *bonds = re.split(r"(?m)^(?=\[\[bonds\]\]\n)", text)
    *bonds, tail_bond = bonds
    # the last bond block runs into the baskets: split them off
    last, tail = re.split(r"(?m)^(?=# -{20,}\n# Baskets)|^(?=\[\[baskets\]\])", tail_bond, maxsplit=1)
    designs = []
    out = []
    for block in [*bonds, last]:
        new, design = resize_bond(block, sd)
        out.append(new)
        designs.append(design)
    for iid, (mean, sdev, relapse) in SUCCESS.items():
        head = re.sub(rf'(id = "{iid}"\nname = [^\n]+\n)success_mean = [0-9.]+( *#[^\n]*)?\n'
                      r"success_sd = [0-9.]+",
                      rf"\g<1>success_mean = {mean}          # of the contracted target (rule 2)\n"
                      rf"success_sd = {sdev}", head)
        head = re.sub(rf'(id = "{iid}"\n(?:[^\n]+\n)*?)relapse_rate = [0-9.]+( *#[^\n]*)?',
                      rf"\g<1>relapse_rate = {relapse}          # of an outcome once sustained "
                      "(rule 2)", head)
    head = re.sub(r"(?m)^failure_hazard = ([0-9.]+)",
                  lambda m: f"failure_hazard = {float(m.group(1)) * HAZARD_FACTOR:g}", head)
    head = re.sub(r"(?s)\A# The NOISY demo:.*?\n#\n", "", head, count=1)
    head = head.replace('name = "Noisy basket demo:', 'name = "Demo book:')
    header = HEADER.format(n_cg=designs.count("control group"), snr=SNR_TARGET,
                           n_noisy=designs.count("noisy"), n_ver=designs.count("verified"),
                           step=RISK_LOADING_STEP, pool_id=POOL_ID)
    # the pooled basket goes after the noisy demo's last basket, before the investor classes
    baskets, classes = re.split(r"(?m)^(?=# Investor classes)", tail, maxsplit=1)
    book = header + head + "".join(out) + baskets
    BOOK_CONFIG.write_text(book + classes, encoding="utf-8")  # read back to choose the pool
    outcome, members = pool_members(BOOK_CONFIG)
    book = book.rstrip("\n") + "\n" + pool_basket(outcome, members) + "\n" + classes
    BOOK_CONFIG.write_text(book, encoding="utf-8")
    print(f"wrote {BOOK_CONFIG.relative_to(ROOT)}: " + ", ".join(
        f"{designs.count(d)} {d}" for d in ("verified", "control group", "noisy"))
          + f"; basket {POOL_ID}: {len(members)} {outcome} bonds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
