"""Export (stage `export`): the model as a HF folder any open-LLM tool loads, with a model card from the run's numbers.

    model_card, write_folder

Modules: model_folder; config (`export.*`).
"""

from kollm.export.config import ExportConfig
from kollm.export.model_folder import COPIED, model_card, write_folder

__all__ = ["ExportConfig", "COPIED", "model_card", "write_folder"]
