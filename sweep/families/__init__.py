"""Router families: the registry every stage dispatches through (sweep/families/family.py).

Importing this package registers the built-in families, in this order: `experts` (the gater,
sweep/families/gater.py) and `exits` (the EM router, sweep/families/em.py).
"""
from sweep.families.family import (Family, Words, enabled, families, get, register,
                                   resolve_costs, unregister)
from sweep.families import gater, em  # noqa: E402,F401  (the built-ins register themselves)

__all__ = ["Family", "Words", "enabled", "families", "get", "register", "resolve_costs",
           "unregister"]
