"""KV bytes per token and per sequence for each attention kind, against values derived by hand from
each model's config.json (tests/data/hf-configs/), not from the code under test."""

from __future__ import annotations

import numpy as np
import pytest

from planner.catalog import load_catalog
from planner.lowering import model_arrays
from planner.model import arch as arch_mod
from planner.model.attention import (
    attn_flops_decode,
    attn_flops_prefill,
    kv_elems_read_decode,
    kv_elems_stored,
)
from planner.render import kv_bytes_per_token

CTX = 131_072  # 128k tokens
BF16 = 2


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


# (model, BF16 bytes each new token adds at short context, BF16 bytes of one sequence of CTX tokens)
CASES = {
    # 61 layers x (kv_lora_rank 512 + qk_rope 64 + one 128-wide indexer key) = 42,944 values per token
    "deepseek-v3.2": (61 * (512 + 64 + 128) * BF16, 61 * (512 + 64 + 128) * CTX * BF16),
    # 30 ratio-4 layers: a 512-value entry + a 128-value indexer key per 4 tokens; 31 ratio-128 layers:
    # 512 values per 128 tokens; all 61 keep a 128-token window of 512-value entries
    "deepseek-v4-pro": ((30 * (512 + 128) // 4 + 31 * 512 // 128 + 61 * 512) * BF16,
                        (30 * (CTX // 4) * (512 + 128) + 31 * (CTX // 128) * 512 + 61 * 128 * 512) * BF16),
    # 15 full-attention layers x 2 KV heads x 256 x (K, V); 45 gated-DeltaNet layers hold 64 value heads
    # x 128 x 128 plus the conv's last 3 inputs of q, k (16 x 128 each) and v (64 x 128)
    "qwen3.5-397b-a17b": (15 * 2 * 2 * 256 * BF16,
                          (15 * 2 * 2 * 256 * CTX + 45 * (64 * 128 * 128 + 3 * (2 * 16 * 128 + 64 * 128))) * BF16),
    # 18 full + 18 sliding-window (128) layers x 8 KV heads x 64 x 2
    "gpt-oss-120b": (36 * 2 * 8 * 64 * BF16, (18 * 2 * 8 * 64 * CTX + 18 * 2 * 8 * 64 * 128) * BF16),
    # 12 global NoPE layers + 36 chunked (8,192) layers x 8 KV heads x 128 x 2
    "llama-4-maverick": (48 * 2 * 8 * 128 * BF16, (12 * 2 * 8 * 128 * CTX + 36 * 2 * 8 * 128 * 8192) * BF16),
}


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_kv_bytes_per_token(cat, model_id):
    assert kv_bytes_per_token(cat.model(model_id)) == CASES[model_id][0]


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_kv_bytes_per_sequence(cat, model_id):
    m = cat.model(model_id)
    assert arch_mod.kv_elems_per_seq(m, CTX) * BF16 == pytest.approx(CASES[model_id][1], rel=1e-9)
    jitted = float(kv_elems_stored(model_arrays(m), np.float32(CTX))) * BF16
    assert jitted == pytest.approx(CASES[model_id][1], rel=1e-5)  # float32


def test_deepseek_v4_cache_is_a_tenth_of_v32_at_1m(cat):
    """DeepSeek-V4's compressed cache at 1M tokens against DeepSeek-V3.2's (hand-derived: 11.5 %)."""
    ctx = 1_048_576
    v4 = 30 * (ctx // 4) * 640 + 31 * (ctx // 128) * 512 + 61 * 128 * 512
    v32 = 61 * 704 * ctx
    assert arch_mod.kv_elems_per_seq(cat.model("deepseek-v4-pro"), ctx) == pytest.approx(v4, rel=1e-9)
    assert 0.11 < v4 / v32 < 0.12


def test_sparse_decode_reads_topk_plus_indexer_keys(cat):
    a = model_arrays(cat.model("deepseek-v3.2"))
    # each layer reads 2,048 latents of 576 values and scans the 128-value indexer key of every token
    expected = 61 * (2048 * 576 + CTX * 128)
    assert float(kv_elems_read_decode(a, np.float32(CTX))) == pytest.approx(expected, rel=1e-5)
    # attention: absorbed MLA 2h(r + rope) + 2h r per attended entry; indexer 2 x 64 heads x 128 per token
    flops = 61 * (2048 * (2 * 128 * 576 + 2 * 128 * 512) + CTX * 2 * 64 * 128)
    assert float(attn_flops_decode(a, np.float32(CTX))) == pytest.approx(flops, rel=1e-5)


def test_linear_layers_read_a_fixed_state(cat):
    a = model_arrays(cat.model("qwen3.5-397b-a17b"))
    state = 45 * (64 * 128 * 128 + 3 * (2 * 16 * 128 + 64 * 128))
    short, long = (float(kv_elems_read_decode(a, np.float32(c))) for c in (1_000.0, 100_000.0))
    # the full layers' part grows with the context; the state (read and written back) does not
    assert long - short == pytest.approx(15 * 1024 * 99_000, rel=1e-5)
    assert short == pytest.approx(15 * 1024 * 1_000 + 2 * state, rel=1e-5)


def test_windowed_prefill_pairs_match_a_brute_force_sum(cat):
    """gpt-oss: queries at positions cached+1 .. cached+new see min(position, 128) tokens in the
    windowed layers and every earlier token in the full ones (summed here one query at a time)."""
    m = cat.model("gpt-oss-120b")
    a = model_arrays(m)
    new, cached = 300, 50
    full = sum(p for p in range(cached + 1, cached + new + 1))
    window = sum(min(p, 128) for p in range(cached + 1, cached + new + 1))
    per_pair = 4 * 64 * 64  # QK^T + AV: 4 x heads x head_dim per layer
    expected = 18 * per_pair * (full + window)
    # continuous form: exact up to the half-token per query of a discrete sum
    assert float(attn_flops_prefill(a, np.float32(new), np.float32(cached))) == pytest.approx(expected, rel=0.01)


def test_sparse_prefill_stops_growing_per_query_past_topk(cat):
    a = model_arrays(cat.model("deepseek-v3.2"))
    main_per_pair = 61 * (2 * 128 * 192 + 2 * 128 * 128)
    idx_per_pair = 61 * 2 * 64 * 128
    new, cached = 1000, 100_000  # every query is past the top-k: 2,048 attended each; indexer sees all
    attended = new * 2048
    indexed = new * cached + new * new / 2
    expected = attended * main_per_pair + indexed * idx_per_pair
    assert float(attn_flops_prefill(a, np.float32(new), np.float32(cached))) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("model_id", ["llama-3.1-70b", "gpt-oss-120b", "deepseek-v3.2", "deepseek-v4-flash",
                                      "qwen3.5-397b-a17b", "llama-4-scout", "minimax-m3"])
def test_pruning_absent_kinds_changes_no_number(cat, model_id):
    """The search traces only the terms a model has; the result must be the one of all terms."""
    from planner.model.attention import absent_kinds, without_absent

    a = model_arrays(cat.model(model_id))
    pruned = without_absent(a, absent_kinds(a))
    ctx, new, cached = np.float32([1e3, 1e5]), np.float32([500.0, 8e3]), np.float32([0.0, 6e4])
    for f, args in ((kv_elems_stored, (ctx,)), (kv_elems_read_decode, (ctx,)), (attn_flops_decode, (ctx,)),
                    (attn_flops_prefill, (new, cached))):
        np.testing.assert_allclose(np.asarray(f(pruned, *args)), np.asarray(f(a, *args)), rtol=1e-6)
