"""A Gradio chat in the browser (`kollm chat --ui`): streams from Triton or a local model, on 127.0.0.1 only.

Gradio hands over the conversation as OpenAI-style messages; they are rendered with the model's chat
template (kollm/serve/chat.py) and the answer streams back cumulatively, as Gradio expects. The
generation settings are sliders under the chat. Analytics and share links are off: nothing leaves
the machine (Gradio 6.31 serves its fonts and assets itself).
"""

from __future__ import annotations

import os

from kollm.serve.chat import Backend, Conversation
from kollm.serve.client import ServingError

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


ERROR_MARK = "⚠️ "  # starts the part of an assistant message that is an error, not the model's words


def history_turns(history: list[dict]) -> list[dict]:
    """Gradio's history as the turns the model is sent: an error shown in the chat is not the model's words, so
    it is cut from its message; a question that got only an error is dropped with it (it is asked again)."""
    turns: list[dict] = []
    for m in history:
        if m.get("role") not in ("user", "assistant"):
            continue
        text = _text(m["content"])
        if m["role"] == "assistant" and ERROR_MARK in text:
            text = text.split(ERROR_MARK, 1)[0].rstrip()
            if not text:
                if turns and turns[-1]["role"] == "user":
                    turns.pop()
                continue
        turns.append({"role": m["role"], "content": text})
    return turns


def make_respond(backend: Backend, conversation: Conversation, extra: dict | None = None):
    """Gradio's chat function: the answer so far at each step; an error is shown after it, marked."""

    def respond(message: str, history: list[dict], max_new: int, temperature: float, top_p: float, top_k: int):
        conversation.turns = history_turns(history)
        sampling = {
            "max_tokens": int(max_new),
            "temperature": float(temperature),
            "top_p": float(top_p),
            "top_k": int(top_k),
            **(extra or {}),
        }
        answer = ""
        try:
            for piece in backend(conversation.prompt(message), sampling):
                answer += piece
                yield answer
        except ServingError as e:
            yield (answer + "\n\n" if answer else "") + f"{ERROR_MARK}{e}"

    return respond


def build_app(
    backend: Backend, conversation: Conversation, title: str, max_tokens: int = 64, extra: dict | None = None
):
    """`extra`: sampling fields sent with every request besides the sliders' (e.g. min_tokens)."""
    import gradio as gr

    respond = make_respond(backend, conversation, extra)
    settings = [
        gr.Slider(1, 512, value=max_tokens, step=1, label="max tokens"),
        gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="temperature (0 = greedy)"),
        gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top-p"),
        gr.Slider(0, 200, value=0, step=1, label="top-k (0 = off)"),
    ]
    return gr.ChatInterface(
        fn=respond,
        additional_inputs=settings,
        title=title,
        analytics_enabled=False,
        additional_inputs_accordion=gr.Accordion("생성 설정 (generation settings)", open=False),
    )


def _text(content) -> str:
    """Gradio message content: a string, or a list of parts with text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def serve(app, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    if host not in ("127.0.0.1", "localhost"):
        print(f"warning: serving the chat UI on {host}, reachable beyond this machine")
    return app.launch(
        server_name=host, server_port=port, share=False, prevent_thread_lock=not block, show_error=True, quiet=True
    )
