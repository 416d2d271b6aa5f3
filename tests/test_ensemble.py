"""Ensembles: K members trained with real Horovod jobs, probabilities averaged per line."""
import json
import os

import numpy as np
import pytest

from focalseq.stages.bilstm import BiLSTMEstimator, BiLSTMModel
from focalseq.stages.ensemble import EnsembleEstimator, EnsembleModel

LABELS = ["Nomenclature", "Description", "Misc-exposition"]


def _by_line(rows, col="probability"):
    return {(r["doc_id"], r["split"], r["line_idx"]): r[col] for r in rows}


def _collect(df):
    return df.select("doc_id", "split", "line_idx", "label", "probability", "prediction").collect()


# Fast: params, validation, persistence of the estimator ------------------------------------


def test_member_estimators_share_params_and_apply_overrides():
    est = EnsembleEstimator(epochs=3, hiddenSize=8, focalLabels=["Nomenclature"], runId="r",
                            memberParams=[{"seed": 4}, {"seed": 5, "loss": "focal"}])
    members = est.member_estimators()
    assert [m.getOrDefault("seed") for m in members] == [4, 5]
    assert [m.getOrDefault("loss") for m in members] == ["cross_entropy", "focal"]
    assert [m.getOrDefault("runId") for m in members] == ["r-m00", "r-m01"]
    for m in members:
        assert isinstance(m, BiLSTMEstimator)
        assert (m.getOrDefault("epochs"), m.getOrDefault("hiddenSize")) == (3, 8)
        assert m.getFocalLabels() == ["Nomenclature"]
    assert json.loads(EnsembleEstimator().getOrDefault("memberParams")) == [{"seed": 0},
                                                                          {"seed": 1}]


def test_bad_member_params_name_the_member():
    with pytest.raises(ValueError, match=r"memberParams\[1\].*'sede'"):
        EnsembleEstimator(memberParams=[{"seed": 0}, {"sede": 1}]).member_estimators()
    with pytest.raises(ValueError, match="non-empty JSON list"):
        EnsembleEstimator(memberParams=[]).member_estimators()
    with pytest.raises(ValueError, match="unknown parameter"):
        EnsembleEstimator(members=3)


def test_estimator_round_trip(spark, tmp_path):
    est = EnsembleEstimator(epochs=4, memberParams=[{"seed": 7}, {"loss": "focal"}])
    est.save(str(tmp_path / "est"))
    loaded = EnsembleEstimator.load(str(tmp_path / "est"))
    assert loaded.uid == est.uid
    assert loaded.getMemberParams() == [{"seed": 7}, {"loss": "focal"}]
    assert loaded.getOrDefault("epochs") == 4


def test_members_must_agree_on_labels():
    a = BiLSTMModel(labels=LABELS)
    b = BiLSTMModel(labels=LABELS[::-1])
    with pytest.raises(ValueError, match=r"members\[1\]: labels"):
        EnsembleModel(members=[a, b])
    with pytest.raises(ValueError, match=r"weights: expected 2"):
        EnsembleModel(members=[a, a], weights=[1.0])
    assert EnsembleModel(members=[a, a]).getLabels() == LABELS


# Slow: real members ------------------------------------------------------------------------


@pytest.fixture
def member_probs(trained):
    """Each member's per-line probabilities, from the members' own transforms."""
    key = "ensemble_member_probs"
    if key not in trained:
        first, second = trained["ensemble"].members
        assert first is trained["model"]  # whose predictions the fixture caches
        trained[key] = [_by_line(_collect(trained["predictions"])),
                        _by_line(_collect(second.transform(trained["windows"])))]
    return trained[key]


@pytest.mark.slow
@pytest.mark.horovod
def test_ensemble_averages_member_probabilities(trained, member_probs):
    windows = trained["windows"]
    ensemble = trained["ensemble"]
    assert len(ensemble.members) == 2
    assert ensemble.getLabels() == LABELS
    # Members come from different seeds: their probabilities differ.
    a, b = member_probs
    assert a.keys() == b.keys()
    assert max(np.abs(np.subtract(a[k], b[k])).max() for k in a) > 1e-3

    out = _collect(ensemble.transform(windows))
    assert len(out) == len(a)
    for row in out:
        key = (row["doc_id"], row["split"], row["line_idx"])
        expected = (np.asarray(a[key]) + np.asarray(b[key])) / 2
        np.testing.assert_allclose(row["probability"], expected, rtol=0, atol=1e-6)
        # Single-label decision: the argmax of the averaged probabilities.
        assert row["prediction"] == LABELS[int(np.argmax(expected))]


@pytest.mark.slow
@pytest.mark.horovod
def test_weighted_ensemble_round_trip_saves_members_under_its_path(trained, member_probs,
                                                                   tmp_path):
    windows = trained["windows"]
    offsets = [1.0, 0.0, 0.0]
    ensemble = EnsembleModel(members=trained["ensemble"].members, weights=[3.0, 1.0],
                             logOffsets=offsets)
    path = str(tmp_path / "ensemble")
    ensemble.write().overwrite().save(path)
    assert sorted(os.listdir(os.path.join(path, "members"))) == ["member_00", "member_01"]
    assert os.path.exists(os.path.join(path, "members", "member_01", "network.keras"))

    loaded = EnsembleModel.load(path)
    assert loaded.uid == ensemble.uid
    assert loaded.getOrDefault("weights") == [3.0, 1.0]
    assert loaded.getOrDefault("logOffsets") == offsets
    assert [m.network_bytes for m in loaded.members] == \
        [m.network_bytes for m in ensemble.members]
    a, b = member_probs
    rows = _collect(loaded.transform(windows.filter(windows.split == "test")))
    assert rows
    for row in rows:
        key = (row["doc_id"], row["split"], row["line_idx"])
        expected = (3 * np.asarray(a[key]) + np.asarray(b[key])) / 4
        np.testing.assert_allclose(row["probability"], expected, rtol=0, atol=1e-6)
        scores = np.log(np.maximum(expected, 1e-12)) + offsets
        assert row["prediction"] == LABELS[int(np.argmax(scores))]
