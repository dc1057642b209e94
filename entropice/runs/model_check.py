"""A stored model's files checked before use, so that a damaged or forged model (a run
directory from a stranger) gives one error naming the file and the field, and cannot
make the loader allocate more than its stated shapes imply."""

from __future__ import annotations

import itertools
import json
import math
import zipfile
import zlib

import numpy as np

from ..cube import SCHEMA_VERSION
from .model import FOLDS, MODEL_ARRAYS, MODEL_FORMAT


def checked_files(path, share=None):
    """``model.json`` and ``arrays.npz`` of the model at ``path``, checked: (meta, eSPA+
    parameters, arrays); a ``ValueError`` naming the file and the field otherwise. Its
    arrays may hold at most ``1 / share`` of :data:`MAX_ELEMENTS` (``share``: how many
    models are read together; by default the run's own and the folds' it lists)."""
    meta = _read_meta(path)
    share = share or len(fold_numbers(path, meta)) + 1
    params = _params(path / "model.json", meta["params"])
    arrays = _read_arrays(path / "arrays.npz", meta, params, MAX_ELEMENTS // share)
    _check_values(path / "arrays.npz", arrays, meta["n_members"])
    _check_labels(path / "model.json", meta, len(arrays["classes"]))
    return meta, params, arrays


MAX_FOLDS = 30
"""Most outer folds' models a run may list: far beyond any cross-validation."""


def fold_numbers(path, meta) -> list[int]:
    """The outer folds whose models the run at ``path`` lists (``fold_models`` of its
    ``model.json``: ``meta``), checked: distinct integers below :data:`MAX_FOLDS`."""
    listed = meta.get("fold_models", [])
    if not (isinstance(listed, list) and len(listed) <= MAX_FOLDS and all(
            isinstance(k, int) and not isinstance(k, bool) and 0 <= k < MAX_FOLDS
            for k in listed) and len(set(listed)) == len(listed)):
        raise _invalid(path / "model.json", "'fold_models'", f"is {_show(listed)}; expected "
                       f"a list of distinct fold numbers (integers 0-{MAX_FOLDS - 1})")
    return listed


def checked_folds(path, meta) -> list:
    """The outer folds' models of the run at ``path`` (its ``model.json``: ``meta``),
    each :func:`checked_files` (the run's and its folds' arrays sharing
    :data:`MAX_ELEMENTS`), reading the run's features and some of its classes: a list
    of (meta, parameters, arrays), empty for a run stored without them."""
    listed = fold_numbers(path, meta)
    file = path / "model.json"
    found = []
    for k in listed:
        fold = path / FOLDS / str(k)
        if not (fold / "model.json").is_file():
            raise ValueError(f"the model at {path} lists outer fold {k}'s model, but "
                             f"{fold / 'model.json'} is missing: train the run again "
                             "(`entropice train --force`).")
        checked = checked_files(fold, share=len(listed) + 1)
        if checked[0]["feature_names"] != meta["feature_names"]:
            raise _invalid(fold / "model.json", "'feature_names'", "differ from the "
                           f"run's; expected the features of {file}")
        labels = checked[0].get("labels", [])
        if not set(labels) <= set(meta.get("labels", labels)):
            raise _invalid(fold / "model.json", "'labels'", f"are {_show(labels)}; "
                           f"expected some of the run's labels in {file}")
        found.append(checked)
    return found


MAX_ELEMENTS = 10**8
"""Most numbers a model's arrays may hold together: far beyond any trained model (boxes
times features times members), and a bound on what a model file can make the loader
allocate."""

MAX_THREADS = 1024
"""Largest ``n_jobs`` a stored model may ask for: a model file cannot start a million
threads at prediction."""

TOLERANCE = 1e-6
"""How far from 1 a model's feature weights, and each box's label probabilities, may
sum (rounding)."""

_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}
_READ_ERRORS = (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error)
_PIPELINE_ARRAYS = ("impute_statistics", "scale_mean", "scale_scale", "classes",
                    "weighted_features", "temperatures")
"""The arrays of a model besides its members' (:data:`MODEL_ARRAYS`)."""
_KINDS = {"classes": "biufSU", "weighted_features": "b"}
"""The dtype kinds an array may have, if not numbers ("iuf")."""


