"""Windows -> per-line predictions averaged over K member models.

`EnsembleEstimator` trains K BiLSTM members that share every BiLSTMEstimator param
except the few each member overrides (`memberParams`, e.g. other seeds or other
losses); training runs one Horovod job per member, one after the other.
`EnsembleModel` runs each member over the same windows and averages their per-line
probabilities (optionally weighted), then decides with the same rule as BiLSTMModel,
so `ThresholdTuner` tunes an ensemble as it tunes a single model. Members are saved
under the ensemble's own path (`members/member_NN`), each by its own writer.
"""
import json
import logging
import posixpath
from functools import reduce

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasPredictionCol, HasProbabilityCol
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReadable, MLWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from focalseq.stages._params import (HasDecisionRule, HasFocalLabels, HasLabels,
                                     HasMultiLabel, HasWindowInput)
from focalseq.stages.bilstm import BiLSTMEstimator, BiLSTMModel
from focalseq.stages.bilstm_params import BiLSTMParams
from focalseq.stages.decision import decision_expr
from focalseq.stages.persistence import FilesReader, FilesWriter, load_stage

logger = logging.getLogger(__name__)


class _EnsembleEstimatorParams(BiLSTMParams):
    memberParams = Param(Params._dummy(), "memberParams",
                         "JSON list with one object per member: the BiLSTMEstimator params "
                         "that member overrides, e.g. [{\"seed\": 0}, {\"seed\": 1, \"loss\": "
                         "\"focal\"}]", typeConverter=TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(memberParams=json.dumps([{"seed": 0}, {"seed": 1}]))

    def getMemberParams(self) -> list:
        return json.loads(self.getOrDefault(self.memberParams))


class EnsembleEstimator(Estimator, _EnsembleEstimatorParams, MLReadable, MLWritable):
    """Trains K BiLSTM members and returns their EnsembleModel.

    Takes every BiLSTMEstimator param (shared by all members) plus `memberParams`.

    >>> est = EnsembleEstimator(epochs=3, focalLabels=["Nomenclature"],
    ...                         memberParams=[{"seed": 0}, {"seed": 1, "loss": "focal"}])
    >>> ensemble = est.fit(windows)  # doctest: +SKIP
    >>> ensemble.save(path); EnsembleModel.load(path).members  # doctest: +SKIP
    """

    @keyword_only
    def __init__(self, **kwargs):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs):
        kwargs = dict(self._input_kwargs)
        for key in ("lossConfig", "labelCounts", "memberParams"):
            if key in kwargs and not isinstance(kwargs[key], str):
                kwargs[key] = json.dumps(kwargs[key], sort_keys=True)
        unknown = [k for k in kwargs if not self.hasParam(k)]
        if unknown:
            raise ValueError(f"EnsembleEstimator: unknown parameter(s) {unknown}; valid: "
                             f"{sorted(p.name for p in self.params)}")
        self._set(**{k: v for k, v in kwargs.items() if v is not None})
        return self

    def member_estimators(self) -> list:
        """One BiLSTMEstimator per member: the shared params plus the member's overrides."""
        members = self.getMemberParams()
        if not isinstance(members, list) or not members or \
                not all(isinstance(m, dict) for m in members):
            raise ValueError(f"memberParams: expected a non-empty JSON list of objects, got "
                             f"{self.getOrDefault(self.memberParams)!r}")
        shared = {p.name: self.getOrDefault(p) for p in self.params
                  if p.name != "memberParams" and self.isDefined(p)}
        run_id = shared.pop("runId", "")
        estimators = []
        for i, overrides in enumerate(members):
            est = BiLSTMEstimator()
            est._set(**shared)
            if run_id:
                est._set(runId=f"{run_id}-m{i:02d}")
            unknown = sorted(k for k in overrides if not est.hasParam(k) or k == "runId")
            if unknown:
                raise ValueError(f"memberParams[{i}]: unknown BiLSTMEstimator param(s) "
                                 f"{unknown}; valid: {sorted(shared)}")
            try:
                est._set(**{k: v for k, v in overrides.items() if v is not None})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"memberParams[{i}]: {exc}") from exc
            estimators.append(est)
        return estimators

    def _fit(self, dataset: DataFrame) -> "EnsembleModel":
        from focalseq.stages.windows import read_window_metadata

        dims = read_window_metadata(dataset)
        estimators = self.member_estimators()
        for i, est in enumerate(estimators):  # every member's config, before any training
            try:
                est.validate(dims["labels"], dims["multi_label"])
            except ValueError as exc:
                raise ValueError(f"memberParams[{i}]: {exc}") from exc
        members = []
        for i, est in enumerate(estimators):
            logger.info("ensemble member %d/%d: %s", i + 1, len(estimators),
                        self.getMemberParams()[i])
            members.append(est.fit(dataset))
        return EnsembleModel(members=members, focalLabels=self.getFocalLabels())

    def write(self):
        return DefaultParamsWriter(self)

    @classmethod
    def read(cls):
        return DefaultParamsReader(cls)

    def setMemberParams(self, value):
        return self._set(memberParams=value)


class _EnsembleModelParams(HasLabels, HasFocalLabels, HasMultiLabel, HasDecisionRule,
                           HasWindowInput, HasPredictionCol, HasProbabilityCol):
    weights = Param(Params._dummy(), "weights",
                    "one weight per member for the probability average (empty: equal)",
                    typeConverter=TypeConverters.toListFloat)

    def __init__(self, *args):
        super().__init__(*args)
        # As BiLSTMModel's: a fitted model's description, no configuration keys.
        self._setDefault(labels=[], focalLabels=[], multiLabel=False, weights=[], logOffsets=[],
                         thresholds=[], predictionCol="prediction", probabilityCol="probability",
                         groupedInput=False, directRead=True)

    def getWeights(self):
        return self.getOrDefault(self.weights)


