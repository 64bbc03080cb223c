"""Reading tables in the formats planners have: CSV, Excel, Parquet, GeoJSON, GeoPackage.

Every table comes back as a :class:`pandas.DataFrame` of raw values; the
domain readers (:mod:`models.dataset`) convert and validate them so that
messages can name the row and column of each bad cell. Rows are numbered as a
spreadsheet shows them: the header is row 1, the first data row is row 2.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from models.errors import InputError

logger = logging.getLogger(__name__)

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
GEO_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".fgb"}
SUPPORTED = sorted(CSV_SUFFIXES | EXCEL_SUFFIXES | PARQUET_SUFFIXES | GEO_SUFFIXES)

#: Offset from a 0-based data index to the spreadsheet row number.
FIRST_DATA_ROW = 2


def spreadsheet_row(index: int) -> int:
    """Return the spreadsheet row number of a 0-based data row index."""
    return int(index) + FIRST_DATA_ROW


def read_table(path: Path, sheet: str | None = None) -> pd.DataFrame:
    """Read a table of raw values.

    Parameters
    ----------
    path
        The file. The format follows the suffix.
    sheet
        Excel sheet name or GeoPackage layer (first one when ``None``).

    Returns
    -------
    pandas.DataFrame
        Columns as in the file, a fresh ``RangeIndex``. For geodata, point
        geometries become ``latitude``/``longitude`` columns (WGS84) unless the
        table already has them; other geometries give their representative point.

    Raises
    ------
    InputError
        Missing file, unsupported suffix, or a file the reader cannot parse.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError.single("file not found", file=path, hint="check the path in the scenario's data section")
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            sep = "\t" if suffix == ".tsv" else None
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, sep=sep, engine="python" if sep is None else "c"
            )
        elif suffix in EXCEL_SUFFIXES:
            frame = pd.read_excel(path, sheet_name=sheet or 0, dtype=object)
        elif suffix in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
        elif suffix in GEO_SUFFIXES:
            frame = _read_geo(path, sheet)
        else:
            raise InputError.single(
                f"unsupported file type '{suffix or '(none)'}'",
                file=path,
                hint=f"save the table as one of {', '.join(SUPPORTED)}",
            )
    except InputError:
        raise
    except Exception as exc:  # the readers raise many types; all mean "cannot parse"
        raise InputError.single(
            f"cannot read the file as {suffix.lstrip('.').upper()}: {exc}",
            file=path,
            hint="check that the file is not damaged and that its suffix matches its format",
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    logger.info("read %d rows, %d columns from %s", len(frame), len(frame.columns), path)
    return frame.reset_index(drop=True)


def _read_geo(path: Path, layer: str | None) -> pd.DataFrame:
    import geopandas as gpd

    gdf = gpd.read_file(path, layer=layer) if layer else gpd.read_file(path)
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs("EPSG:4326")
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    geometry = gdf.geometry
    if not {"latitude", "longitude"} <= set(frame.columns):
        points = geometry.where(geometry.geom_type == "Point", geometry.representative_point())
        frame["latitude"] = points.y.where(~geometry.is_empty & geometry.notna())
        frame["longitude"] = points.x.where(~geometry.is_empty & geometry.notna())
    return frame
