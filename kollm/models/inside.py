"""Looking inside a trained GPT: attention maps and the logit lens, for one Korean sentence.

    from course.scratch import llama

    from kollm.models import inside
    model = llama.from_pretrained("runs/tiny/pretrain/hf")
    inside.attention_maps(model, tokenizer, "이 영화 정말 재미있다", "attention.png")
    inside.logit_lens(model, tokenizer, "이 영화 정말 재미있다", "logit_lens.png")

attention_maps: per layer and head, how much each token (row) attends to each earlier token (column).
logit_lens: the final norm and LM head applied to the residual stream after every layer — what the
model would predict if it stopped there — with the probability it gives the sentence's real next token.
Both are drawn with a Hangul font (kollm.core.plotting.use_korean_font) and return their numbers.
"""

from __future__ import annotations

import torch

from kollm.core.plotting import pyplot, use_korean_font


def pieces(tokenizer, ids: list[int]) -> list[str]:
    """Each token as the text it stands for, a space shown as _ (NanumGothic has no ▁ glyph); a token that
    decodes to nothing printable (a lone byte of a syllable) as its vocabulary entry (<0xEC>)."""
    out = []
    for i in ids:
        text = tokenizer.decode([i])
        out.append(
            (text if text.strip() and "\ufffd" not in text else tokenizer.convert_ids_to_tokens(i))
            .replace(" ", "_")
            .replace("▁", "_")
            .replace("Ġ", "_")
        )
    return out


def _ids(tokenizer, text: str) -> torch.Tensor:
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    if ids.shape[1] < 2:
        raise ValueError(f"{text!r} is {ids.shape[1]} token(s); give a sentence of at least two")
    return ids


@torch.no_grad()
def attention_maps(model, tokenizer, text: str, path: str, layers: list[int] | None = None) -> torch.Tensor:
    """[layers, heads, T, T] attention weights for `text`; a grid of heatmaps (layer rows, head columns) to `path`."""
    ids = _ids(tokenizer, text)
    weights = torch.stack(model(ids, output_attentions=True).attentions)[:, 0].float()  # [L, H, T, T]
    layers = list(range(len(weights))) if layers is None else layers
    labels = pieces(tokenizer, ids[0].tolist())
    use_korean_font()
    plt = pyplot()
    heads = weights.shape[1]
    size = max(2.2, 0.32 * len(labels))
    fig, axes = plt.subplots(len(layers), heads, figsize=(size * heads, size * len(layers)), squeeze=False)
    for row, layer in enumerate(layers):
        for head in range(heads):
            ax = axes[row][head]
            ax.imshow(weights[layer, head].numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {layer} head {head}", fontsize=8)
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
    fig.suptitle(f"attention: {text}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return weights[layers]


@torch.no_grad()
def logit_lens(model, tokenizer, text: str, path: str) -> dict:
    """Per layer (0 = the embeddings) and position: the top prediction and the probability of the real next
    token, read through the final norm and LM head; a heatmap of those probabilities to `path`."""
    ids = _ids(tokenizer, text)
    out = model(ids, output_hidden_states=True)
    states = [model.model.norm(h) for h in out.hidden_states]  # the residual stream, before the final norm
    probs = torch.stack([model.lm_head(h)[0].float().softmax(-1) for h in states])  # [L+1, T, vocab]
    nxt = ids[0, 1:]
    p_next = probs[:, :-1].gather(-1, nxt.view(1, -1, 1).expand(len(states), -1, 1))[..., 0]  # [L+1, T-1]
    top = probs[:, :-1].argmax(-1)
    labels = pieces(tokenizer, ids[0].tolist())
    use_korean_font()
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(nxt)), 0.6 * len(states) + 1.5))
    from matplotlib.colors import LogNorm

    # log colours: a small model's next-token probabilities live in 1e-4..1e-1
    ax.imshow(p_next.clamp(min=1e-4).numpy(), cmap="magma", norm=LogNorm(vmin=1e-4, vmax=1), aspect="auto")
    for layer in range(len(states)):
        for t in range(len(nxt)):
            ax.text(
                t,
                layer,
                pieces(tokenizer, [int(top[layer, t])])[0],
                ha="center",
                va="center",
                fontsize=7,
                color="white" if p_next[layer, t] < 0.01 else "black",
            )
    ax.set_xticks(range(len(nxt)), [f"{a}→{b}" for a, b in zip(labels[:-1], labels[1:])], rotation=60, fontsize=7)
    ax.set_yticks(range(len(states)), ["embed"] + [f"layer {i}" for i in range(len(states) - 1)], fontsize=8)
    ax.set_title("logit lens: top prediction (text) and P(real next token) (colour, log 1e-4..1)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {
        "tokens": labels,
        "p_next": p_next.tolist(),
        "top": [[pieces(tokenizer, [int(i)])[0] for i in row] for row in top],
    }
