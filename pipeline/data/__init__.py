"""Data sources: the embedded digits, `.npz`, image folders, TFRecord and text.

`load(cfg, seed)` returns a `Data` with train/val/test splits, in memory or
streamed through tf.data (pipeline/data/split.py), and the representative
samples int8 calibration draws from the training split.
"""
from pipeline.data.dataset import Data
from pipeline.data.sources import DataConfig, load

__all__ = ["Data", "DataConfig", "load"]
