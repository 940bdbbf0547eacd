"""greenlite's pipeline: recipes, stages, data, the runner and the report.

Importing this package does not import TensorFlow; `pipeline.backend` does.
"""
