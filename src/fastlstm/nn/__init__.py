"""Recurrent layers: parameters, plans, the BLAS / packed / ragged engines, the cells."""
