"""Maps: a plan in, a Folium map or an HTML page out.

Imports only :mod:`models`; never re-solves and never reads scenario files.
"""

from maps.palette import territory_colors
from maps.plan_map import build_plan_map, write_plan_map

__all__ = ["build_plan_map", "territory_colors", "write_plan_map"]
