"""Parallel layouts (#12): each communication term against its hand-derived formula, memory per chip
by layout, the layouts the grid enumerates, and what plans and `eval` say about them."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import with_dotted

from planner import io, paths
from planner.catalog import load_catalog
from planner.evaluation import case_from_dict, evaluate_cases
from planner.grid import Layout, build_grid, layouts_for
from planner.lowering import config_arrays, hardware_arrays, model_arrays
from planner.model import layouts as L
from planner.model import numpy_reference
from planner.schema import Scenario

CATALOG = load_catalog()
EXAMPLES = int(os.environ.get("PLANNER_PROPERTY_EXAMPLES", "12"))


def hw(acc_id: str = "h200-sxm", **changes):
    changes.setdefault("link_eff", 1.0)  # the hand-derived figures below use the link's full bandwidth
    row = hardware_arrays([CATALOG.accelerator(acc_id)], CATALOG)
    return row._replace(**{k: np.asarray([v], np.float32) for k, v in changes.items()})


def cfg(chips: int, **layout):
    return config_arrays(chips=chips, batch=1, weight_dtype=layout.pop("weight_dtype", "bf16"), kv_dtype="bf16",
                         **layout)


def arch(model_id: str):
    return model_arrays(CATALOG.model(model_id))


def f(x) -> float:
    return float(np.ravel(x)[0])


# ---------------------------------------------------------------- communication terms, by hand

def test_tensor_parallel_all_reduce_is_latency_plus_ring_bytes():
    """Llama-3.1-70B (80 layers, hidden 8192) on tp8: two ring all-reduces per layer, each
    latency + T x 8192 x 2 B x 2 x 7/8 / link."""
    a, h = arch("llama-3.1-70b"), hw(link_bw=400e9, allreduce_latency_s=6e-6)
    tokens = 1000.0
    ring = tokens * 8192 * 2 * 2 * 7 / 8 / 400e9
    expected = 2 * 80 * (6e-6 + ring)
    assert f(L.tensor_parallel_time(a, h, cfg(8, tp=8), tokens)) == pytest.approx(expected, rel=1e-5)
    # the bytes term doubles with the tokens and halves with the link; tp1 moves nothing
    bytes_part = f(L.tensor_parallel_time(a, h, cfg(8, tp=8), tokens)) - 2 * 80 * 6e-6
    twice = f(L.tensor_parallel_time(a, h, cfg(8, tp=8), 2 * tokens)) - 2 * 80 * 6e-6
    faster = f(L.tensor_parallel_time(a, hw(link_bw=800e9, allreduce_latency_s=6e-6), cfg(8, tp=8), tokens)) - 2 * 80 * 6e-6
    assert twice == pytest.approx(2 * bytes_part, rel=1e-5) and faster == pytest.approx(bytes_part / 2, rel=1e-5)
    half_eff = hw(link_bw=400e9, allreduce_latency_s=6e-6, link_eff=0.5)  # the family's achieved fraction
    assert f(L.tensor_parallel_time(a, half_eff, cfg(8, tp=8), tokens)) - 2 * 80 * 6e-6 == pytest.approx(2 * bytes_part, rel=1e-5)
    assert f(L.tensor_parallel_time(a, h, cfg(1, tp=1), tokens)) == 0.0


def test_attention_data_parallel_reduces_only_the_mlp_over_the_stage():
    """DeepSeek-V3 with dp-attention 8 and ep 8: no attention all-reduce (tp1), the 3 dense layers'
    MLP reduced over all 8 ranks, the 58 MoE layers go through the all-to-all instead."""
    a, h = arch("deepseek-v3"), hw(link_bw=450e9, allreduce_latency_s=5.9e-6)
    tokens = 64.0
    per_layer = 5.9e-6 + tokens * 7168 * 2 * 2 * 7 / 8 / 450e9
    got = f(L.tensor_parallel_time(a, h, cfg(8, tp=1, dp_attn=8, ep=8), tokens))
    assert got == pytest.approx(3 * per_layer, rel=1e-5)


def test_expert_all_to_all_moves_k_routes_per_token_with_the_imbalance():
    """DeepSeek-V3 (k = 8, hidden 7168) on ep8, BF16 GEMMs: each rank sends T/8 tokens x 8 routes x
    7/8 remote x 7168 x (2 B dispatch + 2 B combine), times the busiest rank's share
    1 + sqrt(2 ln 8 x 7 / (T x 8)), per MoE layer (58), plus two latencies per layer."""
    a, h = arch("deepseek-v3"), hw(link_bw=450e9, allreduce_latency_s=5.9e-6)
    tokens = 512.0
    uniform = 1 + np.sqrt(2 * np.log(8) * 7 / (tokens * 8))
    moved = tokens / 8 * 8 * 7 / 8 * 7168 * 4 * uniform
    expected = 58 * (2 * 5.9e-6 + moved / 450e9)
    layout = dict(tp=8, ep=8)
    assert f(L.expert_parallel_time(a, h, cfg(8, **layout), tokens)) == pytest.approx(expected, rel=1e-4)
    # FP8 GEMMs dispatch in FP8 (1 B + a 4 B scale per 128): the bytes term shrinks to (1 + 1/32 + 2) / 4
    fp8 = f(L.expert_parallel_time(a, h, cfg(8, weight_dtype="fp8", **layout), tokens)) - 58 * 2 * 5.9e-6
    assert fp8 == pytest.approx((expected - 58 * 2 * 5.9e-6) * (3 + 1 / 32) / 4, rel=1e-4)
    # a skewed router (scenario parameter) multiplies the bytes on the busiest rank
    skewed = f(L.expert_parallel_time(a, h, cfg(8, expert_imbalance=1.5, **layout), tokens)) - 58 * 2 * 5.9e-6
    assert skewed == pytest.approx(1.5 * (expected - 58 * 2 * 5.9e-6), rel=1e-4)
    assert f(L.expert_parallel_time(a, h, cfg(8, tp=8), tokens)) == 0.0  # experts tensor parallel: no all-to-all


def test_wide_expert_parallelism_across_nodes_is_bound_by_the_nic():
    """DeepSeek-V3 on ep16 over two 8-GPU nodes (dp-attention 16): of the 16 ranks, 7 others share
    the chip's node (NVLink) and 8 sit in the other node (its NIC); both carry their routes at once,
    so the slower binds. The 3 dense layers' MLP all-reduce over all 16 ranks is a ring through the
    NICs. Inside one node (ep8) nothing crosses the NIC."""
    a = arch("deepseek-v3")
    h = hw(link_bw=450e9, scale_out_bw=50e9, allreduce_latency_s=5.9e-6)
    tokens = 512.0
    wide = cfg(16, tp=1, dp_attn=16, ep=16)
    uniform = 1 + np.sqrt(2 * np.log(16) * 15 / (tokens * 8))
    routes = tokens / 16 * 8 * 7168 * 4 * uniform  # BF16 dispatch + combine
    near, far = routes * 7 / 16 / 450e9, routes * 8 / 16 / 50e9
    assert far > near
    assert f(L.expert_parallel_time(a, h, wide, tokens)) == pytest.approx(58 * (2 * 5.9e-6 + far), rel=1e-4)
    # a faster NIC shortens it until NVLink binds
    fast = hw(link_bw=450e9, scale_out_bw=4000e9, allreduce_latency_s=5.9e-6)
    assert f(L.expert_parallel_time(a, fast, wide, tokens)) == pytest.approx(58 * (2 * 5.9e-6 + near), rel=1e-4)
    ring = 5.9e-6 + tokens * 7168 * 2 * 2 * 15 / 16 / 50e9
    assert f(L.tensor_parallel_time(a, h, wide, tokens)) == pytest.approx(3 * ring, rel=1e-5)
    # ep8 in one node: the routes to the 7 others all go over NVLink
    one_node = f(L.expert_parallel_time(a, h, cfg(8, tp=1, dp_attn=8, ep=8), tokens))
    uniform8 = 1 + np.sqrt(2 * np.log(8) * 7 / (tokens * 8))
    assert one_node == pytest.approx(58 * (2 * 5.9e-6 + tokens / 8 * 8 * 7168 * 4 * uniform8 * 7 / 8 / 450e9), rel=1e-4)


def test_expert_parallel_gemms_wait_for_the_busiest_rank():
    """DeepSeek-V3 (k = 8) on ep8 at 64 decode tokens: 512 routes over 8 ranks, so the busiest rank
    computes 1 + sqrt(2 ln 8 x 7 / 512) of the mean rank's expert rows (x the scenario's skew). Only
    the expert FLOPs grow (dense layers and weight reads are per rank); experts split by tensor
    parallelism (ep = 1) share every expert's rows evenly."""
    from planner.model.compute import linear_work

    a, h = arch("deepseek-v3"), hw()
    tokens = 64.0
    uniform = 1 + np.sqrt(2 * np.log(8) * 7 / (tokens * 8))
    assert f(L.busiest_rank_skew(a, cfg(8, tp=8, ep=8), tokens)) == pytest.approx(uniform, rel=1e-5)
    assert f(L.busiest_rank_skew(a, cfg(8, tp=8, ep=8, expert_imbalance=1.5), tokens)) == pytest.approx(1.5 * uniform,
                                                                                                        rel=1e-5)
    assert f(L.busiest_rank_skew(a, cfg(8, tp=8), tokens)) == 1.0
    even_bytes, even = (f(x) for x in linear_work(a, h, tokens, 1.0))
    skew_bytes, skew = (f(x) for x in linear_work(a, h, tokens, 1.0, uniform))
    dense = 2.0 * tokens * f(a.params_dense)
    assert skew - dense == pytest.approx(uniform * (even - dense), rel=1e-5)
    assert skew_bytes == even_bytes


