"""Settings of the local web page and JSON API (`python -m artclf.serve`), one file per setup.

They live apart from the training configs in configs/*.py, which all describe a run.
"""
