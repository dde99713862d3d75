"""The bottom of the library: errors, files, dotted overrides and choice checks, lazy package APIs.

    KollmError, StoppedEarly                      a user's mistake in one line; a job that should requeue
    read_json, write_json, read_jsonl, write_jsonl, open_text, atomic_open, sha256_file, line_ranges
    apply_overrides, check_choices, check_sizes   `section.key=value` on a config of dataclass sections
    pyplot, use_korean_font                       figures drawn off-screen, with Hangul

Every other package may import these; this package imports none of them.
"""

from kollm.core.errors import KollmError, StoppedEarly
from kollm.core.io import (
    atomic_open,
    line_ranges,
    open_text,
    read_json,
    read_jsonl,
    sha256_file,
    write_json,
    write_jsonl,
)
from kollm.core.overrides import apply_overrides, check_choices, check_sizes, from_dict, to_dict, valid_keys
from kollm.core.plotting import pyplot, use_korean_font

__all__ = [
    "KollmError",
    "StoppedEarly",
    "atomic_open",
    "line_ranges",
    "open_text",
    "read_json",
    "read_jsonl",
    "sha256_file",
    "write_json",
    "write_jsonl",
    "apply_overrides",
    "check_choices",
    "check_sizes",
    "from_dict",
    "to_dict",
    "valid_keys",
    "pyplot",
    "use_korean_font",
]
