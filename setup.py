"""focalseq: class-imbalance-aware BiLSTM sequence labelers on Spark + Horovod."""
from setuptools import setup

setup(
    name="focalseq",
    version="0.1.0",
    description="Distributed Spark ML pipeline for class-imbalance-aware BiLSTM line labelers",
    python_requires=">=3.9,<3.12",
    # The Spark ML stages and pipeline builders live in top-level folders (the data flow
    # is visible in the repository layout) but install as subpackages of focalseq.
    packages=[
        "focalseq",
        "focalseq.text",
        "focalseq.losses",
        "focalseq.training",
        "focalseq.stages",
        "focalseq.pipelines",
        "focalseq.conf",
    ],
    package_dir={
        "focalseq": "focalseq",
        "focalseq.stages": "stages",
        "focalseq.pipelines": "pipelines",
        # Data only (no __init__.py): the shipped configurations, found by
        # focalseq.config.packaged_conf (the Python API reads skol.yaml's settings).
        "focalseq.conf": "conf",
    },
    package_data={"focalseq.conf": ["*.yaml"]},
    install_requires=[
        "petastorm==0.13.1",
        "pyarrow==14.0.2",
        "numpy>=1.26,<2",
        "pandas>=2,<3",
        "protobuf<5",
        "pyspark==4.0.1",
        "mlflow>=3.17,<3.18",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "redis>=5",
        "PyYAML>=6",
        "pydantic>=2",
        "fsspec>=2023.1",
        "psutil>=5",
    ],
    # TensorFlow by the nodes' hardware: `focalseq[cpu]` (tensorflow-cpu, what the tests
    # and the CPU clusters here run) or `focalseq[gpu]` (the tensorflow wheel with its CUDA
    # libraries, for GPU executors). Both provide the `tensorflow` module, so only one of
    # them may be installed, which is why neither is a plain requirement.
    extras_require={"cpu": ["tensorflow-cpu==2.15.1"],
                    "gpu": ["tensorflow[and-cuda]==2.15.1"],
                    "dev": ["pytest>=8", "hypothesis>=6"]},
    entry_points={"console_scripts": ["focalseq=focalseq.cli:main"]},
)
