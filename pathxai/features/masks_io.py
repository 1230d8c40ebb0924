"""Mask inputs: the plain folder layout, a label image + category map, QuPath GeoJSON and
HoVer-Net JSON, all read into one :class:`SlideMasks`.

Plain layout (one folder per slide; all images of a slide share one size)::

    <masks>/<slide_id>/<slug>.png | .tif             binary region mask (non-zero = inside)
    <masks>/<slide_id>/<slug>.instances.png | .tif   instance labels (0 = background, k = object k)
    <masks>/<slide_id>/tissue.png | .tif             optional tissue mask
    <masks>/<slide_id>/meta.json                     optional {"mpp": float, ...}

Uncompressed TIFF masks are memory-mapped and read lazily (:class:`LazyMask`), so the tile
accumulator holds only one tile of them at a time; PNGs and compressed TIFFs are read whole.
The category of a file is its slug with ``_`` read as a space (``adipose_tissue.png`` ->
``adipose tissue``); a qualified segmentor answer ``lymphocyte__in__tumor.png`` is the category
``lymphocyte in tumor`` (feature slug ``lymphocyte_in_tumor``). A category given both as a
binary mask and as instances is treated as objects only (its binary mask still counts as
tissue when no tissue mask is given). Unknown categories are refused (:class:`MaskInputError` naming the
file) unless declared with ``categories=``. Coordinates are ``(row, col)`` pixels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pathxai.exceptions import MaskInputError, MissingMPPError
from pathxai.features.naming import slugify, unslug

__all__ = [
    "CONTRACT_OBJECTS",
    "LazyMask",
    "CONTRACT_REGIONS",
    "HOVERNET_PANNUKE_TYPES",
    "SlideMasks",
    "check_mpp",
    "known_categories",
    "read_hovernet_json",
    "read_image",
    "read_label_map",
    "read_mask_folder",
    "read_qupath_geojson",
]

#: region categories of docs/contracts.md (tissue label-map codes 1..6)
CONTRACT_REGIONS = ("tumor", "stroma", "necrosis", "adipose tissue", "lymphocytic infiltrate", "gland")
#: object categories of docs/contracts.md (nucleus type codes 1..3)
CONTRACT_OBJECTS = ("neoplastic cell", "lymphocyte", "connective tissue cell")
#: HoVer-Net's PanNuke type ids
HOVERNET_PANNUKE_TYPES = {0: "nucleus", 1: "neoplastic cell", 2: "inflammatory cell",
                          3: "connective tissue cell", 4: "dead cell", 5: "epithelial cell"}
_IMAGE_EXTS = (".png", ".tif", ".tiff")
_ALWAYS = {"tissue", "nucleus", *CONTRACT_REGIONS, *CONTRACT_OBJECTS}


def known_categories(extra: Iterable[str] | None = None) -> set[str]:
    """Category names accepted without declaration.

    The contract's categories, ``tissue``, every label of the segmentation ontology
    (:func:`pathxai.segment.ontology.load_ontology`, when importable) and ``extra``.
    """
    names = set(_ALWAYS)
    try:
        from pathxai.segment.ontology import load_ontology

        names |= set(load_ontology().labels)
    except Exception:  # noqa: BLE001 - the ontology is optional for features
        pass
    names |= {str(e).strip().lower() for e in (extra or ())}
    return names


def _is_known(name: str, known: set[str]) -> bool:
    """A known category, or a qualified one ``"<known> in|of <known>"`` (segmentor output)."""
    key = name.strip().lower()
    if key in known:
        return True
    for conn in (" in ", " of "):
        a, sep, b = key.partition(conn)
        if sep and a in known and b in known:
            return True
    return False


def check_mpp(mpp: Any, *, where: str) -> float:
    """A valid µm/px or :class:`MissingMPPError` naming where it was needed."""
    if mpp is None or (isinstance(mpp, float) and not np.isfinite(mpp)):
        raise MissingMPPError(
            f"{where}: microns per pixel (mpp) unknown; pass mpp=... (e.g. 0.5 for 20x) or "
            "write {\"mpp\": ...} in the slide folder's meta.json; features are never in pixels"
        )
    try:
        value = float(mpp)
    except (TypeError, ValueError) as exc:
        raise MissingMPPError(f"{where}: mpp must be a number of µm per pixel; got {mpp!r}") from exc
    if not (value > 0 and np.isfinite(value)):
        raise MissingMPPError(f"{where}: mpp must be a positive number of µm per pixel; got {mpp!r}")
    return value


@dataclass
class SlideMasks:
    """All masks of one slide, in memory (or any array supporting 2-D slicing).

    Attributes
    ----------
    slide_id : str
    mpp : float or None
        µm per pixel of the masks.
    regions : dict of str -> ndarray, shape (H, W)
        Binary region masks by canonical category name (non-zero = inside).
    instances : dict of str -> ndarray of int, shape (H, W)
        Instance labels by object category (0 = background, k = object k).
    tissue : ndarray, shape (H, W), or None
        Tissue mask; None means the union of all regions and objects.
    image : ndarray of uint8, shape (H, W, 3), or None
        The RGB image at the masks' resolution (for intensity/texture features).
    sources : dict of str -> str
        Where each array came from (``category``, ``category.instances``, ``tissue``,
        ``image``), for messages.
    """

    slide_id: str
    mpp: float | None
    regions: dict[str, Any] = field(default_factory=dict)
    instances: dict[str, Any] = field(default_factory=dict)
    tissue: Any = None
    image: Any = None
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` shared by every array."""
        for arr in (*self.regions.values(), *self.instances.values(), self.tissue, self.image):
            if arr is not None:
                return int(arr.shape[0]), int(arr.shape[1])
        raise MaskInputError(f"slide {self.slide_id!r} has no masks")

    def validate(self, categories: Iterable[str] | None = None) -> SlideMasks:
        """Check names, sizes and dtypes; raise :class:`MaskInputError` naming the file."""
        if not self.regions and not self.instances and self.tissue is None:
            raise MaskInputError(f"slide {self.slide_id!r}: no region, instance or tissue mask given")
        known = known_categories(categories)
        for kind, d in (("region", self.regions), ("instances", self.instances)):
            for name in d:
                key = name if kind == "region" else f"{name}.instances"
                if not _is_known(name, known):
                    raise MaskInputError(
                        f"{self.sources.get(key, key)}: unknown category {name!r} "
                        f"(slide {self.slide_id!r}); use a canonical name such as "
                        f"{', '.join(repr(c) for c in (*CONTRACT_REGIONS, *CONTRACT_OBJECTS))} "
                        "or declare it with categories=[...]"
                    )
                slugify(name)
        shape = None
        ref = None
        arrays = [*((n, a) for n, a in self.regions.items()),
                  *((f"{n}.instances", a) for n, a in self.instances.items()),
                  ("tissue", self.tissue), ("image", self.image)]
        for key, arr in arrays:
            if arr is None:
                continue
            src = self.sources.get(key, key)
            want_ndim = 3 if key == "image" else 2
            if arr.ndim != want_ndim or (key == "image" and arr.shape[2] != 3):
                what = "an RGB image (H, W, 3)" if key == "image" else "a 2-D mask (H, W)"
                raise MaskInputError(f"{src}: expected {what}; got shape {tuple(arr.shape)}")
            if key.endswith(".instances") and not np.issubdtype(arr.dtype, np.integer):
                raise MaskInputError(f"{src}: instance labels must be integers; got dtype {arr.dtype}")
            hw = (int(arr.shape[0]), int(arr.shape[1]))
            if shape is None:
                shape, ref = hw, src
            elif hw != shape:
                raise MaskInputError(
                    f"{src}: size {hw[1]}x{hw[0]} (WxH) differs from {ref} ({shape[1]}x{shape[0]}); "
                    "all masks and the image of a slide must share one size"
                )
        return self


