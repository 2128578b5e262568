"""The model: a config, its area universe, control groups, the world the kernel runs on.

``schema`` holds the config's frozen dataclasses, ``config`` loads and
validates a TOML file into them (``overrides``: its ``--set PATH=VALUE``
changes), ``checks`` cross-checks it and ``derive`` builds a config from a
changed one, checked and hashed again; ``areas``,
``demo`` and ``realdata`` provide the area universe; ``process`` is the AR(1)
algebra of its outcome process; ``control`` fixes each bond's donors and
weights (``synthetic_control`` fits synthetic-control weights);
``world`` turns a config into the kernel's arrays (``world_groups``: one
builder per group; ``shrinkage``: a shrunk bond's prior and k, fixed at signing); ``simulate`` runs the
kernel and labels its outputs; ``basket``, ``waterfall``, ``tax`` and
``shortfall`` are the per-scenario flows of baskets, tranches, investor
classes and the provider.
"""

from lobsim._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, (
    "areas", "basket", "blocks", "checks", "config", "control", "demo", "derive", "overrides",
    "process", "realdata", "schema", "screening", "shortfall", "shrinkage", "simulate", "synthetic_control", "tax",
    "waterfall", "world", "world_groups"))
