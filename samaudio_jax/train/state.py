"""The train state and the frozen state, built abstract-first so that nothing large is
materialised on one host and the same code serves AOT compilation.

Three modules take part in a train step:
- the flow network (samaudio_jax.model.SAMAudioFlow): its nnx.Params train;
- the text encoder: its Params train jointly when it says `trainable` (the small encoder),
  otherwise (T5) they are frozen;
- the codec: always frozen (waveforms are encoded inside the step).

The train state is a plain dict {step, params, opt_state[, ema]} of pure-dict trees (what
Orbax saves); `params` holds {"flow": ...[, "text": ...]}. Everything else (codec weights,
frozen text weights, non-Param variables such as RNG counters) lives in the frozen dict,
which is passed to the step as an argument (never baked into the program) and never
checkpointed. Parameters are float32 masters (config.model.param_dtype); the model computes
in config.model.dtype.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from samaudio_jax.parallel import rules as rules_lib
from samaudio_jax.train import freeze
from samaudio_jax.train.optimizer import make_optimizer


def _default_flow(config, rngs):
    from samaudio_jax.model import SAMAudioFlow

    return SAMAudioFlow(config.model, rngs=rngs)


def _default_text(config, rngs):
    from samaudio_jax.text.factory import build_text_encoder

    return build_text_encoder(config.text, rngs=rngs)


def _default_codec(config):
    from samaudio_jax.codec import build_codec

    return build_codec(config.codec)


@dataclasses.dataclass(frozen=True)
class ModuleFactories:
    """How to build each module; tests may swap in small stand-ins with the same API."""

    flow: Callable = _default_flow  # (config, rngs) -> nnx.Module
    text: Callable | None = _default_text  # (config, rngs) -> TextEncoder, or None
    codec: Callable = _default_codec  # (config) -> Codec


@dataclasses.dataclass
class TrainSetup:
    """Everything static about training one config on one mesh (no arrays materialised)."""

    config: Any
    mesh: Mesh
    tx: optax.GradientTransformation
    flow_graph: Any
    text_graph: Any
    codec_graph: Any
    text_trainable: bool
    codec_info: dict  # sample_rate, hop_length, latent_dim
    empty_prompt: tuple[np.ndarray, np.ndarray] | None  # tokens of "" (ids, mask)
    abstract_state: dict  # ShapeDtypeStructs carrying their shardings
    state_shardings: dict
    abstract_frozen: dict
    frozen_shardings: dict
    factories: ModuleFactories
    _text_tokenizer: Any = None
    # Features and mask of "" for batches that carry text_features (a latent dataset's text
    # table; train.inputs sets it): conditioning dropout swaps them in.
    empty_text: tuple[np.ndarray, np.ndarray] | None = None
    trainable: Any = None  # train/freeze.py selection; None = every parameter trains

    def tokenize(self, texts):
        return self.tokenizer(texts)

    @property
    def tokenizer(self):
        """texts -> (ids, mask): a small picklable object (safe to send to worker processes)."""
        if self._text_tokenizer is None:
            raise ValueError("this config has no text encoder (config.text)")
        return self._text_tokenizer


def _split(module, trainable: bool):
    """(graphdef, trainable pure dict or None, frozen pure dict)."""
    if trainable:
        graph, params, rest = nnx.split(module, nnx.Param, ...)
        return graph, nnx.to_pure_dict(params), nnx.to_pure_dict(rest)
    graph, everything = nnx.split(module)
    return graph, None, nnx.to_pure_dict(everything)


def _logical(module, trainable: bool):
    if trainable:
        _, params, rest = nnx.split(module, nnx.Param, ...)
        return rules_lib.logical_specs(params), rules_lib.logical_specs(rest)
    _, everything = nnx.split(module)
    return None, rules_lib.logical_specs(everything)


def _abstract(tree, shardings):
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
    )


def _flow_rngs(config):
    return nnx.Rngs(params=int(config.seed), dropout=int(config.seed) + 1)


def _text_rngs(config):
    return nnx.Rngs(params=int(config.seed) + 2, dropout=int(config.seed) + 3)


def _optimizer(config, params, params_logical, param_sh, mesh: Mesh):
    """(tx, trainable, optimizer state shapes, their shardings). Freezing / LoRA: the
    optimizer sees the trainable view only (train/freeze.py), so frozen parameters get no
    optimizer state; its shardings follow the view's own."""
    rules = config.mesh.rules
    trainable = freeze.selection(params, params_logical, config.train, config.model.get("lora"))
    view = jax.eval_shape(lambda p: freeze.select(p, trainable), _abstract(params, param_sh))
    view_logical = freeze.select(params_logical, trainable, cut=False)
    view_sh = rules_lib.tree_shardings(view, view_logical, rules, mesh)
    tx_view = make_optimizer(config.train)
    tx = freeze.restrict(tx_view, trainable)
    opt_shapes = jax.eval_shape(tx_view.init, _abstract(view, view_sh))
    opt_sh = optax.tree_utils.tree_map_params(
        tx_view,
        lambda _, s: s,
        opt_shapes,
        view_sh,
        transform_non_params=lambda _: NamedSharding(mesh, PartitionSpec()),
        is_leaf=lambda x: isinstance(x, NamedSharding),
    )
    return tx, trainable, opt_shapes, opt_sh


