"""Keras → TFLite conversion, and measurement of TFLite files.

`export.benchmark` imports neither TensorFlow nor anything else of greenlite:
copy that one file to a device that has numpy and a TFLite interpreter.
"""
