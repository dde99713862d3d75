"""Generation: the batched engine that serves, evaluates and judges, so a sample in a report is what the server says.

    generate(model, tokenizer, prompt, max_new_tokens)        one greedy answer to a user message
    generate_texts(model, tokenizer, prompts, params)         a batch of answers, (text, finish_reason) each
    chat_text, chat_prompt_ids                                a conversation in the tokenizer's chat template
    SamplingParams, InvalidRequest                            the sampling settings and their checks
    BatchGenerator, EngineLoop, Job                           continuous batching (the Triton model runs it)
    Utf8Guard                                                 never stream half a Hangul syllable from byte tokens

Modules: engine, sampling, utf8, local (generation on a local model).
"""

from kollm.core.lazy import public_api

__getattr__, __dir__ = public_api(
    __name__,
    {
        "local": "generate generate_texts chat_text chat_prompt_ids",
        "sampling": "SamplingParams InvalidRequest next_tokens",
        "engine": "BatchGenerator EngineLoop Job TextStream",
        "utf8": "Utf8Guard",
    },
)
