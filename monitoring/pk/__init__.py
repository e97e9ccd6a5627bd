"""Model-informed dosing engine: population PK models, data sets, prediction, MAP estimation.

Pure numpy/scipy, no Django (like ``rules.py``): the Django side turns a patient's records
into a data set (``monitoring.pk_data``) and stores what this package returns.
"""

from .dataset import DatasetError, Subject, parse_dataset, read_dataset, subject_from_arrays
from .estimate import FitResult, fit, objective
from .modelfile import Model, ModelError, load_model, parse_model, shipped_models
from .predict import predict, predict_batch

__all__ = [
    "DatasetError",
    "FitResult",
    "Model",
    "ModelError",
    "Subject",
    "fit",
    "load_model",
    "objective",
    "parse_dataset",
    "parse_model",
    "predict",
    "predict_batch",
    "read_dataset",
    "shipped_models",
    "subject_from_arrays",
]
