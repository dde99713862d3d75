"""kollm's special tokens and chat template: ids 0..6 and the same template in every tokenizer kind."""

from __future__ import annotations

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SYSTEM, USER, ASSISTANT = "<|system|>", "<|user|>", "<|assistant|>"
ROLE_TOKENS = [SYSTEM, USER, ASSISTANT]
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS, *ROLE_TOKENS]  # ids 0..6 in every kind

# Each turn ends with EOS, so generation stops at the end of the assistant's turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '" + EOS + "' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '" + ASSISTANT + "' }}{% endif %}"
)


def as_hf(tok):
    """A `tokenizers.Tokenizer` as a `PreTrainedTokenizerFast` with kollm's special tokens and chat template."""
    from transformers import PreTrainedTokenizerFast

    for i, t in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(t) != i:
            raise ValueError(f"special token {t!r} has id {tok.token_to_id(t)}, expected {i}")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        additional_special_tokens=ROLE_TOKENS,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 1_000_000
    return fast
