"""The model: a config, its area universe, control groups, the world the kernel runs on.

``config`` loads and validates a TOML file; ``areas``, ``demo`` and ``realdata``
provide the area universe; ``control`` fixes each bond's donors and weights;
``world`` turns a config into the kernel's arrays; ``simulate`` runs the
kernel and labels its outputs; ``basket``, ``waterfall``, ``tax`` and
``shortfall`` are the per-scenario flows of baskets, tranches, investor
classes and the provider.
"""

from lobsim._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, (
    "areas", "basket", "blocks", "config", "control", "demo", "realdata", "screening",
    "shortfall", "simulate", "tax", "waterfall", "world", "world_groups"))
