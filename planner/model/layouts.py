"""Parallel layouts: where each part of the model lives, and what moving activations between chips costs.

An instance (one model replica) runs on `chips = pp x dp_attention x tp` chips; a system may hold
`replicas` such instances. Inside one pipeline stage (`dp_attention x tp` chips; tp never spans
scale-up domains, and a stage does only when its MoE layers are expert parallel over several nodes,
"wide EP" as DeepSeek and SGLang deploy it):
- attention is tensor parallel over `tp` ranks, repeated in `dp_attention` groups that each hold
  whole sequences (so KV is not replicated across groups; MLA keeps one latent copy per group);
- MoE layers spread the experts over `ep` ranks (expert parallel, ep = the stage width) or split
  every expert over the stage (tensor parallel, ep = 1); dense MLPs are tensor parallel over the stage;
- `cp` (decode context parallelism, vLLM DCP / TensorRT-LLM Helix) shards the KV of one sequence
  over the tp ranks that would otherwise hold copies of it.
Stages are pipelined across scale-up domains (nodes). Every term below is bytes over a link plus a
latency per message, with the link taken from the catalog (scale-up inside a domain, the instance's
NICs between domains).
"""

from __future__ import annotations

import jax.numpy as jnp

from planner.model.precision import wider_extra_bytes
from planner.model.types import Arch, Config, Hw

BF16 = 2.0
DISPATCH_BYTES_LOW = 1.0 + 4.0 / 128.0
"""Bytes per element of an expert-parallel dispatch when the GEMMs run in 8 bits or less: FP8 with
one FP32 scale per 128 values; the combine stays BF16 (DeepSeek-V3 technical report, arXiv
2412.19437, section 3.3: FP8 dispatch, BF16 combine)."""


def layout(hw: Hw, cfg: Config, a: Arch) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(attention tensor-parallel ranks, pipeline stages) of the configuration."""
    return cfg.tp, cfg.pp


def stage_width(cfg: Config) -> jnp.ndarray:
    """Chips in one pipeline stage: the dense-MLP tensor-parallel width and the expert-parallel span."""
    return cfg.tp * cfg.dp_attn


def nodes_per_instance(hw: Hw, cfg: Config) -> jnp.ndarray:
    """Scale-up domains one instance spans (stages are packed into domains; a stage spans several
    only with expert parallelism across nodes)."""
    return jnp.ceil(cfg.chips / jnp.maximum(hw.domain, 1.0) - 1e-6)


def kv_copies(a: Arch, cfg: Config) -> jnp.ndarray:
    """Attention ranks that hold the same KV: tp beyond the KV-head count (GQA), or every tp rank (MLA)."""
    heads = jnp.where(a.kv_shardable > 0, a.kv_heads, 1.0)
    return cfg.tp / jnp.minimum(cfg.tp, heads)


def kv_share_per_chip(a: Arch, hw: Hw, cfg: Config) -> jnp.ndarray:
    """Fraction of the instance's KV cache one chip stores: split by KV heads over tp, the remaining
    copies sharded by context parallelism, layers over pipeline stages, sequences over attention-DP groups."""
    copies = kv_copies(a, cfg)
    head_split = cfg.tp / copies
    return 1.0 / (head_split * jnp.minimum(cfg.cp, copies) * cfg.pp * cfg.dp_attn)


def expert_weight_bytes(a: Arch, weight_bytes_per_param) -> jnp.ndarray:
    return a.experts_routed * a.params_expert * weight_bytes_per_param


def weights_per_chip(a: Arch, cfg: Config, total_bytes) -> jnp.ndarray:
    """Weights one chip holds: routed experts spread over the whole stage; attention, dense layers,
    embeddings and the LM head split over tp and repeated in every attention-DP group."""
    experts = expert_weight_bytes(a, cfg.weight_bytes)
    return ((total_bytes - experts) / cfg.tp + experts / stage_width(cfg)) / cfg.pp


def weight_stream_per_chip(a: Arch, cfg: Config, linear_bytes, other_bytes) -> jnp.ndarray:
    """Weight bytes a chip reads per decode step. `linear_bytes` are the quantised matrices touched
    (dense part + touched experts), `other_bytes` the LM head (`precision.lm_head_bytes`). With pipeline stages every
    micro-batch re-reads its stage's weights, so a chip streams its tp share of all stages."""
    experts = linear_bytes - a.params_dense * cfg.weight_bytes - wider_extra_bytes(a, cfg.weight_bytes, cfg.dense_weight_bytes)
    return (linear_bytes - experts + other_bytes) / cfg.tp + experts / stage_width(cfg)


