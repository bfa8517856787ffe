"""fastlstm.load on hostile and corrupted files: refused at once, always with ValueError.

A small file must not make ``load`` loop or allocate according to what its
header declares (millions of layers), and no damage to the bytes (a zip
record, a generator's state) may surface as anything but the documented
``ValueError``.  Two seeded fuzz tests mutate bytes and header values.
"""

import contextlib
import copy
import io
import json
import random
import re
import signal
import threading
import time
import tracemalloc

import numpy as np
import pytest
from saved_files import saved, tampered, zip_entries, zipped

import fastlstm

# short fits stop at max_epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ------------------------------------------------------------------ helpers
@contextlib.contextmanager
def _deadline(seconds):
    """Interrupt the block after ``seconds``.

    Without the bounds these tests check, a hostile file takes minutes and
    gigabytes to refuse; the deadline makes such a regression fail in
    seconds instead of exhausting the machine's memory.
    """
    in_main = threading.current_thread() is threading.main_thread()
    if not hasattr(signal, "setitimer") or not in_main:
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"fastlstm.load still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    pending, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if pending:  # someone else's alarm was set: let it ring when it would have
            signal.setitimer(signal.ITIMER_REAL,
                             max(pending - (time.monotonic() - start), 1e-3))


def _refusal(data, seconds=5.0):
    """Load ``data``, which must be refused; the ValueError's message."""
    with _deadline(seconds), pytest.raises(ValueError) as info:
        fastlstm.load(io.BytesIO(data))
    message = str(info.value)
    assert message.startswith("Cannot load the file: ")
    return message


def _refused_quickly(data):
    """Refuse ``data`` within 2 s and 5 MB; the message, which must be short."""
    tracemalloc.start()
    try:
        start = time.perf_counter()
        message = _refusal(data)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 2.0, f"refused after {seconds:.1f} s"
    assert peak < 5 << 20, f"refusing took {peak / 2**20:.0f} MB"
    assert len(message) < 400, message[:1000]
    return message


def _outcome(data):
    """'ok' or 'ValueError' for loading ``data``; anything else propagates."""
    try:
        with _deadline(5.0):
            fastlstm.load(io.BytesIO(data))
    except ValueError as exc:
        assert str(exc).startswith("Cannot load the file: "), str(exc)
        assert len(str(exc)) < 1000, str(exc)[:1000]
        return "ValueError"
    return "ok"


@pytest.fixture(scope="module")
def layer_file():
    return saved(fastlstm.LSTM(2, 3, random_state=0))


@pytest.fixture(scope="module")
def estimator_file():
    # a RandomState instance as random_state: the file holds three generator states
    X = np.random.default_rng(0).uniform(-1, 1, size=(24, 5, 2))
    reg = fastlstm.LSTMRegressor(hidden_size=4, max_epochs=1, batch_size=8, n_jobs=1,
                                 random_state=np.random.RandomState(3)).fit(X, X[:, -1, 0])
    return saved(reg)


@pytest.fixture(scope="module")
def classifier_file():
    X = np.random.default_rng(1).uniform(-1, 1, size=(24, 4, 2))
    y = np.where(X[:, -1, 0] > 0, "up", "down")
    clf = fastlstm.LSTMClassifier(hidden_size=3, num_layers=2, bidirectional=True,
                                  max_epochs=1, batch_size=8, n_jobs=1, random_state=0)
    return saved(clf.fit(X, y))


def test_untampered_files_load(layer_file, estimator_file, classifier_file):
    # the fixtures the tampering starts from are valid files
    assert type(fastlstm.load(io.BytesIO(layer_file))) is fastlstm.LSTM
    assert type(fastlstm.load(io.BytesIO(estimator_file))) is fastlstm.LSTMRegressor
    assert type(fastlstm.load(io.BytesIO(classifier_file))) is fastlstm.LSTMClassifier


# ------------------------------------------------------------------ declared sizes
@pytest.mark.parametrize("num_layers", [10**6, 10**7])
def test_absurd_num_layers_of_a_layer_is_refused_at_once(layer_file, num_layers):
    data = tampered(layer_file, lambda h: h["params"].update(num_layers=num_layers))
    assert len(data) < 4096
    message = _refused_quickly(data)
    assert (f"num_layers={num_layers} needs {4 * num_layers} layer parameter arrays; the file "
            "holds 4") in message


