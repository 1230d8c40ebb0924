"""The feature naming scheme: ``{measure}__{object}[__in__|__of__|__to__{other}]``.

* ``measure`` carries its unit (``area_mm2``, ``density_per_mm2``, ``mean_area_um2``,
  ``fraction_within_50um``); unit-free measures say what they are (``eccentricity``).
* ``object`` and ``other`` are category slugs: the canonical category name in lower case
  with spaces and ``-`` replaced by ``_`` (``adipose tissue`` -> ``adipose_tissue``).
* Connectors: ``__in__{region}`` = restricted to objects whose centroid lies inside the
  region (areas of that region as denominators); ``__of__{region}`` = measured with respect
  to the region (e.g. distance to it); ``__to__{other}`` = a pair of categories (ratios,
  interfaces, nearest-neighbour distances from one type to another, co-localisation).
"""

from __future__ import annotations

import re

from pathxai.exceptions import FeatureError

__all__ = ["CONNECTORS", "SLUG_RE", "feature_name", "format_um", "slugify", "split_feature_name",
           "unslug"]

CONNECTORS = ("in", "of", "to")
#: a category slug: lower-case words joined by single underscores
SLUG_RE = r"[a-z0-9]+(?:_[a-z0-9]+)*"
_SLUG = re.compile(rf"^{SLUG_RE}$")


def slugify(name: str) -> str:
    """File- and feature-name form of a category name.

    Parameters
    ----------
    name : str
        Canonical category name, e.g. ``"adipose tissue"``.

    Returns
    -------
    str
        Lower case, spaces and ``-`` replaced by ``_`` (``"adipose_tissue"``).
    """
    slug = re.sub(r"[\s\-]+", "_", str(name).strip().lower())
    slug = re.sub(r"_+", "_", slug).strip("_")
    if not _SLUG.match(slug):
        raise FeatureError(
            f"category name {name!r} cannot be used in feature names (slug {slug!r}); "
            "use letters, digits, spaces, '-' or '_'"
        )
    return slug


def unslug(slug: str) -> str:
    """Category name from its slug (``"adipose_tissue"`` -> ``"adipose tissue"``)."""
    return slug.replace("_", " ")


def format_um(value: float) -> str:
    """Distance for a feature name: ``50`` -> ``"50um"``, ``12.5`` -> ``"12p5um"``."""
    v = float(value)
    text = f"{int(v)}" if v.is_integer() else f"{v:g}".replace(".", "p")
    return f"{text}um"


def feature_name(measure: str, obj: str, *, in_: str | None = None, of: str | None = None,
                 to: str | None = None) -> str:
    """Build a feature name from a measure and category names (or slugs).

    Examples
    --------
    >>> feature_name("density_per_mm2", "lymphocyte", in_="tumor")
    'density_per_mm2__lymphocyte__in__tumor'
    >>> feature_name("ratio", "tumor", to="stroma")
    'ratio__tumor__to__stroma'
    """
    given = [(c, v) for c, v in (("in", in_), ("of", of), ("to", to)) if v is not None]
    if len(given) > 1:
        raise FeatureError(f"a feature name takes one connector; got {[c for c, _ in given]}")
    name = f"{measure}__{slugify(obj)}"
    if given:
        conn, other = given[0]
        name += f"__{conn}__{slugify(other)}"
    return name


def split_feature_name(name: str) -> dict[str, str | None]:
    """Parse a feature name into ``measure``, ``object``, ``connector``, ``other``.

    Raises
    ------
    FeatureError
        When the name does not follow the scheme.
    """
    parts = name.split("__")
    if len(parts) == 2:
        return {"measure": parts[0], "object": parts[1], "connector": None, "other": None}
    if len(parts) == 4 and parts[2] in CONNECTORS:
        return {"measure": parts[0], "object": parts[1], "connector": parts[2], "other": parts[3]}
    raise FeatureError(
        f"feature name {name!r} does not follow "
        "'{measure}__{object}[__in__|__of__|__to__{other}]'"
    )
