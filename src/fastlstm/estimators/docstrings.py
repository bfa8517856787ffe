"""The numpydoc sections :class:`LSTMClassifier` and :class:`LSTMRegressor` share.

Their parameters (but the ones of each class alone), their fitted
attributes (but ``classes_``) and the notes on inputs and training, written
once and put into both class docstrings.
"""

_DOC_PARAMS = """
    cell : {"lstm", "gru", "rnn"}, default="lstm"
        The recurrent layer: :class:`fastlstm.LSTM`, :class:`fastlstm.GRU`
        (three gates instead of four, PyTorch's ``nn.GRU``), or the tanh
        :class:`fastlstm.RNN` (fewer parameters per unit, but it loses
        information over long gaps; see the long-gap example in the docs).
    hidden_size : int, default=64
        Hidden units per direction of each recurrent layer.
    num_layers : int, default=1
        Stacked LSTM layers.
    bidirectional : bool, default=False
        Also run each layer backwards in time; the readout then sees both
        directions' final states.
    dropout : float, default=0.0
        Dropout on the inputs of every LSTM layer after the first, during
        training (PyTorch's meaning: no effect when ``num_layers=1``, with a
        warning).
    batch_size : int, default=32
        Sequences per mini-batch.  Sequences of different lengths are
        grouped by length so that little time goes to padding.
    max_epochs : int, default=100
        Most passes over the training data in :meth:`fit`.
    learning_rate : float, default=1e-3
        Step size of the optimizer.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        Adam, Adam with decoupled weight decay, or SGD with momentum.
    momentum : float, default=0.9
        Momentum of ``optimizer="sgd"``.
    weight_decay : float, default=0.0
        L2 penalty on all parameters (added to the gradient for "adam" and
        "sgd", decoupled for "adamw").
    clip_norm : float or None, default=5.0
        Largest global L2 norm of the gradient of one mini-batch; larger
        gradients are scaled down.  None disables clipping.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        classifiers), stop when the validation score has not improved by
        ``tol`` for ``n_iter_no_change`` epochs, and restore the weights of
        the best epoch.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping (unless
        ``fit`` is given ``X_val`` and ``y_val``).
    validation_split : {"random", "last"}, default="random"
        Which samples are held out: a random (for classifiers stratified)
        share, or the last ``validation_fraction`` of them in the order
        given, for forecasting windows cut from one series in time order
        (a random split would validate on windows that overlap training
        windows).
    scoring : {None, "loss"}, default=None
        What early stopping watches on the validation data: None for the
        estimator's score (accuracy, or R² for regressors), "loss" for the
        training loss function (``validation_scores_`` then holds the
        negative loss, as in scikit-learn's gradient boosting).
    n_iter_no_change : int, default=10
        Epochs without improvement by ``tol`` before stopping (of the
        validation score with early stopping, of the training loss without).
    tol : float, default=1e-4
        Smallest improvement that counts.
    warm_start : bool, default=False
        Let :meth:`fit` continue from the current weights.
    shuffle : bool, default=True
        Reshuffle the mini-batches every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization, the shuffling, the validation split and the
        dropout masks.  The same seed, data and ``n_jobs`` give the same
        model, bit for bit.
    n_jobs : int or None, default=None
        Threads of the LSTM layer: None or -1 for all usable cores.
    channels_first : bool, default=False
        Read a 3D ``X`` as ``(n_samples, n_features, n_timesteps)`` (aeon's
        and sktime's ``(n_cases, n_channels, n_timepoints)``) and each 2D
        array of a list as ``(n_features, n_timesteps_i)``.  The layout is
        fixed by the first fit: predict reads ``X`` the same way.  Per-step
        outputs and targets (``sequence_output=True``) stay time-major.
    callbacks : list of fastlstm.callbacks.Callback or None, default=None
        Run at the start and end of training, of each epoch and of each
        batch (see :mod:`fastlstm.callbacks`: learning-rate schedules, early
        stopping on any recorded quantity, checkpoints of the best weights);
        a callback may stop the training.
    verbose : int, default=0
        0 is silent; 1 draws a progress bar per epoch (loss, validation score,
        sequences per second) on stderr: tqdm's on a terminal when tqdm is
        installed, one plain line per epoch when stderr is not a terminal;
        2 prints one line per epoch (see also
        :class:`fastlstm.callbacks.ProgressBar`).
    dtype : {"float32", "float64"}, default="float32"
        Precision of the weights and the computation."""

_DOC_ATTRS = """
    n_features_in_ : int
        Features per time step seen during fit; for a 2D ``X`` (a table of
        univariate series) its number of columns, i.e. of time steps, which
        a 2D ``X`` at predict must match (3D or list inputs of one feature
        may have any length).
    loss_curve_ : list of float
        Mean training loss of each epoch.
    history_ : list of dict
        One record per epoch: ``epoch``, ``loss``, ``validation_loss``,
        ``validation_score`` (NaN without validation), ``learning_rate`` and
        ``seconds``; ``history_["loss"]`` lists one key, ``history_.plot()``
        draws the curves (matplotlib), ``history_.to_pandas()`` tabulates.
    best_loss_ : float
        Smallest value in ``loss_curve_``.
    validation_scores_ : list of float
        Validation score of each epoch (only with ``early_stopping=True`` or
        validation data ``X_val``, ``y_val`` given to :meth:`fit`).
    best_validation_score_ : float
        Best value in ``validation_scores_`` (likewise).
    validation_losses_ : list of float
        Validation loss of each epoch, on the scale of ``loss_curve_``
        (likewise).
    n_iter_ : int
        Epochs run.
    t_ : int
        Training sequences seen by the optimizer.
    network_ : object
        The trained network: ``network_.layer`` is the :class:`fastlstm.LSTM`
        (or :class:`fastlstm.RNN`, with a PyTorch-compatible ``state_dict``)
        and ``network_.weight``,
        ``network_.bias`` its linear readout."""

_DOC_NOTES = """
    Notes
    -----
    ``X`` may be a 3D array ``(n_samples, n_timesteps, n_features)``, a 2D
    array ``(n_samples, n_timesteps)`` of univariate series (a table whose
    columns are time steps), or a list of 2D arrays ``(n_timesteps_i,
    n_features)`` of different lengths.  Lists are batched by length and run
    with the layer's ``lengths``, so padding costs little and never changes a
    prediction.

    The sequence's representation is the last layer's final hidden state
    (each sequence's own last step; both directions when bidirectional).
    The LSTM starts from PyTorch's initialization except for the forget-gate
    biases, which start at 1 (as Keras' ``unit_forget_bias``): long
    dependencies are learned much sooner.

    Training stops early when the loss (or the validation score, with
    ``early_stopping``) stops improving, and on a non-finite loss, gradient
    or updated weight (the weights of the last complete epoch are restored,
    with a ``ConvergenceWarning``).  On Ctrl-C the model keeps the weights
    of its last complete step and the ``KeyboardInterrupt`` propagates.  A
    fit that raises any other error leaves the estimator as it was before
    the call (see "Reliability" in the user guide)."""
