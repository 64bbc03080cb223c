"""Basic units: the blocks of accounts that move as a whole, and which of them are neighbours.

A unit is the smallest piece of a territory: one account family, a postal
code or county polygon, an H3 hexagon, or a Voronoi cell around a group of
nearby accounts (``units.source`` in the scenario). :func:`build_units` turns
the normalised accounts table (:mod:`models.dataset`) and the scenario's
``units`` settings into a :class:`UnitLayer`: which unit every account
belongs to, a representative point and a polygon per unit, and the pairs of
units that share a border (the adjacency that contiguous territories are
measured on).

Rules every source follows:

- A family moves as one: each account takes the unit of its family's top
  account (``family_id``).
- Key accounts (``units.key_accounts``, judged on the family's top account)
  form one unit per family, ``key:<family_id>``. They are assigned
  individually, have no neighbours and are exempt from contiguity.
- Groups of units with no border to the rest (islands) are linked to their
  nearest unit, or only reported (``units.islands``); ``units.extra_edges``
  adds neighbour pairs by hand (ferries, bridges, exclaves).

Distances are great-circle km; geometry is WGS84 longitude/latitude (EPSG:4326).
"""

from __future__ import annotations

import difflib
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np
import pandas as pd
import shapely

from models.errors import InputError, IssueCollector
from models.geo import EARTH_RADIUS_KM, haversine_km
from models.scenario import Units
from models.tables import FIRST_DATA_ROW, read_table, spreadsheet_row

if TYPE_CHECKING:
    import geopandas

logger = logging.getLogger(__name__)

#: Prefix of the unit id of a key-account family.
KEY_PREFIX = "key:"
#: Radius of the small disc drawn for a key-account unit, km.
KEY_BUFFER_KM = 1.0
#: Accounts outside every unit polygon but at most this far from one join the nearest, km.
SNAP_KM = 5.0
#: Voronoi cells are clipped to the accounts' convex hull grown by this much, km.
VORONOI_MARGIN_KM = 10.0
#: Gap (degrees, about 1 m) that borders may leave between neighbours in real layers (slivers).
SLIVER_TOLERANCE = 1e-5
#: Length (degrees, about 10 m) two borders must run within the sliver tolerance to count as shared;
#: polygons touching at a corner share about twice the tolerance.
SLIVER_SHARED_MIN = 1e-4
#: Notes listed one by one before the rest are summarised.
MAX_NOTES = 20
#: Unit ids named in one note before the rest are counted.
MAX_IDS_NAMED = 5

#: Separator between an H3 cell and the rep its locked accounts belong to, in Voronoi unit ids.
LOCK_SEPARATOR = "@"
#: Name of the layer of accounts under no hard segment rule (``units.team_layers``).
GENERAL_LAYER = "general"
#: Separator between a layer's name and a unit's id, for units of layers other than the first.
LAYER_SEPARATOR = ":"

