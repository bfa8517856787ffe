"""scikit-learn's estimator checks on LSTMClassifier and LSTMRegressor."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastlstm import LSTMClassifier, LSTMRegressor, _kernels

# the checks' small fits stop at max_epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Small and fast, yet able to learn the checks' tiny problems (a few dozen
# samples of 2D X, read as univariate series) well enough for their score
# thresholds.  One thread: at this size threads cost more than they give.
CHECKED = [
    LSTMClassifier(hidden_size=8, max_epochs=30, learning_rate=0.03, batch_size=16,
                   random_state=0, n_jobs=1),
    LSTMRegressor(hidden_size=8, max_epochs=30, learning_rate=0.03, batch_size=16,
                  random_state=0, n_jobs=1),
]


def expected_failed_checks(estimator):
    """Checks that fail by design, each with the reason."""
    failures = {
        "check_sample_weight_equivalence_on_dense_data": (
            "Mini-batch training: a sample of weight 2 is one row of one batch, while "
            "its duplicate lands in another batch and shifts every later batch, so the "
            "optimizer takes different steps. Weights and repetitions agree only in "
            "expectation, as for MLPClassifier/MLPRegressor with solver='adam'."
        ),
    }
    if _kernels.load().packed_width() == 0:
        if isinstance(estimator, LSTMRegressor):
            # (the classifier passes here: its probabilities stay within the atol)
            failures["check_methods_subset_invariance"] = (
                "float32 computation on the portable (BLAS) kernels: BLAS rounding depends "
                "on how many sequences share a batch, so predicting a subset differs from "
                "predicting all of X by about 1e-7 relative, the check's rtol. "
                "dtype='float64' passes."
            )
    else:
        failures["check_methods_subset_invariance"] = (
            "float32 on the SIMD kernels: a row gets the same arithmetic in any batch of a "
            "register tile or more, but the check predicts one sample at a time, and a "
            "single row splits its sums into interleaved streams (2x faster at batch 1), "
            "so its outputs differ by float32 rounding (1e-7 absolute), the check's atol; "
            "whether a given CPU's rounding stays inside it is luck. dtype='float64' "
            "passes (below)."
        )
    return failures


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", [LSTMClassifier, LSTMRegressor])
def test_subset_invariance_holds_in_float64(cls):
    """The expected failures above are float32 rounding, not batch-order bugs."""
    from sklearn.utils.estimator_checks import check_methods_subset_invariance

    est = cls(hidden_size=8, max_epochs=5, learning_rate=0.03, batch_size=16,
              random_state=0, n_jobs=1, dtype="float64")
    check_methods_subset_invariance(cls.__name__, est)
