"""Data: the Korean datasets, the tasks asked of a model, the prompts, and the metrics that score them.

    resolve_data_dir, iter_nsmc, iter_comments, ...   the sources (`../shared/data`, or the download cache)
    movie_split, nli_split, in_corpus_sample          splits by movie, never by review
    Task, TASKS, by_name, load_split                  NSMC, KLUE-NLI, hate speech, KLUE-STS: label words, rows
    prompts                                           the Korean prompts, one definition for every stage
    accuracy, macro_f1, pearson, spearman, classification   metrics written out to be checked by hand

Modules: sources, download, split, tasks, prompts, metrics; config (`data.*`).
"""

from kollm.core.lazy import public_api
from kollm.data.config import DataConfig as DataConfig

__getattr__, __dir__ = public_api(
    __name__,
    {
        "sources": "resolve_data_dir candidate_dirs missing_files iter_nsmc nsmc_label iter_hate_labeled iter_comments "
        "iter_klue_sentences iter_synopses iter_klue_nli iter_klue_sts NSMC_FIELDS",
        "split": "movie_split nli_split in_corpus_sample",
        "tasks": "Task TASKS NSMC KLUE_NLI HATE KLUE_STS by_name load_split balanced rows_from",
        "metrics": "accuracy f1 macro_f1 pearson spearman classification",
    },
    submodules="prompts",
    eager=("DataConfig",),
)
