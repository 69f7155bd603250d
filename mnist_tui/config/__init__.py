"""Experiment definitions: the schema, loading (TOML, `extends`, overrides), one validator.

No torch here: the model-size check imports it only on a cache miss (model_check.py).
"""
