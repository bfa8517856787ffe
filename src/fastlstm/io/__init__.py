"""Files: safe save/load of layers and estimators, without pickle."""