_KM_PER_DEGREE = np.pi * EARTH_RADIUS_KM / 180.0
_NO_EDGES = np.empty((0, 2), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class UnitLayer:
    """The units of a scenario, their accounts and their neighbours.

    Attributes
    ----------
    unit_ids
        Unit ids (``str``, object array), one per unit, in a deterministic
        order: the source's units first, then key-account units.
    unit_of_account
        ``int64`` per account row: index into ``unit_ids``.
    latitude, longitude
        A representative point per unit (WGS84): the workload-weighted mean of
        its accounts' coordinates (plain mean when their workload is zero), or
        for a unit without accounts a point inside it.
    geometry
        Polygon per unit in EPSG:4326, or ``None`` for source ``accounts``.
        Key-account units get a small disc around their point.
    edges
        ``int64`` array of shape ``(E, 2)``: undirected neighbour pairs
        ``i < j``, sorted, without duplicates. Empty unless edges were asked for.
    key
        ``bool`` per unit: key-account units (assigned individually, exempt
        from contiguity, without edges).
    notes
        Warnings given while building the units, in the planner's words.
    layer
        Layer of every unit (``int64``, index into ``layer_names``; -1 for
        key-account units). One layer unless ``units.team_layers`` splits the
        accounts by team; edges never join two layers.
    layer_names
        Name of every layer (``general`` for accounts under no hard segment rule).
    """

    unit_ids: np.ndarray
    unit_of_account: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    geometry: geopandas.GeoSeries | None
    edges: np.ndarray
    key: np.ndarray
    notes: list[str]
    layer: np.ndarray | None = None
    layer_names: tuple[str, ...] = (GENERAL_LAYER,)

    @property
    def unit_layer(self) -> np.ndarray:
        """Layer of every unit (-1 for key-account units), also when the layer was not set."""
        if self.layer is not None:
            return self.layer
        return np.where(self.key, -1, 0).astype(np.int64)

    @property
    def num_units(self) -> int:
        """Number of units."""
        return len(self.unit_ids)

    def graph(self) -> nx.Graph:
        """Return the adjacency graph.

        Returns
        -------
        networkx.Graph
            Nodes ``0 .. n-1`` with attributes ``unit_id`` and ``key``; one edge
            per neighbour pair.
        """
        graph = nx.Graph()
        graph.add_nodes_from(
            (i, {"unit_id": str(unit_id), "key": bool(key)})
            for i, (unit_id, key) in enumerate(zip(self.unit_ids, self.key, strict=True))
        )
        graph.add_edges_from((int(i), int(j)) for i, j in self.edges)
        return graph


@dataclass(frozen=True)
class _Accounts:
    """The account columns units are built from, as arrays."""

    ids: np.ndarray  # str (object)
    lat: np.ndarray
    lon: np.ndarray
    workload: np.ndarray  # finite, >= 0
    top: np.ndarray  # int64: row of the family's top account
    key: np.ndarray  # bool: the account belongs to a key-account family
    lock: np.ndarray  # str (object): rep the account's family is locked to, "" when not locked
    file: str  # how messages name the accounts table


@dataclass(frozen=True)
class _Partition:
    """The non-key units a source makes.

    ``unit_of_account`` is -1 for accounts of key-account families. ``lat`` and
    ``lon`` give a point for units that may end up without accounts (NaN when
    every unit has accounts). ``edges`` is ``None`` when they follow from the
    unit points (source ``accounts``).
    """

    ids: list[str]
    unit_of_account: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    geometry: np.ndarray | None
    edges: np.ndarray | None
    notes: list[str]


def build_units(
    accounts: pd.DataFrame,
    units: Units,
    base_dir: Path,
    *,
    need_edges: bool,
    accounts_file: Path | str | None = None,
    teams: Mapping[str, str] | None = None,
) -> UnitLayer:
    """Group accounts into units and find which units are neighbours.

    Parameters
    ----------
    accounts
        Normalised accounts (see :mod:`models.dataset`): ``account_id,
        latitude, longitude`` and, when present, ``segment, potential,
        workload, family_id`` (and the ``units.account_column``).
    units
        The scenario's ``units`` settings.
    base_dir
        Folder that ``units.path`` and ``units.adjacency`` are relative to (the scenario's folder).
    need_edges
        Build the adjacency (contiguity, graph distances). Without it
        ``edges`` is empty and hexagon layers get no connecting empty cells.
    accounts_file
        How messages name the accounts table (its path).
    teams
        With ``units.team_layers``: account segment label -> team (layer) name, for the segments under a hard
        segment rule (see :func:`team_of_segments`). Accounts follow their family's top account.

    Returns
    -------
    UnitLayer

    Raises
    ------
    InputError
        Missing or unreadable polygon layer, point table or neighbour table, bad or duplicate unit ids,
        account codes not in the layer, accounts far outside every polygon, unknown ids, self-loops or
        repeated pairs in ``units.adjacency`` or ``units.extra_edges``.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.scenario import Units
    >>> accounts = pd.DataFrame(
    ...     {"account_id": ["a", "b", "c"], "latitude": [40.0, 40.1, 40.0], "longitude": [-90.0, -90.0, -89.9]}
    ... )
    >>> layer = build_units(accounts, Units(), Path("."), need_edges=True)
    >>> layer.unit_ids.tolist(), layer.edges.tolist()
    (['a', 'b', 'c'], [[0, 1], [0, 2], [1, 2]])
    """
    data = _account_arrays(accounts, units, accounts_file)
    source = _read_source(units, Path(base_dir))
    layer_of_account, layer_names = _account_layers(accounts, data, units, teams)
    table = _read_adjacency(units, Path(base_dir)) if need_edges and units.adjacency is not None else None

    ids: list[str] = []
    unit_layer: list[int] = []
    unit_of_account = np.full(len(data.ids), -1, dtype=np.int64)
    part_lat, part_lon, geometries = [], [], []
    base_edges, notes = [], list(source.notes)
    known: dict[str, int] = {}  # base unit id (as the neighbour table names it) -> first unit of that id
    parts = []
    for number, name in enumerate(layer_names):
        outside = data.key | (layer_of_account[data.top] != number) if len(layer_names) > 1 else data.key
        part = _partition(accounts, replace(data, key=outside), units, source, need_edges=need_edges)
        parts.append((len(ids), part))
        prefix = "" if name == GENERAL_LAYER or len(layer_names) == 1 else name + LAYER_SEPARATOR
        for k, unit_id in enumerate(part.ids):
            known.setdefault(unit_id, len(ids) + k)
        ids += [prefix + unit_id for unit_id in part.ids]
        unit_layer += [number] * len(part.ids)
        inside = part.unit_of_account >= 0
        unit_of_account[inside] = part.unit_of_account[inside] + parts[-1][0]
        part_lat.append(part.lat)
        part_lon.append(part.lon)
        geometries.append(part.geometry)
        notes += [n for n in part.notes if n not in notes]

    # key-account families: one unit each, in order of first appearance
    key_codes, key_families = pd.factorize(pd.Series(data.ids[data.top[data.key]], dtype=object))
    key_ids = [KEY_PREFIX + str(family) for family in key_families]
    unit_ids = np.array(ids + key_ids, dtype=object)
    _check_unique(unit_ids)
    n_regular = len(ids)
    n = len(unit_ids)
    unit_of_account[data.key] = n_regular + key_codes
    is_key = np.zeros(n, dtype=bool)
    is_key[n_regular:] = True
    layer = np.concatenate([np.array(unit_layer, dtype=np.int64), np.full(len(key_ids), -1, dtype=np.int64)])

    lat, lon, count = _weighted_points(unit_of_account, data, n)
    fallback_lat = np.concatenate([*part_lat, np.full(len(key_ids), np.nan)])
    fallback_lon = np.concatenate([*part_lon, np.full(len(key_ids), np.nan)])
    lat = np.where(count > 0, lat, fallback_lat)
    lon = np.where(count > 0, lon, fallback_lon)

    geometry = None
    if all(g is not None for g in geometries):
        import geopandas as gpd

        discs = _key_discs(lat[n_regular:], lon[n_regular:])
        geometry = gpd.GeoSeries(np.concatenate([*geometries, discs]), crs="EPSG:4326")

    edges = _NO_EDGES
    if need_edges:
        if table is not None:
            key_ids_named = set(data.ids[data.top[data.key]])
            table.check_ids(known, key_ids_named, notes)
        for offset, part in parts:
            members = np.arange(offset, offset + len(part.ids), dtype=np.int64)
            if table is not None:
                local = table.pairs_within(part.ids) + offset
            elif part.edges is not None:
                local = part.edges + offset
            else:
                local = members[_delaunay_edges(*_project(lat[members], lon[members]))]
            base_edges.append(local)
        pairs = _extra_edges(units.extra_edges, unit_ids, is_key, layer, notes)
        edges = _normalise_edges(np.concatenate([*base_edges, pairs]))
        for number in range(len(layer_names)):
            members = np.flatnonzero(layer == number)
            edges, island_notes = _islands(unit_ids, lat, lon, edges, members, units.islands)
            notes += island_notes
    else:
        _extra_edges(units.extra_edges, unit_ids, is_key, layer, notes)
    for note in notes:
        logger.warning(note)
    logger.info(
        "units (%s%s): %d units (%d key accounts), %d neighbour pairs for %d accounts",
        units.source,
        f", layers {', '.join(layer_names)}" if len(layer_names) > 1 else "",
        n,
        len(key_ids),
        len(edges),
        len(unit_of_account),
    )
    return UnitLayer(
        unit_ids=unit_ids,
        unit_of_account=unit_of_account,
        latitude=lat,
        longitude=lon,
        geometry=geometry,
        edges=edges,
        key=is_key,
        notes=notes,
        layer=layer,
        layer_names=tuple(layer_names),
    )


def team_of_segments(rules: Mapping[str, tuple[str, list[str]]]) -> dict[str, str]:
    """Team (layer) name of every account segment under a hard segment rule.

    Parameters
    ----------
    rules
        Segment label -> ``(mode, rep preferences that fit)``, as the scenario's ``segment_rules``.

    Returns
    -------
    dict
        Segment label -> team name: the fitting rep preferences joined by ``+`` (``enterprise``). Segments
        whose hard rules name the same reps share a team.

    Examples
    --------
    >>> team_of_segments({"enterprise": ("hard", ["enterprise"]), "smb": ("soft", ["smb"])})
    {'enterprise': 'enterprise'}
    """
    return {label: "+".join(sorted(set(reps))) for label, (mode, reps) in rules.items() if mode == "hard"}


def _account_layers(
    accounts: pd.DataFrame, data: _Accounts, units: Units, teams: Mapping[str, str] | None
) -> tuple[np.ndarray, list[str]]:
    """Layer number of every account row (by its own segment; families follow their top) and the layer names."""
    if not units.team_layers or not teams or "segment" not in accounts:
        return np.zeros(len(data.ids), dtype=np.int64), [GENERAL_LAYER]
    segment = accounts["segment"].astype("string").fillna("").str.strip().str.lower().to_numpy(dtype=object)
    team = np.array([teams.get(str(s), GENERAL_LAYER) for s in segment], dtype=object)
    present = set(team[data.top[~data.key]]) if (~data.key).any() else set()
    names = sorted(present - {GENERAL_LAYER})
    if GENERAL_LAYER in present:
        names.insert(0, GENERAL_LAYER)
    if not names:
        names = [GENERAL_LAYER]
    number = {name: k for k, name in enumerate(names)}
    return np.array([number.get(t, 0) for t in team], dtype=np.int64), names


@dataclass(frozen=True, eq=False)
class _Source:
    """A unit file read once for every layer: the polygon layer or the table of unit points."""

    frame: pd.DataFrame | None = None
    path: Path | None = None
    notes: tuple[str, ...] = ()

    @functools.cached_property
    def borders(self) -> np.ndarray:
        """Pairs of polygons sharing a border (computed once, whatever the number of layers)."""
        assert self.frame is not None
        return _polygon_edges(self.frame.geometry.to_numpy())


def _read_source(units: Units, base_dir: Path) -> _Source:
    if units.source == "polygons":
        layer, path, notes = _read_layer(units, base_dir)
        return _Source(layer, path, tuple(notes))
    if units.source == "points" and units.path is not None:
        path = units.path if units.path.is_absolute() else base_dir / units.path
        return _Source(_read_points(path, units), path)
    return _Source()


def _partition(
    accounts: pd.DataFrame, data: _Accounts, units: Units, source: _Source, *, need_edges: bool
) -> _Partition:
    """The units of one layer (the accounts not marked ``key`` in ``data``)."""
    if units.source == "accounts":
        return _family_units(data)
    if units.source == "polygons":
        assert source.frame is not None and source.path is not None
        return _polygon_units(accounts, data, units, source, need_edges=need_edges and units.adjacency is None)
    if units.source == "points":
        return _point_units(accounts, data, units, source)
    if units.source == "hexagons":
        return _hexagon_units(data, units.resolution, need_edges=need_edges)
    return _voronoi_units(data, units.resolution, need_edges=need_edges)


# ---------------------------------------------------------------------------- accounts and families


def _account_arrays(accounts: pd.DataFrame, units: Units, accounts_file: Path | str | None) -> _Accounts:
    """Arrays of the account columns, each account's family top and key-account flag."""
    ids = accounts["account_id"].astype(str).to_numpy(dtype=object)
    lat = accounts["latitude"].to_numpy(dtype=float)
    lon = accounts["longitude"].to_numpy(dtype=float)
    if "workload" in accounts:
        workload = np.nan_to_num(accounts["workload"].to_numpy(dtype=float), nan=0.0)
        workload = np.clip(workload, 0.0, None)
    else:
        workload = np.zeros(len(accounts))
    if "family_id" in accounts:
        top = pd.Index(ids).get_indexer(accounts["family_id"].astype(str).to_numpy(dtype=object))
        top = np.where(top < 0, np.arange(len(ids)), top).astype(np.int64)
    else:
        top = np.arange(len(ids), dtype=np.int64)
    key_top = np.zeros(len(ids), dtype=bool)
    rule = units.key_accounts
    if rule is not None:
        if rule.segments and "segment" in accounts:
            segment = accounts["segment"].astype("string").fillna("").str.strip().str.lower()
            key_top |= segment.isin(rule.segments).to_numpy()
        if rule.min_potential is not None and "potential" in accounts:
            potential = accounts["potential"].to_numpy(dtype=float)
            key_top |= np.nan_to_num(potential, nan=-np.inf) >= rule.min_potential
    lock = np.full(len(ids), "", dtype=object)
    if "locked" in accounts and "current_rep" in accounts:
        locked = accounts["locked"].fillna(False).to_numpy(dtype=bool)
        owners = accounts["current_rep"].astype("string").fillna("").to_numpy(dtype=object)
        lock[top[locked]] = owners[locked]  # families lock as one (checked when the accounts are read)
        lock = lock[top]
    return _Accounts(
        ids=ids,
        lat=lat,
        lon=lon,
        workload=workload,
        top=top,
        key=key_top[top],
        lock=lock,
        file=str(accounts_file) if accounts_file is not None else "accounts table",
    )


def _weighted_points(unit_of_account: np.ndarray, data: _Accounts, n: int) -> tuple[np.ndarray, ...]:
    """Workload-weighted mean point of each unit's accounts (plain mean at zero workload), and account counts."""
    w = data.workload
    count = np.bincount(unit_of_account, minlength=n).astype(float)
    weight = np.bincount(unit_of_account, weights=w, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        weighted_lat = np.bincount(unit_of_account, weights=w * data.lat, minlength=n) / weight
        weighted_lon = np.bincount(unit_of_account, weights=w * data.lon, minlength=n) / weight
        plain_lat = np.bincount(unit_of_account, weights=data.lat, minlength=n) / count
        plain_lon = np.bincount(unit_of_account, weights=data.lon, minlength=n) / count
    lat = np.where(weight > 0, weighted_lat, plain_lat)
    lon = np.where(weight > 0, weighted_lon, plain_lon)
    return lat, lon, count


def _regular_tops(data: _Accounts) -> np.ndarray:
    """Rows of the top accounts of families that are not key accounts, in row order."""
    return np.unique(data.top[~data.key])


def _spread_to_families(data: _Accounts, top_rows: np.ndarray, unit_of_top: np.ndarray) -> np.ndarray:
    """Unit per account from the unit of each family's top account (-1 for key-account families)."""
    by_row = np.full(len(data.ids), -1, dtype=np.int64)
    by_row[top_rows] = unit_of_top
    out = by_row[data.top]
    out[data.key] = -1
    return out


def _check_unique(unit_ids: np.ndarray) -> None:
    repeated = pd.Series(unit_ids).duplicated()
    if repeated.any():
        unit_id = unit_ids[int(np.flatnonzero(repeated.to_numpy())[0])]
        raise InputError.single(
            f"unit id '{unit_id}' is used twice (key-account units are named '{KEY_PREFIX}<account id>')",
            column="units.id_column",
            hint=f"rename the unit so that no unit id starts with '{KEY_PREFIX}'",
        )


# ---------------------------------------------------------------------------- source: accounts


def _family_units(data: _Accounts) -> _Partition:
    """One unit per family that is not a key account, in order of first appearance."""
    codes, families = pd.factorize(pd.Series(data.ids[data.top], dtype=object)[~data.key])
    unit_of_account = np.full(len(data.ids), -1, dtype=np.int64)
    unit_of_account[~data.key] = codes
    nan = np.full(len(families), np.nan)
    return _Partition([str(f) for f in families], unit_of_account, nan, nan.copy(), None, None, [])


# ---------------------------------------------------------------------------- source: polygons


def _polygon_units(
    accounts: pd.DataFrame, data: _Accounts, units: Units, source: _Source, *, need_edges: bool
) -> _Partition:
    """Units from a polygon layer; accounts joined by code or by location."""
    layer, path, notes = source.frame, source.path, []
    assert layer is not None and path is not None
    ids = _layer_ids(layer, units, path)
    geoms = layer.geometry.to_numpy()
    tops = _regular_tops(data)
    if units.account_column is not None:
        unit_of_top = _join_by_code(accounts, data, tops, ids, units.account_column, path)
    else:
        unit_of_top, snap_notes = _join_by_location(data, tops, geoms, ids, path)
        notes += snap_notes
    points = shapely.point_on_surface(geoms)  # shapely representative_point
    edges = source.borders if need_edges else None
    return _Partition(
        ids=ids,
        unit_of_account=_spread_to_families(data, tops, unit_of_top),
        lat=shapely.get_y(points),
        lon=shapely.get_x(points),
        geometry=geoms,
        edges=edges if edges is not None else _NO_EDGES,
        notes=notes,
    )


def _read_layer(units: Units, base_dir: Path) -> tuple[geopandas.GeoDataFrame, Path, list[str]]:
    """Read the unit polygon layer in EPSG:4326, repairing invalid shapes; reject rows without polygons."""
    import geopandas as gpd

    if units.path is None:
        raise InputError.single(
            "units.source is 'polygons' but no polygon layer is given",
            column="units.path",
            hint="set units.path to a GeoJSON, GeoPackage or shapefile of the units (postal codes, counties ...)",
        )
    path = units.path if units.path.is_absolute() else base_dir / units.path
    if not path.is_file():
        raise InputError.single(
            "unit polygon layer not found", file=path, column="units.path", hint="check units.path in the scenario"
        )
    try:
        layer = gpd.read_file(path, layer=units.layer) if units.layer else gpd.read_file(path)
    except Exception as exc:  # the readers raise many types; all mean "cannot read"
        hint = "check units.layer (the GeoPackage's layer name)" if units.layer else "check that the file is a layer"
        raise InputError.single(f"cannot read the unit polygon layer: {exc}", file=path, hint=hint) from None
    notes: list[str] = []
    if layer.empty:
        raise InputError.single("the unit polygon layer has no rows", file=path, hint="point units.path at the units")
    if layer.crs is None:
        minx, miny, maxx, maxy = layer.total_bounds
        if not (minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90):
            raise InputError.single(
                "the unit polygon layer has no coordinate reference system and its coordinates are not "
                "longitude/latitude",
                file=path,
                hint="save the layer with its projection (.prj file, or EPSG code in the GeoPackage)",
            )
        notes.append(f"the unit polygon layer {path.name} names no coordinate system; read as longitude/latitude")
        layer = layer.set_crs("EPSG:4326")
    elif not layer.crs.equals("EPSG:4326"):
        layer = layer.to_crs("EPSG:4326")
    layer = layer.reset_index(drop=True)
    geometry = layer.geometry
    issues = IssueCollector()
    missing = (geometry.isna() | geometry.is_empty).to_numpy()
    polygonal = geometry.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    for index in np.flatnonzero(missing | ~polygonal):
        what = "has no shape" if missing[index] else f"is a {geometry.geom_type.iloc[index]}, not a polygon"
        issues.add(
            f"unit {what}",
            file=path,
            row=spreadsheet_row(index),
            column=geometry.name,
            hint="give every unit a polygon, or remove the row",
        )
    issues.raise_if_any()
    invalid = ~geometry.is_valid.to_numpy()
    if invalid.any():
        repaired = [_polygonal(g) for g in shapely.make_valid(geometry.to_numpy()[invalid])]
        values = geometry.to_numpy().copy()
        values[invalid] = repaired
        layer = layer.set_geometry(gpd.GeoSeries(values, crs=layer.crs, index=layer.index))
        notes.append(
            f"{int(invalid.sum())} unit polygon(s) in {path.name} had invalid shapes (such as self-crossing borders) "
            "and were repaired"
        )
    return layer, path, notes


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygonal part of a repaired geometry."""
    if geom.geom_type in {"Polygon", "MultiPolygon"}:
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in {"Polygon", "MultiPolygon"}]
    return shapely.union_all(parts) if parts else geom


def _normalise_codes(series: pd.Series) -> pd.Series:
    """Ids as strings: ``101.0`` from a spreadsheet becomes ``'101'``; blanks become NA."""

    def one(value: object) -> object:
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return pd.NA
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        text = str(value).strip()
        return text if text and text.lower() not in {"nan", "none", "<na>"} else pd.NA

    return series.astype(object).map(one).astype("string")


def _layer_ids(layer: pd.DataFrame, units: Units, path: Path) -> list[str]:
    """Unit ids from ``units.id_column`` (present, filled, unique) or the row numbers of a layer or table."""
    if units.id_column is None:
        return [str(spreadsheet_row(i)) for i in range(len(layer))]
    if units.id_column not in layer.columns:
        import difflib

        geometry = getattr(layer, "geometry", None)
        columns = [str(c) for c in layer.columns if geometry is None or c != geometry.name]
        close = difflib.get_close_matches(units.id_column, columns, n=1, cutoff=0.6)
        raise InputError.single(
            f"the unit polygon layer has no column '{units.id_column}' (units.id_column)",
            file=path,
            column=units.id_column,
            hint=f"did you mean '{close[0]}'?" if close else f"the layer has: {', '.join(columns[:30])}",
        )
    ids = _normalise_codes(layer[units.id_column])
    issues = IssueCollector()
    for index in np.flatnonzero(ids.isna().to_numpy()):
        issues.add(
            "unit id is blank", file=path, row=spreadsheet_row(index), column=units.id_column, hint="fill in the id"
        )
    first_row = {}
    for index, unit_id in enumerate(ids):
        if unit_id is pd.NA:
            continue
        if unit_id in first_row:
            issues.add(
                f"duplicate unit id '{unit_id}' (first at row {spreadsheet_row(first_row[unit_id])})",
                file=path,
                row=spreadsheet_row(index),
                column=units.id_column,
                hint="give every unit its own id (merge the polygons of one unit into one row), or set units.id_column "
                "to a unique column",
            )
        else:
            first_row[unit_id] = index
    issues.raise_if_any()
    return [str(i) for i in ids]


def _unit_codes(accounts: pd.DataFrame, data: _Accounts, tops: np.ndarray, column: str, hint: str) -> pd.Series:
    """The unit codes of the top accounts from ``units.account_column`` (the column must exist)."""
    if column not in accounts.columns:
        raise InputError.single(
            f"the accounts have no column '{column}' holding their unit (units.account_column)",
            file=data.file,
            column=column,
            hint=hint,
        )
    return _normalise_codes(accounts[column].iloc[tops])


def _join_by_code(
    accounts: pd.DataFrame, data: _Accounts, tops: np.ndarray, ids: list[str], column: str, path: Path
) -> np.ndarray:
    """Unit of each top account from the code in ``column``; unknown or blank codes are errors."""
    hint = "add the column to the accounts table, or unset units.account_column to join by location"
    codes = _unit_codes(accounts, data, tops, column, hint)
    unit_of_top = pd.Index(ids).get_indexer(codes.fillna("").to_numpy(dtype=object))
    issues = IssueCollector()
    for k in np.flatnonzero(unit_of_top < 0):
        row = int(tops[k])
        code = codes.iloc[k]
        if code is pd.NA:
            message, hint = "unit code is blank", "fill in the code, or unset units.account_column to join by location"
        else:
            message = f"unit code '{code}' of account '{data.ids[row]}' is not in the unit layer {path.name}"
            hint = "fix the code, or add the unit to the layer"
        issues.add(message, file=data.file, row=spreadsheet_row(row), column=column, hint=hint)
    issues.raise_if_any()
    return unit_of_top.astype(np.int64)


def _join_by_location(
    data: _Accounts, tops: np.ndarray, geoms: np.ndarray, ids: list[str], path: Path
) -> tuple[np.ndarray, list[str]]:
    """Unit of each top account: the polygon it lies in, else the nearest one within :data:`SNAP_KM`."""
    tree = shapely.STRtree(geoms)
    points = shapely.points(data.lon[tops], data.lat[tops])
    inside, polygon = tree.query(points, predicate="within")
    unit_of_top = np.full(len(tops), -1, dtype=np.int64)
    order = np.lexsort((polygon, inside))  # overlapping polygons: the first one in the layer wins
    inside, polygon = inside[order], polygon[order]
    first = np.r_[True, inside[1:] != inside[:-1]] if len(inside) else np.zeros(0, dtype=bool)
    unit_of_top[inside[first]] = polygon[first]
    outside = np.flatnonzero(unit_of_top < 0)
    if not len(outside):
        return unit_of_top, []
    nearest, km = _nearest_polygon(tree, geoms, points[outside], data.lat[tops[outside]])
    near = km <= SNAP_KM
    issues = IssueCollector()
    for k in np.flatnonzero(~near):
        row = int(tops[outside[k]])
        issues.add(
            f"account '{data.ids[row]}' lies {km[k]:.1f} km outside every unit polygon of {path.name} "
            f"(nearest: unit '{ids[nearest[k]]}')",
            file=data.file,
            row=spreadsheet_row(row),
            column="latitude",
            hint="check its coordinates, or add a polygon that covers it to the unit layer",
        )
    issues.raise_if_any()
    unit_of_top[outside] = nearest
    note = (
        f"{len(outside)} account(s) lie outside every unit polygon of {path.name} and were put in the nearest unit "
        f"(farthest {km.max():.1f} km away)"
    )
    return unit_of_top, [note]


def _nearest_polygon(
    tree: shapely.STRtree, geoms: np.ndarray, points: np.ndarray, lat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest polygon of each point and the great-circle distance to it, km."""
    reach = SNAP_KM / _KM_PER_DEGREE / np.maximum(np.cos(np.radians(lat)), 0.01)
    near_point, near_polygon = tree.query(points, predicate="dwithin", distance=reach)
    first_point, first_polygon = tree.query_nearest(points, all_matches=False)
    point = np.concatenate([near_point, first_point])
    polygon = np.concatenate([near_polygon, first_polygon])
    coords = shapely.get_coordinates(shapely.shortest_line(points[point], geoms[polygon])).reshape(-1, 2, 2)
    km = haversine_km(coords[:, 0, 1], coords[:, 0, 0], coords[:, 1, 1], coords[:, 1, 0])
    order = np.lexsort((polygon, km, point))
    point, polygon, km = point[order], polygon[order], km[order]
    first = np.r_[True, point[1:] != point[:-1]]
    return polygon[first].astype(np.int64), km[first]


def _polygon_edges(geoms: np.ndarray) -> np.ndarray:
    """Rook adjacency: pairs of polygons whose borders share a line (not just a corner).

    Borders that coincide exactly meet in a line of positive length. Real layers leave
    slivers: borders that run within :data:`SLIVER_TOLERANCE` of each other
    for at least :data:`SLIVER_SHARED_MIN`, or polygons that overlap, count too.
    """
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="dwithin", distance=SLIVER_TOLERANCE)
    keep = left < right
    a, b = left[keep], right[keep]
    # DE-9IM: the borders meet in a line (dimension 1), cheaper than measuring their intersection
    shared = shapely.relate_pattern(geoms[a], geoms[b], "****1****")
    rest = np.flatnonzero(~shared)
    if len(rest):
        borders = shapely.boundary(geoms)
        grown = np.empty(len(geoms), dtype=object)
        needed = np.unique(a[rest])
        grown[needed] = shapely.buffer(borders[needed], SLIVER_TOLERANCE)
        near = shapely.length(shapely.intersection(grown[a[rest]], borders[b[rest]])) > SLIVER_SHARED_MIN
        shared[rest] = near | shapely.overlaps(geoms[a[rest]], geoms[b[rest]])
    return _normalise_edges(np.column_stack([a[shared], b[shared]]))


# ---------------------------------------------------------------------------- source: points


def _read_points(path: Path, units: Units) -> pd.DataFrame:
    """The table of unit points: ``latitude``/``longitude`` per row, checked; ids checked by :func:`_layer_ids`."""
    frame = read_table(path, units.layer)
    issues = IssueCollector()
    for column in ("latitude", "longitude"):
        if column not in frame.columns:
            raise InputError.single(
                f"the table of unit points has no '{column}' column",
                file=path,
                column=column,
                hint="give every unit a latitude and longitude (WGS84 degrees), or a point geometry",
            )
    limits = {"latitude": 90.0, "longitude": 180.0}
    for column, limit in limits.items():
        values = pd.to_numeric(frame[column], errors="coerce")
        for index in np.flatnonzero((values.isna() | (values.abs() > limit)).to_numpy()):
            raw = frame[column].iloc[index]
            what = "is blank" if str(raw).strip() in ("", "nan", "None") else f"'{raw}' is not a {column}"
            issues.add(
                f"{column} {what}",
                file=path,
                row=spreadsheet_row(index),
                column=column,
                hint=f"a number between -{limit:g} and {limit:g} (WGS84 degrees)",
            )
        frame[column] = values
    issues.raise_if_any()
    _layer_ids(frame, units, path)  # ids present, filled and unique before any account joins them
    return frame.reset_index(drop=True)


def _point_units(accounts: pd.DataFrame, data: _Accounts, units: Units, source: _Source) -> _Partition:
    """Units known by a point each: rows of a table of points, or the codes of ``units.account_column``.

    With a table, accounts join their unit by code (``units.account_column``) or else the nearest unit
    point; units without accounts stay (they may connect others). Without a table, every distinct code is a
    unit placed at its accounts' mean point.
    """
    tops = _regular_tops(data)
    if source.frame is not None and source.path is not None:
        frame, path = source.frame, source.path
        ids = _layer_ids(frame, units, path)
        lat = frame["latitude"].to_numpy(dtype=float)
        lon = frame["longitude"].to_numpy(dtype=float)
        if units.account_column is not None:
            unit_of_top = _join_by_code(accounts, data, tops, ids, units.account_column, path)
        else:
            x, y = _project(lat, lon)
            tx = data.lon[tops] * np.cos(np.radians(float(np.mean(lat)) if len(lat) else 0.0))
            tree = shapely.STRtree(shapely.points(x, y))
            unit_of_top = np.empty(len(tops), dtype=np.int64)
            found = tree.query_nearest(shapely.points(tx, data.lat[tops]), all_matches=False)
            unit_of_top[found[0]] = found[1]
        return _Partition(ids, _spread_to_families(data, tops, unit_of_top), lat, lon, None, None, [])
    column = units.account_column
    assert column is not None  # the scenario schema asks for a table or a column
    hint = "add the column to the accounts table, or set units.path to a table of unit points"
    codes = _unit_codes(accounts, data, tops, column, hint)
    issues = IssueCollector()
    for k in np.flatnonzero(codes.isna().to_numpy()):
        issues.add(
            "unit code is blank",
            file=data.file,
            row=spreadsheet_row(int(tops[k])),
            column=column,
            hint="fill in the account's unit (postal code, county ...)",
        )
    issues.raise_if_any()
    unit_of_top, ids = pd.factorize(codes.astype(object))
    nan = np.full(len(ids), np.nan)
    return _Partition(
        [str(i) for i in ids], _spread_to_families(data, tops, unit_of_top), nan, nan.copy(), None, None, []
    )


# ---------------------------------------------------------------------------- neighbour table


@dataclass(frozen=True)
class _NeighbourTable:
    """The rows of ``units.adjacency``: pairs of unit ids, checked, with their spreadsheet rows."""

    a: np.ndarray  # unit id (str, object)
    b: np.ndarray
    rows: np.ndarray  # spreadsheet row of every pair
    path: Path
    columns: tuple[str, str]

    def check_ids(self, known: Mapping[str, int], key_ids: set[str], notes: list[str]) -> None:
        """Refuse pairs naming a unit no layer has; note (and later skip) pairs naming key-account units."""
        issues = IssueCollector()
        skipped = 0
        for column, ids in zip(self.columns, (self.a, self.b), strict=True):
            for k, unit_id in enumerate(ids):
                if unit_id in known:
                    continue
                if unit_id in key_ids:
                    skipped += 1
                    continue
                close = difflib.get_close_matches(unit_id, list(known)[:100_000], n=1, cutoff=0.8)
                issues.add(
                    f"unit '{unit_id}' is not a unit of this scenario",
                    file=self.path,
                    row=int(self.rows[k]),
                    column=column,
                    hint=(f"did you mean '{close[0]}'? " if close else "")
                    + "use the unit ids of the units (units.id_column, the accounts' unit codes or account ids), "
                    "or remove the row",
                )
        issues.raise_if_any()
        if skipped:
            notes.append(
                f"{skipped} neighbour pair(s) in {self.path.name} name key-account units; key accounts are "
                "assigned one by one and have no neighbours, so the pairs are ignored"
            )

    def pairs_within(self, ids: list[str]) -> np.ndarray:
        """Index pairs of the rows whose both units are among ``ids`` (one layer's units)."""
        index = pd.Index(ids)
        a, b = index.get_indexer(self.a), index.get_indexer(self.b)
        keep = (a >= 0) & (b >= 0)
        return np.column_stack([a[keep], b[keep]]).astype(np.int64).reshape(-1, 2)


def _read_adjacency(units: Units, base_dir: Path) -> _NeighbourTable:
    """Read and check the neighbour table: both columns present, no blank id, no self-loop, no repeated pair."""
    assert units.adjacency is not None
    path = units.adjacency if units.adjacency.is_absolute() else base_dir / units.adjacency
    if not path.is_file():
        raise InputError.single(
            "neighbour table not found", file=path, column="units.adjacency", hint="check units.adjacency"
        )
    frame = read_table(path)
    columns = tuple(units.adjacency_columns)
    for column in columns:
        if column not in frame.columns:
            close = difflib.get_close_matches(column, [str(c) for c in frame.columns], n=1, cutoff=0.6)
            raise InputError.single(
                f"the neighbour table has no column '{column}' (units.adjacency_columns)",
                file=path,
                column=column,
                hint=f"did you mean '{close[0]}'?" if close else f"the table has: {', '.join(map(str, frame.columns))}",
            )
    a = _normalise_codes(frame[columns[0]])
    b = _normalise_codes(frame[columns[1]])
    issues = IssueCollector()
    first: dict[tuple[str, str], int] = {}
    keep = []
    for index, (x, y) in enumerate(zip(a, b, strict=True)):
        row = spreadsheet_row(index)
        blank = [c for c, v in zip(columns, (x, y), strict=True) if v is pd.NA]
        for column in blank:
            issues.add("unit id is blank", file=path, row=row, column=column, hint="fill in both units of the pair")
        if blank:
            continue
        if x == y:
            issues.add(
                f"unit '{x}' is listed as its own neighbour",
                file=path,
                row=row,
                column=columns[1],
                hint="remove the row: a unit needs no edge to itself",
            )
            continue
        pair = (min(x, y), max(x, y))
        if pair in first:
            issues.add(
                f"the pair ({x}, {y}) is listed twice (first at row {first[pair]}; pairs have no direction)",
                file=path,
                row=row,
                column=columns[0],
                hint="remove the repeated row",
            )
            continue
        first[pair] = row
        keep.append(index)
    issues.raise_if_any()
    keep_rows = np.array(keep, dtype=np.int64)
    return _NeighbourTable(
        a=a.to_numpy(dtype=object)[keep_rows].astype(str),
        b=b.to_numpy(dtype=object)[keep_rows].astype(str),
        rows=keep_rows + FIRST_DATA_ROW,
        path=path,
        columns=columns,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------- source: hexagons


def _hexagon_units(data: _Accounts, resolution: int, *, need_edges: bool) -> _Partition:
    """H3 cells of the accounts, plus the empty cells that join separate groups of cells."""
    import h3

    tops = _regular_tops(data)
    top_cells = np.array(
        [h3.latlng_to_cell(la, lo, resolution) for la, lo in zip(data.lat[tops], data.lon[tops], strict=True)],
        dtype=object,
    )
    cells = sorted(set(top_cells))
    if need_edges and len(cells) > 1:
        cells = _join_cell_groups(cells)
    position = pd.Index(cells)
    unit_of_top = position.get_indexer(top_cells).astype(np.int64)
    centres = np.array([h3.cell_to_latlng(c) for c in cells], dtype=float).reshape(-1, 2)
    geometry = np.array([_cell_polygon(c) for c in cells], dtype=object)
    return _Partition(
        ids=list(cells),
        unit_of_account=_spread_to_families(data, tops, unit_of_top),
        lat=centres[:, 0],
        lon=centres[:, 1],
        geometry=geometry,
        edges=_cell_edges(cells) if need_edges else _NO_EDGES,
        notes=[],
    )


def _cell_polygon(cell: str) -> shapely.Polygon:
    import h3

    return shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])


