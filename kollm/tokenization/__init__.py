"""The trainers behind `kollm.tokenizer.train`, one family a file; each returns a `tokenizers.Tokenizer`
whose ids 0..6 are kollm's special tokens."""