def build_setup(config, mesh: Mesh, factories: ModuleFactories | None = None) -> TrainSetup:
    """Traces every module abstractly and derives all shardings from config.mesh.rules."""
    factories = factories or ModuleFactories()
    rules = config.mesh.rules
    with nnx.use_eager_sharding(False):
        flow = nnx.eval_shape(lambda: factories.flow(config, _flow_rngs(config)))
        text = (
            nnx.eval_shape(lambda: factories.text(config, _text_rngs(config)))
            if factories.text is not None
            else None
        )
        codec = nnx.eval_shape(lambda: factories.codec(config))
    text_trainable = bool(text is not None and getattr(text, "trainable", False))

    flow_graph, flow_params, flow_rest = _split(flow, True)
    flow_logical, flow_rest_logical = _logical(flow, True)
    params = {"flow": flow_params}
    params_logical = {"flow": flow_logical}
    frozen = {"flow": flow_rest}
    frozen_logical = {"flow": flow_rest_logical}
    text_graph = None
    if text is not None:
        text_graph, text_params, text_rest = _split(text, text_trainable)
        text_logical, text_rest_logical = _logical(text, text_trainable)
        if text_trainable:
            params["text"] = text_params
            params_logical["text"] = text_logical
        frozen["text"] = text_rest
        frozen_logical["text"] = text_rest_logical
    codec_graph, _, codec_state = _split(codec, False)
    frozen["codec"] = codec_state
    frozen_logical["codec"] = _logical(codec, False)[1]

    param_sh = rules_lib.tree_shardings(params, params_logical, rules, mesh)
    frozen_sh = rules_lib.tree_shardings(frozen, frozen_logical, rules, mesh)

    tx, trainable, opt_shapes, opt_sh = _optimizer(config, params, params_logical, param_sh, mesh)
    replicated = NamedSharding(mesh, PartitionSpec())
    state_sh = {"step": replicated, "params": param_sh, "opt_state": opt_sh}
    state_shapes = {
        "step": jax.ShapeDtypeStruct((), jnp.int32),
        "params": params,
        "opt_state": opt_shapes,
    }
    if config.train.ema_decay > 0:
        state_sh["ema"] = param_sh
        state_shapes["ema"] = params

    empty_prompt = None
    tokenizer = None
    if text is not None:
        # The picklable tokenizer (no weights, no mesh): Grain workers get it.
        tokenizer = text.host_tokenizer()
        empty_prompt = tuple(np.asarray(a)[0] for a in text.tokenize([""]))

    return TrainSetup(
        config=config,
        mesh=mesh,
        tx=tx,
        flow_graph=flow_graph,
        text_graph=text_graph,
        codec_graph=codec_graph,
        text_trainable=text_trainable,
        codec_info={
            "sample_rate": int(codec.sample_rate),
            "hop_length": int(codec.hop_length),
            "latent_dim": int(codec.latent_dim),
        },
        empty_prompt=empty_prompt,
        abstract_state=_abstract(state_shapes, state_sh),
        state_shardings=state_sh,
        abstract_frozen=_abstract(frozen, frozen_sh),
        frozen_shardings=frozen_sh,
        factories=factories,
        _text_tokenizer=tokenizer,
        trainable=trainable,
    )


def init_state(setup: TrainSetup) -> dict:
    """The initial train state, created inside one jit straight into its shardings."""
    config, factories, tx = setup.config, setup.factories, setup.tx
    text_trainable = setup.text_trainable

    def create():
        with nnx.use_eager_sharding(False):
            flow = factories.flow(config, _flow_rngs(config))
            params = {"flow": _split(flow, True)[1]}
            if text_trainable:
                text = factories.text(config, _text_rngs(config))
                params["text"] = _split(text, True)[1]
        state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
        if config.train.ema_decay > 0:
            state["ema"] = jax.tree.map(jnp.copy, params)
        return state

    return jax.jit(create, out_shardings=setup.state_shardings)()


def init_frozen(setup: TrainSetup) -> dict:
    """Frozen weights: built on the host (codec and T5 load checkpoints there), then placed."""
    config, factories = setup.config, setup.factories
    frozen = {}
    with nnx.use_eager_sharding(False):
        # Non-Param flow variables (e.g. RNG counters) are cheap: build them in a jit.
        frozen["flow"] = jax.jit(
            lambda: _split(factories.flow(config, _flow_rngs(config)), True)[2],
            out_shardings=setup.frozen_shardings["flow"],
        )()
        if setup.text_graph is not None:
            text = factories.text(config, _text_rngs(config))
            frozen["text"] = _place(
                _split(text, setup.text_trainable)[2], setup.frozen_shardings["text"]
            )
        codec = factories.codec(config)
        frozen["codec"] = _place(_split(codec, False)[2], setup.frozen_shardings["codec"])
    return frozen


def _place(tree, shardings):
    """Host (or single-device) values onto their global shardings; same value on every host."""

    def one(x, s):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(
                jax.device_put(np.asarray(jax.random.key_data(x)), s), impl=jax.random.key_impl(x)
            )
        return jax.device_put(np.asarray(x), s)

    return jax.tree.map(one, tree, shardings)


def param_count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
