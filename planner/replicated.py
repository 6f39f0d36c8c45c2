"""A row kernel compiled once for one host device and run on all of them at once, each device on
its own share of the rows (XLA replicas: one program, `num_replicas` = devices, no partitioning).

The search splits its hardware rows over one host device per core. Written as a `shard_map` over a
mesh of those devices, the kernel was compiled as an SPMD program: XLA ran the Shardy partitioner
over the whole module, and tracing, lowering and compiling it took 7.3-7.5 s of CPU on 2 cores
where the one-device kernel takes ~6.0 s. Nothing in the kernel talks across devices, so the rows can
run as replicas of the one-device program instead (docs/speed-log.md, thirty-third session). JAX
no longer builds replicated (pmap-style) programs, so this module compiles and calls the XLA
executable itself:
- `Spec` is what a kernel maker gives `executables.compiled` instead of a `jax.jit` function: the
  jitted one-device kernel, the device count, and which top-level arguments are split by rows (the
  others go whole to every device);
- `lower` traces it at one device's share of the rows; `Lowered.compile` compiles the replicas;
- `Replicated` places the arguments (split ones by rows over the devices, as the `shard_map`
  kernel took them), runs every replica, and returns the outputs as arrays sharded by rows over
  the devices: the values, types and shardings the `shard_map` kernel returned (tests/test_replicated.py);
- `Replicated.state` / `from_state` are its serialized form for the kernel cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

SINCE_JAXLIB = (0, 10, 2)  # the first jaxlib measured; its private APIs used here may differ before


@cache
def available() -> bool:
    """Whether this JAX has what the replicas use (else the caller keeps its `shard_map` kernel)."""
    try:
        import jaxlib
        from jax._src import compiler  # noqa: F401
        from jax._src.interpreters import mlir  # noqa: F401
        from jaxlib._jax import DeviceList  # noqa: F401

        return tuple(int(part) for part in jaxlib.__version__.split(".")[:3]) >= SINCE_JAXLIB
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Spec:
    kernel: Any  # jax.jit of the one-device kernel
    devices: int
    split: tuple[int, ...]  # positions of the top-level arguments split by rows (leading axis)


def one_device_share(args: tuple[Any, ...], spec: Spec) -> tuple[Any, ...]:
    """Abstract arguments of one device: split arguments with 1/devices of their rows."""
    import jax

    def share(x):
        x = np.asarray(x) if not hasattr(x, "shape") else x
        return jax.ShapeDtypeStruct((x.shape[0] // spec.devices, *x.shape[1:]), x.dtype)

    return tuple(jax.tree_util.tree_map(share, a) if i in spec.split else a for i, a in enumerate(args))


def _options(devices: list[Any], overrides: dict[str, Any]) -> Any:
    from jax._src import compiler

    options = compiler.get_compile_options(num_replicas=len(devices), num_partitions=1, device_assignment=devices)
    options.env_option_overrides = list(overrides.items())
    return options


def lower(spec: Spec, args: tuple[Any, ...]) -> Lowered:
    """Trace and lower the one-device kernel at one device's share of `args`."""
    lowered = spec.kernel.trace(*one_device_share(args, spec)).lower()
    computation = lowered._lowering  # noqa: SLF001 - the lowered module and the inputs it kept
    return Lowered(spec, computation.stablehlo(), tuple(sorted(computation.compile_args["kept_var_idx"])),
                   lowered.in_tree, lowered.out_tree)


@dataclass(frozen=True)
class Lowered:
    spec: Spec
    module: Any  # StableHLO
    kept: tuple[int, ...]  # the flat inputs the module takes (JAX drops unused ones)
    in_tree: Any
    out_tree: Any

    def compile(self, compiler_options: dict[str, Any] | None = None) -> Replicated:
        """Replicas on the first `spec.devices` host devices, with these XLA options (as `jax.stages.Lowered`)."""
        import jax
        from jax._src.interpreters import mlir
        from jaxlib._jax import DeviceList

        overrides = dict(compiler_options or {})
        devices = jax.devices()[:self.spec.devices]
        exe = devices[0].client.compile_and_load(mlir.module_to_bytecode(self.module), DeviceList(tuple(devices)),
                                                 _options(devices, overrides))
        return Replicated(exe, devices, self.in_tree, self.out_tree, self.kept, self.spec.split, overrides)


class Replicated:
    """The compiled replicas and how to call them (see the module docstring)."""

    def __init__(self, exe: Any, devices: list[Any], in_tree: Any, out_tree: Any, kept: tuple[int, ...],
                 split: tuple[int, ...], overrides: dict[str, Any]) -> None:
        import jax
        from jax.sharding import Mesh, NamedSharding
        from jax.sharding import PartitionSpec as P

        self.exe, self.devices, self.in_tree, self.out_tree = exe, devices, in_tree, out_tree
        self.kept, self.split, self.overrides = kept, split, overrides
        mesh = Mesh(np.asarray(devices), ("hw",))
        self.by_rows, whole = NamedSharding(mesh, P("hw")), NamedSharding(mesh, P())
        # each kept input's sharding: in_tree is ((args...), {}), its first child one tree per argument
        by_rows = [i in split for i, arg in enumerate(in_tree.children()[0].children()) for _ in range(arg.num_leaves)]
        self.shardings = [self.by_rows if by_rows[i] else whole for i in kept]
        self._jax = jax

    def __call__(self, *args: Any) -> Any:
        jax = self._jax
        flat, tree = jax.tree_util.tree_flatten((args, {}))  # as traced: the arguments and no keywords
        if tree != self.in_tree:
            raise TypeError(f"arguments of another structure than the kernel's: {tree} != {self.in_tree}")
        placed = jax.device_put([flat[i] for i in self.kept], self.shardings)
        results = self.exe.execute_sharded(placed).disassemble_into_single_device_arrays()
        outputs = [jax.make_array_from_single_device_arrays((len(parts) * parts[0].shape[0], *parts[0].shape[1:]),
                                                            self.by_rows, parts) for parts in results]
        return jax.tree_util.tree_unflatten(self.out_tree, outputs)

    def state(self) -> tuple[Any, ...]:
        """What `from_state` needs to load it back (the device ids are stored by the caller)."""
        return (self.devices[0].client.serialize_executable(self.exe), self.in_tree, self.out_tree, self.kept,
                self.split, dict(self.overrides))


def from_state(state: tuple[Any, ...], devices: list[Any]) -> Replicated:
    from jaxlib._jax import DeviceList

    serialized, in_tree, out_tree, kept, split, overrides = state
    exe = devices[0].client.deserialize_executable(serialized, DeviceList(tuple(devices)), _options(devices, overrides))
    return Replicated(exe, devices, in_tree, out_tree, kept, split, overrides)
