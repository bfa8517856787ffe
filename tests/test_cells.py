"""The cell registry: each cell's spec matches its kernels, PyTorch and ONNX."""

import numpy as np
import pytest

import fastlstm
from fastlstm import _kernels
from fastlstm.nn import registry


def test_the_shipped_cells_are_registered_once():
    assert registry.names() == ("lstm", "rnn", "gru")
    assert registry.layer_class("lstm") is fastlstm.LSTM
    assert registry.layer_class("rnn") is fastlstm.RNN
    assert registry.layer_class("gru") is fastlstm.GRU
    with pytest.raises(ValueError, match="registered already"):
        registry.register(type("Other", (fastlstm.RNN,), {}))


@pytest.mark.parametrize("name", [None, "gruu", ["lstm"], 3])
def test_an_unknown_cell_is_refused_naming_the_choices(name):
    with pytest.raises(ValueError, match=r"unknown cell .*'lstm', 'rnn', 'gru'"):
        registry.layer_class(name)
    with pytest.raises(ValueError, match="cell"):
        fastlstm.LSTMRegressor(cell=name).fit(np.zeros((4, 3, 1)), np.zeros(4))


@pytest.mark.parametrize("name", ["lstm", "rnn", "gru"])
def test_a_spec_matches_its_kernels_and_layer(name):
    spec = registry.spec(name)
    k = _kernels.load()
    if spec.packed:  # the packed kernels know the cell by this code
        assert spec.kernel_code == getattr(k, f"CELL_{name.upper()}")
    else:
        assert not hasattr(k, f"CELL_{name.upper()}")
    layer = registry.layer_class(name)(3, 5, random_state=0)
    assert layer.spec is spec
    assert layer.state_dict()["weight_ih_l0"].shape == (spec.gates * 5, 3)
    _, state = layer.forward(np.zeros((2, 4, 3), dtype=np.float32))
    assert len(state if isinstance(state, tuple) else (state,)) == len(spec.states)


def test_the_onnx_gate_order_is_a_permutation_of_the_gates():
    for name in registry.names():
        spec = registry.spec(name)
        assert sorted(spec.onnx_gate_order) == list(range(spec.gates))
        a = np.arange(spec.gates * 2)
        assert sorted(spec.to_onnx_order(a, 2).tolist()) == a.tolist()


def test_torch_classes_exist_and_take_the_spec_arguments():
    torch = pytest.importorskip("torch")
    for name in registry.names():
        spec = registry.spec(name)
        module = getattr(torch.nn, spec.torch_class)(3, 5, **spec.torch_kwargs)
        assert module.weight_ih_l0.shape == (spec.gates * 5, 3)