def test_decode_attention_of_fewer_sequences_than_attention_dp_groups_waits_for_a_whole_one():
    """DeepSeek-V3 on dp-attention 8: each group holds whole sequences. One sequence is attended by
    one group while seven idle, so its decode attention takes as long as eight sequences' (one per
    group), not an eighth of it; from 8 sequences on, attention time grows with the batch."""
    from planner.model.decode import attention_time

    a, h = arch("deepseek-v3"), hw()
    dp = cfg(8, tp=1, dp_attn=8, ep=8)
    one, eight, sixteen = (f(attention_time(a, h, dp, b, 96_000.0, 1.0)) for b in (1.0, 8.0, 16.0))
    assert one == pytest.approx(eight, rel=1e-5)
    assert sixteen == pytest.approx(2 * eight, rel=1e-5)
    # without attention DP every chip shares every sequence: one sequence is an eighth of eight
    tp = cfg(8, tp=8, cp=8)
    assert f(attention_time(a, h, tp, 1.0, 96_000.0, 1.0)) == pytest.approx(
        f(attention_time(a, h, tp, 8.0, 96_000.0, 1.0)) / 8, rel=1e-5)


def test_pipeline_hops_between_domains_use_the_scale_out_link():
    """tp8 x pp2 on 8-GPU domains: one hop, across the NICs; tp4 x pp2 inside one domain: one hop
    over NVLink. Each carries T x hidden x 2 B."""
    a = arch("llama-3.1-70b")
    h = hw(link_bw=450e9, scale_out_bw=50e9, allreduce_latency_s=6e-6)
    msg = 1000 * 8192 * 2
    across = f(L.pipeline_hop_time(a, h, cfg(16, tp=8, pp=2), 1000.0))
    inside = f(L.pipeline_hop_time(a, h, cfg(8, tp=4, pp=2), 1000.0))
    assert across == pytest.approx(6e-6 + msg / 50e9, rel=1e-5)
    assert inside == pytest.approx(6e-6 + msg / 450e9, rel=1e-5)
    faster_nic = f(L.pipeline_hop_time(a, hw(link_bw=450e9, scale_out_bw=100e9, allreduce_latency_s=6e-6),
                                       cfg(16, tp=8, pp=2), 1000.0))
    assert faster_nic - 6e-6 == pytest.approx((across - 6e-6) / 2, rel=1e-5)
    # GH200 (one GPU per domain): pp4 crosses three NICs
    gh = hw("gh200", scale_out_bw=50e9, allreduce_latency_s=6e-6)
    assert f(L.pipeline_hop_time(a, gh, cfg(4, tp=1, pp=4), 1000.0)) == pytest.approx(3 * (6e-6 + msg / 50e9), rel=1e-5)


