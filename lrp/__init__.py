"""lrp: composable command-line tools for pose estimation of low-resolution people.

The same steps from Python, on documents (dicts) in memory; each step is the function its
command runs (README.md, section "Python API"):

    import lrp
    hr = lrp.load("person_keypoints_val2017.json", images="val2017")
    lr = lrp.degrade(hr, scale=0.25)                 # lrp.degrade.degrade_document
    sr = lrp.superres(lr, model="realsr-df2k-x4")    # lrp.superres.superres_document
    poses = lrp.pose(sr, model="movenet-thunder")    # lrp.pose.pose_document
    print(lrp.evaluate(poses).metrics["keypoints"]["AP"])
    lrp.save(poses, "sr-pose.json")

A step is its command's module made callable: `lrp.degrade` is the module lrp/degrade.py and
`lrp.degrade(doc, ...)` calls its `degrade_document(doc, ...)` (see `help(lrp.degrade.degrade_document)`).
Nothing is imported before it is used: `import lrp` is instant, and torch loads only when a
model runs.
"""

from __future__ import annotations

import types

__version__ = "0.1.0"

# step name -> the library function its command calls (in lrp/<step>.py)
STEPS = {
    "degrade": "degrade_document",
    "superres": "superres_document",
    "detect": "detect_document",
    "pose": "pose_document",
    "evaluate": "evaluate_document",
    "mix": "mix_documents",
    "bucket": "bucket_document",
    "merge": "merge_documents",
}
_ERRORS = ("LrpError", "UsageError", "PartialFailure")


class Step(types.ModuleType):
    """A command module that can be called as its library function (`STEPS`)."""

    def __call__(self, *args, **kwargs):
        return self._function()(*args, **kwargs)

    def _function(self):
        return getattr(self, STEPS[self.__name__.rsplit(".", 1)[1]])

    @property
    def __signature__(self):  # what help(), IDEs and notebooks show for `lrp.degrade(`
        import inspect

        return inspect.signature(self._function())


def callable_step(module_name: str) -> None:
    """Make a step's module callable; each module in STEPS calls this as it is imported."""
    import sys

    sys.modules[module_name].__class__ = Step


def load(source, *, images=None) -> dict:
    """A document from a path (COCO or lrp JSON) or from a parsed COCO/lrp dict (left untouched).

    A plain COCO dataset needs `images`, the folder its file_names are relative to. The values
    are checked as the commands check them (LrpError names the key and id at fault).
    """
    import copy
    import os

    if isinstance(source, dict):
        from lrp.document import adopt

        return adopt(copy.deepcopy(source), "<dict>", images=images)
    from lrp.inputs import load_document

    return load_document(os.fspath(source), images=images)


def save(doc: dict, path) -> None:
    """Write `doc` to `path` atomically, as `-o FILE` does."""
    from lrp.outputs import write_document

    write_document(doc, path)


def __getattr__(name: str):
    import importlib

    if name in STEPS:
        return importlib.import_module(f"lrp.{name}")
    if name in _ERRORS:
        return getattr(importlib.import_module("lrp.errors"), name)
    raise AttributeError(f"module 'lrp' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(STEPS) | set(_ERRORS))
