"""`tf`, `keras` and `tfmot` that import TensorFlow on first use, not on import.

Stage modules hold their `Config` dataclasses beside their code; the recipe
is validated from those configs before anything heavy happens, so a typo is
reported in well under a second instead of after TensorFlow's 10-20 s import.
Modules that only use TensorFlow inside functions import from here; a module
that subclasses a Keras class at import time imports `pipeline.backend`.
"""
import importlib


class _Lazy:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attribute):
        module = getattr(importlib.import_module("pipeline.backend"), self._name)
        return getattr(module, attribute)


tf = _Lazy("tf")
keras = _Lazy("keras")
tfmot = _Lazy("tfmot")