def allreduce_time(hw: Hw, ranks, message_bytes) -> jnp.ndarray:
    """One ring all-reduce over `ranks` chips: latency + 2 (r-1)/r of the message over the slowest
    hop of the ring: the scale-up link inside one domain, the chips' NICs once it spans domains."""
    link = jnp.where(ranks > hw.domain, hw.scale_out_bw, hw.link_bw)
    ring = message_bytes * 2.0 * (ranks - 1.0) / ranks / (jnp.maximum(hw.link_eff * link, 1.0))
    return jnp.where(ranks > 1, hw.allreduce_latency_s + ring, 0.0)


def peer_split(hw: Hw, ranks) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Of the `ranks` - 1 other ranks of an all-to-all, the fractions of all `ranks` that sit in
    this chip's scale-up domain and outside it (the stage's ranks fill whole domains)."""
    inside = jnp.minimum(ranks, jnp.maximum(hw.domain, 1.0))
    return (inside - 1.0) / ranks, (ranks - inside) / ranks


def tensor_parallel_time(a: Arch, hw: Hw, cfg: Config, tokens) -> jnp.ndarray:
    """Two all-reduces of the hidden state per layer: after attention over the tp ranks of a group
    (its share of the tokens), after the MLP over the whole stage (all tokens). MoE layers with
    expert parallelism replace the second by the all-to-all (`expert_parallel_time`)."""
    msg = tokens * a.hidden * BF16
    attention = a.layers * allreduce_time(hw, cfg.tp, msg / cfg.dp_attn)
    mlp_layers = a.layers - jnp.where(cfg.ep > 1, a.moe_layers, 0.0)
    return attention + mlp_layers * allreduce_time(hw, stage_width(cfg), msg)


def routing_imbalance(a: Arch, cfg: Config, tokens) -> jnp.ndarray:
    """Routes the busiest EP rank receives, relative to the mean. Uniform routing of R = tokens x k
    routes over ep ranks is multinomial; its maximum is about mean + sqrt(2 ln ep) standard
    deviations (Gaussian extreme value), i.e. 1 + sqrt(2 ln(ep) (ep - 1) / R). Real routers are
    skewed beyond that: `cfg.expert_imbalance` (scenario parameter) multiplies it."""
    ep = jnp.maximum(cfg.ep, 1.0)
    routes = jnp.maximum(tokens * a.experts_active, 1.0)
    uniform = jnp.minimum(1.0 + jnp.sqrt(2.0 * jnp.log(ep) * (ep - 1.0) / routes), ep)
    return uniform * cfg.expert_imbalance


def busiest_rank_skew(a: Arch, cfg: Config, tokens) -> jnp.ndarray:
    """Expert GEMM work of the busiest expert-parallel rank relative to the mean rank's: the step
    waits for the rank whose experts received the most routes (`routing_imbalance`). Experts split
    over the stage by tensor parallelism (ep = 1) share every expert's rows evenly: 1."""
    return jnp.where(cfg.ep > 1, routing_imbalance(a, cfg, tokens), 1.0)


