"""The tdm_site project package."""

import os

# One BLAS thread per process. The PK engine multiplies matrices of 3 to 8 rows; OpenBLAS's
# thread pool only adds wake-up costs to that (measured: an L-BFGS-B fit 4x slower on the
# 2-core machine under load), and gunicorn already runs one process per core. Must be set
# before numpy is first imported, hence here: Django imports this package first.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
