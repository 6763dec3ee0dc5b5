"""The engine's vocabulary is the one table of names: every other list of names agrees with it."""
import pytest

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import _engine as E
from fastmlp._stochastic_optimizers import TORCH_DEFAULTS


def test_codes_are_distinct_within_each_table():
    for table in (E.ACTIVATION_CODES, E.HIDDEN_ACTIVATIONS, E.LOSS_CODES, E.SOLVERS):
        assert len(set(table.values())) == len(table)


def test_the_estimators_accept_exactly_the_vocabularys_names():
    for cls in (MLPClassifier, MLPRegressor):
        constraints = cls._parameter_constraints
        assert constraints["activation"][0].options == set(E.HIDDEN_ACTIVATIONS)
        assert constraints["solver"][0].options == {"lbfgs", *E.SOLVERS}


def test_every_torch_solver_has_defaults_and_a_code():
    assert set(TORCH_DEFAULTS) == set(E.SOLVERS) - {"sgd", "adam", "ftrl"}  # ftrl is Keras's


def test_output_pairs_name_known_codes():
    for activation, loss in E.OUTPUT_LOSSES.values():
        assert activation in E.ACTIVATION_CODES.values()
        assert loss in E.LOSS_CODES.values()
    for (out_activation, _), loss in E.OTHER_LOSSES.items():
        assert out_activation in E.OUTPUT_LOSSES
        assert loss in E.LOSS_CODES.values()


@pytest.mark.parametrize("name", sorted(E.HIDDEN_ACTIVATIONS))
def test_every_hidden_activation_builds_a_network(name):
    k = 2 if name == "maxout" else 1  # maxout's default pieces per unit
    network = E.Network([3, 4, 2], name, "softmax")
    assert network.n_params == (3 * 4 + 4) * k + 4 * 2 + 2
