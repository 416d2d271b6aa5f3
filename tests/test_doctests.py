"""Every docstring example of the installed focalseq package runs and shows what it says.

Modules are found by walking the installed package, so a new module's examples are run
without a change here. As in pyspark.ml's own doctests, examples may use two names they
do not define: `spark` (the session of tests/conftest.py) and `temp_path` (an empty
folder of their own, for save/load round trips); everything else they build themselves.
Examples marked ``# doctest: +SKIP`` are the expensive ones (a Horovod fit).
"""
import doctest
import importlib
import importlib.util
import pkgutil

import pytest

# focalseq.stages and focalseq.pipelines install from the top-level folders stages/ and
# pipelines/ (setup.py's package_dir), so in an editable install they are not under
# focalseq.__path__ and a walk from focalseq alone would miss them.
ROOTS = ("focalseq", "focalseq.stages", "focalseq.pipelines")
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _walk(package: str):
    """(module name, source path) of `package` and every module below it, none imported."""
    spec = importlib.util.find_spec(package)
    yield package, spec.origin
    for info in pkgutil.iter_modules(spec.submodule_search_locations, package + "."):
        if info.ispkg:
            yield from _walk(info.name)
        else:
            yield info.name, info.module_finder.find_spec(info.name).origin


def _modules() -> dict:
    found = {}
    for root in ROOTS:
        found.update(_walk(root))
    return found


MODULES = _modules()
# Only modules whose source shows an example are imported: importing all of them would
# load TensorFlow and Horovod for nothing.
WITH_EXAMPLES = sorted(name for name, path in MODULES.items()
                       if path and ">>>" in open(path, encoding="utf-8").read())


def test_every_installed_package_is_walked():
    for root in ROOTS:
        assert any(name.startswith(root + ".") for name in MODULES), root
    assert "focalseq.stages.parse" in MODULES and "focalseq.text.yedda" in MODULES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name, request, tmp_path):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    assert tests, f"{name}: its source has '>>>' but doctest finds no example"
    globs = {"temp_path": str(tmp_path)}
    if any("spark" in ex.source for t in tests for ex in t.examples):
        globs["spark"] = request.getfixturevalue("spark")  # started only when needed
    report = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    for test in tests:
        test.globs.update(globs)
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
