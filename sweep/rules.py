"""One rule per config field: what values a key takes, and the message when it gets another.

The config stage holds the table of its fixed sections (sweep/config/validate.py `RULES`); each
router family brings the rules of its own section (`Family.rules`, sweep/families/). Every
message names the key and the allowed range; a failed check raises `UserError` (exit 2).

    Num(0, 1)               a finite number in [0, 1] (lo_open / hi_open: '(' / ')')
    Choice(("a", "b"))      one of the options
    Text(), Flag()          a non-empty string; true or false
    Grid(Num(0))            a non-empty list of such values, none twice (a grid axis)
    Later("validate_data")  checked by that function of the config stage (spans fields)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sweep.errors import require

SEED_LIMIT = 2 ** 32          # numpy's SeedSequence and torch.manual_seed both take [0, 2**32)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Num:
    """A finite number in [lo, hi] ('(' / ')' where lo_open / hi_open); None when optional.
    int vs float is already enforced by the config's types."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False

    def ok(self, v) -> bool:
        if v is None:
            return self.optional
        if not is_number(v) or not math.isfinite(v):
            return False
        return ((self.lo is None or (v > self.lo if self.lo_open else v >= self.lo)) and
                (self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)))

    def allowed(self, v=None) -> str:
        """e.g. 'a finite number in (0, 1)'; 'an integer >= 1' when v is an int."""
        f = lambda x: str(int(x)) if float(x).is_integer() else f"{x:g}"
        if self.lo is not None and self.hi is not None:
            rng = (f" in {'(' if self.lo_open else '['}{f(self.lo)}, {f(self.hi)}"
                   f"{')' if self.hi_open else ']'}")
        elif self.lo is not None:
            rng = f" {'>' if self.lo_open else '>='} {f(self.lo)}"
        else:
            rng = ""
        what = "an integer" if is_number(v) and isinstance(v, int) else "a finite number"
        return what + rng + (" or null" if self.optional else "")

    def check(self, key: str, v) -> None:
        require(self.ok(v), f"{key} must be {self.allowed(v)}, got {v!r}")


@dataclass(frozen=True)
class Choice:
    options: tuple

    def ok(self, v) -> bool:
        return not isinstance(v, bool) and v in self.options

    def allowed(self, v=None) -> str:
        return "one of " + ", ".join(map(str, self.options))

    def check(self, key: str, v) -> None:
        require(self.ok(v), f"{key} must be {self.allowed()}, got {v!r}")


@dataclass(frozen=True)
class Text:
    """A non-empty string (a name, path or address); None when optional."""
    optional: bool = False

    def check(self, key: str, v) -> None:
        ok = (v is None and self.optional) or (isinstance(v, str) and v.strip() != "")
        require(ok, f"{key} must be a non-empty string{' or null' if self.optional else ''}, "
                    f"got {v!r}")


@dataclass(frozen=True)
class Flag:
    def check(self, key: str, v) -> None:
        require(isinstance(v, bool), f"{key} must be true or false, got {v!r}")


@dataclass(frozen=True)
class Grid:
    """A list of values each passing `item`: non-empty unless `empty_ok`, no value twice (a
    repeated grid value repeats trials); None when optional."""
    item: Num | Choice
    empty_ok: bool = False
    optional: bool = False

    def check(self, key: str, values) -> None:
        if values is None and self.optional:
            return
        require(isinstance(values, (list, tuple)), f"{key} must be a list, got {values!r}")
        require(self.empty_ok or len(values) > 0, f"{key} is empty: give at least one value")
        for v in values:
            require(self.item.ok(v), f"{key} has {v!r}: each value must be "
                                     f"{self.item.allowed(v)}")
        for i, v in enumerate(values):
            require(v not in values[:i], f"{key} has {v!r} twice: give each value once")


@dataclass(frozen=True)
class Later:
    """Checked by the named function of sweep/config/validate.py (the rule spans several
    fields or needs what the config does not hold)."""
    where: str

    def check(self, key: str, v) -> None:
        pass


POS = Num(0, lo_open=True)                  # a finite number > 0 (rates, scales, times, τ)
NONNEG = Num(0)
COUNT = Num(1)                              # integers >= 1 (epochs, sizes, repeats)
SEED = Num(0, SEED_LIMIT, hi_open=True)
FRACTION = Num(0, 1)                        # thresholds on probabilities
SIZE = Num(8, 1024)                         # px: the store holds every image at it, x4 severities
