"""fastmlp on a Dask cluster: one model trained on data partitioned across workers.

Needs the `dask` extra (`pip install fastmlp[dask]`: dask[array] and distributed). See
README.md, "Past one machine", and fastmlp/dask/_estimators.py's Design block.
"""

from fastmlp.dask._estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