def test_context_parallelism_exchanges_queries_and_partial_outputs():
    """cp8 on tp8 (MLA): per layer two exchanges of 7/8 of T x hidden x 2 B; none at cp1."""
    a, h = arch("deepseek-v3"), hw(link_bw=450e9, allreduce_latency_s=5.9e-6)
    tokens = 32.0
    expected = 61 * 2 * (5.9e-6 + tokens * 7168 * 2 * 7 / 8 / 450e9)
    assert f(L.context_parallel_time(a, h, cfg(8, tp=8, cp=8), tokens)) == pytest.approx(expected, rel=1e-5)
    assert f(L.context_parallel_time(a, h, cfg(8, tp=8), tokens)) == 0.0
    doubled = f(L.context_parallel_time(a, h, cfg(8, tp=8, cp=8), 2 * tokens)) - 61 * 2 * 5.9e-6
    assert doubled == pytest.approx(2 * (expected - 61 * 2 * 5.9e-6), rel=1e-5)


def test_pipelined_prefill_fills_and_drains():
    """One chunk through 4 stages: the stages work one after another (4x one stage's share); 61 chunks:
    (61 + 3) / 61."""
    c = cfg(4, tp=1, pp=4)
    assert f(L.pipeline_fill(c, 1.0)) == pytest.approx(4.0)
    assert f(L.pipeline_fill(c, 61.0)) == pytest.approx(64 / 61)
    assert f(L.pipeline_fill(cfg(4, tp=4), 1.0)) == pytest.approx(1.0)


def test_pipeline_prefill_of_one_short_prompt_is_not_spread_over_every_chip():
    """A 2k prompt (one chunk) on 4 GH200s: as pp4 its compute takes ~4x the FLOPs / (4 chips) time."""
    from planner.model.prefill import prefill_time

    a, h = arch("llama-3.1-8b"), hw("gh200", allreduce_latency_s=0.0)
    t_pp = f(prefill_time(a, h, cfg(4, tp=1, pp=4), 2048.0, 0.0)) - f(L.collective_time(a, h, cfg(4, tp=1, pp=4), 2048.0))
    t_one = f(prefill_time(a, h, cfg(1, tp=1), 2048.0, 0.0))  # one chip does all the work
    assert t_pp == pytest.approx(t_one, rel=0.02)


# ---------------------------------------------------------------- memory per chip

@pytest.mark.parametrize(("model_id", "layout", "share"), [
    ("deepseek-v3", dict(chips=8, tp=8), 1.0),  # MLA latent on every tp rank
    ("deepseek-v3", dict(chips=8, tp=8, cp=8), 1 / 8),  # context parallel shards it
    ("deepseek-v3", dict(chips=8, tp=1, dp_attn=8, ep=8), 1 / 8),  # one copy per attention-DP group
    ("llama-3.1-70b", dict(chips=8, tp=8), 1 / 8),  # 8 KV heads over 8 ranks
    ("llama-3.1-70b", dict(chips=16, tp=16), 1 / 8),  # tp16 replicates each head twice
    ("llama-3.1-70b", dict(chips=16, tp=16, cp=2), 1 / 16),
    ("llama-3.1-70b", dict(chips=16, tp=8, pp=2), 1 / 16),
])
def test_kv_share_per_chip_follows_the_layout(model_id, layout, share):
    chips = layout.pop("chips")
    assert f(L.kv_share_per_chip(arch(model_id), hw(), cfg(chips, **layout))) == pytest.approx(share)


