"""Data sources: the embedded digits, `.npz` files and image folders.

`load(cfg, seed)` returns a `Data` with train/val/test splits as numpy arrays
and the representative samples int8 calibration draws from the training split.
"""
from pipeline.data.dataset import Data
from pipeline.data.sources import DataConfig, load

__all__ = ["Data", "DataConfig", "load"]