@pytest.mark.parametrize("num_layers", [10**6, 10**7])
def test_absurd_num_layers_of_an_estimator_is_refused_at_once(estimator_file, num_layers):
    def edit(h):
        h["state"]["network"]["num_layers"] = num_layers
        h["state"]["architecture"]["num_layers"] = num_layers

    message = _refused_quickly(tampered(estimator_file, edit))
    assert f"the network's num_layers={num_layers} needs {4 * num_layers}" in message


def test_bidirectional_doubles_the_arrays_a_layer_needs(layer_file):
    message = _refused_quickly(
        tampered(layer_file, lambda h: h["params"].update(bidirectional=True)))
    assert "num_layers=1 (bidirectional) needs 8 layer parameter arrays; the file holds 4" \
        in message


@pytest.mark.parametrize("field", ["hidden_size", "input_size"])
@pytest.mark.parametrize("value", [10**7, 2**63 - 1, 10**300], ids=["1e7", "2**63-1", "1e300"])
def test_absurd_layer_sizes_are_refused_by_name(layer_file, field, value):
    message = _refused_quickly(tampered(layer_file, lambda h: h["params"].update({field: value})))
    if value > 2**63 - 1:
        assert f"layer {field} must be an int in [1, 2**63 - 1]" in message
    else:
        assert f"{field}={value} is larger than every dimension of the file's layer arrays" \
            in message


@pytest.mark.parametrize("field, value, match", [
    ("hidden_size", 10**9, "the network's hidden_size=1000000000 is larger than every"),
    ("n_features", 10**9, "the network's n_features=1000000000 is larger than every"),
    ("n_outputs", 10**9, "the network's n_outputs=1000000000 is larger than every dimension "
                         "of the file's head arrays"),
    ("n_outputs", 10**300, "n_outputs must be an int in \\[1, 2\\*\\*63 - 1\\]"),
], ids=["hidden_size", "n_features", "n_outputs", "n_outputs-1e300"])
def test_absurd_network_sizes_are_refused_by_name(classifier_file, field, value, match):
    def edit(h):
        h["state"]["network"][field] = value
        if field in h["state"]["architecture"]:
            h["state"]["architecture"][field] = value
        if field == "n_features":
            h["state"]["published"]["n_features_in_"] = value

    message = _refused_quickly(tampered(classifier_file, edit))
    assert re.search(match, message), message


def test_lists_in_messages_are_capped(layer_file):
    # 100000 unknown parameters, and 3000 arrays the model does not have
    junk = {f"junk_{i:06d}": 1 for i in range(100_000)}
    message = _refusal(tampered(layer_file, lambda h: h["params"].update(junk)))
    assert len(message) < 400
    assert "unexpected ['junk_000000', 'junk_000001'" in message
    assert "(99994 more)" in message

    entries = zip_entries(layer_file)
    header = json.loads(entries["header.json"])
    npy = io.BytesIO()
    np.lib.format.write_array(npy, np.zeros(1, dtype=np.float32))
    for i in range(3000):
        header["arrays"][f"junk.a{i:04d}"] = {"dtype": "<f4", "shape": [1]}
        entries[f"arrays/junk.a{i:04d}.npy"] = npy.getvalue()
    entries["header.json"] = json.dumps(header).encode()
    message = _refusal(zipped(entries))
    assert len(message) < 400
    assert "unexpected ['junk.a0000'" in message and "(2994 more)" in message


@pytest.mark.parametrize("dtype", ["a5", "S0", "U0", "<U99999999999999999999", "<f4 ", "f4,f4",
                                   "(2,)<f4", "<V8", "<M8", "|O"])
def test_dtypes_save_never_writes_are_refused(layer_file, dtype):
    message = _refusal(tampered(
        layer_file, lambda h: h["arrays"]["layer.bias_hh_l0"].update(dtype=dtype)))
    assert "layer.bias_hh_l0" in message and "is not allowed" in message


def test_empty_arrays_do_not_lift_the_bound_on_dimensions(layer_file):
    # zero elements take no bytes, whatever the other dimensions declare
    message = _refusal(tampered(
        layer_file, lambda h: h["arrays"]["layer.bias_hh_l0"].update(shape=[0, 10**30])))
    assert "array 'layer.bias_hh_l0' declares shape" in message
    assert "larger than its entry" in message


# ------------------------------------------------------------------ generator states
def _set(path, value):
    def edit(h):
        node = h
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


