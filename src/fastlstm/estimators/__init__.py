"""scikit-learn estimators: the classifier and regressor, the scaler, input layouts."""