def test_weights_per_chip_split_experts_over_the_stage_and_the_rest_over_tp():
    a = arch("deepseek-v3")
    wb = 1.0
    total = 1e12
    experts = float(a.experts_routed * a.params_expert * wb)
    tp8 = f(L.weights_per_chip(a, cfg(8, tp=8, weight_dtype="fp8"), total))
    dp8 = f(L.weights_per_chip(a, cfg(8, tp=1, dp_attn=8, ep=8, weight_dtype="fp8"), total))
    assert tp8 == pytest.approx(total / 8)
    assert dp8 == pytest.approx((total - experts) + experts / 8)  # attention and dense layers on every rank


# ---------------------------------------------------------------- enumeration

def test_layouts_keep_tensor_parallelism_inside_the_domain_and_pipeline_across():
    llama = arch("llama-3.3-70b")
    for lay in layouts_for(32, 8, llama):
        assert lay.tp * lay.dp_attention <= 8 and lay.chips == 32
    assert Layout(tp=8, pp=4) in layouts_for(32, 8, llama)
    ds = layouts_for(8, 8, arch("deepseek-v3"))
    assert {Layout(tp=8), Layout(tp=8, ep=8), Layout(tp=1, dp_attention=8, ep=8), Layout(tp=8, cp=8)} <= set(ds)
    assert Layout(replicas_per_system=8) in layouts_for(8, 8, llama, replicas=(1, 2, 4, 8))
    assert Layout(tp=16, cp=2) in layouts_for(16, 72, llama)  # GB200 NVL72: tp16 replicates KV twice
    # attention-DP groups of any tensor-parallel width inside the stage: tp4 x ep8 (dp-attention 2)
    assert {Layout(tp=4, ep=8, dp_attention=2), Layout(tp=2, ep=8, dp_attention=4)} <= set(ds)


def test_tensor_parallel_groups_split_the_attention_heads_as_engines_require():
    """vLLM refuses tp that does not divide the query heads (and the KV heads, or a multiple of them):
    a 3-chip Llama 3.1 8B (32 heads, 8 KV) runs pp3 or three 1-chip replicas, never tp3; Llama 4
    Scout (40 heads) never runs tp16, even in a 72-GPU domain."""
    from planner.grid import heads_split

    llama8 = arch("llama-3.1-8b")
    assert [heads_split(t, llama8) for t in (1, 2, 3, 4, 6, 8, 16, 32)] == [True, True, False, True, False, True,
                                                                             True, True]
    scout = arch("llama-4-scout")
    assert heads_split(8, scout) and not heads_split(16, scout)
    assert heads_split(16, arch("deepseek-v3"))  # MLA: 128 heads, one latent KV copy per rank
    three = layouts_for(3, 8, llama8, replicas=(1, 3))
    assert Layout(pp=3) in three and Layout(replicas_per_system=3) in three
    assert all(lay.tp == 1 for lay in three)
    assert all(lay.tp * lay.dp_attention in (1, 2, 4, 8) for lay in layouts_for(16, 72, scout))
    assert all(heads_split(lay.tp, scout) for lay in layouts_for(64, 72, scout))


def test_a_pinned_tensor_parallel_size_that_splits_heads_unevenly_does_not_fit(invoke):
    result = invoke("eval", "--hardware", "h100-sxm", "--model", "llama-3.1-8b", "--chips", "3", "--tp", "3",
                    "--batch", "1", "--format", "json")
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["fits"] is False
    assert row["reason"].startswith("tp 3 does not split llama-3.1-8b's 32 attention heads (8 KV heads) evenly")


def test_moe_layouts_spread_experts_over_several_nodes_and_dense_ones_never_do():
    """Wide EP: on 16 chips of 8-GPU nodes a MoE model may run one stage of 16 with experts over all
    of them and attention data-parallel inside the nodes (one GPU or one node per group); tensor
    parallelism never leaves a node, and a dense model's stage never spans two."""
    ds = layouts_for(16, 8, arch("deepseek-v3"))
    assert {Layout(tp=1, ep=16, dp_attention=16), Layout(tp=8, ep=16, dp_attention=2)} <= set(ds)
    assert all(lay.tp <= 8 for lay in ds)
    assert all(lay.tp * lay.dp_attention <= 8 for lay in layouts_for(16, 8, arch("llama-3.3-70b")))
    row = evaluate_cases([case_from_dict({"hardware": "h100-sxm", "model": "deepseek-v3", "chips": 16, "batch": 64,
                                          "input": 8000, "output": 500, "weight_dtype": "fp8", "kv_dtype": "fp8",
                                          "tp": 1, "dp_attention": 16, "ep": 16}, "case")], CATALOG)[0]
    assert row["fits"] and row["layout"]["nodes"] == 2
    assert row["layout_text"] == "ep16 (dp-attention 16) over 2 nodes (400 Gb/s NIC per chip)"
    with pytest.raises(io.InputFileError, match="spans more than h100-sxm's scale-up domain of 8 chips"):
        case_from_dict({"hardware": "h100-sxm", "model": "deepseek-v3", "chips": 16, "batch": 1, "input": 100,
                        "output": 10, "tp": 1, "dp_attention": 16}, "case", catalog=CATALOG)


# ---------------------------------------------------------------- plans and eval

def scenario(**updates) -> Scenario:
    data = io.read_toml(paths.scenarios_dir() / "agentic-coding.toml")
    return io.validate(Scenario, with_dotted(data, updates), "test")


