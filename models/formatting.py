"""Numbers and names for people: one place for every page, terminal table and spreadsheet the engine writes.

A planner reads ``3,906,012`` or ``3.91 M``, never ``3.906e+06``; a column header says "travel,
workload-hour × km", not ``workload_km``; a chart legend says "potential tolerance = 5 %", not
``balance.potential.tolerance_pct``. Machine files (CSV, JSON) keep their keys and full precision; the
renderers (:mod:`maps`, the CLI, :mod:`models.plan_excel`) call these functions to show them.

- :func:`number`: thousands separators, a fixed number of decimals, never scientific notation;
- :func:`compact`: short forms where space is short (``3.91 M``, ``350 k``), tick labels that stay distinct;
- :func:`label`: the planner's words for a column or a dotted scenario key (:class:`Label`);
- :func:`setting`: a setting and its value as a sentence fragment (``potential tolerance = 5 %``);
- :func:`cell`: one table value under its column, formatted as :func:`number` for that column (:func:`digits`);
- :func:`excel_format`: the matching Excel display format (``#,##0.0``), so spreadsheets keep numbers as
  numbers and show them the same way.

Examples
--------
>>> number(3906012.4)
'3,906,012'
>>> compact(3906012.4)
'3.91 M'
>>> label("workload_km").text
'travel, workload-hour × km'
>>> setting("balance.potential.tolerance_pct", 5)
'potential tolerance = 5 %'
>>> cell(9.0909, "potential_max_deviation_pct")
'9.09'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

#: What a missing number shows (an en dash).
MISSING = "\u2013"
#: Compact suffixes, largest first: thousand, million, billion.
COMPACT_UNITS = ((1e9, "bn"), (1e6, "M"), (1e3, "k"))
#: Travel, the objective's unit: each account's yearly hours times its distance from the rep's home base.
TRAVEL_UNIT = "workload-hour × km"

#: Columns and keys whose planner words are not simply their key with spaces: key -> (name, unit).
_NAMES: dict[str, tuple[str, str]] = {
    "workload_km": ("travel", TRAVEL_UNIT),
    "objective": ("objective", TRAVEL_UNIT),
    "bound": ("bound", TRAVEL_UNIT),
    "gap": ("gap", "%"),
    "max_deviation_pct": ("worst deviation from target", "%"),
    "gap_pct": ("gap", "%"),
    "all_within_tolerance": ("all balance rules met", ""),
    "within_tolerance": ("met", ""),
    "mean_distance_km": ("mean distance to home base", "km"),
    "max_distance_km": ("longest distance to home base", "km"),
    "distance_km": ("distance to home base", "km"),
    "segment_match_pct": ("accounts with a rep of their segment", "%"),
    "segment_match": ("rep of the account's segment", ""),
    "forced_moves": ("forced moves (departing reps)", ""),
    "discretionary_moves": ("accounts moved besides departing reps'", ""),
    "max_moved_accounts": ("move budget", "accounts"),
    "departed_reps": ("reps leaving", ""),
    "solve_seconds": ("solve time", "s"),
    "wall_seconds": ("wall time", "s"),
    "time_limit_s": ("time limit", "s"),
    "rep_id": ("rep", ""),
    "current_rep": ("current rep", ""),
    "account_id": ("account", ""),
    "family_id": ("family", ""),
    "fte": ("FTE", ""),
    "map": ("plan", ""),
    "area_km2": ("area", "km²"),
    "diameter_km": ("diameter", "km"),
    "polsby_popper": ("Polsby-Popper compactness", ""),
    "quota_per_fte": ("quota per FTE", ""),
    "potential_moved": ("potential moved", ""),
    "workload_moved": ("workload moved", "h"),
}
#: Dotted scenario keys (sweep axes) with words of their own: pattern -> (name, unit); ``{0}`` is the middle part.
_SETTINGS: tuple[tuple[re.Pattern[str], tuple[str, str]], ...] = (
    (re.compile(r"^balance\.([^.]+)\.tolerance_pct$"), ("{0} tolerance", "%")),
    (re.compile(r"^balance\.([^.]+)\.within$"), ("{0} balanced within", "")),
    (re.compile(r"^segment_rules\.([^.]+)\.penalty_km$"), ("{0} misfit penalty", "km")),
    (re.compile(r"^segment_rules\.([^.]+)\.mode$"), ("{0} segment rule", "")),
    (re.compile(r"^continuity\.max_moved_accounts$"), ("move budget", "accounts")),
    (re.compile(r"^continuity\.max_moved_potential_pct$"), ("move budget, potential", "%")),
    (re.compile(r"^continuity\.move_penalty_km$"), ("move penalty", "km")),
    (re.compile(r"^objective\.compactness$"), ("travel weight", "")),
    (re.compile(r"^objective\.preference$"), ("segment fit weight", "")),
    (re.compile(r"^territories\.max_distance_km$"), ("farthest account from home base", "km")),
)
#: Units read off a key's last word when no name above applies.
_SUFFIX_UNITS = (("_pct", "%"), ("_km2", "km²"), ("_km", "km"), ("_seconds", "s"), ("_s", "s"))
#: Keys counted in whole things (accounts, reps, moves): no decimals.
_COUNTS = re.compile(r"(^|_)(accounts|reps|moves|units|count|gained|lost|set_aside|budget)($|_)|^max_moved_accounts$")
#: Keys in money (or other large totals shown whole): no decimals.
_WHOLE = re.compile(r"(^|_)(potential|revenue|quota|amount|objective|bound|km2)($|_)|^workload_km$")


@dataclass(frozen=True)
class Label:
    """The planner's words for a machine key: a name and a unit (``""`` when it has none).

    Attributes
    ----------
    key
        The machine key (a column name or a dotted scenario key), kept for tooltips.
    name
        Lower-case words (``"potential tolerance"``).
    unit
        ``"%"``, ``"km"``, ``"workload-hour × km"``, ... or ``""``.
    """

    key: str
    name: str
    unit: str = ""

    @property
    def text(self) -> str:
        """Name and unit: ``"potential tolerance, %"``."""
        return f"{self.name}, {self.unit}" if self.unit else self.name

    @property
    def title(self) -> str:
        """:attr:`text` with a capital first letter, for headers."""
        text = self.text
        return text[:1].upper() + text[1:]


def label(key: str) -> Label:
    """The planner's words for a column name or a dotted scenario key.

    Parameters
    ----------
    key
        ``workload_km``, ``potential_max_deviation_pct``, ``balance.potential.tolerance_pct``, ... A
        ``metric:plan`` column of a comparison is named after its metric.

    Returns
    -------
    Label
        Words and unit; unknown keys read as their words (``segment_match_pct`` -> ``segment match, %``).

    Examples
    --------
    >>> label("potential_max_deviation_pct").text
    'potential worst deviation, %'
    >>> label("segment_rules.smb.penalty_km").text
    'smb misfit penalty, km'
    """
    key = str(key)
    if "." in key:
        for pattern, (name, unit) in _SETTINGS:
            match = pattern.match(key)
            if match:
                return Label(key, name.format(*(_words(g) for g in match.groups())), unit)
        inner = label(key.split(".")[-1])
        context = " ".join(_words(part) for part in key.split(".")[1:-1])
        return Label(key, f"{context} {inner.name}".strip(), inner.unit)
    base = key.split(":", 1)[0]
    if base in _NAMES:
        return Label(key, *_NAMES[base])
    for suffix, words in (
        ("_max_deviation_pct", "worst deviation"),
        ("_deviation_pct", "deviation"),
        ("_tolerance_pct", "tolerance"),
        ("_moved_pct", "moved"),
    ):
        if base.endswith(suffix):
            return Label(key, f"{_words(base.removesuffix(suffix))} {words}", "%")
    if base.endswith("_target"):
        metric = label(base.removesuffix("_target"))
        return Label(key, f"{metric.name} target", metric.unit)
    for suffix, unit in _SUFFIX_UNITS:
        if base.endswith(suffix) and len(base) > len(suffix):
            return Label(key, _words(base.removesuffix(suffix)), unit)
    return Label(key, _words(base))


def _words(key: str) -> str:
    return key.replace("_", " ").strip()


def setting(key: str, value: Any) -> str:
    """A setting and its value as planners say it: ``potential tolerance = 5 %``, ``team = r010-leaves``.

    Examples
    --------
    >>> setting("segment_rules.smb.penalty_km", 150.0)
    'smb misfit penalty = 150 km'
    >>> setting("continuity.max_moved_accounts", None)
    'move budget = none'
    """
    words = label(key)
    if _is_number(value):
        shown = plain(value)
        return f"{words.name} = {shown} {words.unit}".rstrip() if words.unit else f"{words.name} = {shown}"
    text = "none" if value is None or value == "none" or _is_missing(value) else str(value)
    return f"{words.name} = {text}"


def quantity(key: str, value: Any) -> str:
    """A measured figure with its name and unit: ``travel = 3,315,494 workload-hour × km``.

    Examples
    --------
    >>> quantity("potential_max_deviation_pct", 4.9166)
    'potential worst deviation = 4.92 %'
    """
    words = label(key)
    return f"{words.name} = {cell(value, key) or MISSING}" + (f" {words.unit}" if words.unit else "")


def digits(key: str, value: Any = None) -> int:
    """Decimals a column's numbers show: 0 for counts, money and travel, 2 for %, 1 for km and hours.

    Parameters
    ----------
    key
        The column (see :func:`label`).
    value
        A value of the column: an integer needs no decimals.
    """
    base = str(key).split(":", 1)[0].split(".")[-1].removesuffix("_target")
    if isinstance(value, Integral):
        return 0
    if base in ("latitude", "longitude"):
        return 5
    if base == "fte":
        return 2
    if base == "polsby_popper":
        return 3
    if base.endswith("tolerance_pct"):
        return 0 if _is_number(value) and float(value).is_integer() else 1
    if base.endswith("_pct") or base == "gap":
        return 2
    if _COUNTS.search(base) or _WHOLE.search(base):
        return 0
    if base.endswith(("_km", "_s", "_seconds")) or base in ("workload", "distance_km"):
        return 1
    if _is_number(value):
        size = abs(float(value))
        return 0 if size >= 100 or float(value).is_integer() else 1 if size >= 10 else 2
    return 0


def number(value: Any, places: int | None = None) -> str:
    """A number with thousands separators and ``places`` decimals (default: a few, by its size).

    Never scientific notation; missing values (``None``, NaN, infinities, text) give :data:`MISSING`.

    Examples
    --------
    >>> number(3906012.4), number(4.9166, 2), number(float("nan"))
    ('3,906,012', '4.92', '–')
    """
    if not _is_number(value):
        return MISSING
    value = float(value)
    if places is None:
        places = digits("", value)
    text = f"{value:,.{places}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text.replace(",", "")) == 0 else text


def plain(value: Any) -> str:
    """A number as short as it can be written exactly (up to 6 decimals), with separators: ``2.5``, ``1,000``."""
    if not _is_number(value):
        return MISSING
    text = f"{float(value):,.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def compact(value: Any, *, step: float | None = None) -> str:
    """A short form for tight spaces: ``3.91 M``, ``350 k``, ``12.5``, never scientific notation.

    Parameters
    ----------
    value
        The number.
    step
        The spacing of neighbouring values shown beside it (chart ticks): enough decimals are kept
        for them to read differently (``3.80 M``, ``3.85 M``); default: three significant digits.

    Examples
    --------
    >>> compact(58250831), compact(999_999), compact(1500), compact(0.25)
    ('58.3 M', '1 M', '1.5 k', '0.25')
    >>> [compact(t, step=50_000) for t in (3_800_000, 3_850_000)]
    ['3.8 M', '3.85 M']
    """
    if not _is_number(value):
        return MISSING
    value = float(value)
    size = abs(value)
    if step is None:
        rounded = float(f"{value:.3g}") if value else 0.0
        size = abs(rounded)
        for limit, suffix in COMPACT_UNITS:
            if size >= limit:
                return f"{_trim(f'{rounded / limit:.3f}')} {suffix}"
        places = max(0, 2 - math.floor(math.log10(size))) if size else 0
        return _trim(f"{rounded:,.{places}f}")
    for limit, suffix in COMPACT_UNITS:
        if size >= limit:
            return f"{_trim(f'{value / limit:.{_places(step / limit)}f}')} {suffix}"
    return _trim(f"{value:,.{_places(step)}f}")


def _places(step: float) -> int:
    """Decimals that tell values ``step`` apart."""
    if not step or not math.isfinite(step):
        return 0
    return max(0, -math.floor(math.log10(abs(step)) + 1e-9))


def _trim(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def percent(value: Any, places: int = 1, *, signed: bool = False) -> str:
    """A percentage: ``4.9 %``, or ``+4.9 %`` when ``signed``."""
    if not _is_number(value):
        return MISSING
    return f"{float(value):+,.{places}f} %" if signed else f"{number(value, places)} %"


def cell(value: Any, key: str = "") -> str:
    """One table value under column ``key``: numbers by :func:`digits`, ``yes``/``no``, text as is, blanks empty.

    Examples
    --------
    >>> cell(3906012.0, "workload_km"), cell(True, "all_within_tolerance"), cell(None, "note")
    ('3,906,012', 'yes', '')
    """
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if _is_missing(value):
        return ""
    if _is_number(value):
        return number(value, digits(key, value))
    if isinstance(value, Real):  # inf
        return MISSING
    return str(value)


def excel_format(key: str, value: Any) -> str | None:
    """The Excel display format of a number under column ``key`` (``None`` for text and booleans).

    The cell keeps the number; the format shows it as :func:`cell` does, with thousands separators. A
    ``gap`` is a fraction, shown as a percentage.

    Examples
    --------
    >>> excel_format("potential", 12.0), excel_format("mean_distance_km", 1.5), excel_format("gap", 0.002)
    ('#,##0', '#,##0.0', '0.00%')
    """
    if not _is_number(value):
        return None
    if str(key).split(".")[-1] == "gap":
        return "0.00%"
    places = digits(key, value)
    return "#,##0" + ("." + "0" * places if places else "")


def _is_number(value: Any) -> bool:
    """A finite real number (numpy scalars included), not a boolean."""
    if isinstance(value, bool | np.bool_) or value is None:
        return False
    try:
        return isinstance(value, Real) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT, pd.NA raise or compare unequal
    except (TypeError, ValueError):
        return True