def expert_parallel_time(a: Arch, hw: Hw, cfg: Config, tokens) -> jnp.ndarray:
    """All-to-all dispatch and combine per MoE layer: every token goes to k experts, (ep-1)/ep of
    them on other ranks; each rank sends the routes of its share of the tokens (tokens / stage width)
    and the busiest rank receives `routing_imbalance` x the mean. Dispatch in FP8 when the GEMMs run in 8 bits or less, combine BF16.
    Routes to ranks in the chip's scale-up domain cross the scale-up link; with EP over several
    domains the rest cross the chip's NIC at the same time (DeepEP's internode kernels), so the
    slower of the two binds."""
    ep = jnp.maximum(cfg.ep, 1.0)
    dispatch = jnp.where(cfg.gemm_flops_sel > 0, DISPATCH_BYTES_LOW, BF16)
    routes = tokens / stage_width(cfg) * a.experts_active * a.hidden * (dispatch + BF16) * routing_imbalance(a, cfg, tokens)
    near, far = peer_split(hw, ep)
    t_near = routes * near / jnp.maximum(hw.link_eff * hw.link_bw, 1.0)
    t_far = routes * far / jnp.maximum(hw.link_eff * hw.scale_out_bw, 1.0)
    per_layer = 2.0 * hw.allreduce_latency_s + jnp.maximum(t_near, t_far)
    return jnp.where(cfg.ep > 1, a.moe_layers * per_layer, 0.0)


def pipeline_hop_time(a: Arch, hw: Hw, cfg: Config, tokens) -> jnp.ndarray:
    """Activations handed from stage to stage: (pp - 1) hops of tokens x hidden; hops between scale-up
    domains cross the scale-out network (the instance's NICs), the others the scale-up link."""
    msg = tokens * a.hidden * BF16
    out_hops = jnp.minimum(nodes_per_instance(hw, cfg), cfg.pp) - 1.0
    in_hops = jnp.maximum(cfg.pp - 1.0 - out_hops, 0.0)
    bw_in = jnp.maximum(hw.link_eff * hw.link_bw, 1.0)
    bw_out = jnp.maximum(hw.link_eff * hw.scale_out_bw, 1.0)
    return (cfg.pp - 1.0) * hw.allreduce_latency_s + msg * (in_hops / bw_in + out_hops / bw_out)


def context_parallel_time(a: Arch, hw: Hw, cfg: Config, tokens) -> jnp.ndarray:
    """Context parallelism: each of the cp ranks attends over its slice of the KV, so per layer the
    queries are gathered and the partial outputs (with their softmax statistics) combined: two
    exchanges of (cp-1)/cp of the group's tokens x hidden (Helix / vLLM DCP)."""
    msg = tokens / cfg.dp_attn * a.hidden * BF16 * (cfg.cp - 1.0) / jnp.maximum(cfg.cp, 1.0)
    per_layer = 2.0 * (hw.allreduce_latency_s + msg / (jnp.maximum(hw.link_eff * hw.link_bw, 1.0)))
    return jnp.where(cfg.cp > 1, a.layers * per_layer, 0.0)


def collective_time(a: Arch, hw: Hw, cfg: Config, tokens) -> jnp.ndarray:
    """Every communication of one forward pass over `tokens` tokens of the instance."""
    return (tensor_parallel_time(a, hw, cfg, tokens) + expert_parallel_time(a, hw, cfg, tokens)
            + pipeline_hop_time(a, hw, cfg, tokens) + context_parallel_time(a, hw, cfg, tokens))


def pipeline_fill(cfg: Config, chunks) -> jnp.ndarray:
    """Prefill through pp stages as a pipeline: with the prompt cut into `chunks`, the stages work
    concurrently except while the pipeline fills and drains, so the compute takes
    (chunks + pp - 1) / chunks x the time of all chunks on one stage's share of the work."""
    return (chunks + cfg.pp - 1.0) / chunks


def attention_spread(cfg: Config, seqs) -> jnp.ndarray:
    """Attention of `seqs` sequences (prompts in prefill, running requests in decode) runs only on
    the attention-DP groups that hold them: the factor by which it is slower than if every chip of
    the instance worked on it (dp / seqs while some groups have none, else 1)."""
    return cfg.dp_attn / jnp.clip(seqs, 1.0, cfg.dp_attn)