MT_POSITION = ("state", "rng", 0)
MT_HAS_GAUSS = ("state", "rng", 1)
MT_GAUSS = ("state", "rng", 2)
PARAM_POSITION = ("params", "random_state", "__random_state__", 0)
PCG = ("state", "layer_rng")


@pytest.mark.parametrize("path, value, match", [
    (MT_POSITION, float("inf"), "position must be an int in \\[0, 624\\], got inf"),
    (MT_POSITION, 2**70, "position must be an int in \\[0, 624\\], got 1180591620717411303424"),
    (MT_POSITION, 10**400, "position must be an int in \\[0, 624\\], got 1000"),
    # NumPy takes these and would read outside the generator's 624 words
    (MT_POSITION, 625, "position must be an int in \\[0, 624\\], got 625"),
    (MT_POSITION, -1, "position must be an int in \\[0, 624\\], got -1"),
    (MT_POSITION, 1.5, "position must be an int"),
    (MT_POSITION, "1", "position must be an int"),
    (MT_HAS_GAUSS, 2**100, "has_gauss must be an int in \\[0, 1\\]"),
    (MT_GAUSS, 10**400, "cached gaussian is out of range"),
    (MT_GAUSS, float("nan"), "cached gaussian must be finite"),
    (PARAM_POSITION, 2**70, "parameter 'random_state': the random state's position"),
    (PCG + ("has_uint32",), 2**100, "has_uint32 must be an int in \\[0, 1\\]"),
    (PCG + ("has_uint32",), "0", "has_uint32 must be an int"),
    (PCG + ("uinteger",), -1, "uinteger must be an int in \\[0, 2\\*\\*32 - 1\\], got -1"),
    (PCG + ("uinteger",), 2**32, "uinteger must be an int in \\[0, 2\\*\\*32 - 1\\]"),
    (PCG + ("state", "state"), 2**200, "state must be an int in \\[0, 2\\*\\*128 - 1\\]"),
    (PCG + ("state", "inc"), -1, "inc must be an int in \\[0, 2\\*\\*128 - 1\\]"),
    (PCG + ("state", "inc"), None, "inc must be an int"),
    (PCG + ("state",), [1, 2], "'state' must be a JSON object"),
    (PCG + ("bit_generator",), "MT19937", "unknown bit generator 'MT19937'"),
    (PCG, {"bit_generator": "PCG64"}, "missing \\['has_uint32', 'state', 'uinteger'\\]"),
], ids=["pos-inf", "pos-2**70", "pos-1e400", "pos-625", "pos-neg", "pos-float", "pos-str",
        "has_gauss-2**100", "gauss-1e400", "gauss-nan", "param-pos-2**70", "has_uint32-2**100",
        "has_uint32-str", "uinteger-neg", "uinteger-2**32", "state-2**200", "inc-neg",
        "inc-null", "state-list", "bit_generator", "keys-missing"])
def test_generator_states_out_of_range_are_refused(estimator_file, path, value, match):
    message = _refusal(tampered(estimator_file, _set(path, value)))
    assert re.search(match, message), message


def test_a_layer_generator_state_out_of_range_is_refused(layer_file):
    message = _refusal(tampered(layer_file, _set(("state", "rng", "has_uint32"), 2**100)))
    assert "the dropout generator state: has_uint32 must be an int in [0, 1]" in message


def test_valid_generator_states_still_travel(estimator_file):
    # the bounds admit every state NumPy produces: position 624 (just seeded) and a
    # cached gaussian
    rs = np.random.RandomState(5)
    rs.standard_normal()  # leaves a cached gaussian
    _, _, pos, has_gauss, gauss = rs.get_state()
    assert has_gauss == 1
    loaded = fastlstm.load(io.BytesIO(tampered(
        estimator_file, _set(("state", "rng"), [624, has_gauss, gauss]))))
    assert loaded._rng.get_state()[2:] == (624, 1, gauss)


# ------------------------------------------------------------------ zip records
def _central_records(data):
    """Offsets of the central-directory records of a zip file."""
    offsets, start = [], data.find(b"PK\x01\x02")
    while start != -1:
        offsets.append(start)
        start = data.find(b"PK\x01\x02", start + 1)
    assert offsets
    return offsets


@pytest.mark.parametrize("value", [0xFF, 0x40])
def test_an_unknown_zip_version_needed_is_refused(layer_file, value):
    # zipfile raises NotImplementedError("zip file version ...") for these
    data = bytearray(layer_file)
    data[_central_records(layer_file)[-1] + 6] = value  # "version needed to extract"
    message = _refusal(bytes(data))
    assert "zip directory is malformed: NotImplementedError: zip file version" in message