def _cell_edges(cells: list[str]) -> np.ndarray:
    """Pairs of cells that are H3 neighbours."""
    import h3

    position = {cell: i for i, cell in enumerate(cells)}
    pairs = [
        (i, j) for i, cell in enumerate(cells) for other in h3.grid_disk(cell, 1) if (j := position.get(other, -1)) > i
    ]
    return _normalise_edges(np.array(pairs, dtype=np.int64).reshape(-1, 2))


def _join_cell_groups(cells: list[str]) -> list[str]:
    """Add the cells on H3 grid paths that join separate groups of cells, nearest groups first."""
    import h3

    labels = _component_labels(len(cells), _cell_edges(cells), np.arange(len(cells)))
    if labels.max() == 0:
        return cells
    centres = np.array([h3.cell_to_latlng(c) for c in cells], dtype=float)
    links = _component_links(labels, centres[:, 0], centres[:, 1])
    added: set[str] = set()
    for i, j, _ in links:
        try:
            added.update(h3.grid_path_cells(cells[i], cells[j]))
        except h3.H3BaseException as exc:  # paths across pentagons can fail; the island step links them instead
            logger.info("no H3 path between cells %s and %s (%s)", cells[i], cells[j], exc)
    joined = sorted(set(cells) | added)
    logger.info(
        "hexagons: %d empty cells added to join %d separate groups of cells", len(joined) - len(cells), len(links) + 1
    )
    return joined


