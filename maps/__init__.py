"""Maps: a plan in, a Folium map or an HTML page out.

Imports only :mod:`models`; never re-solves and never reads scenario files.
"""

from maps.compare_map import build_compare_map, write_compare_map
from maps.palette import territory_colors
from maps.plan_map import build_plan_map, draw_plan, new_map, page_html, save_page, write_plan_map
from maps.report import build_report, write_report

__all__ = [
    "build_compare_map",
    "build_plan_map",
    "build_report",
    "draw_plan",
    "new_map",
    "page_html",
    "save_page",
    "territory_colors",
    "write_compare_map",
    "write_plan_map",
    "write_report",
]
