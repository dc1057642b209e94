"""Model runs: the :class:`RunStore` that owns them (ids, layout, the current run of each
group, summaries, model files) and the cross-validation that makes them."""

from .cv import permutation_importance, predict_group, train_group
from .estimators import make_model
from .folds import spatial_folds, stratified_sample
from .metrics import evaluate, ranking_auc, reliability_curve, triage_curve
from .model import (
    MODEL_FORMAT,
    StoredModel,
    load_model,
    novelty_reference,
    predict_frame,
    save_model,
)
from .settings import DEFAULTS
from .store import RunStore, markdown_table

__all__ = ["DEFAULTS", "MODEL_FORMAT", "RunStore", "StoredModel", "evaluate", "load_model",
           "make_model", "markdown_table", "novelty_reference", "permutation_importance",
           "predict_frame", "predict_group", "ranking_auc", "reliability_curve", "save_model",
           "spatial_folds", "stratified_sample", "train_group", "triage_curve"]
