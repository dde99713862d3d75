"""course/scratch/attention.py against torch's own attention: F.scaled_dot_product_attention and nn.MultiheadAttention
(dropout off, float64, 1e-6), the KV cache against recomputing everything, and dropout on only in train mode."""

import torch
import torch.nn.functional as F

from course import scratch

attention = scratch.load("attention")

TOLERANCE = 1e-6


def _qkv(b=2, h=4, h_kv=4, t_q=7, t_k=7, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, t_q, d, generator=g, dtype=torch.float64)
    k = torch.randn(b, h_kv, t_k, d, generator=g, dtype=torch.float64)
    v = torch.randn(b, h_kv, t_k, d, generator=g, dtype=torch.float64)
    return q, k, v


def test_scaled_dot_product_attention_equals_torchs_with_and_without_the_causal_mask():
    """Without a mask, with is_causal (Tq = Tk) and with a causal mask for queries at the end of a longer key
    sequence (a KV cache's case): the outputs equal torch's sdpa, and the weights are causal distributions."""
    q, k, v = _qkv()
    out, weights = attention.scaled_dot_product_attention(q, k, v)
    assert (out - F.scaled_dot_product_attention(q, k, v)).abs().max().item() < TOLERANCE
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 7, dtype=torch.float64))

    mask = attention.causal_mask(7, 7)
    assert mask.dtype == torch.bool and mask.tolist() == torch.ones(7, 7).tril().bool().tolist()
    out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
    assert (out - F.scaled_dot_product_attention(q, k, v, is_causal=True)).abs().max().item() < TOLERANCE
    assert weights.triu(diagonal=1).abs().max().item() == 0  # no query looks ahead

    q, k, v = _qkv(t_q=3, t_k=10, seed=1)  # 3 new queries at positions 7, 8, 9 over 10 keys
    mask = attention.causal_mask(3, 10)
    assert mask.tolist() == [[j <= 7 + i for j in range(10)] for i in range(3)]
    out, _ = attention.scaled_dot_product_attention(q, k, v, mask)
    assert (out - F.scaled_dot_product_attention(q, k, v, attn_mask=mask)).abs().max().item() < TOLERANCE


def test_grouped_query_heads_equal_torchs_enable_gqa():
    """GQA: 8 query heads over 2 key/value heads; repeat_kv pairs heads as torch's enable_gqa does."""
    q, k, v = _qkv(h=8, h_kv=2, seed=2)
    rk, rv = attention.repeat_kv(k, 4), attention.repeat_kv(v, 4)
    assert rk.shape == (2, 8, 7, 8) and torch.equal(rk[:, 5], k[:, 1])  # query head 5 uses kv head 5 // 4
    out, _ = attention.scaled_dot_product_attention(q, rk, rv, attention.causal_mask(7, 7))
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert (out - want).abs().max().item() < TOLERANCE


def test_multi_head_attention_equals_torchs_multihead_attention():
    """The same projection weights in torch.nn.MultiheadAttention give the same outputs, with a causal mask and
    without (float64, dropout off)."""
    torch.manual_seed(0)
    mine = attention.MultiHeadAttention(32, 4).double().eval()
    ref = torch.nn.MultiheadAttention(32, 4, batch_first=True).double().eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mine.q_proj.weight, mine.k_proj.weight, mine.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([mine.q_proj.bias, mine.k_proj.bias, mine.v_proj.bias]))
        ref.out_proj.weight.copy_(mine.out_proj.weight)
        ref.out_proj.bias.copy_(mine.out_proj.bias)
    x = torch.randn(3, 9, 32, dtype=torch.float64)
    with torch.no_grad():
        # nn.MultiheadAttention's bool mask is the opposite of sdpa's: True there means "may NOT attend"
        want, _ = ref(x, x, x, attn_mask=~torch.ones(9, 9, dtype=torch.bool).tril(), need_weights=False)
        assert (mine(x) - want).abs().max().item() < TOLERANCE
        want, _ = ref(x, x, x, need_weights=False)
        assert (mine(x, causal=False) - want).abs().max().item() < TOLERANCE


def test_grouped_query_multi_head_attention_equals_sdpa_on_its_projections():
    """A GQA layer (6 query heads, 2 key/value heads): its output is out_proj of torch's sdpa with enable_gqa."""
    torch.manual_seed(1)
    layer = attention.MultiHeadAttention(24, 6, n_kv_heads=2).double().eval()
    assert layer.k_proj.weight.shape == (8, 24)  # 2 heads x head_dim 4
    x = torch.randn(2, 5, 24, dtype=torch.float64)
    with torch.no_grad():
        q = layer.q_proj(x).view(2, 5, 6, 4).transpose(1, 2)
        k = layer.k_proj(x).view(2, 5, 2, 4).transpose(1, 2)
        v = layer.v_proj(x).view(2, 5, 2, 4).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        want = layer.out_proj(out.transpose(1, 2).reshape(2, 5, 24))
        assert (layer(x) - want).abs().max().item() < TOLERANCE


def test_cached_token_by_token_decoding_equals_full_recomputation():
    """A prompt of 4 tokens, then one token at a time through a KVCache: the same outputs as the whole sequence at
    once (with and without GQA), and the cache holds every position."""
    torch.manual_seed(2)
    for n_kv in (4, 1):
        layer = attention.MultiHeadAttention(16, 4, n_kv_heads=n_kv).double().eval()
        x = torch.randn(2, 11, 16, dtype=torch.float64)
        with torch.no_grad():
            full = layer(x)
            cache = attention.KVCache()
            parts = [layer(x[:, :4], cache=cache)] + [layer(x[:, t : t + 1], cache=cache) for t in range(4, 11)]
        assert cache.length == 11 and cache.k.shape == (2, n_kv, 11, 4)
        assert (torch.cat(parts, dim=1) - full).abs().max().item() < TOLERANCE


def test_dropout_changes_outputs_in_train_mode_only():
    """dropout=0.3: in train mode two calls differ (and differ from eval); in eval mode the layer is deterministic and
    equals the same weights with dropout 0. The function's own dropout zeroes about p of the weights."""
    torch.manual_seed(3)
    layer = attention.MultiHeadAttention(16, 2, dropout=0.3)
    plain = attention.MultiHeadAttention(16, 2, dropout=0.0)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        layer.train()
        a, b = layer(x), layer(x)
        layer.eval()
        c, d = layer(x), layer(x)
        plain.eval()
        assert not torch.allclose(a, b) and not torch.allclose(a, c)
        assert torch.equal(c, d) and torch.allclose(c, plain(x), atol=1e-6)

    q, k, v = _qkv(t_q=64, t_k=64, seed=4)
    _, weights = attention.scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=True)
    zeroed = (weights == 0).double().mean().item()
    assert 0.4 < zeroed < 0.6  # no mask: every weight is > 0 before dropout
    _, kept = attention.scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False)
    assert (kept > 0).all()