def test_deepseek_v3_at_96k_fits_8xh200_with_attention_dp_and_expert_parallel():
    """#12: at 96k prompts, batch 16, MLA's latent replicated on 8 TP ranks needs more memory than an
    H200 has; attention data-parallelism keeps one copy per rank and fits."""
    base = {"hardware": "h200-sxm", "model": "deepseek-v3", "chips": 8, "batch": 16, "input": 96_000,
            "output": 1000, "weight_dtype": "fp8", "kv_dtype": "bf16"}
    tp8, dp = evaluate_cases([case_from_dict({**base, "tp": 8}, "tp8"),
                              case_from_dict({**base, "tp": 1, "dp_attention": 8, "ep": 8}, "dp")], CATALOG)
    assert not tp8["fits"] and dp["fits"]
    assert dp["layout"] == {"tp": 1, "pp": 1, "ep": 8, "dp_attention": 8, "cp": 1, "replicas_per_system": 1,
                            "nodes": 1}
    # and the search finds it, and says so, when the layouts are attention-DP and EP
    sc = scenario(**{"model.id": "deepseek-v3", "search.hardware": ["h200-sxm"], "search.chips": [8],
                     "search.batch": [16], "search.weight_dtype": ["fp8"], "search.kv_dtype": ["bf16"],
                     "search.dram_fraction": [0.0], "search.nvme_fraction": [0.0], "search.spec_k": [0],
                     "speculative.method": "none", "search.parallelism": ["ep", "dp_attention"],
                     "search.serving_mode": ["aggregated"],  # the layout of one aggregated instance
                     "workload.input_tokens.max": 120_000, "slo.ttft_p95_s": 120.0})
    from planner.search import solve

    best = solve(sc, CATALOG).best
    assert best is not None and best["feasible"]
    assert best["layout"]["dp_attention"] == 8 and best["layout"]["ep"] == 8
    assert best["layout_text"] == "ep8 (dp-attention 8), 1 node"


def test_a_multi_node_plan_names_its_nodes_and_the_scale_out_link():
    from planner.search import solve

    sc = scenario(**{"search.hardware": ["gh200", "h100-sxm"], "search.chips": [4, 16], "search.batch": [8],
                     "search.weight_dtype": ["fp8"], "search.kv_dtype": ["fp8"], "search.dram_fraction": [0.0],
                     "search.nvme_fraction": [0.0], "search.spec_k": [0], "speculative.method": "none",
                     "slo.ttft_p95_s": 600.0, "slo.tpot_p95_ms": 1000.0})
    plans = {p["hardware"]: p for p in solve(sc, CATALOG).per_hardware}
    gh = plans["gh200"]  # one GPU per node in the priced offer; its NICs are not in the catalog
    assert gh["layout"]["nodes"] == gh["chips"] > 1
    assert f"over {gh['chips']} nodes (400 Gb/s NIC per chip, assumed)" in gh["layout_text"]
    assert gh["scale_out"] == {"gbps_per_chip": 50.0, "gbit_per_chip": 400.0,
                               "kind": CATALOG.accelerator("gh200").scale_out_kind, "assumed": True}
    # 16 H100s span two 8-GPU nodes over the catalog's InfiniBand (not an assumption)
    eval_row = evaluate_cases([case_from_dict({"hardware": "h100-sxm", "model": "llama-3.3-70b", "chips": 16,
                                               "batch": 8, "input": 8000, "output": 500, "tp": 8, "pp": 2},
                                              "case")], CATALOG)[0]
    assert eval_row["layout"]["nodes"] == 2
    assert eval_row["layout_text"] == "tp8 x pp2 over 2 nodes (400 Gb/s NIC per chip)"
    assert eval_row["scale_out"] == {"gbps_per_chip": 50.0, "gbit_per_chip": 400.0,
                                     "kind": CATALOG.accelerator("h100-sxm").scale_out_kind, "assumed": False}


def test_the_eval_table_marks_a_multi_node_layout_and_names_its_link_below(invoke):
    table = invoke("eval", "--hardware", "gh200", "--model", "llama-3.1-405b", "--chips", "8", "--batch", "8",
                   "--input", "1000", "--output", "100", "--weight-dtype", "fp8").stdout
    assert "pp8, 8 nodes†" in table and "over 8 nodes" not in table
    assert "† across nodes over the scale-out network: gh200 400 Gb/s per chip (assumed" in table
    one_node = invoke("eval", "--hardware", "h100-sxm", "--model", "llama-3.1-70b", "--chips", "4", "--batch", "8",
                      "--input", "1000", "--output", "100", "--weight-dtype", "fp8", "--tp", "4").stdout
    assert " tp4 " in one_node and "†" not in one_node and "1 node" not in one_node


def test_the_solve_table_marks_a_multi_node_layout_and_names_its_link_below():
    """The table keeps layouts short (one-node plans need no node count), marks one that spans nodes
    and names the scale-out link it relies on in a footnote (the full words stay in `layout_text`)."""
    from planner.solve_report import LINK_MARK, layout_cell, link_words

    one_node = {"hardware": "h100-sxm", "scale_out": None,
                "layout": {"tp": 4, "pp": 1, "ep": 1, "dp_attention": 1, "cp": 4, "replicas_per_system": 1, "nodes": 1}}
    assert layout_cell(one_node) == "tp4 x cp4"
    replicas = {**one_node, "layout": {**one_node["layout"], "cp": 1, "replicas_per_system": 4, "nodes": 2}}
    assert layout_cell(replicas) == "4 replicas of tp4, 2 nodes"  # each replica inside a node: no link
    spanning = {"hardware": "gh200", "scale_out": {"gbps_per_chip": 50.0, "gbit_per_chip": 400.0, "kind": "unknown",
                                                   "assumed": True},
                "layout": {"tp": 1, "pp": 2, "ep": 1, "dp_attention": 1, "cp": 1, "replicas_per_system": 1, "nodes": 2}}
    assert layout_cell(spanning) == f"pp2, 2 nodes{LINK_MARK}"
    assert link_words(spanning) == "gh200 400 Gb/s per chip (assumed: the catalog does not state it)"
    known = {**spanning, "hardware": "h100-sxm", "scale_out": {**spanning["scale_out"], "assumed": False}}
    assert link_words(known) == "h100-sxm 400 Gb/s per chip (catalog)"