class EnsembleModel(Model, _EnsembleModelParams, MLReadable, MLWritable):
    """Averages the per-line probabilities of member models over the same windows.

    Labels and multiLabel come from the members, which must agree on them.

    >>> ensemble = EnsembleModel(members=[model_a, model_b], weights=[2.0, 1.0])  # doctest: +SKIP
    >>> ensemble.transform(windows)  # doctest: +SKIP
    """

    @keyword_only
    def __init__(self, *, members=None, labels=None, focalLabels=None, multiLabel=None,
                 weights=None, logOffsets=None, thresholds=None, predictionCol=None,
                 probabilityCol=None, groupedInput=None, directRead=None):
        super().__init__()
        kwargs = dict(self._input_kwargs)
        self.members = list(kwargs.pop("members", None) or [])
        if self.members:
            first = self.members[0]
            kwargs.setdefault("labels", first.getLabels())
            if kwargs.get("multiLabel") is None:
                kwargs["multiLabel"] = first.getOrDefault("multiLabel")
        self._set(**{k: v for k, v in kwargs.items() if v is not None})
        self._check_members()

    def setLabels(self, value):
        return self._set(labels=value)

    def setFocalLabels(self, value):
        return self._set(focalLabels=value)

    def setMultiLabel(self, value):
        return self._set(multiLabel=value)

    def setWeights(self, value):
        return self._set(weights=value)

    def setPredictionCol(self, value):
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value):
        return self._set(probabilityCol=value)

    def setLogOffsets(self, value):
        return self._set(logOffsets=value)

    def setThresholds(self, value):
        return self._set(thresholds=value)

    def setGroupedInput(self, value):
        return self._set(groupedInput=value)

    def setDirectRead(self, value):
        return self._set(directRead=value)

    def _check_members(self):
        labels = self.getLabels()
        for i, member in enumerate(self.members):
            if list(member.getLabels()) != list(labels):
                raise ValueError(f"members[{i}]: labels {member.getLabels()} differ from the "
                                 f"ensemble's {labels}")
            if member.getOrDefault("multiLabel") != self.getOrDefault(self.multiLabel):
                raise ValueError(f"members[{i}]: multiLabel "
                                 f"{member.getOrDefault('multiLabel')} differs from the "
                                 f"ensemble's {self.getOrDefault(self.multiLabel)}")
        weights = self.getOrDefault(self.weights)
        if weights and (len(weights) != len(self.members) or min(weights) < 0 or
                        sum(weights) <= 0):
            raise ValueError(f"weights: expected {len(self.members)} non-negative numbers with a "
                             f"positive sum (one per member), got {weights}")

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from focalseq.stages.prediction import predict_lines

        if not self.members:
            raise ValueError("EnsembleModel has no members: build it from fitted models or "
                             "load a saved ensemble")
        self._check_members()
        labels = self.getLabels()
        n = len(labels)
        weights = self.getWeights() or [1.0] * len(self.members)
        prob_col = self.getProbabilityCol()
        if all(isinstance(m, BiLSTMModel) for m in self.members):
            # One pass: every member's network on each window batch, outputs averaged.
            out = predict_lines(dataset, [m.network_bytes for m in self.members], labels,
                                self.getMultiLabel(), self.members[0].getBatchSize(),
                                self.getGroupedInput(), weights, prob_col,
                                self.getDirectRead())
        else:
            keys = ["doc_id"] + (["split"] if "split" in dataset.columns else []) + ["line_idx"]
            parts = []
            for member, w in zip(self.members, weights):
                prob = F.col(member.getProbabilityCol())
                parts.append(member.transform(dataset).select(
                    *keys, "label", prob.alias("_prob"), F.lit(float(w)).alias("_w")))
            total = float(sum(weights))
            out = reduce(DataFrame.unionByName, parts).groupBy(*keys).agg(
                F.first("label", ignorenulls=True).alias("label"),
                F.array(*[F.sum(F.col("_prob")[j] * F.col("_w")) / F.lit(total)
                          for j in range(n)]).alias(prob_col))
        return out.withColumn(self.getPredictionCol(), decision_expr(
            F.col(prob_col), labels, self.getMultiLabel(), self.getLogOffsets(),
            self.getThresholds()))

    def copy(self, extra=None):
        that = super().copy(extra)
        that.members = [m.copy() for m in self.members]
        return that

    # Persistence: each member saved by its own writer under members/member_NN.

    def _extra_metadata(self) -> dict:
        return {"numMembers": len(self.members)}

    def _files_to_save(self) -> dict:
        return {}

    def _save_members(self, path):
        for i, member in enumerate(self.members):
            member.write().save(_member_path(path, i))

    def _restore_files(self, path, metadata, sc):
        self.members = [load_stage(_member_path(path, i), sc)
                        for i in range(int(metadata["numMembers"]))]
        self._check_members()

    def write(self):
        return _EnsembleModelWriter(self)

    @classmethod
    def read(cls):
        return FilesReader(cls)


def _member_path(path, i):
    return posixpath.join(path, "members", f"member_{i:02d}")


class _EnsembleModelWriter(FilesWriter):
    def saveImpl(self, path):
        super().saveImpl(path)
        self.instance._save_members(path)
