"""Offline pages: the web assets a Folium page loads, inlined from installed packages.

A Folium page loads Leaflet, jQuery and a few style sheets from CDNs, and its
base map from tile servers. For planners on locked-down laptops the maps and
the report can instead be written *offline*: no tiles, and every script and
style sheet inlined from the PyPI XStatic packages installed with the engine
(``XStatic-Leaflet`` 1.9.3, the version folium uses; ``XStatic-jQuery``;
``XStatic-Leaflet-MarkerCluster``). Nothing is copied into the repository.

Assets that the engine's pages never use (Bootstrap, its glyph icons, Font
Awesome and the awesome-markers plugin that folium adds to every page) are
dropped from offline pages. Any other remote script or style sheet is an
error: an offline page that still reaches for the network would fail quietly
on the planner's laptop.
"""

from __future__ import annotations

import base64
import importlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Asset:
    """A file of an installed XStatic package that replaces a CDN URL.

    Attributes
    ----------
    package
        Python module of the XStatic package (``xstatic.pkg.leaflet``).
    path
        File inside the package's data folder.
    distribution
        The PyPI name, for the error message when it is missing.
    """

    package: str
    path: str
    distribution: str


#: CDN URL pattern -> the installed file that replaces it (first match wins).
ASSETS: tuple[tuple[re.Pattern[str], Asset], ...] = (
    (
        re.compile(r"/leaflet@1\.9\.\d+/dist/leaflet\.js$"),
        Asset("xstatic.pkg.leaflet", "leaflet.js", "XStatic-Leaflet"),
    ),
    (
        re.compile(r"/leaflet@1\.9\.\d+/dist/leaflet\.css$"),
        Asset("xstatic.pkg.leaflet", "leaflet.css", "XStatic-Leaflet"),
    ),
    (re.compile(r"/jquery-3\.\d+\.\d+\.min\.js$"), Asset("xstatic.pkg.jquery", "jquery.min.js", "XStatic-jQuery")),
    (
        re.compile(r"leaflet\.markercluster.*/leaflet\.markercluster\.js$"),
        Asset("xstatic.pkg.leaflet_markercluster", "leaflet.markercluster.js", "XStatic-Leaflet-MarkerCluster"),
    ),
    (
        re.compile(r"leaflet\.markercluster.*/MarkerCluster\.css$"),
        Asset("xstatic.pkg.leaflet_markercluster", "MarkerCluster.css", "XStatic-Leaflet-MarkerCluster"),
    ),
    (
        re.compile(r"leaflet\.markercluster.*/MarkerCluster\.Default\.css$"),
        Asset("xstatic.pkg.leaflet_markercluster", "MarkerCluster.Default.css", "XStatic-Leaflet-MarkerCluster"),
    ),
)

#: Remote assets folium adds to every page that the engine's pages do not use.
UNUSED = re.compile(r"bootstrap|glyphicons|fontawesome|font-awesome|awesome-markers|awesome\.rotate")

_SCRIPT = re.compile(r'<script src="(https?://[^"]+)"></script>\n?')
_STYLESHEET = re.compile(r'<link rel="stylesheet" href="(https?://[^"]+)"\s*/?>\n?')
_CSS_URL = re.compile(r"url\((?!#|data:)([^)]+)\)")


class OfflineAssetError(RuntimeError):
    """An offline page needs a remote asset that no installed package provides."""


def inline_assets(page: str) -> str:
    """Replace the remote scripts and style sheets of a rendered page with inlined copies.

    Parameters
    ----------
    page
        HTML of a rendered Folium figure (``Map.get_root().render()``).

    Returns
    -------
    str
        The same page with every remote ``<script src>`` and style sheet
        ``<link>`` inlined from an installed XStatic package, or dropped when
        the engine's pages never use it.

    Raises
    ------
    OfflineAssetError
        A remote asset no installed package provides (the message names the
        URL), or an XStatic package is not installed (the message names it).
    """

    def script(match: re.Match[str]) -> str:
        url = match.group(1)
        if UNUSED.search(url):
            return ""
        text = asset_text(_asset_for(url)).replace("</script", "<\\/script")
        return f"<script>/* {_name(url)} */\n{text}\n</script>\n"

    def stylesheet(match: re.Match[str]) -> str:
        url = match.group(1)
        if UNUSED.search(url):
            return ""
        return f"<style>/* {_name(url)} */\n{asset_text(_asset_for(url))}\n</style>\n"

    return _STYLESHEET.sub(stylesheet, _SCRIPT.sub(script, page))


def remote_assets(page: str) -> list[str]:
    """URLs of the remote scripts and style sheets a page loads (empty for an offline page)."""
    return _SCRIPT.findall(page) + _STYLESHEET.findall(page)


def _asset_for(url: str) -> Asset:
    for pattern, asset in ASSETS:
        if pattern.search(url):
            return asset
    raise OfflineAssetError(
        f"the page loads {url}, which no installed package provides: offline pages cannot load it; "
        "leave out the element that needs it, or write the page without offline=True"
    )


def _name(url: str) -> str:
    return url.rsplit("/", 1)[-1].replace("*/", "")


@cache
def asset_text(asset: Asset) -> str:
    """Text of an installed asset; style sheets get their images as data URIs.

    Raises
    ------
    OfflineAssetError
        The XStatic package is not installed.
    """
    try:
        module = importlib.import_module(asset.package)
    except ImportError as exc:
        raise OfflineAssetError(
            f"offline pages need the {asset.distribution} package: pip install {asset.distribution}"
        ) from exc
    base = Path(module.BASE_DIR)
    text = (base / asset.path).read_text(encoding="utf-8")
    if asset.path.endswith(".css"):
        text = _CSS_URL.sub(lambda m: _data_uri(base, m.group(1)), text)
    logger.debug("inlined %s from %s %s", asset.path, asset.distribution, getattr(module, "VERSION", "?"))
    return text


def _data_uri(base: Path, reference: str) -> str:
    """``url(images/x.png)`` -> ``url(data:image/png;base64,...)``, when the file exists."""
    relative = reference.strip("'\" ")
    path = base / relative
    if not path.is_file():
        return f"url({reference})"
    kind = {"png": "image/png", "svg": "image/svg+xml", "gif": "image/gif"}.get(path.suffix.lstrip("."), "")
    return f"url(data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')})"
