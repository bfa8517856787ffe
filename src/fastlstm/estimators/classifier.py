"""The sequence classifier :class:`LSTMClassifier`."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets

from fastlstm.estimators.base import _BaseLSTM, _check_sample_weight
from fastlstm.estimators.docstrings import _DOC_ATTRS, _DOC_NOTES, _DOC_PARAMS
from fastlstm.train.data import check_label_types
from fastlstm.train.network import predict_outputs, softmax, softmax_cross_entropy
from fastlstm.train.sequences import Sequences

__all__ = ["LSTMClassifier"]


class LSTMClassifier(ClassifierMixin, _BaseLSTM):
    __doc__ = f"""Sequence classifier: an LSTM and a softmax readout of its final state.

    Trained with softmax cross-entropy by mini-batch Adam, AdamW or SGD.
    Sequences are read batch-first; see the ``X`` forms under :meth:`fit`.

    Parameters
    ----------{_DOC_PARAMS}
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, multiplied with ``sample_weight``;
        "balanced" weighs them inversely to their frequency in ``y``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.{_DOC_ATTRS}

    See Also
    --------
    LSTMRegressor : The same network with a linear output and squared loss.
{_DOC_NOTES}

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm import LSTMClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(60, 5, 2)).astype(np.float32)
    >>> y = np.where(X[:, :, 0].sum(axis=1) > 0, "up", "down")
    >>> clf = LSTMClassifier(hidden_size=8, max_epochs=30, learning_rate=0.02,
    ...                      random_state=0).fit(X, y)
    >>> clf.classes_
    array(['down', 'up'], dtype='<U4')
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    >>> clf.score(X, y) > 0.9
    True
    """

    _kind = "classifier"

    def __init__(
        self,
        *,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_size: int = 32,
        max_epochs: int = 100,
        learning_rate: float = 1e-3,
        optimizer: str = "adam",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        clip_norm: float | None = 5.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        validation_split: str = "random",
        scoring: str | None = None,
        channels_first: bool = False,
        callbacks: list | None = None,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        warm_start: bool = False,
        shuffle: bool = True,
        random_state: Any = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        dtype: str = "float32",
        class_weight: dict | str | None = None,
    ) -> None:
        super().__init__(
            cell=cell, hidden_size=hidden_size, num_layers=num_layers,
            bidirectional=bidirectional, dropout=dropout, batch_size=batch_size,
            max_epochs=max_epochs,
            learning_rate=learning_rate, optimizer=optimizer, momentum=momentum,
            weight_decay=weight_decay, clip_norm=clip_norm, early_stopping=early_stopping,
            validation_fraction=validation_fraction, validation_split=validation_split,
            scoring=scoring, channels_first=channels_first, callbacks=callbacks,
            n_iter_no_change=n_iter_no_change,
            tol=tol, warm_start=warm_start, shuffle=shuffle, random_state=random_state,
            n_jobs=n_jobs, verbose=verbose, dtype=dtype,
        )
        self.class_weight = class_weight

    def _check_params(self) -> None:
        super()._check_params()
        cw = self.class_weight
        if not (cw is None or cw == "balanced" or isinstance(cw, dict)):
            raise ValueError(
                "The 'class_weight' parameter of LSTMClassifier must be a dict, 'balanced' "
                f"or None. Got {cw!r} instead."
            )

    def _prepare_targets(self, y: Any, Xs: Sequences, reset: bool, classes: Any) -> np.ndarray:
        check_label_types(y)
        y = column_or_1d(y, warn=True)
        if len(y) != Xs.n_samples:
            raise ValueError(
                "Found input variables with inconsistent numbers of samples: "
                f"[{Xs.n_samples}, {len(y)}]"
            )
        check_array(y, ensure_2d=False, dtype=None, input_name="y")  # NaN, inf
        check_classification_targets(y)
        if reset:
            if classes is not None:
                classes_ = np.asarray(classes)
                if classes_.ndim != 1 or len(np.unique(classes_)) != len(classes_):
                    raise ValueError("classes must be a 1D array of unique labels.")
                classes_ = np.unique(classes_)
            else:
                classes_ = np.unique(y)
            if len(classes_) < 2:
                raise ValueError(
                    "The number of classes has to be greater than one; got "
                    f"{len(classes_)} class ({classes_[0]!r}): a classifier needs samples "
                    "of at least 2 classes in y."
                )
            self.classes_ = classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"`classes={classes!r}` is not the same as on the first call to partial_fit "
                f"(classes_={self.classes_!r})."
            )
        idx = np.searchsorted(self.classes_, y)
        idx[idx >= len(self.classes_)] = 0
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels not in classes_: {np.unique(y[unknown])[:5].tolist()}; "
                f"classes_ is {self.classes_.tolist()}."
            )
        return idx.astype(np.intp)

    def _sample_weight(self, sample_weight: Any, n: int, target: np.ndarray) -> np.ndarray:
        w = _check_sample_weight(sample_weight, n)
        if self.class_weight == "balanced":
            w = w * self._balanced_weights(target)[target]
        elif self.class_weight is not None:
            cw = compute_class_weight(self.class_weight, classes=self.classes_,
                                      y=self.classes_[target])
            w = w * cw[target]
        return w

    def _balanced_weights(self, target: np.ndarray) -> np.ndarray:
        # n_samples / (n_classes * count), as compute_class_weight("balanced"),
        # over the classes present in y; absent classes get weight 1
        counts = np.bincount(target, minlength=len(self.classes_)).astype(np.float64)
        present = counts > 0
        cw = np.ones(len(self.classes_))
        cw[present] = counts[present].sum() / (present.sum() * counts[present])
        return cw

    def _stratify(self, target: np.ndarray) -> np.ndarray | None:
        return target

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _loss(self, out: np.ndarray, target: np.ndarray, weight: np.ndarray,
              lengths: Any) -> tuple[float, np.ndarray]:
        return softmax_cross_entropy(out, target, weight)

    def _engine_loss(self) -> str | None:
        return "cross_entropy"

    def _validation_score(self, Xs: Sequences, target: np.ndarray, weight: np.ndarray,
                          out: Any = None) -> float:
        if out is None:
            out = predict_outputs(self.network_, Xs, self.batch_size)
        return float(accuracy_score(target, out.argmax(axis=1), sample_weight=weight))

    def partial_fit(self, X: Any, y: Any, classes: Any = None,
                    sample_weight: Any = None) -> LSTMClassifier:
        """Train for one epoch over ``X``, continuing from the current weights.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for :meth:`fit`.
        y : array-like of shape (n_samples,)
            Labels.
        classes : array-like of shape (n_classes,), default=None
            All labels that can ever appear; required on the first call.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sequence in the loss.

        Returns
        -------
        self : object
            The updated estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMClassifier
        >>> X = np.random.default_rng(0).uniform(size=(40, 4, 2))
        >>> clf = LSTMClassifier(hidden_size=8, random_state=0)
        >>> clf.partial_fit(X[:20], ["a", "b"] * 10, classes=["a", "b"]).t_
        20
        >>> clf.partial_fit(X[20:], ["b", "a"] * 10).t_
        40
        """
        if not hasattr(self, "network_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: compute the "
                "weights with sklearn.utils.class_weight.compute_class_weight on a "
                "representative y and pass them as a dict."
            )
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of each sequence.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for :meth:`fit`.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMClassifier
        >>> X = np.random.default_rng(0).uniform(size=(60, 4, 2))
        >>> y = np.where(X[:, -1, 0] > 0.5, "high", "low")
        >>> clf = LSTMClassifier(hidden_size=8, max_epochs=3, random_state=0).fit(X, y)
        >>> proba = clf.predict_proba(X[:3])
        >>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1))
        ((3, 2), True)
        """
        _, out = self._outputs(X)
        return softmax(out)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for :meth:`fit`.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMClassifier
        >>> X = np.random.default_rng(0).uniform(size=(60, 4, 2))
        >>> y = np.where(X[:, -1, 0] > 0.5, "high", "low")
        >>> clf = LSTMClassifier(hidden_size=8, max_epochs=3, random_state=0).fit(X, y)
        >>> bool(np.allclose(np.exp(clf.predict_log_proba(X[:3])), clf.predict_proba(X[:3])))
        True
        """
        _, out = self._outputs(X)
        z = out - out.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each sequence.

        Parameters
        ----------
        X : array-like or list of array-like
            Sequences, as for :meth:`fit`.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from ``classes_``.

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMClassifier
        >>> X = np.random.default_rng(0).uniform(size=(60, 4, 2))
        >>> y = np.where(X[:, -1, 0] > 0.5, "high", "low")
        >>> clf = LSTMClassifier(hidden_size=8, max_epochs=3, random_state=0).fit(X, y)
        >>> set(clf.predict(X)) <= {"high", "low"}
        True
        """
        _, out = self._outputs(X)
        return self.classes_[out.argmax(axis=1)]

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags
