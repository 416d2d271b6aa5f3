"""After training: the decision rule tuned on the validation split, saved inside the model.

`train.tune` chooses how (focalseq/config.py):

- ``offsets``: per-label log-offsets searched by `ThresholdTuner` (single-label);
- ``thresholds``: per-label probability thresholds searched by it (multi-label);
- ``logit_adjust``: the post-hoc logit adjustment, offsets ``-tau * log(prior)`` from the
  train split's label counts (`logit_adjust_offsets`), checked on the validation split;
- ``none``: the model decides by its argmax (or 0.5).

The values are set on the model (`ThresholdModel.apply_to`), so the saved model, the
inference pipeline around it and every `predict` decide with them. Values that lower the
focal macro F1 of the validation split are refused and the untuned rule is kept (the
report says so: ``kept: untuned``); a rule the data does not support is not shipped.
"""
import json
import logging

from focalseq.config import Config
from focalseq.pipelines.prepare import read_split
from focalseq.stages.thresholds import ThresholdTuner, format_tuning, logit_adjust_offsets

logger = logging.getLogger(__name__)

SPLIT = "validation"


def tune_model(spark, cfg: Config, manifest: dict, model):
    """(model with the tuned values set, tuning report) or (model, None) for ``none``.

    The report is the tuner's `tuningReport` plus ``method``; with an active MLflow run
    its before/after per-label F1 are logged there too.

    Raises:
        ValueError: tuning asked for but the prepared data has no validation split.
    """
    method = cfg.train.tune
    if method == "none":
        return model, None
    if SPLIT not in manifest["splits"]:
        raise ValueError(f"train.tune: {method!r} fits on the {SPLIT} split, but the prepared "
                         f"data has only {sorted(manifest['splits'])}; give the {SPLIT} split "
                         "documents (data.split) or set train.tune: none")
    import mlflow

    predictions = model.transform(read_split(spark, manifest, SPLIT))
    tuner = ThresholdTuner(labels=list(cfg.labels), focalLabels=list(cfg.focal_labels),
                           multiLabel=cfg.multi_label, fitSplit=SPLIT,
                           logToMlflow=mlflow.active_run() is not None)
    if method == "logit_adjust":
        offsets = logit_adjust_offsets(manifest["label_counts"]["train"], cfg.labels,
                                       cfg.train.tune_tau)
        rule = tuner.fit_rule(predictions, logOffsets=offsets)
    else:
        rule = tuner.fit(predictions)
    report = dict(json.loads(rule.getTuningReport()), method=method)
    logger.info("%s", format_tuning(report))
    return rule.apply_to(model), report
