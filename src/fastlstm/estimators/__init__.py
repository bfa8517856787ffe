"""scikit-learn estimators: the classifier and regressor, the scaler, input layouts."""

from fastlstm.estimators.classifier import LSTMClassifier
from fastlstm.estimators.regressor import LSTMRegressor

__all__ = ["LSTMClassifier", "LSTMRegressor"]