def read_image(path: str | Path) -> np.ndarray:
    """Read a PNG/JPEG/TIFF image into an array (:class:`MaskInputError` naming the file)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB") if im.mode in ("P", "RGBA", "CMYK") else im)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise MaskInputError(f"{path}: cannot read image ({exc})") from exc
    return np.asarray(arr)


class LazyMask:
    """A read-only 2-D view of a memory-mapped image that converts only the pixels read.

    Slicing returns ``base[key] != 0`` (binary masks) or ``base[key]`` as int32/int64
    (instance labels), so a slide processed tile by tile never holds the whole mask.

    Parameters
    ----------
    base : array-like, shape (H, W)
        E.g. :func:`tifffile.memmap` of an uncompressed TIFF.
    kind : {"binary", "labels"}
    """

    def __init__(self, base: Any, kind: str):
        self.base = base
        self.kind = kind
        self.shape = tuple(base.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(bool) if kind == "binary" else (
            np.dtype(np.int32) if np.dtype(base.dtype).itemsize <= 4 else np.dtype(np.int64))

    def __getitem__(self, key: Any) -> np.ndarray:
        arr = np.asarray(self.base[key])
        return arr != 0 if self.kind == "binary" else arr.astype(self.dtype, copy=False)

    def __array__(self, dtype=None, copy=None):
        full = self[:, :]
        return full if dtype is None else full.astype(dtype)


def _memmap(path: Path) -> Any | None:
    """A memory map of an uncompressed single-page 2-D TIFF, else None."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    try:
        import tifffile

        mm = tifffile.memmap(path, mode="r")
    except Exception:  # noqa: BLE001 - compressed/tiled TIFFs are read in full instead
        return None
    return mm if mm.ndim == 2 else None


