"""The row kernel run as replicas of its one-device program (planner/replicated.py): the same
answer, in the same sharded arrays, as the SPMD kernel it replaces, through the kernel cache too."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding

from planner import replicated
from planner.catalog import load_catalog
from planner.executables import CPU_COMPILER_OPTIONS
from planner.grid import build_grid
from planner.search import ROW_SPLIT, _row_kernel, model_flags, row_kernel_inputs, row_kernel_maker
from tests.test_executables import _small

pytestmark = pytest.mark.skipif(len(jax.devices()) < 2 or jax.default_backend() != "cpu",
                                reason="replicas need two host devices")


@pytest.fixture(scope="module")
def kernel_and_args():
    grid = build_grid(_small(), load_catalog())
    devices, _, args = row_kernel_inputs(grid)
    dense, absent, _ = model_flags(grid)
    spec = row_kernel_maker(devices, dense, absent, True)
    assert isinstance(spec, replicated.Spec) and spec.split == ROW_SPLIT
    compiled = replicated.lower(spec, args).compile(compiler_options=CPU_COMPILER_OPTIONS)
    spmd = _row_kernel(devices, dense, absent, True).trace(*args).lower().compile(compiler_options=CPU_COMPILER_OPTIONS)
    return compiled, spmd, args


def test_replicas_answer_as_the_sharded_kernel_in_the_same_arrays(kernel_and_args):
    compiled, spmd, args = kernel_and_args
    ours, theirs = compiled(*args), spmd(*args)
    assert set(ours) == set(theirs)
    for key in theirs:
        assert ours[key].shape == theirs[key].shape and ours[key].dtype == theirs[key].dtype, key
        assert isinstance(ours[key].sharding, NamedSharding)
        assert ours[key].sharding.is_equivalent_to(theirs[key].sharding, ours[key].ndim), key
        np.testing.assert_array_equal(np.asarray(ours[key]), np.asarray(theirs[key]), err_msg=key)


def test_each_device_runs_its_own_rows(kernel_and_args):
    """Device d's share of the outputs comes from its share of the rows: swapping the two halves of
    the split inputs swaps the two halves of every output."""
    compiled, _, args = kernel_and_args
    def swapped(x):
        x = np.asarray(x)
        return np.concatenate([x[x.shape[0] // 2:], x[:x.shape[0] // 2]])

    turned = tuple(jax.tree_util.tree_map(swapped, a) if i in ROW_SPLIT else a for i, a in enumerate(args))
    straight, crossed = compiled(*args), compiled(*turned)
    for key, value in straight.items():
        np.testing.assert_array_equal(swapped(np.asarray(value)), np.asarray(crossed[key]), err_msg=key)


def test_replicas_load_back_from_their_state(kernel_and_args):
    compiled, _, args = kernel_and_args
    loaded = replicated.from_state(compiled.state(), compiled.devices)
    first, again = compiled(*args), loaded(*args)
    for key, value in first.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(again[key]), err_msg=key)


def test_arguments_of_another_structure_are_refused(kernel_and_args):
    compiled, _, args = kernel_and_args
    with pytest.raises(TypeError, match="structure"):
        compiled(*args[:-1])


def test_without_the_replicas_apis_the_row_kernel_stays_the_shard_map_program(monkeypatch):
    monkeypatch.setattr(replicated, "available", lambda: False)
    kernel = row_kernel_maker(2, True)
    assert not isinstance(kernel, replicated.Spec) and kernel is _row_kernel(2, True, (), False)
    monkeypatch.undo()
    assert isinstance(row_kernel_maker(2, True), replicated.Spec) and not isinstance(row_kernel_maker(1, True), replicated.Spec)
