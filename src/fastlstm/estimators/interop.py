"""The deployment methods of the fitted estimators (``to_onnx``, ``to_torch``, ``predict_step``).

The estimators inherit these thin methods; the work is in
:mod:`fastlstm.export`, which provides it through :mod:`fastlstm.runtime.hooks`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fastlstm.runtime import hooks

__all__ = ["EstimatorInterop"]


class EstimatorInterop:
    """``to_onnx``, ``to_torch`` and ``predict_step`` of the fitted estimators."""

    def _note_fit_lengths(self, Xs: Any, continuing: bool) -> None:
        """Remember whether fit saw sequences of different lengths.

        Sets ``_fit_variable_lengths``, which :meth:`to_onnx` reads for its
        default: True once any fit of this model (``partial_fit`` and
        ``warm_start`` included) has seen sequences of different lengths.

        Parameters
        ----------
        Xs : fastlstm.train.sequences.Sequences
            The validated training sequences.
        continuing : bool
            Whether this fit continues the previous one (else it starts over).
        """
        lengths = Xs.lengths
        varied = bool(len(lengths)) and int(lengths.min()) != int(lengths.max())
        earlier = continuing and bool(getattr(self, "_fit_variable_lengths", False))
        self._fit_variable_lengths = varied or earlier

    def to_onnx(self, path: str | os.PathLike | None = None, *,
                lengths: bool | None = None) -> Any:
        """Export the fitted model's predictions as an ONNX model.

        Needs the optional ``onnx`` package (``pip install 'fastlstm[onnx]'``).
        The input ``x`` is ``(batch, time, n_features)`` float32, batch and time
        dynamic (a model fitted on a 2D table of univariate series takes
        ``(batch, time, 1)``); a model fitted with ``channels_first=True``
        takes the layout its :meth:`predict` takes, ``(batch, n_features,
        time)``.  A classifier's outputs are ``label`` (as
        :meth:`predict`) and ``probabilities`` (float64, as
        :meth:`predict_proba`); a regressor's output ``y`` (float64) is
        :meth:`predict`'s, in the units of the training targets (the target
        scaling is part of the graph), per step with
        ``sequence_output=True``.  The recurrent layers use the standard
        ONNX ``LSTM``/``RNN`` operators in float32.

        Parameters
        ----------
        path : str or path-like, optional
            Also write the model there.
        lengths : bool or None, default=None
            Whether the graph has a second input, ``lengths``: int64 of shape
            ``(batch,)``, the valid steps of each right-padded sequence, as
            for a ragged ``X`` in :meth:`predict`.  None (the default) follows
            what the model was fitted on: with the input when ``fit`` (or
            ``partial_fit``) saw sequences of different lengths (such as a
            ragged list), without it when every training sequence had the
            same length.  True or False overrides that.
            Without the input, every step of ``x`` is read, padding included.
            A pickled model keeps what it was fitted on; a model whose file
            (:func:`fastlstm.save`) does not record it defaults to no input.

        Returns
        -------
        model : onnx.ModelProto
            Checked with ``onnx.checker``.

        Examples
        --------
        >>> import numpy as np
        >>> import onnxruntime
        >>> from fastlstm import LSTMClassifier
        >>> X = np.random.default_rng(0).uniform(size=(60, 4, 2)).astype(np.float32)
        >>> y = np.where(X[:, -1, 0] > 0.5, "high", "low")
        >>> clf = LSTMClassifier(hidden_size=8, max_epochs=3, random_state=0).fit(X, y)
        >>> session = onnxruntime.InferenceSession(clf.to_onnx().SerializeToString())
        >>> label, proba = session.run(None, {"x": X[:5]})
        >>> bool((label == clf.predict(X[:5])).all())
        True
        >>> bool(np.allclose(proba, clf.predict_proba(X[:5]), atol=1e-6))
        True

        A model fitted on sequences of different lengths takes ``lengths``
        by default, so that padded batches predict as the ragged list does:

        >>> ragged = [X[i, : 1 + i % 4] for i in range(60)]
        >>> clf = LSTMClassifier(hidden_size=8, max_epochs=3, random_state=0).fit(ragged, y)
        >>> [i.name for i in clf.to_onnx().graph.input]
        ['x', 'lengths']
        >>> [i.name for i in clf.to_onnx(lengths=False).graph.input]
        ['x']
        """
        return hooks.call("estimator_to_onnx", self, path, lengths=lengths)

    def to_torch(self) -> Any:
        """The fitted model as a ``torch.nn.Module`` giving the same predictions.

        Needs PyTorch.  ``module(x, lengths=None)`` takes a batch-first tensor
        ``(batch, time, n_features)`` of the model's dtype, or ``(batch,
        n_features, time)`` for a model fitted with ``channels_first=True``
        (as :meth:`predict` takes it), and optional lengths, packed
        internally, and returns :meth:`predict_proba`'s
        probabilities for a classifier, :meth:`predict`'s values for a
        regressor (target un-scaling included), as float64 tensors;
        ``module.logits(x, lengths)`` is the readout before them.  The
        module's ``rnn`` is a ``torch.nn.LSTM``/``nn.RNN`` and ``head`` a
        ``torch.nn.Linear``, ready for fine-tuning in PyTorch.

        Returns
        -------
        module : torch.nn.Module
            In eval mode.

        Examples
        --------
        >>> import numpy as np
        >>> import torch
        >>> from fastlstm import LSTMRegressor
        >>> X = np.random.default_rng(0).uniform(size=(64, 5, 1)).astype(np.float32)
        >>> reg = LSTMRegressor(hidden_size=8, max_epochs=3, random_state=0)
        >>> reg = reg.fit(X, 100 * X[:, -1, 0])
        >>> module = reg.to_torch()
        >>> with torch.no_grad():
        ...     y = module(torch.from_numpy(X)).numpy()
        >>> bool(np.allclose(y, reg.predict(X), rtol=1e-6))
        True
        """
        return hooks.call("estimator_to_torch", self)

    def predict_step(self, x_t: Any, state: Any = None, *, out: Any = None
                     ) -> tuple[np.ndarray, Any]:
        """Advance every sequence by one time step and predict as if they ended there.

        For streaming: feeding a sequence step by step, starting from
        ``state=None`` and passing back the returned state, gives at step t
        what :meth:`predict_proba` (classifier) or :meth:`predict`
        (regressor, in target units) gives for the sequences cut after step
        t (equal up to float rounding).  Unidirectional models only.

        Parameters
        ----------
        x_t : array-like of shape (n_samples, n_features)
            This step of each sequence: ``X[:, t]`` of a batch-first ``X``, or
            ``X[:, :, t]`` for a model fitted with ``channels_first=True``
            (``(n_samples,)`` is accepted when there is one feature per step).
        state : object or None, default=None
            The state returned by the previous call for the same sequences;
            None starts new sequences.
        out : object or None, default=None
            Arrays to write the new state into, as the layer's ``step`` takes
            them (``(h, c)`` for an LSTM, ``h`` otherwise, each of shape
            ``(num_layers, n_samples, hidden_size)`` and the model's dtype);
            pass the state itself to update it in place.  The prediction is
            always a fresh array.

        Returns
        -------
        y_t : ndarray
            Classifier: ``(n_samples, n_classes)`` probabilities.  Regressor:
            ``(n_samples,)`` or ``(n_samples, n_outputs)`` as :meth:`predict`.
        state : object
            The recurrent state after this step: fresh arrays (the state
            passed in is not modified), or ``out``.

        Raises
        ------
        ValueError
            For a bidirectional model, whose backward direction needs the
            whole sequence.

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm import LSTMClassifier
        >>> X = np.random.default_rng(0).uniform(size=(60, 4, 2))
        >>> y = np.where(X[:, -1, 0] > 0.5, "high", "low")
        >>> clf = LSTMClassifier(hidden_size=8, max_epochs=3, random_state=0).fit(X, y)
        >>> state = None
        >>> for t in range(3):
        ...     proba, state = clf.predict_step(X[:5, t], state)
        >>> bool(np.allclose(proba, clf.predict_proba(X[:5, :3]), atol=1e-6))
        True

        The same stream with its state updated in place:

        >>> state = None
        >>> for t in range(3):
        ...     proba, state = clf.predict_step(X[:5, t], state, out=state)
        >>> bool(np.allclose(proba, clf.predict_proba(X[:5, :3]), atol=1e-6))
        True
        """
        return hooks.call("predict_step", self, x_t, state, out)