@pytest.mark.parametrize("bit, what", [(0x20, "compressed patched data"),
                                       (0x40, "strong encryption")])
def test_unsupported_zip_flags_are_refused(layer_file, bit, what):
    # flag bits of the header.json entry zipfile refuses with NotImplementedError
    data = bytearray(layer_file)
    for offset in _central_records(layer_file):
        name_length = int.from_bytes(data[offset + 28:offset + 30], "little")
        if data[offset + 46:offset + 46 + name_length] == b"header.json":
            data[offset + 8] |= bit
    message = _refusal(bytes(data))
    assert "header.json: the file is corrupted or truncated (NotImplementedError" in message
    assert what in message


def test_a_stored_size_that_differs_from_the_content_size_is_refused(layer_file):
    data = bytearray(layer_file)
    offset = _central_records(layer_file)[0]
    size = int.from_bytes(data[offset + 20:offset + 24], "little")  # compressed size
    data[offset + 20:offset + 24] = (size + 7).to_bytes(4, "little")
    message = _refusal(bytes(data))
    assert f"declares {size + 7} stored bytes for {size} bytes of content" in message


def test_a_missing_file_raises_the_os_error(tmp_path):
    # documented: a file that cannot be opened is an OSError, not a malformed file
    with pytest.raises(FileNotFoundError):
        fastlstm.load(tmp_path / "no such model.fastlstm")
    with pytest.raises(IsADirectoryError):
        fastlstm.load(tmp_path)


# ------------------------------------------------------------------ fuzzing
def _mutations(data, rng, n):
    """``n`` copies of ``data`` with 1-4 bytes changed, half in the zip's directory."""
    directory = _central_records(data)[0]
    for _ in range(n):
        mutated = bytearray(data)
        for _ in range(rng.choice([1, 1, 1, 2, 4])):
            low = directory if rng.random() < 0.5 else 0
            pos = rng.randrange(low, len(data))
            if rng.random() < 0.7:
                mutated[pos] = rng.randrange(256)
            else:
                mutated[pos] ^= 1 << rng.randrange(8)
        yield bytes(mutated)


@pytest.mark.parametrize("which", ["layer_file", "estimator_file", "classifier_file"])
def test_byte_mutations_load_or_raise_value_error(which, request):
    data = request.getfixturevalue(which)
    rng = random.Random(20240611)
    outcomes = {"ok": 0, "ValueError": 0}
    start = time.perf_counter()
    for mutated in _mutations(data, rng, 300):
        outcomes[_outcome(mutated)] += 1  # any other exception fails the test
    assert outcomes["ValueError"] > 100  # most damage is caught
    assert time.perf_counter() - start < 30


ABSURD = [10**7, 10**400, 2**64, 2**63, -1, 0, 625, 2**32, 1e308, float("inf"),
          float("-inf"), float("nan"), True, None, "", "x" * 5000, "lstm", "float16", "<f4",
          "|O", [], [10**7], [[[]]], {}, {"a": 1}, {"__random_state__": [1, 0, 0.0]},
          {"__dict__": [[1, 10**400]]}]


def _json_paths(node, prefix=()):
    if prefix:
        yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in items:
        yield from _json_paths(value, prefix + (key,))


@pytest.mark.parametrize("which", ["layer_file", "estimator_file", "classifier_file"])
def test_header_tampering_loads_or_raises_value_error(which, request):
    data = request.getfixturevalue(which)
    entries = zip_entries(data)
    header = json.loads(entries["header.json"])
    paths = list(_json_paths(header))
    rng = random.Random(7)
    outcomes = {"ok": 0, "ValueError": 0}
    slowest = 0.0
    for _ in range(250):
        edited = copy.deepcopy(header)
        for _ in range(rng.choice([1, 1, 2, 3])):
            path = rng.choice(paths)
            with contextlib.suppress(KeyError, IndexError, TypeError):  # a path gone
                _set(path, copy.deepcopy(rng.choice(ABSURD)))(edited)
        blob = zipped({**entries, "header.json": json.dumps(edited).encode()})
        start = time.perf_counter()
        outcomes[_outcome(blob)] += 1  # any other exception fails the test
        slowest = max(slowest, time.perf_counter() - start)
    assert outcomes["ValueError"] > 150
    assert slowest < 2.0, f"one edited header took {slowest:.1f} s to load or refuse"
