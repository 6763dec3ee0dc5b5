"""Warnings and errors of fastmlp's own (scikit-learn's are used wherever they fit)."""

__all__ = ["InconsistentVersionWarning"]


class InconsistentVersionWarning(UserWarning):
    """Warning raised when an estimator is unpickled (pickle, joblib or skops) with another
    version of fastmlp than the one it was pickled with.

    Mirrors :class:`sklearn.exceptions.InconsistentVersionWarning` (scikit-learn's own warning
    only looks at estimators defined in scikit-learn): the fitted state of an estimator is
    private and may change between versions, so the loaded model may fail or give other results.

    Attributes
    ----------
    estimator_name : str
        Name of the unpickled estimator class.
    current_fastmlp_version : str
        The fastmlp version doing the unpickling.
    original_fastmlp_version : str
        The fastmlp version that pickled the estimator ("unknown" for a file without a stamp).
    """

    def __init__(self, *, estimator_name, current_fastmlp_version, original_fastmlp_version):
        self.estimator_name = estimator_name
        self.current_fastmlp_version = current_fastmlp_version
        self.original_fastmlp_version = original_fastmlp_version

    def __str__(self):
        return (
            f"Trying to unpickle estimator {self.estimator_name} from fastmlp version "
            f"{self.original_fastmlp_version} when using version "
            f"{self.current_fastmlp_version}. This might lead to breaking code or invalid "
            "results. Use at your own risk; to be safe, refit the model with this version "
            "(see 'Persistence' in fastmlp's README)."
        )
