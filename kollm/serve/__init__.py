"""Serving (stage `serve`): the tritonserver process, the llmapi request contract, clients, chats.

    TritonServer, free_port               run tritonserver on 127.0.0.1 and wait for it
    LLMClient, detect_protocol, ServingError   ask a served model over HTTP or gRPC
    parse_request, Limits                 the llmapi contract every request is checked against
    run_chat, build_app                   the terminal chat and the Gradio chat
    run_load                              a load test

The engine the Triton model runs is kollm.generation's; the model and its repository writer are
triton_model_repo/'s (a layer above). Modules: server, contract, client, chat, web, load; config (`serve.*`).
"""

from kollm.core.lazy import public_api
from kollm.serve.config import ServeConfig as ServeConfig
from kollm.serve.config import TrtllmConfig as TrtllmConfig

__getattr__, __dir__ = public_api(
    __name__,
    {
        "server": "TritonServer free_port check_ports",
        "client": "LLMClient detect_protocol ServingError Completion",
        "contract": "parse_request Limits INPUTS OUTPUTS check_parameters",
        "chat": "run_chat Conversation local_backend triton_backend",
        "web": "build_app",
        "load": "run_load",
    },
    eager=("ServeConfig", "TrtllmConfig"),
)
