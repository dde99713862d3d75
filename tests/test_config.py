import pytest

from kollm import config
from kollm.errors import KollmError
from recipes import presets


def test_presets_differ_and_ci_is_smaller():
    tiny, ci = presets.from_preset("tiny"), presets.from_preset("ci")
    assert ci.pretrain.steps < tiny.pretrain.steps
    assert ci.model.hidden_size < tiny.model.hidden_size
    assert ci.run_dir.endswith("ci") and tiny.run_dir.endswith("tiny")


def test_overrides_are_typed():
    cfg = presets.build("ci", ["pretrain.steps=7", "pretrain.lr=0.01", "run.force=true", "run.name=x",
                              'evaluate.prompts=["안녕"]'])
    assert cfg.pretrain.steps == 7 and isinstance(cfg.pretrain.steps, int)
    assert cfg.pretrain.lr == 0.01
    assert cfg.run.force is True
    assert cfg.run_dir.endswith("x")
    assert cfg.evaluate.prompts == ["안녕"]


@pytest.mark.parametrize("override, message", [
    ("pretrain.stepz=3", "unknown override key 'pretrain.stepz'; did you mean pretrain.steps"),
    ("nosuch.key=1", "unknown override key 'nosuch.key'"),
    ("pretrain=3", "unknown override key 'pretrain'"),
    ("pretrain.steps=many", "expected a value of type int"),
    ("run.force=maybe", "expected a value of type bool"),
    ("pretrain.steps", "not of the form section.key=value"),
])
def test_bad_overrides_raise_clear_errors(override, message):
    with pytest.raises(KollmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        presets.build("tiny", [override])


def test_unknown_preset():
    with pytest.raises(KollmError, match="unknown preset 'huge'; choose one of: tiny, laptop, ci"):
        presets.from_preset("huge")


def test_dict_round_trip():
    cfg = presets.build("ci", ["pretrain.steps=9"])
    assert config.from_dict(config.to_dict(cfg)) == cfg


def test_serve_smoke_answer_cannot_wait_past_its_own_length():
    with pytest.raises(KollmError, match=r"serve.min_new_tokens=13: 0 to serve.max_new_tokens \(12\)"):
        config.validate(presets.build("ci", ["serve.min_new_tokens=13"]))
    config.validate(presets.build("ci", ["serve.min_new_tokens=12"]))