def test_the_link_footnote_names_each_link_once_and_both_pools_of_a_disaggregated_plan():
    from planner.solve_report import LINK_MARK, link_note

    gh = {"hardware": "gh200", "scale_out": {"gbps_per_chip": 50.0, "gbit_per_chip": 400.0, "kind": "unknown",
                                             "assumed": True}}
    h100 = {"hardware": "h100-sxm", "scale_out": {**gh["scale_out"], "assumed": False}}
    inside = {"hardware": "b200", "scale_out": None}
    assert link_note([inside]) is None
    disagg = {"mode": "disaggregated", "prefill": inside, "decode": h100}
    note = link_note([gh, gh, disagg])
    assert note == (f"{LINK_MARK} across nodes over the scale-out network: gh200 400 Gb/s per chip (assumed: the "
                    "catalog does not state it); h100-sxm 400 Gb/s per chip (catalog)")


def test_eval_without_a_layout_picks_replicas_for_throughput_and_tp_for_tpot():
    base = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 8, "input": 1000, "output": 1000,
            "weight_dtype": "fp8", "kv_dtype": "fp8"}
    tput, latency = evaluate_cases([case_from_dict({**base, "batch": "max"}, "a"),
                                    case_from_dict({**base, "batch": 1}, "b")], CATALOG)
    assert tput["layout"]["replicas_per_system"] == 8 and tput["layout_chosen"] == "best throughput"
    assert latency["layout"]["tp"] == 8 and latency["layout_chosen"] == "lowest request latency"
    pinned = evaluate_cases([case_from_dict({**base, "batch": "max", "tp": 8}, "c")], CATALOG)[0]
    assert tput["throughput_tok_s"] > pinned["throughput_tok_s"]  # 8 x TP1 beats one TP8 instance offline


def test_the_eval_table_says_how_an_unpinned_layout_was_chosen_and_how_to_pin_one(invoke):
    """The table shows one layout; without a pinned one the reader is told it is the best of several
    and by what measure (JSON: `layout_chosen`, `layouts_considered`), and nothing for a pinned one."""
    args = ("eval", "--hardware", "h100-sxm", "--model", "llama-3.1-8b", "--chips", "8", "--input", "1000",
            "--output", "1000")
    best = json.loads(invoke(*args, "--format", "json").stdout)
    pinned = json.loads(invoke(*args, "--tp", "8", "--format", "json").stdout)
    assert best["layouts_considered"] > 1 and pinned["layouts_considered"] == 1
    assert best["layout"]["replicas_per_system"] == 8  # offline: eight 1-GPU replicas, not one TP8 instance
    table = " ".join(invoke(*args).stdout.split())  # the console folds long lines
    assert (f"layout: not pinned, so the best of {best['layouts_considered']} replica counts and layouts for 8 chips "
            "is shown (highest throughput at batch max, ties by request latency); pin one with --tp, --pp, --ep, "
            "--dp-attention, --cp") in table
    latency = " ".join(invoke(*args, "--batch", "1").stdout.split())
    assert "(lowest request latency at the fixed batch: TTFT + (output - 1) x TPOT)" in latency
    assert "not pinned" not in invoke(*args, "--tp", "8").stdout
    short = " ".join(invoke("eval", "--hardware", "h100-sxm", "--model", "llama-3.1-70b", "--chips", "2", "--batch", "max",
                            "--input", "120000", "--output", "100").stdout.split())
    assert "(none fits: the one closest to fitting, least memory per chip)" in short


def test_the_eval_table_of_a_cases_file_names_the_unpinned_cases_in_runs(invoke, tmp_path):
    case = 'hardware = "h100-sxm"\nmodel = "llama-3.1-8b"\nchips = 8\ninput = 1000\noutput = 1000\n'
    batches = ['"max"', '"max"', "1", '"max"', '"max"']
    pins = ["", "", "", "tp = 8\n", ""]
    path = tmp_path / "cases.toml"
    path.write_text("".join(f"[[case]]\n{case}batch = {b}\n{p}" for b, p in zip(batches, pins, strict=True)))
    table = " ".join(invoke("eval", "--cases", path).stdout.split())
    assert ("layout of case[0]..case[1], case[4]: not pinned, so the best of each case's replica counts and layouts "
            "is shown (highest throughput at batch max") in table
    assert "layout of case[2]: not pinned, so the best of its replica counts and layouts is shown (lowest" in table
    assert "case[3]" not in table and table.endswith("pin one with the keys tp, pp, ep, dp_attention, cp")