def _invalid(file, field, problem) -> ValueError:
    """The one error a damaged or forged model file gives, on one line: the file, the
    field, what is wrong and what was expected."""
    problem = " ".join(str(problem).splitlines())
    return ValueError(f"invalid model file {file}: {field} {problem}.")


def _show(value) -> str:
    """A JSON value, shortened for an error message."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value) -> bool:
    """Whether a JSON value is a finite number (neither a bool nor beyond a float)."""
    try:
        return isinstance(value, int | float) and not isinstance(value, bool) and \
            math.isfinite(value)
    except OverflowError:
        return False


_FIELDS = {
    "feature_names": (lambda v: isinstance(v, list) and len(v) > 0
                      and all(isinstance(n, str) for n in v),
                      "a non-empty list of feature names (strings)"),
    "params": (lambda v: isinstance(v, dict), "an object of eSPA+ parameters"),
    "temperature": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "n_members": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                  "an integer >= 1"),
}
"""The fields of ``model.json`` a model is rebuilt from: (check, what is expected)."""

_OPTIONAL_FIELDS = {
    "labels": (lambda v: isinstance(v, list) and all(_finite(x) or isinstance(x, str)
                                                     for x in v),
               "a list of the class labels"),
    "classes": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                "a list of class names (strings)"),
    "novelty_reference": (lambda v: isinstance(v, list) and all(map(_finite, v)),
                          "a list of finite distances"),
    "class_density": (lambda v: isinstance(v, list) and all(_finite(x) and 0 <= x <= 1
                                                            for x in v),
                      "a list of RTS densities from 0 to 1 (km2 of RTS per km2 of "
                      "land), one per label"),
}
"""The fields of ``model.json`` predictions read when a run wrote them."""


def _read_meta(path) -> dict:
    """``model.json`` of the model at ``path``, checked: a JSON object of this model
    format whose fields have the types the model is rebuilt from."""
    file = path / "model.json"
    if not file.exists():
        raise ValueError(f"no model at {path} (model.json is missing).")
    try:
        meta = json.loads(file.read_bytes())
    except (OSError, ValueError, RecursionError) as err:
        raise _invalid(file, "the file", f"is not valid JSON ({err}); expected the JSON "
                                         "object save_model writes") from None
    if not isinstance(meta, dict):
        raise _invalid(file, "the document", f"is {_show(meta)}; expected a JSON object")
    if meta.get("schema_version") != SCHEMA_VERSION or meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"the model at {path} was written for cube schema "
                         f"{meta.get('schema_version')} (model format {meta.get('format')}); "
                         f"this entropice reads schema {SCHEMA_VERSION} and model format "
                         f"{MODEL_FORMAT}: train it again (`entropice train --force`).")
    optional = {k: v for k, v in _OPTIONAL_FIELDS.items() if k in meta}
    for key, (ok, expected) in {**_FIELDS, **optional}.items():
        if key not in meta:
            raise _invalid(file, repr(key), f"is missing; expected {expected}")
        if not ok(meta[key]):
            raise _invalid(file, repr(key), f"is {_show(meta[key])}; expected {expected}")
    return meta


def _params(file, raw) -> dict:
    """Every eSPA+ parameter of the model: those of ``model.json`` (``"inf"`` and
    ``"nan"`` as floats), the defaults for the others, checked as eSPA+ checks them
    before a fit, with at most :data:`MAX_THREADS`."""
    from ..espa import ESPAClassifier

    params = {k: (float(v) if v in ("inf", "nan") else v) for k, v in raw.items()}
    unknown = sorted(set(params) - set(ESPAClassifier().get_params()))
    if unknown:
        raise _invalid(file, "'params'", f"holds {unknown[0]!r}; expected eSPA+ parameters")
    est = ESPAClassifier(**params)
    try:
        est._validate_params()
    except ValueError as err:  # sklearn's InvalidParameterError
        raise _invalid(file, "'params'", f"are not eSPA+'s: {err}") from None
    params = est.get_params()
    n_jobs = params["n_jobs"]
    if n_jobs is not None and abs(n_jobs) > MAX_THREADS:
        raise _invalid(file, "'params' n_jobs", f"is {n_jobs}; expected at most "
                                                f"{MAX_THREADS} threads")
    return params


def _prefixes(n_members):
    """The prefixes of the shown member's arrays ("") and of every member's."""
    return itertools.chain([""], (f"member{i}_" for i in range(n_members)))


def _array_names(n_members):
    """The name of every array a model of ``n_members`` members stores, one at a time."""
    yield from _PIPELINE_ARRAYS
    for prefix in _prefixes(n_members):
        for a in MODEL_ARRAYS:
            yield prefix + a


def _read_arrays(file, meta, params, max_elements=None) -> dict:
    """The arrays of ``arrays.npz``: each entry's ``.npy`` header read and checked
    against the archive and ``model.json`` (and at most ``max_elements`` numbers in
    all) before any array is loaded."""
    if not file.is_file():
        raise _invalid(file, "the file", "is missing; expected the arrays save_model writes")
    try:
        with zipfile.ZipFile(file) as archive:
            entries = _entries(file, archive, meta["n_members"])
            size = file.stat().st_size
            headers = {name: _header(file, archive, info, size)
                       for name, info in entries.items()}
            _check_headers(file, headers, meta, params["n_boxes"],
                           MAX_ELEMENTS if max_elements is None else max_elements)
            return {name: _array(file, archive, name, info) for name, info in entries.items()}
    except (zipfile.BadZipFile, OSError) as err:
        raise _invalid(file, "the file", f"is not a readable zip archive ({err}); expected "
                                         "the .npz archive save_model writes") from None


def _entries(file, archive, n_members) -> dict:
    """The archive's entries by array name: every array a model of ``n_members``
    members stores, each once, and nothing else."""
    found = {}
    for info in archive.infolist():
        if info.filename in found:
            raise _invalid(file, repr(info.filename), "is stored twice; expected each "
                                                      "array once")
        found[info.filename] = info
    entries = {}
    for name in _array_names(n_members):  # stops at the first missing one
        if name + ".npy" not in found:
            raise _invalid(file, repr(name), f"is missing; expected every array of a model "
                                             f"of {n_members} member(s)")
        entries[name] = found.pop(name + ".npy")
    if found:
        raise _invalid(file, repr(next(iter(found))), "is not an array of the model; "
                                                      "expected only those save_model writes")
    return entries


def _header(file, archive, info, archive_size):
    """Shape and dtype of one entry from its ``.npy`` header, without its data; a
    header stating more data than the entry holds, objects or a shape that is no shape
    are refused, so that no forged header makes numpy allocate."""
    name = info.filename.removesuffix(".npy")
    if info.compress_size > archive_size:
        raise _invalid(file, repr(name), f"claims {info.compress_size} bytes; the archive "
                                         f"holds {archive_size}")
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in _NPY_HEADERS:
                raise ValueError(f".npy format version {version} is not 1.0 or 2.0")
            shape, _, dtype = _NPY_HEADERS[version](f)
            start = f.tell()
    except _READ_ERRORS as err:
        raise _invalid(file, repr(name), f"has no readable .npy header ({err})") from None
    if dtype.hasobject or dtype.kind not in "biufSU":
        raise _invalid(file, repr(name), f"holds {dtype} values; expected numbers "
                                         "(objects are never loaded)")
    if any(n < 0 for n in shape):
        raise _invalid(file, repr(name), f"states shape {shape}; expected sizes >= 0")
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size < start + nbytes:
        raise _invalid(file, repr(name), f"states shape {shape} of {dtype} ({nbytes} bytes) "
                                         f"but holds {max(info.file_size - start, 0)} bytes")
    return shape, dtype


def _check_headers(file, headers, meta, max_boxes, max_elements):
    """The arrays' shapes and dtypes, as their headers state them, against the features
    and members of ``model.json``, the classes and boxes they state, the ``n_boxes``
    the model was fitted with, and ``max_elements``."""
    d, m = len(meta["feature_names"]), meta["n_members"]

    def expect(name, shape, why):
        if headers[name][0] != shape:
            raise _invalid(file, repr(name), f"has shape {headers[name][0]}; expected "
                                             f"{shape} ({why})")

    for name, (_, dtype) in headers.items():
        kinds = _KINDS.get(name, "iuf")
        if dtype.kind not in kinds:
            raise _invalid(file, repr(name), f"holds {dtype} values; expected dtype kind "
                                             f"{' or '.join(kinds)}")
    for name in ("impute_statistics", "scale_mean", "scale_scale", "weighted_features"):
        expect(name, (d,), "one value per feature of model.json")
    expect("temperatures", (m,), "one per member: n_members of model.json")
    classes = headers["classes"][0]
    if len(classes) != 1 or classes[0] < 2:
        raise _invalid(file, "'classes'", f"has shape {classes}; expected (n_classes,) "
                                          "with at least 2 classes")
    for prefix in _prefixes(m):
        boxes = headers[prefix + "boxes"][0]
        if len(boxes) != 2 or not 1 <= boxes[0] <= max_boxes:
            raise _invalid(file, repr(prefix + "boxes"), f"has shape {boxes}; expected "
                           f"(n_boxes, {d}) with 1 to {max_boxes} boxes (params n_boxes)")
        k = boxes[0]
        expect(prefix + "boxes", (k, d), "one column per feature of model.json")
        expect(prefix + "feature_weights", (d,), "one weight per feature of model.json")
        expect(prefix + "box_label_proba", (k, classes[0]),
               f"a row per box of {prefix}boxes, a column per class")
        expect(prefix + "box_counts", (k,), f"one per box of {prefix}boxes")
    total = sum(math.prod(shape) for shape, _ in headers.values())
    if total > max_elements:
        raise _invalid(file, "the arrays", f"hold {total} numbers; expected at most "
                                           f"{max_elements}")


def _array(file, archive, name, info) -> np.ndarray:
    """One entry's array (its header checked), never unpickled."""
    try:
        with archive.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except _READ_ERRORS as err:
        raise _invalid(file, repr(name), f"cannot be read ({err})") from None


