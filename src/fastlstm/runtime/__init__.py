"""Runtime: threads and their budgets, BLAS limits, the memory budget, workspaces, tapes.

Above the kernels, below everything that computes: nothing here knows a
cell, a layer or an estimator.
"""