def _as_mask(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 3:
        raise MaskInputError(f"{path}: a mask must be single-channel (H, W); got shape {arr.shape}")
    return arr != 0


def _as_instances(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim != 2:
        raise MaskInputError(f"{path}: instance labels must be single-channel (H, W); got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise MaskInputError(f"{path}: instance labels must be integers; got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise MaskInputError(f"{path}: instance labels must be >= 0")
    return arr.astype(np.int32, copy=False) if arr.dtype.itemsize <= 4 else arr.astype(np.int64)


def read_mask_folder(slide_dir: str | Path, *, mpp: float | None = None,
                     image: str | Path | np.ndarray | None = None,
                     categories: Iterable[str] | None = None) -> SlideMasks:
    """Read one slide folder of the plain layout.

    Parameters
    ----------
    slide_dir : path
        ``<masks>/<slide_id>``; its name is the slide id.
    mpp : float, optional
        µm per pixel; default from ``meta.json`` (``mpp`` key).
    image : path or ndarray, optional
        RGB image at the masks' resolution, for intensity/texture features.
    categories : iterable of str, optional
        Extra category names to accept.

    Returns
    -------
    SlideMasks

    Raises
    ------
    MaskInputError
        Missing/empty folder, unreadable file, unknown category, size mismatch.
    MissingMPPError
        No ``mpp`` given and none in ``meta.json``.
    """
    slide_dir = Path(slide_dir)
    if not slide_dir.is_dir():
        raise MaskInputError(f"{slide_dir}: mask folder not found")
    meta: dict[str, Any] = {}
    meta_path = slide_dir / "meta.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise MaskInputError(f"{meta_path}: not valid JSON ({exc})") from exc
    if mpp is None:
        mpp = meta.get("mpp")
    mpp_value = check_mpp(mpp, where=f"mask folder {slide_dir}")
    slide = SlideMasks(slide_id=slide_dir.name, mpp=mpp_value)
    files = sorted(p for p in slide_dir.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_EXTS)
    if not files:
        raise MaskInputError(
            f"{slide_dir}: no mask images (<category>.png|.tif, <category>.instances.png|.tif)"
        )
    for p in files:
        stem = p.name[: -len(p.suffix)]
        is_inst = stem.endswith(".instances")
        slug = stem[: -len(".instances")] if is_inst else stem
        if "." in slug or not slug:
            raise MaskInputError(f"{p}: file name is not <category>.png or <category>.instances.png")
        parts = slug.lower().split("__")
        if len(parts) == 3 and parts[1] in ("in", "of"):
            # a qualified segmentor answer, e.g. lymphocyte__in__tumor.png -> "lymphocyte in tumor"
            name = f"{unslug(parts[0])} {parts[1]} {unslug(parts[2])}"
        elif len(parts) == 1:
            name = unslug(slug.lower())
        else:
            raise MaskInputError(
                f"{p}: file name is not <category>[.instances].png or <category>__in__<region>.png"
            )
        mm = _memmap(p)
        if mm is not None:  # uncompressed TIFF: read lazily, tile by tile
            if is_inst and not np.issubdtype(mm.dtype, np.integer):
                raise MaskInputError(f"{p}: instance labels must be integers; got dtype {mm.dtype}")
            lazy = LazyMask(mm, "labels" if is_inst else "binary")
            key = f"{name}.instances" if is_inst else ("tissue" if name == "tissue" else name)
            if is_inst:
                slide.instances[name] = lazy
            elif name == "tissue":
                slide.tissue = lazy
            else:
                slide.regions[name] = lazy
            slide.sources[key] = str(p)
            continue
        arr = read_image(p)
        if is_inst:
            slide.instances[name] = _as_instances(arr, p)
            slide.sources[f"{name}.instances"] = str(p)
        elif name == "tissue":
            slide.tissue = _as_mask(arr, p)
            slide.sources["tissue"] = str(p)
        else:
            slide.regions[name] = _as_mask(arr, p)
            slide.sources[name] = str(p)
    if image is not None:
        if isinstance(image, (str, Path)):
            slide.image = read_image(image)
            slide.sources["image"] = str(image)
        else:
            slide.image = np.asarray(image)
            slide.sources["image"] = "image array"
        if slide.image.ndim == 3 and slide.image.shape[2] == 4:
            slide.image = slide.image[..., :3]
    return slide.validate(categories)


def read_label_map(label_image: str | Path | np.ndarray, category_map: str | Path | Mapping[Any, str],
                   *, mpp: float | None, slide_id: str | None = None,
                   categories: Iterable[str] | None = None) -> SlideMasks:
    """One label image (code per pixel) plus a JSON/dict ``code -> category name``.

    Code 0 is background unless the map names it. Every code present in the image must be
    in the map. ``tissue`` may be one of the names (else tissue = union of the regions).
    """
    src = str(label_image) if not isinstance(label_image, np.ndarray) else "label image array"
    arr = read_image(label_image) if not isinstance(label_image, np.ndarray) else label_image
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise MaskInputError(f"{src}: a label image must be a 2-D integer array; got {arr.dtype} {arr.shape}")
    if not isinstance(category_map, Mapping):
        try:
            category_map = json.loads(Path(category_map).read_text())
        except (OSError, ValueError) as exc:
            raise MaskInputError(f"{category_map}: cannot read the category map JSON ({exc})") from exc
    try:
        cmap = {int(k): str(v).strip().lower() for k, v in category_map.items()}
    except (TypeError, ValueError) as exc:
        raise MaskInputError(f"{src}: category map keys must be integer codes; got {list(category_map)}") from exc
    present = np.unique(arr)
    missing = [int(c) for c in present if int(c) not in cmap and int(c) != 0]
    if missing:
        raise MaskInputError(f"{src}: codes {missing} are not in the category map {cmap}")
    sid = slide_id or (Path(src).stem if not isinstance(label_image, np.ndarray) else "slide")
    slide = SlideMasks(slide_id=sid, mpp=check_mpp(mpp, where=src))
    for code, name in cmap.items():
        mask = arr == code
        if name == "tissue":
            slide.tissue = mask
        elif name not in ("background", "glass"):
            slide.regions[name] = mask
        slide.sources[name] = f"{src} (code {code})"
    return slide.validate(categories)


def _rasterise(polys: list[list[np.ndarray]], shape: tuple[int, int]) -> np.ndarray:
    from skimage.draw import polygon

    mask = np.zeros(shape, dtype=bool)
    for rings in polys:
        part = np.zeros(shape, dtype=bool)
        for i, ring in enumerate(rings):
            rr, cc = polygon(ring[:, 1], ring[:, 0], shape=shape)
            part[rr, cc] = i == 0  # exterior fills, holes clear
        mask |= part
    return mask


def _geometry_polys(geom: Mapping[str, Any], scale: float, where: str) -> list[list[np.ndarray]]:
    gtype = geom.get("type")
    coords = geom.get("coordinates")
    if gtype == "Polygon":
        polys = [coords]
    elif gtype == "MultiPolygon":
        polys = coords
    elif gtype == "GeometryCollection":
        return [p for g in geom.get("geometries", []) for p in _geometry_polys(g, scale, where)]
    else:
        raise MaskInputError(f"{where}: geometry type {gtype!r} is not a (Multi)Polygon")
    try:
        return [[np.asarray(r, dtype=np.float64)[:, :2] * scale for r in poly] for poly in polys]
    except (TypeError, ValueError, IndexError) as exc:
        raise MaskInputError(f"{where}: malformed polygon coordinates ({exc})") from exc


def read_qupath_geojson(path: str | Path, *, mpp: float | None, source_mpp: float | None = None,
                        shape: tuple[int, int] | None = None,
                        class_map: Mapping[str, str] | None = None,
                        slide_id: str | None = None,
                        categories: Iterable[str] | None = None) -> SlideMasks:
    """Rasterise a QuPath GeoJSON export (annotations -> regions, detections/cells -> objects).

    Parameters
    ----------
    path : path
        A GeoJSON ``FeatureCollection`` (or a list of features) as QuPath exports it, with
        ``properties.classification.name`` on every feature; coordinates are ``(x, y)``
        pixels at ``source_mpp``.
    mpp : float
        µm per pixel of the raster to produce.
    source_mpp : float, optional
        µm per pixel of the coordinates (QuPath: level 0); default ``mpp``.
    shape : (H, W), optional
        Raster size; default the bounding box of all coordinates from the origin.
    class_map : mapping, optional
        QuPath class name -> canonical category (e.g. ``{"Immune cells": "lymphocyte"}``);
        names not in it are lower-cased.

    Notes
    -----
    ``objectType`` ``annotation`` (or absent) becomes a region mask; ``detection``, ``cell`` and
    ``tile`` become instances (a cell's ``nucleusGeometry`` is used when present). Polygon holes
    are cleared. Rasterised with :func:`skimage.draw.polygon` (pixel centres inside).
    """
    path = Path(path)
    mpp_v = check_mpp(mpp, where=str(path))
    scale = (check_mpp(source_mpp, where=str(path)) if source_mpp is not None else mpp_v) / mpp_v
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MaskInputError(f"{path}: not readable GeoJSON ({exc})") from exc
    feats = data.get("features") if isinstance(data, dict) else data
    if isinstance(data, dict) and data.get("type") == "Feature":
        feats = [data]
    if not isinstance(feats, list) or not feats:
        raise MaskInputError(f"{path}: no GeoJSON features found")
    cmap = {str(k).strip().lower(): str(v).strip().lower() for k, v in (class_map or {}).items()}
    parsed = []
    for i, f in enumerate(feats):
        props = (f or {}).get("properties") or {}
        cls = props.get("classification")
        name = cls.get("name") if isinstance(cls, dict) else (cls if isinstance(cls, str) else None)
        if not name:
            raise MaskInputError(
                f"{path}: feature {i} (id {f.get('id')!r}) has no properties.classification.name; "
                "classify every object in QuPath before exporting"
            )
        name = cmap.get(name.strip().lower(), name.strip().lower())
        kind = str(props.get("objectType", "annotation")).lower()
        geom = f.get("nucleusGeometry") or props.get("nucleusGeometry") if kind == "cell" else None
        geom = geom or f.get("geometry")
        if not geom:
            raise MaskInputError(f"{path}: feature {i} has no geometry")
        parsed.append((name, kind, _geometry_polys(geom, scale, f"{path}: feature {i}")))
    if shape is None:
        allpts = np.concatenate([r for _, _, polys in parsed for rings in polys for r in rings])
        shape = (int(np.ceil(allpts[:, 1].max())) + 1, int(np.ceil(allpts[:, 0].max())) + 1)
    slide = SlideMasks(slide_id=slide_id or path.stem.split(".")[0], mpp=mpp_v)
    counters: dict[str, int] = {}
    for name, kind, polys in parsed:
        if kind in ("detection", "cell", "tile"):
            inst = slide.instances.setdefault(name, np.zeros(shape, dtype=np.int32))
            counters[name] = counters.get(name, 0) + 1
            inst[_rasterise(polys, shape)] = counters[name]
            slide.sources[f"{name}.instances"] = str(path)
        elif name == "tissue":
            slide.tissue = _rasterise(polys, shape) | (slide.tissue if slide.tissue is not None else False)
            slide.sources["tissue"] = str(path)
        else:
            prev = slide.regions.get(name)
            m = _rasterise(polys, shape)
            slide.regions[name] = m if prev is None else (prev | m)
            slide.sources[name] = str(path)
    return slide.validate(categories)


def read_hovernet_json(path: str | Path, *, mpp: float | None, shape: tuple[int, int],
                       type_map: Mapping[int, str] | None = None, slide_id: str | None = None,
                       categories: Iterable[str] | None = None) -> SlideMasks:
    """Rasterise a HoVer-Net style JSON (``{"nuc": {id: {"contour", "centroid", "type"}}}``).

    Parameters
    ----------
    path : path
        The JSON file; contours are ``[[x, y], ...]`` pixels at ``mpp``.
    mpp : float
        µm per pixel of the contours.
    shape : (H, W)
        Raster size (the image the nuclei were detected on).
    type_map : mapping int -> str, optional
        Type id -> canonical category; default :data:`HOVERNET_PANNUKE_TYPES`.
        Objects whose type is missing from the map raise :class:`MaskInputError`.

    Returns
    -------
    SlideMasks
        One instance image per type; each nucleus keeps its JSON id as label when integer.
    """
    path = Path(path)
    mpp_v = check_mpp(mpp, where=str(path))
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MaskInputError(f"{path}: not readable JSON ({exc})") from exc
    nuc = data.get("nuc") if isinstance(data, dict) else None
    if not isinstance(nuc, dict):
        raise MaskInputError(f"{path}: no 'nuc' mapping (HoVer-Net output: {{'nuc': {{id: {{...}}}}}})")
    tmap = {int(k): str(v).strip().lower() for k, v in (type_map or HOVERNET_PANNUKE_TYPES).items()}
    from skimage.draw import polygon

    slide = SlideMasks(slide_id=slide_id or path.stem, mpp=mpp_v)
    for n, (key, rec) in enumerate(nuc.items(), start=1):
        try:
            t = int(rec.get("type") if rec.get("type") is not None else 0)
            contour = np.asarray(rec["contour"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise MaskInputError(f"{path}: nucleus {key!r} lacks a valid contour/type ({exc})") from exc
        if t not in tmap:
            raise MaskInputError(f"{path}: nucleus {key!r} has type {t} not in the type map {tmap}")
        name = tmap[t]
        inst = slide.instances.setdefault(name, np.zeros(shape, dtype=np.int32))
        rr, cc = polygon(contour[:, 1], contour[:, 0], shape=shape)
        label = int(key) if str(key).isdigit() and int(key) > 0 else n
        inst[rr, cc] = label
        slide.sources[f"{name}.instances"] = str(path)
    if not slide.instances:
        raise MaskInputError(f"{path}: 'nuc' holds no nuclei")
    return slide.validate(categories)
