"""Features -> windows: fixed-size runs of a document's lines, padded and masked.

A window never crosses documents. Each window row keeps `doc_id` and `start` (the
line_idx of its first line) so predictions map back to their lines. Array columns are
flat and fixed-length (petastorm reads them as dense tensors); their shapes travel as
column metadata under the key "focalseq", which survives Parquet round trips:

    token_ids  int   window * max_tokens
    shape      float window * n_shape
    y          float window * n_labels   (one-hot, or multi-hot; zeros for padding)
    mask       float window              (1 real line, 0 padding)
"""
import json

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from focalseq.stages._params import HasLabels, HasMultiLabel, HasWindow

META_KEY = "focalseq"


class _WindowerParams(HasLabels, HasWindow, HasMultiLabel):
    labelSeparator = Param(Params._dummy(), "labelSeparator",
                           "separator of label sets in multi-label mode",
                           typeConverter=TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(labels=[], windowSize=32, stride=16, multiLabel=False,
                         labelSeparator="|")


class Windower(Transformer, _WindowerParams, DefaultParamsReadable, DefaultParamsWritable):
    """Groups each document's featurized lines into windows with a padding mask.

    >>> Windower(labels=["Nomenclature", "Description", "Misc-exposition"],
    ...          windowSize=32, stride=16)  # doctest: +SKIP
    """

    @keyword_only
    def __init__(self, *, labels=None, windowSize=32, stride=16, multiLabel=False,
                 labelSeparator="|"):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, labels=None, windowSize=32, stride=16, multiLabel=False,
                  labelSeparator="|"):
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})
        return self

    def _validate(self):
        from focalseq.text.windows import window_starts

        if not self.getLabels():
            raise ValueError("labels: Windower needs the ordered list of labels, got []")
        if len(set(self.getLabels())) != len(self.getLabels()):
            raise ValueError(f"labels: duplicates in {self.getLabels()}")
        window_starts(1, self.getWindowSize(), self.getStride())  # validates the sizes

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._validate()
        fields = {f.name: f for f in dataset.schema.fields}
        for col in ("doc_id", "line_idx", "label", "token_ids", "shape"):
            if col not in fields:
                raise ValueError(f"Windower: input column {col!r} is missing; it needs the "
                                 "output of YeddaParser + LineFeaturizer")
        first = dataset.select("token_ids", "shape").first()
        if first is None:
            raise ValueError("Windower: the input DataFrame has no lines")
        max_tokens, n_shape = len(first["token_ids"]), len(first["shape"])
        keys = ["doc_id"] + (["split"] if "split" in fields else [])
        spec = {"labels": self.getLabels(), "window": self.getWindowSize(),
                "stride": self.getStride(), "multi_label": self.getMultiLabel(),
                "sep": self.getOrDefault(self.labelSeparator), "keys": keys,
                "max_tokens": max_tokens, "n_shape": n_shape}
        out_fields = [fields[k] for k in keys] + [
            T.StructField("start", T.IntegerType(), False),
            T.StructField("n_valid", T.IntegerType(), False),
            T.StructField("token_ids", T.ArrayType(T.IntegerType(), False), False),
            T.StructField("shape", T.ArrayType(T.FloatType(), False), False),
            T.StructField("y", T.ArrayType(T.FloatType(), False), False),
            T.StructField("mask", T.ArrayType(T.FloatType(), False), False),
        ]
        cols = keys + ["line_idx", "label", "token_ids", "shape"]
        windows = dataset.select(*cols).groupBy(*keys).applyInPandas(
            lambda pdf: _windows_of_document(pdf, spec), schema=T.StructType(out_fields))
        meta = window_metadata(self.getLabels(), self.getWindowSize(), self.getStride(),
                               max_tokens, n_shape, self.getMultiLabel())
        for col in ("token_ids", "shape", "y", "mask"):
            windows = windows.withMetadata(col, {META_KEY: meta})
        return windows


def window_metadata(labels, window, stride, max_tokens, n_shape, multi_label) -> dict:
    return {"labels": list(labels), "window": int(window), "stride": int(stride),
            "max_tokens": int(max_tokens), "n_shape": int(n_shape),
            "multi_label": bool(multi_label)}


def read_window_metadata(df: DataFrame) -> dict:
    """Returns the window dimensions stored on the `mask` column by `Windower`."""
    meta = df.schema["mask"].metadata.get(META_KEY)
    if meta is None:
        raise ValueError("windows: the 'mask' column carries no focalseq metadata; "
                         "build windows with focalseq.stages.windows.Windower")
    return meta


def _windows_of_document(pdf, spec):
    import numpy as np
    import pandas as pd

    from focalseq.text.windows import window_starts

    pdf = pdf.sort_values("line_idx")
    n = len(pdf)
    W, K, F, labels = spec["window"], spec["max_tokens"], spec["n_shape"], spec["labels"]
    L = len(labels)
    index = {lab: i for i, lab in enumerate(labels)}
    tokens = np.zeros((n + W, K), dtype=np.int32)
    shapes = np.zeros((n + W, F), dtype=np.float32)
    y = np.zeros((n + W, L), dtype=np.float32)
    if n:
        tokens[:n] = np.stack(pdf["token_ids"].to_numpy())
        shapes[:n] = np.stack(pdf["shape"].to_numpy())
    for i, label in enumerate(pdf["label"]):
        if label is None:
            continue  # unlabeled text (prediction input): all-zero target
        names = label.split(spec["sep"]) if spec["multi_label"] else [label]
        for name in names:
            j = index.get(name)
            if j is None:
                raise ValueError(f"{pdf['doc_id'].iloc[0]}: label {name!r} is not one of "
                                 f"the model's labels {labels}; map it with the parser's "
                                 "keepLabels/labelMap")
            y[i, j] = 1.0
    rows = {k: [] for k in ("start", "n_valid", "token_ids", "shape", "y", "mask")}
    for start in window_starts(n, W, spec["stride"]) if n else []:
        valid = min(W, n - start)
        mask = np.zeros(W, dtype=np.float32)
        mask[:valid] = 1.0
        rows["start"].append(start)
        rows["n_valid"].append(valid)
        rows["token_ids"].append(tokens[start:start + W].ravel())
        rows["shape"].append(shapes[start:start + W].ravel())
        rows["y"].append(y[start:start + W].ravel())
        rows["mask"].append(mask)
    out = pd.DataFrame(rows)
    for k in reversed(spec["keys"]):
        out.insert(0, k, pdf[k].iloc[0] if n else None)
    return out
