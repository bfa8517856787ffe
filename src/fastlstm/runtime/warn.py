"""Warnings that point at the user's code, not at fastlstm's own frames."""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _library_dirs() -> tuple[str, ...]:
    """fastlstm's folder and scikit-learn's (whose wrappers and Pipeline call fit)."""
    dirs = [_PACKAGE]
    sklearn = sys.modules.get("sklearn")
    if sklearn is not None and getattr(sklearn, "__file__", None):
        dirs.append(os.path.dirname(os.path.abspath(sklearn.__file__)) + os.sep)
    return tuple(dirs)


def warn_user(message: str, category: type[Warning]) -> None:
    """Warn with the location of the innermost caller outside fastlstm (and scikit-learn).

    However deep inside fastlstm the warning is raised (an estimator fitting
    through a forecaster, a fleet, a trainer hook), it is reported at the
    line of the program that called fastlstm, directly or through
    scikit-learn (a ``Pipeline``, a search): the line a user can act on, and
    the one ``warnings`` filters by module match.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     warn_user("look here", UserWarning)
    >>> seen[0].filename.startswith(_PACKAGE)
    False
    """
    skip = _library_dirs()
    level, frame = 2, sys._getframe(1)  # stacklevel 2: warn_user's caller
    while frame is not None and frame.f_code.co_filename.startswith(skip):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
