"""Adapters for the time-series toolkits: aeon and sktime (optional extras).

:mod:`fastlstm.ecosystem.aeon` holds aeon classifier and regressor adapters
(``pip install 'fastlstm[aeon]'``), :mod:`fastlstm.ecosystem.sktime` an
sktime forecaster adapter (``pip install 'fastlstm[sktime]'``).  Importing
this package imports neither toolkit; each module imports its own, and says
which extra to install when it is missing.
"""