def _check_values(file, arrays, n_members):
    """What a fitted eSPA+ pipeline guarantees: finite numbers, positive scales, a
    weighted feature, temperatures >= 0, distinct classes, and for every member
    feature weights on the simplex (0 on indicator columns), box label probabilities
    whose rows are on the simplex and boxes that hold samples."""

    def require(name, ok, problem, expected):
        if not np.all(ok):
            raise _invalid(file, repr(name), f"{problem}; expected {expected}")

    for name, a in arrays.items():
        if a.dtype.kind == "f":
            require(name, np.isfinite(a), "holds NaN or infinity", "finite numbers")
    require("scale_scale", arrays["scale_scale"] > 0, "holds a scale <= 0",
            "positive standard deviations")
    require("weighted_features", arrays["weighted_features"].any(), "marks no feature",
            "at least one weighted feature")
    require("temperatures", arrays["temperatures"] >= 0, "holds a negative temperature",
            "temperatures >= 0 (0: the hard read-out)")
    require("classes", len(np.unique(arrays["classes"])) == len(arrays["classes"]),
            "repeats a class", "distinct classes")
    indicators = ~arrays["weighted_features"]
    for prefix in _prefixes(n_members):
        w, p = arrays[prefix + "feature_weights"], arrays[prefix + "box_label_proba"]
        name = prefix + "feature_weights"
        require(name, w >= 0, "holds a negative weight", "weights >= 0")
        require(name, w[indicators] == 0, "weighs a feature weighted_features leaves out",
                "weight 0 on those")
        require(name, abs(w.sum() - 1) <= TOLERANCE, f"sums to {w.sum():.9g}",
                "weights summing to 1")
        name = prefix + "box_label_proba"
        require(name, (p >= 0) & (p <= 1), "holds a value outside [0, 1]", "probabilities")
        require(name, abs(p.sum(axis=1) - 1) <= TOLERANCE,
                "has a box whose probabilities do not sum to 1",
                "each box's row summing to 1")
        require(prefix + "box_counts", arrays[prefix + "box_counts"] > 0,
                "holds a box without samples", "counts > 0 (empty boxes are dropped)")


def _check_labels(file, meta, n_classes):
    """The run's ``labels`` in ``model.json``, if written, name every class; its
    ``class_density``, if written, has one density per class."""
    labels = meta.get("labels")
    if labels is not None and len(labels) != n_classes:
        raise _invalid(file, "'labels'", f"holds {len(labels)} labels; expected one per "
                                         f"class of arrays.npz ({n_classes})")
    density = meta.get("class_density")
    if density is not None and len(density) != n_classes:
        raise _invalid(file, "'class_density'", f"holds {len(density)} densities; "
                       f"expected one per label ({n_classes}, the classes of arrays.npz)")