# ---------------------------------------------------------------------------- source: voronoi


def _voronoi_units(data: _Accounts, resolution: int, *, need_edges: bool) -> _Partition:
    """Voronoi cells around the workload-weighted centres of the accounts of each H3 cell.

    Accounts then join the cell they lie in (the nearest centre), so every
    account lies inside its unit's polygon. Cells are clipped to the accounts'
    convex hull grown by :data:`VORONOI_MARGIN_KM`.
    """
    import h3

    tops = _regular_tops(data)
    if not len(tops):
        return _Partition([], np.full(len(data.ids), -1, dtype=np.int64), np.zeros(0), np.zeros(0), _empty(), None, [])
    top_cells = np.array(
        [h3.latlng_to_cell(la, lo, resolution) for la, lo in zip(data.lat[tops], data.lon[tops], strict=True)],
        dtype=object,
    )
    # accounts locked to different reps never share a unit: a locked family groups with its owner's accounts
    owner = data.lock[tops]
    keyed = np.where(owner != "", top_cells + LOCK_SEPARATOR + owner, top_cells)
    group, group_cells = pd.factorize(pd.Series(keyed), sort=True)
    # weight of a family: its workload (one when the whole map has none)
    family_weight = np.bincount(data.top, weights=data.workload, minlength=len(data.ids))[tops]
    weight = family_weight if family_weight.sum() > 0 else np.ones(len(tops))
    weight = np.where(np.bincount(group, weights=weight)[group] > 0, weight, 1.0)  # groups with zero workload
    total = np.bincount(group, weights=weight)
    seed_lat = np.bincount(group, weights=weight * data.lat[tops]) / total
    seed_lon = np.bincount(group, weights=weight * data.lon[tops]) / total

    regular = ~data.key
    lat0 = float(np.mean(data.lat[regular]))
    scale = np.cos(np.radians(lat0))
    seeds = np.column_stack([seed_lon * scale, seed_lat])
    # coinciding centres make one unit, named after the first cell
    seeds, first, seed_of_group = np.unique(seeds, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    seeds, first = seeds[order], first[order]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    seed_of_group = rank[seed_of_group.ravel()]
    ids = [str(group_cells[k]) for k in first]

    hull = shapely.convex_hull(shapely.multipoints(np.column_stack([data.lon[regular] * scale, data.lat[regular]])))
    clip = shapely.buffer(hull, VORONOI_MARGIN_KM / _KM_PER_DEGREE)
    seed_points = shapely.points(seeds)
    if len(seeds) == 1:
        cells = np.array([clip], dtype=object)
    else:
        parts = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=clip))
        # the cell of a seed is the one holding it (at distance zero)
        seed_of, part_of = shapely.STRtree(parts).query_nearest(seed_points, all_matches=False)
        cells = np.empty(len(seeds), dtype=object)
        cells[seed_of] = parts[part_of]
        cells = shapely.intersection(cells, clip)
    nearest = shapely.STRtree(seed_points).query_nearest(
        shapely.points(data.lon[tops] * scale, data.lat[tops]), all_matches=False
    )
    unit_of_top = np.empty(len(tops), dtype=np.int64)
    unit_of_top[nearest[0]] = nearest[1]
    locked = owner != ""
    unit_of_top[locked] = seed_of_group[group[locked]]  # a locked family stays in its owner's unit
    geometry = shapely.transform(cells, lambda xy: xy / np.array([scale, 1.0]))
    return _Partition(
        ids=ids,
        unit_of_account=_spread_to_families(data, tops, unit_of_top),
        lat=seeds[:, 1],
        lon=seeds[:, 0] / scale,
        geometry=geometry,
        edges=_polygon_edges(geometry) if need_edges else _NO_EDGES,
        notes=[],
    )