def test_eval_picks_a_fixed_batch_layout_by_request_latency_not_tpot_alone():
    """At a 512k prompt an attention-DP layout decodes ~1 % faster than TP8 but prefills the prompt
    on one group's chips (several times the TTFT): a request's latency (TTFT + (output - 1) x TPOT)
    picks TP8, as an operator serving one sequence would."""
    base = {"hardware": "mi355x", "model": "nemotron-3.5-lightning-30b-a3b", "chips": 8, "batch": 1,
            "input": 524288, "output": 500}
    best, dp = evaluate_cases([case_from_dict(base, "a"),
                               case_from_dict({**base, "tp": 1, "ep": 8, "dp_attention": 8}, "b")], CATALOG)
    assert dp["tpot_s"] < best["tpot_s"]  # the layout TPOT alone would have picked
    assert best["ttft_s"] < dp["ttft_s"] / 2
    latency = [r["ttft_s"] + 499 * r["tpot_s"] for r in (best, dp)]
    assert latency[0] < latency[1]


def test_eval_says_when_a_pinned_batch_is_below_what_the_load_keeps_in_flight():
    """8 req/s of requests that each take ~4 s keep ~30 sequences running (Little's law): a batch of
    8 prices the steps too cheaply, and eval says so; a batch the load fits in is quiet."""
    base = {"hardware": "h100-sxm", "model": "llama-3.1-8b", "chips": 1, "input": 2000, "output": 256,
            "arrival_rps": 8.0}
    small, enough = evaluate_cases([case_from_dict({**base, "batch": 8}, "a"),
                                    case_from_dict({**base, "batch": 128}, "b")], CATALOG)
    in_flight = 8.0 * (small["ttft_s"] + 255 * small["tpot_s"])
    assert in_flight > 1.25 * 8
    notes = [n for n in small.get("assumed", []) if "Little's law" in n]
    assert len(notes) == 1 and f"~{in_flight:,.0f} sequences are in flight" in notes[0]
    assert 8.0 * (enough["ttft_s"] + 255 * enough["tpot_s"]) <= 1.25 * 128
    assert not any("Little's law" in n for n in enough.get("assumed", []))


@pytest.mark.parametrize(("flags", "message"), [
    (["--tp", "16"], "--tp: tp x dp_attention x pp = 16 does not divide chips = 8"),
    (["--tp", "8", "--ep", "4"], "--ep: 4 must be 1 (experts tensor parallel) or tp x dp_attention = 8"),
    (["--tp", "4", "--cp", "3"], "--cp: 3 must divide tp = 4"),
    (["--tp", "0"], "--tp: 0 must be an integer in [1, 100000]"),
])
def test_bad_layout_flags_are_one_line_errors(invoke, flags, message):
    result = invoke("eval", "--hardware", "h200-sxm", "--model", "deepseek-v3", "--chips", "8", *flags)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}") and not result.stdout


def test_a_cases_file_answers_every_case_when_one_pins_keys_that_do_not_combine(invoke, tmp_path):
    """Each key valid, the case impossible (a layout that does not divide its chips, a batch that does
    not split over its replicas, expert parallelism on a dense model): that case's row says why, and
    the rest of the file is answered (the cases contract), where one such case used to stop it."""
    base = 'hardware = "h100-sxm"\nmodel = "llama-3.1-8b"\ninput = 1000\noutput = 100\n'
    cases = ["chips = 8\nbatch = 1", "chips = 8\nbatch = 1\ntp = 16", "chips = 2\nbatch = 3\nreplicas = 2",
             "chips = 2\nbatch = 2\nep = 2", "chips = 8\nbatch = 3\nreplicas = 3",
             "chips = 1\nbatch = 1\ncached_tokens = 2000", "chips = 0\nbatch = 1\ntp = 2", "chips = 8\nbatch = 1\ntp = 0"]
    path = tmp_path / "cases.toml"
    path.write_text("".join(f"[[case]]\n{base}{c}\n\n" for c in cases[:7]))
    result = invoke("eval", "--cases", path, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["fits"] for r in rows] == [True] + [False] * 6
    reasons = [r["reason"].removeprefix("cannot evaluate: ") for r in rows[1:]]
    assert reasons[0].startswith("tp: tp x dp_attention x pp = 16 does not divide chips = 8")
    assert reasons[1].startswith("batch: 3 sequences do not split evenly over replicas = 2")
    assert reasons[2].startswith("ep: 2, but llama-3.1-8b is a dense model")
    assert reasons[3] == "replicas: 3 replicas do not divide 8 chips"
    assert reasons[4].startswith("cached_tokens: 2000 is more than input = 1000")
    # chips not stated: that is the reason, not a layout checked against a placeholder chip count
    assert reasons[5].startswith("chips = 0, which a cases file reads as 'not stated by the source'")
    # a value no case could take is still bad input: one line naming the file, case and key
    path.write_text(f"[[case]]\n{base}{cases[7]}\n")
    bad = invoke("eval", "--cases", path)
    assert bad.exit_code == 2 and f"{path}: case[0].tp: 0 must be an integer in [1, 100000]" in bad.stderr


