"""focalseq: class-imbalance-aware BiLSTM line labelers on Spark, Horovod and MLflow.

The Spark ML stages live in `focalseq.stages`, pipeline builders and the jobs' logic in
`focalseq.pipelines`, the losses in `focalseq.losses`. The familiar one-object API:

    from focalseq import SkolClassifierV2   # also FocalSeqClassifier
"""
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import focalseq` stays cheap (no Spark, no TensorFlow).
    if name in ("FocalSeqClassifier", "SkolClassifierV2"):
        from focalseq.pipelines import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'focalseq' has no attribute {name!r}")