def _empty() -> np.ndarray:
    return np.empty(0, dtype=object)


# ---------------------------------------------------------------------------- key accounts


def _key_discs(lat: np.ndarray, lon: np.ndarray, sides: int = 24) -> np.ndarray:
    """A disc of radius :data:`KEY_BUFFER_KM` around each point (lon stretched by 1 / cos(lat))."""
    if not len(lat):
        return _empty()
    angle = np.linspace(0.0, 2 * np.pi, sides + 1)
    angle[-1] = 0.0  # close the ring exactly
    radius = KEY_BUFFER_KM / _KM_PER_DEGREE
    ring_lat = lat[:, None] + radius * np.sin(angle)[None, :]
    ring_lon = lon[:, None] + radius * np.cos(angle)[None, :] / np.maximum(np.cos(np.radians(lat)), 0.01)[:, None]
    return shapely.polygons(np.stack([ring_lon, ring_lat], axis=-1))


# ---------------------------------------------------------------------------- graphs


def _project(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal-area-ish plane: longitude scaled by the cosine of the mean latitude, in degrees."""
    if not len(lat):
        return lon.astype(float), lat.astype(float)
    return lon * np.cos(np.radians(float(np.mean(lat)))), lat.astype(float)


def _normalise_edges(edges: np.ndarray) -> np.ndarray:
    """Pairs as ``i < j``, sorted, without duplicates or loops."""
    edges = np.sort(np.asarray(edges, dtype=np.int64).reshape(-1, 2), axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    if not len(edges):
        return _NO_EDGES
    width = int(edges.max()) + 1
    pair = np.unique(edges[:, 0] * width + edges[:, 1])  # one integer per pair sorts like (i, j)
    return np.column_stack([pair // width, pair % width])


def _delaunay_edges(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Edges of the Delaunay triangulation of points; points at the same place are joined to the first of them."""
    n = len(x)
    if n < 2:
        return _NO_EDGES
    z = np.asarray(x, dtype=float) + 1j * np.asarray(y, dtype=float)
    unique, first, inverse = np.unique(z, return_index=True, return_inverse=True)
    same_place = np.column_stack([first[inverse], np.arange(n)])
    if len(unique) == 1:
        return _normalise_edges(same_place)
    lines = shapely.delaunay_triangles(
        shapely.multipoints(np.column_stack([unique.real, unique.imag])), only_edges=True
    )
    ends = shapely.get_coordinates(shapely.get_parts(lines))
    ends_z = ends[:, 0] + 1j * ends[:, 1]
    index = np.clip(np.searchsorted(unique, ends_z), 0, len(unique) - 1)
    moved = unique[index] != ends_z
    if moved.any():  # GEOS keeps input coordinates; guard anyway
        index[moved] = shapely.STRtree(shapely.points(unique.real, unique.imag)).query_nearest(
            shapely.points(ends[moved]), all_matches=False
        )[1]
    triangulated = first[index].reshape(-1, 2)
    return _normalise_edges(np.concatenate([triangulated, same_place]))


def _component_labels(n: int, edges: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Component of each of ``nodes`` (labels 0, 1, ... by size, largest first; ties by lowest node).

    Vectorised union-find: each round every component root hooks onto the
    smallest root it has an edge to, then pointers jump to their roots; the
    number of components falls every round, and each root ends as the lowest
    node of its component.
    """
    root = np.arange(n, dtype=np.int64)
    i, j = edges[:, 0], edges[:, 1]
    while True:
        ri, rj = root[i], root[j]
        apart = ri != rj
        if not apart.any():
            break
        ri, rj = ri[apart], rj[apart]
        np.minimum.at(root, np.maximum(ri, rj), np.minimum(ri, rj))
        while True:
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped
    roots, label, size = np.unique(root[nodes], return_inverse=True, return_counts=True)
    rank = np.empty(len(roots), dtype=np.int64)
    rank[np.lexsort((roots, -size))] = np.arange(len(roots))
    return rank[label]


def _component_links(labels: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> list[tuple[int, int, float]]:
    """Shortest links that join all components: a minimum spanning tree over components.

    The closest pair of points between two groups is always a Delaunay edge,
    so the Delaunay edges between components hold the tree.

    Returns
    -------
    list of (i, j, km)
        Point indices and great-circle length of each link, shortest first.
    """
    candidates = _delaunay_edges(*_project(lat, lon))
    candidates = candidates[labels[candidates[:, 0]] != labels[candidates[:, 1]]]
    i, j = candidates[:, 0], candidates[:, 1]
    km = haversine_km(lat[i], lon[i], lat[j], lon[j])
    parent = list(range(int(labels.max()) + 1))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    links: list[tuple[int, int, float]] = []
    for e in np.lexsort((j, i, km)):
        a, b = root(int(labels[i[e]])), root(int(labels[j[e]]))
        if a != b:
            parent[max(a, b)] = min(a, b)
            links.append((int(i[e]), int(j[e]), float(km[e])))
            if len(links) == len(parent) - 1:
                break
    return links


def _extra_edges(
    pairs: list[tuple[str, str]], unit_ids: np.ndarray, is_key: np.ndarray, layer: np.ndarray, notes: list[str]
) -> np.ndarray:
    """Index pairs of ``units.extra_edges``; unknown ids are errors, pairs with key-account units or joining two
    layers are dropped."""
    position = pd.Index(unit_ids)
    issues = IssueCollector()
    out = []
    for k, (a, b) in enumerate(pairs):
        ends = []
        for unit_id in (a, b):
            index = position.get_indexer([str(unit_id)])[0]
            if index < 0:
                issues.add(
                    f"unit '{unit_id}' is not a unit of this scenario",
                    column=f"units.extra_edges[{k}]",
                    hint="use unit ids as in the unit layer (units.id_column), or remove the pair",
                )
            ends.append(index)
        if min(ends) < 0:
            continue
        if is_key[ends].any():
            notes.append(
                f"units.extra_edges pair ({a}, {b}) names a key-account unit; key accounts are assigned one by one "
                "and have no neighbours, so the pair is ignored"
            )
            continue
        if layer[ends[0]] != layer[ends[1]]:
            notes.append(
                f"units.extra_edges pair ({a}, {b}) joins two team layers; territories are connected on each layer "
                "apart, so the pair is ignored"
            )
            continue
        out.append(ends)
    issues.raise_if_any()
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _islands(
    unit_ids: np.ndarray, lat: np.ndarray, lon: np.ndarray, edges: np.ndarray, regular: np.ndarray, policy: str
) -> tuple[np.ndarray, list[str]]:
    """Find groups of units with no border to the rest; link them to their nearest unit or report them."""
    if len(regular) < 2:
        return edges, []
    labels = _component_labels(len(unit_ids), edges, regular)
    count = int(labels.max()) + 1
    if count == 1:
        return edges, []
    size = np.bincount(labels)
    if policy == "warn":
        groups = []
        for k in range(1, count):
            members = regular[labels == k]
            named = ", ".join(str(unit_ids[m]) for m in members[:MAX_IDS_NAMED])
            more = f" and {len(members) - MAX_IDS_NAMED} more" if len(members) > MAX_IDS_NAMED else ""
            groups.append(f"{named}{more} ({_units(len(members))})")
        shown = "; ".join(groups[:MAX_NOTES])
        if count - 1 > MAX_NOTES:
            shown += f"; and {count - 1 - MAX_NOTES} more groups"
        note = (
            f"{count - 1} group(s) of units share no border with the rest of the map ({_units(int(size[0]))}): "
            f"{shown}. A contiguous territory cannot reach them -> set units.islands: connect_nearest, "
            "or list neighbour pairs in units.extra_edges"
        )
        return edges, [note]
    links = _component_links(labels, lat[regular], lon[regular])
    # orient each link from the main group outwards, to name the island it joins
    tree = nx.Graph()
    tree.add_nodes_from(range(count))
    tree.add_edges_from((int(labels[i]), int(labels[j]), {"link": (i, j, km)}) for i, j, km in links)
    notes = []
    for parent, child in nx.bfs_edges(tree, 0):
        i, j, km = tree.edges[parent, child]["link"]
        inner, outer = (i, j) if labels[i] == parent else (j, i)
        notes.append(
            f"unit {unit_ids[regular[outer]]} (island of {_units(int(size[child]))}) linked to "
            f"{unit_ids[regular[inner]]}, {km:.1f} km"
        )
    if len(notes) > MAX_NOTES:
        notes = [*notes[:MAX_NOTES], f"... and {len(notes) - MAX_NOTES} more islands linked to their nearest unit"]
    new = np.array([(regular[i], regular[j]) for i, j, _ in links], dtype=np.int64).reshape(-1, 2)
    return _normalise_edges(np.concatenate([edges, new])), notes


def _units(k: int) -> str:
    return f"{k} unit" if k == 1 else f"{k} units"