def test_eval_never_runs_tensor_parallelism_beyond_the_domain(invoke):
    """1,000 H100s for an 8B model: one replica would need 125 pipeline stages of its 32 layers, and
    eval used to fall back to tp1000 (no engine runs that; its NVLink domain is 8 chips) and call it
    a fit. At batch 1 (one replica) nothing runs, and the row says why; with batch 'max' it picks
    replicas whose tensor parallelism stays in a domain."""
    result = invoke("eval", "--hardware", "h100-sxm", "--model", "llama-3.1-8b", "--chips", "1000", "--batch", "1",
                    "-f", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["fits"] is False and row["replicas"] is None
    assert "no layout runs llama-3.1-8b on 1000 h100-sxm chips" in row["reason"], row["reason"]
    result = invoke("eval", "--hardware", "h100-sxm", "--model", "llama-3.1-8b", "--chips", "1000", "--batch", "max",
                    "-f", "json")
    row = json.loads(result.stdout)
    assert row["fits"] is True and row["layout"]["tp"] * row["layout"]["dp_attention"] <= 8
    assert row["layout"]["pp"] <= 32


def test_eval_json_carries_the_layout_object(invoke):
    result = invoke("eval", "--hardware", "h200-sxm", "--model", "llama-3.1-8b", "--chips", "2", "--tp", "2",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["layout"] == {"tp": 2, "pp": 1, "ep": 1, "dp_attention": 1, "cp": 1,
                                                   "replicas_per_system": 1, "nodes": 1}


# ---------------------------------------------------------------- property: more layouts never cost more

KINDS = ("tp", "pp", "ep", "dp_attention", "cp", "replicas")


def _min_bill(sc: Scenario) -> float:
    grid = build_grid(sc, CATALOG)
    with np.errstate(all="ignore"):
        m = numpy_reference.evaluate_serving(grid.arch, grid.hw, grid.cfg, grid.spec, grid.load,
                                             np.float32(grid.draft_weight_bytes), grid.valid)
    return float(np.min(np.broadcast_to(m["monthly_usd"], grid.shape)))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=5, unique=True),
       extra=st.sampled_from(KINDS),
       model=st.sampled_from(["llama-3.1-70b", "deepseek-v3", "qwen3-30b-a3b", "mixtral-8x7b"]),
       hardware=st.sampled_from([["h200-sxm"], ["gb200"], ["h100-sxm", "gh200"], ["tpu-v6e"]]),
       chips=st.sampled_from([[1, 8], [4, 16], [8, 32], [2, 8, 16]]),
       median=st.sampled_from([2000, 32000]))
def test_adding_a_layout_option_never_raises_the_minimum_bill(kinds, extra, model, hardware, chips, median):
    common = {"model.id": model, "search.hardware": hardware, "search.chips": chips, "search.batch": [1, 8, 32],
              "search.weight_dtype": ["fp8"], "search.kv_dtype": ["fp8"], "search.dram_fraction": [0.0],
              "search.nvme_fraction": [0.0], "search.spec_k": [0], "search.prefix_cache": [False],
              "search.attention": ["flash"], "speculative.method": "none",
              "workload.input_tokens.median": median, "workload.input_tokens.p90": median * 2,
              "workload.input_tokens.max": 30_000 if median < 30_000 else 60_000}
    fewer = _min_bill(scenario(**common, **{"search.parallelism": kinds}))
    more = _min_bill(scenario(**common, **{"search.parallelism": list(dict.fromkeys([*kinds, extra]))}))
    assert more <= fewer * (1 + 1e-6) or not np.isfinite(fewer)


def test_batch_max_prices_joining_a_running_batch_as_the_same_pinned_batch_does():
    """`--batch max` is the largest batch that fits, a closed-loop run at that concurrency: a new
    request joins a running batch exactly as at the same batch pinned. It read as a batch of one
    (max is stored as 0), so its TTFT was the batch-1 value: 1.68 s against 1.85 s pinned (H100 x8,
    Llama-3.1-70B, 32k prompts)."""
    base = {"hardware": "h100-sxm", "model": "llama-3.1-70b", "chips": 8, "input": 32768, "output": 256, "tp": 8}
    most, one = evaluate_cases([case_from_dict({**base, "batch": "max"}, "a"), case_from_dict({**base, "batch": 1}, "b")],
                               CATALOG)
    pinned = evaluate_cases([case_from_dict({**base, "batch": most["batch"]}, "c")], CATALOG)[0]
    assert most["batch"] > 1
    assert most["ttft_s"] == pytest.approx(pinned["ttft_s"], rel=1e-5)
    assert most["ttft_s"] > one["ttft_s"] * 1.02


def test_eval_under_a_load_reports_what_it_serves_and_a_real_tpot_tail():
    """Under `arrival_rps` the system delivers rate x output tokens, not its capacity (0.1 req/s of
    256-token replies is 25.6 tok/s: the $/Mtok out is the bill over that); the TPOT p99 was the
    mean; a saturated load has no TPOT, as the README says."""
    base = {"hardware": "h100-sxm", "model": "llama-3.1-70b", "chips": 8, "input": 32768, "output": 256,
            "batch": "max", "tp": 8}
    light, busy, over = evaluate_cases([case_from_dict({**base, "arrival_rps": r}, f"c{r}") for r in (0.1, 0.3, 0.7)],
                                       CATALOG)
    assert light["fits"] and light["throughput_tok_s"] == pytest.approx(0.1 * 256, rel=1e-5)
    assert light["usd_per_mtok_output"] == pytest.approx(light["cost_per_hour"] / (25.6 * 3600) * 1e6, rel=1e-4)
    assert busy["fits"] and busy["tpot_p99_s"] > busy["tpot_s"] * 1.2  # prefills stall decode: a real spread
    assert light["tpot_p99_s"] > light["tpot_s"]
    assert not over["fits"] and over["tpot_s"] is None and over["tpot_p99_s"] is None
