"""The ten-week workshop's numbers (docs/workshop/), in Korean, from benchmarks/results/*.json.

benchmarks/render.py calls these for `<!-- results:weekNN -->` blocks: each returns the week's measured
figures and its checkpoint answers, written from the JSON so a rerun of a benchmark rewrites the page.
A result that has not been measured yet says so instead of a number.
"""

from __future__ import annotations

import json
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def load(name: str) -> dict | None:
    path = os.path.join(RESULTS, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def source(r: dict) -> str:
    return f"측정: {r['machine']}, {r['date']} — 다시 재려면 `{r['command']}`"


def missing(name: str) -> str:
    return f"_아직 측정되지 않았습니다: `benchmarks/results/{name}.json` 이 없습니다._"


def week01() -> str:
    p, g = load("pipeline_tiny"), load("first_generation")
    if not p:
        return missing("pipeline_tiny")
    stages = p["stages"]
    slowest = max(stages, key=stages.get)
    lines = [
        source(p),
        "",
        f"- 데모 전체(`make demo`): **{p['wall_s'] / 60:.1f}분** ({p['wall_s']:.0f}초)",
        "- 단계별: " + " · ".join(f"{k} {v:.0f}s" for k, v in stages.items()),
        f"- 사전학습 모델: 파라미터 {p['metrics']['parameters'] / 1e6:.1f}M, "
        f"본 토큰 {p['metrics']['tokens_seen'] / 1e6:.2f}M",
    ]
    if g:
        lines += [
            "",
            f"HF `pipeline` 으로 만든 첫 생성 ({source(g)}):",
            "",
            f"- 사전학습 모델 (`{g['pretrained']['model_dir']}`), 이어 쓰기: "
            f"「{g['pretrained']['prompt']}」 → 「{g['pretrained']['output']}」",
            f"- 정렬된 모델 (`{g['aligned']['model_dir']}`), 채팅 템플릿: "
            f"「{g['aligned']['prompt']}」 → 「{g['aligned']['output']}」",
        ]
    else:
        lines += ["", missing("first_generation")]
    share = stages[slowest] / p["wall_s"]
    lines += [
        "",
        "**체크포인트 답.** 가장 오래 걸리는 단계는 "
        f"`{slowest}` 로, 전체의 {share:.0%} ({stages[slowest]:.0f}초)입니다. 5M 파라미터 모델도 "
        "CPU에서는 사전학습이 시간의 가장 큰 몫을 씁니다.",
    ]
    return "\n".join(lines)


def week02() -> str:
    c = load("curation")
    if not c:
        return missing("curation")
    kept = c["kollm_docs_kept"] / c["docs_in"]
    return "\n".join(
        [
            source(c),
            "",
            f"- 입력 문서 {c['docs_in']:,}개 → 정제 후 {c['kollm_docs_kept']:,}개 ({kept:.1%} 유지), "
            f"{c['kollm_docs_per_s']:,.0f} 문서/초",
            f"- 심어 둔 근사 중복 {c['kollm_planted_pairs_evaluated']:,}쌍: kollm(NeMo Curator) 재현율 "
            f"**{c['kollm_near_dup_recall']:.3f}**, 정밀도 {c['kollm_near_dup_precision']:.3f}; "
            f"datatrove 재현율 {c['datatrove_near_dup_recall']:.3f}",
            f"- 독성 분류기(korean_hate_speech dev) F1 {c['toxicity_dev_f1']:.3f}",
            "",
            "**체크포인트 답.** 한국어 근사 중복 제거에서 왜 글자 단위 설정이 중요한가? 같은 심은 쌍에서 "
            f"datatrove 기본 설정은 {c['datatrove_removed_as_duplicate']:,}쌍, kollm 은 "
            f"{c['kollm_removed_as_duplicate']:,}쌍을 찾았습니다: 공백·영어 단어 기준 shingle 은 어절 끝의 "
            "조사·어미가 바뀐 한국어 문장을 다른 문서로 봅니다.",
        ]
    )


def week03() -> str:
    t = load("tokenizers")
    if not t:
        return missing("tokenizers")
    rows = {(r["kind"], r["vocab_size_asked"]): r for r in t["tokenizers"]}
    size = 8000
    byte, meta = rows.get(("bpe_bytelevel", size)), rows.get(("bpe_metaspace", size))
    lines = [source(t), ""]
    for kind in ("bpe_bytelevel", "bpe_metaspace", "spm_unigram", "jamo_bpe", "kiwi_bpe", "char"):
        r = rows.get((kind, size)) or next((v for (k, _), v in rows.items() if k == kind), None)
        if r:
            lines.append(
                f"- `{kind}` (어휘 {r['vocab_size']:,}): 토큰당 글자 {r['chars_per_token']:.2f}, "
                f"어절당 토큰 {r['tokens_per_eojeol']:.2f}, 왕복 복원율 {r['roundtrip_rate']:.3f}"
            )
    if t.get("model_study"):
        best = min(t["model_study"], key=lambda m: m["bits_per_char"])
        lines += [
            "",
            "같은 글자 수로 사전학습한 같은 모델: "
            + ", ".join(
                f"`{m['kind']}` {m['bits_per_char']:.3f} bits/char · NSMC {m['nsmc_accuracy']:.3f}"
                for m in t["model_study"]
            ),
            f"(bits/char 최저: `{best['kind']}`)",
        ]
    lines += ["", f"추천 기본값: **{t['recommended']['kind']}**."]
    if byte and meta:
        lines += [
            "",
            "**체크포인트 답.** 바이트 수준 BPE에서 한국어는 왜 어절당 토큰이 많은가? 한글 음절 하나는 "
            "UTF-8 로 3바이트이고, 바이트 수준 BPE 는 바이트에서 출발해 자주 나오는 조합만 합칩니다. 같은 "
            f"{size:,} 어휘에서 `bpe_bytelevel` 은 어절당 {byte['tokens_per_eojeol']:.2f} 토큰(토큰당 "
            f"{byte['chars_per_token']:.2f}글자), 음절에서 출발하는 `bpe_metaspace` 는 "
            f"{meta['tokens_per_eojeol']:.2f} 토큰({meta['chars_per_token']:.2f}글자)입니다. 영어 글자는 "
            "1바이트라 같은 어휘로 더 긴 조각을 만듭니다.",
        ]
    return "\n".join(lines)


def week04() -> str:
    a = load("architectures")
    if not a:
        return missing("architectures")
    rows = a["architectures"]
    longest = max(i["context"] for i in rows[0]["inference"])
    lines = [source(a), "", f"같은 비임베딩 파라미터 예산, 같은 토큰({a['pretrain']['steps']} 스텝):", ""]
    for r in rows:
        inf = {i["context"]: i for i in r["inference"]}
        lines.append(
            f"- `{r['arch']}`: 검증 손실 {r['heldout_loss']:.3f}, 학습 {r['train_tokens_per_s']:,.0f} 토큰/초, "
            f"토큰당 지연 {inf[min(inf)]['ms_per_token']} → {inf[longest]['ms_per_token']} ms "
            f"(문맥 {min(inf)} → {longest}), 캐시 {inf[longest]['cache_mb']} MB"
        )
    by = {r["arch"]: {i["context"]: i for i in r["inference"]} for r in rows}
    if "llama" in by and "rwkv" in by:
        ll, rw = by["llama"], by["rwkv"]
        lines += [
            "",
            "**체크포인트 답.** 문맥이 길어질 때 무엇이 달라지나? Transformer(`llama`)는 토큰마다 지금까지의 "
            f"KV 캐시 전체를 읽어 {min(ll)} → {longest} 토큰에서 {ll[min(ll)]['ms_per_token']} → "
            f"{ll[longest]['ms_per_token']} ms/토큰, 캐시 {ll[longest]['cache_mb']} MB 가 되고, 순환 상태를 쓰는 "
            f"RWKV 는 {rw[min(rw)]['ms_per_token']} → {rw[longest]['ms_per_token']} ms/토큰, 상태 "
            f"{rw[longest]['cache_mb']} MB 로 거의 그대로입니다.",
        ]
    return "\n".join(lines)


def week05() -> str:
    c, s, gpu = load("pretrain_cpu"), load("laptop_sweep"), load("pretrain_gpu")
    lines = []
    if c:
        lines += [
            source(c),
            "",
            f"- kollm 학습 루프 {c['kollm_tokens_per_s']:,.0f} 토큰/초 vs HF Trainer "
            f"{c['hf_trainer_tokens_per_s']:,.0f} 토큰/초 (×{c['ratio']:.2f}, {c['model']['preset']} 모델, "
            f"{c['training']['precision']})",
        ]
    else:
        lines.append(missing("pretrain_cpu"))
    if gpu:
        lines += [f"- GPU: {source(gpu)}"]
    else:
        lines += ["- GPU(1b 프리셋 MFU): 이 프로젝트의 GPU 측정이 아직 없습니다 (`benchmarks/pretrain_gpu.py`)."]
    if s and len(s["candidates"]) >= 2:
        small, big = sorted(s["candidates"], key=lambda x: x["parameters"])[:2]
        lines += [
            "",
            source(s),
            "",
            "**체크포인트 답.** 모델을 키우면 무엇이 바뀌나? 같은 "
            f"{small['steps']} 스텝에서 {small['parameters'] / 1e6:.1f}M → {big['parameters'] / 1e6:.1f}M "
            f"(×{big['parameters'] / small['parameters']:.1f}): 검증 손실 {small['val_loss']:.4f} → "
            f"{big['val_loss']:.4f}, 속도 {small['tokens_per_s']:,.0f} → {big['tokens_per_s']:,.0f} 토큰/초. "
            "이 짧은 예산에서는 손실이 거의 같고 속도만 떨어집니다: 큰 모델의 이득은 더 많은 토큰을 본 뒤에 "
            f"나타납니다. 선택: {s['choice']}",
        ]
    return "\n".join(lines)


def week06() -> str:
    f = load("finetune_methods")
    if not f:
        return missing("finetune_methods")
    nsmc = [m for m in f["methods"] if m["task"] == "nsmc"]
    lines = [source(f), "", f"NSMC, 학습 {f['nsmc_train_rows']:,}개 리뷰:", ""]
    for m in nsmc:
        lines.append(
            f"- {m['method']} ({m['head']} 헤드, {m['backend']}): 정확도 {m['accuracy']:.3f}, 학습 파라미터 "
            f"{m['trainable_params']:,} ({m['trainable_pct']:.2f}%), {m['train_s']:.0f}초"
        )
    full = next((m for m in nsmc if m["method"] == "full" and m["head"] == "cls"), None)
    lora = next((m for m in nsmc if m["method"] == "lora" and m["head"] == "cls" and m["backend"] == "hf-peft"), None)
    if full and lora:
        lines += [
            "",
            f"**체크포인트 답.** LoRA 는 전체 미세조정만큼 좋은가? 같은 분류 헤드에서 LoRA 는 파라미터의 "
            f"{lora['trainable_pct']:.1f}% 만 학습해 {lora['accuracy']:.3f}, 전체 미세조정은 "
            f"{full['accuracy']:.3f} 입니다 ({(lora['accuracy'] - full['accuracy']) * 100:+.1f}점).",
        ]
    return "\n".join(lines)


def week07() -> str:
    e, f = load("eval_laptop"), load("finetune_methods")
    if not e:
        return missing("eval_laptop")
    lines = [
        source(e),
        "",
        f"- NSMC (영화가 겹치지 않는 테스트 {e['nsmc_test_rows']:,}개): 미세조정 모델 **{e['nsmc_accuracy']:.3f}**, "
        f"TF-IDF + 로지스틱 회귀(학습 {e['nsmc_tfidf_train_examples']:,}개) {e['nsmc_tfidf_accuracy']:.3f} "
        f"(목표 ≥ {e['goals']['nsmc_accuracy']})",
        f"- KLUE-NLI (dev 의 분리된 1/3): {e['klue_nli_accuracy']:.3f} (TF-IDF {e['klue_nli_tfidf_accuracy']:.3f}, "
        "우연 0.333)",
        f"- 혐오 표현 macro-F1: {e['hate_macro_f1']:.3f} (TF-IDF {e['hate_tfidf_macro_f1']:.3f})",
    ]
    if f and f.get("prompting"):
        best = max(f["prompting"], key=lambda p: p["accuracy"])
        lines += [
            "",
            f"**체크포인트 답.** 프롬프트만으로 감정 분류가 되나? 사전학습 모델의 제로샷·퓨샷 프롬프트는 "
            f"가장 좋은 문구도 {best['accuracy']:.3f} ({best['shots']}샷) 로 우연(0.5) 수준이고, 같은 모델을 "
            f"미세조정하면 {e['nsmc_accuracy']:.3f} 입니다: 5M 모델은 지시를 따를 만큼 크지 않습니다.",
        ]
    return "\n".join(lines)


def week08() -> str:
    q = load("quantization")
    if not q:
        return missing("quantization")
    rows = {r["format"]: r for r in q["formats"]}
    lines = [source(q), "", f"({q['note']})", ""]
    for r in q["formats"]:
        size = f", {r['size_mb']} MB" if r.get("size_mb") else ""
        lines.append(f"- `{r['format']}`: 검증 perplexity {r['perplexity']:.1f}, NSMC {r['nsmc_accuracy']:.3f}{size}")
    for fmt, why in q.get("skipped", {}).items():
        lines.append(f"- `{fmt}`: 건너뜀 — {why}")
    if "fp32" in rows and "fp8" in rows:
        base, fp8 = rows["fp32"], rows["fp8"]
        lines += [
            "",
            f"**체크포인트 답.** FP8 은 품질을 얼마나 잃나? perplexity {base['perplexity']:.1f} → "
            f"{fp8['perplexity']:.1f} ({(fp8['perplexity'] / base['perplexity'] - 1) * 100:+.2f}%), NSMC "
            f"{base['nsmc_accuracy']:.3f} → {fp8['nsmc_accuracy']:.3f}, 크기 {base['size_mb']} → {fp8['size_mb']} MB. "
            "속도 이득은 GPU 의 TensorRT-LLM 커널에서만 나옵니다.",
        ]
    return "\n".join(lines)


def week09() -> str:
    a = load("alignment")
    if not a:
        return missing("alignment")
    preset = "laptop" if "laptop" in a["presets"] else next(iter(a["presets"]))
    r = a["presets"][preset]
    lines = [source(r), "", f"`{preset}` 프리셋, 판정은 학습 보상에 쓰지 않은 분류기:", ""]
    for s in r["steps"]:
        lines.append(
            f"- {s['step']}: 요청한 감정 따르기 {s['sentiment_following']:.3f}, 독성 비율 {s['toxic_rate']:.3f}, "
            f"채팅 형식 NSMC {s['nsmc_accuracy']:.3f}, perplexity {s['perplexity']:.1f}"
        )
    steps = {s["step"]: s for s in r["steps"]}
    if "base" in steps:
        last = r["steps"][-1]
        base, gap = steps["base"], (r["adapter_nsmc_accuracy"] - last["nsmc_accuracy"]) * 100
        drift = (
            f" held-out perplexity 는 {base['perplexity']:.0f} → {last['perplexity']:.0f}: 정렬 데이터에 맞추느라 "
            "일반 문장 모델링은 나빠졌습니다."
            if last["perplexity"] > base["perplexity"] * 1.1
            else ""
        )
        lines += [
            "",
            f"**체크포인트 답.** 정렬이 정렬했나? 감정 따르기 {base['sentiment_following']:.3f} → "
            f"{last['sentiment_following']:.3f}, 독성 {base['toxic_rate']:.3f} → {last['toxic_rate']:.3f}. "
            f"학습에 없던 문구로 물으면 {last['sentiment_following_heldout_phrasings']:.3f} 이고, 채팅 형식 NSMC 는 "
            f"{last['nsmc_accuracy']:.3f} 로 미세조정 분류기({r['adapter_nsmc_accuracy']:.3f})보다 "
            f"{gap:.1f}점 낮습니다 (목표: 2점 이내).{drift}",
        ]
    return "\n".join(lines)


def week10() -> str:
    s = load("serving")
    if not s:
        return missing("serving")
    cells = {(r["config"], r["clients"]): r for r in s["results"]}
    lines = [source(s), "", f"Triton(실제 `tritonserver`), 답 {s['max_tokens']} 토큰, 동시 클라이언트별:", ""]
    for (config, clients), r in cells.items():
        lines.append(
            f"- {config}, 클라이언트 {clients}: {r['tokens_per_s']:.0f} 토큰/초, p50 {r['p50_ms']:.0f} ms, "
            f"p99 {r['p99_ms']:.0f} ms, 오류 {r['errors']}"
        )
    summary = s["summary"]
    lines += [
        "",
        f"**체크포인트 답.** 동적 배칭은 얼마나 돕나? 클라이언트 8 에서 배칭 없는 Triton 대비 "
        f"×{summary['batching_vs_unbatched_at_8']:.2f}, int8 + 배칭은 HF pipeline 대비 "
        f"×{summary['int8_batching_vs_pipeline_at_8']:.2f} 의 처리량입니다.",
    ]
    trt = load("serving_gpu")
    lines += [
        "",
        f"TensorRT-LLM(GPU): {source(trt)}"
        if trt
        else "TensorRT-LLM(GPU): 이 프로젝트의 GPU 측정이 아직 없습니다 (`kollm trtllm bench`).",
    ]
    return "\n".join(lines)


RENDERERS = {
    f"week{n:02d}": fn
    for n, fn in enumerate([week01, week02, week03, week04, week05, week06, week07, week08, week09, week10], start=1)
}
