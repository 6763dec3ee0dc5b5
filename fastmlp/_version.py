"""The package's version: one place, read by pyproject.toml, fastmlp.__version__ and the
version stamp that every pickled estimator carries."""
__version__ = "0.1.0"
