"""The Spark ML stages of focalseq, in data-flow order (installed as `focalseq.stages`).

1. `parse`: `YeddaParser` - annotated or plain files -> one row per line (+ problems).
2. `features`: `LineFeaturizer` - lines -> hashed token ids and shape features.
3. `split`: `DocumentSplitter` - whole documents -> train / validation / test.
4. `windows`: `Windower` - each document's lines -> fixed-size overlapping windows.
5. `bilstm`: `BiLSTMEstimator` -> `BiLSTMModel` - Horovod training, per-line prediction
   (params in `bilstm_params`, the Arrow prediction engine in `prediction`, the
   decision rule in `decision`, saving in `persistence`; the training job itself in
   `focalseq.training`).
6. `ensemble`: `EnsembleEstimator` -> `EnsembleModel` - several networks averaged.
7. `thresholds`: `ThresholdTuner` -> `ThresholdModel` - offsets/thresholds tuned on
   the validation split.
8. `evaluation`: `PerLabelEvaluator` - per-label precision, recall, F1 (and MLflow).

Shared params live in `_params`; `parquet_input` lets models read Parquet windows
directly; `_task_setup` makes PySpark's per-task setup cheap in the Arrow passes.
"""
