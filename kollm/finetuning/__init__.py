"""Fine-tuning on Korean classification tasks.

tasks.py    what a task is: label words, Korean instruction, where its rows come from
heads.py    how a model answers: label-word log-probs of the causal LM (lm), or a classification head (cls)
methods.py  what trains: full fine-tuning or a HF PEFT adapter (LoRA, DoRA, WaveFT, prompt tuning, QLoRA)
train.py    one run: train, measure (time, peak memory), score, save; returns the method-table row
automodel.py / automodel_cpu.py   the same run through NeMo AutoModel's recipe, in its own environment
"""
