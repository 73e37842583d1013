"""Write the verl and grpo-prm fixtures exactly as those programs write their logs (neither runs here).

Both are written by re-implementing, line by line, the code that dumps the logs, over token ids made with
prm_probe's character tokenizer (given a chat template like Qwen's, whose generation prompt ends in
``"<|im_start|>assistant\\n"``, here ``"<bos>assistant\\n"``):

verl, commit b178a3cd56f58b2d502255daba591e92833930a7 (2026-01-29), ``verl/trainer/ppo/ray_trainer.py``:
  * ``fit`` (lines 1320, 1346): ``global_steps`` starts at 0 and is incremented before the first step, so the
    first dump is ``1.jsonl``;
  * line 1445: ``batch.repeat(repeat_times=rollout.n, interleave=True)``: the n samples of a prompt are adjacent;
  * lines 1454-1455: ``_balance_batch`` then reorders the batch ("This usually changes the order of data"), so a
    group's rows are no longer adjacent, and its ``uid`` is not dumped;
  * ``_log_rollout_data`` (lines 424-453): ``inputs``/``outputs`` are ``tokenizer.batch_decode(...,
    skip_special_tokens=True)`` of the (left-padded) prompt and (right-padded) response ids, ``scores`` the
    sum of ``token_level_scores``, ``gts`` the ``reward_model.ground_truth``;
  * ``_dump_generations`` (lines 396-422): one JSON object per row with ``input, output, gts, score, step`` and
    every reward-extra-info list of the batch's length (here ``acc``), ``json.dumps(ensure_ascii=False)``,
    rows joined by ``"\\n"`` plus a final newline, into ``{global_steps}.jsonl``.

grpo-prm (the authors' code), commit 6bc58b1bbf49ab4e4a31215e08ee1fd9e5ff4725 (2025-10-01):
  * ``train.py`` line 118: ``stats = {'args': dict(args._get_kwargs()) minus load/save/save_fp, 'init_val':
    init_val, 'epochs': []}``; line 149: each epoch appends ``{'steps': [], 'validation': []}``; lines 154-160:
    each step appends ``{'instances': [{'idx': i, 'query_response': x, 'reward': r} ...], 'loss': loss}`` with
    ``group_size`` consecutive instances per prompt index ``i`` (``step_size`` prompts per step);
  * ``lambda_grpo/trainer.py`` line 121: ``x = tokenizer.decode(ids)`` of prompt + completion ids with the
    pads removed (line 150) and special tokens **kept**; lines 297-312: the prompt is the chat template with
    ``add_generation_prompt=True``; lines 65-90: ``validate`` returns ``[(batch_decode(ids,
    skip_special_tokens=True), reward), ...]``, so a validation call is a list of ``[text, reward]`` pairs;
  * ``train_utils.py`` line 97: each validation call is appended to ``epochs[-1]['validation']``; lines
    108-109: ``json.dump(stats, f)`` into ``stats.json``.

Run from the repository root: ``python tests/data/foreign/make_foreign_fixtures.py`` (rewrites ``verl/`` and
``grpo_prm/stats.json``); the tests check that the shipped files equal what this script writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHAT_TEMPLATE = ("{% for m in messages %}<bos>{{ m['role'] }}\n{{ m['content'] }}<eos>\n{% endfor %}"
                 "{% if add_generation_prompt %}<bos>assistant\n{% endif %}")
#: The prompt separator a user passes for this fixture: the generation prompt, trailing newline included.
GRPO_PRM_SEP = "<bos>assistant\n"


def tokenizer():
    from prm_probe.training.models import char_tokenizer

    tok = char_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    return tok


# ------------------------------------------------------------------------------------------------ verl

#: Per step: (prompt, ground truth, [responses of its n = 3 samples]).
VERL_STEPS = {
    1: [("What is 1+1?", "2", ["2", "3", "2."]), ("What is 2+3?", "5", ["5", "6", "55"])],
    2: [("What is 4*2?", "8", ["8", "6", "8!"]), ("What is 4*2?", "8", ["7", "8", "16"])],  # a repeated prompt
}
VERL_N = 3


def _chat_ids(tok, text: str) -> list[int]:
    return list(tok.apply_chat_template([{"role": "user", "content": text}], tokenize=True,
                                        add_generation_prompt=True, return_dict=False))


def verl_rows(tok, step: int) -> list[dict]:
    """One step's dump rows, as ``_log_rollout_data`` + ``_dump_generations`` write them."""
    prompts, responses, gts, acc = [], [], [], []
    for prompt, gt, outs in VERL_STEPS[step]:
        for out in outs:  # batch.repeat(n, interleave=True): the n samples of a prompt are adjacent
            prompts.append(_chat_ids(tok, prompt))
            responses.append([*tok.encode(out, add_special_tokens=False), tok.eos_token_id])
            gts.append(gt)
            acc.append(float(out == gt))
    width_p, width_r = max(map(len, prompts)), max(map(len, responses))
    pad = tok.pad_token_id
    prompt_ids = [[pad] * (width_p - len(p)) + p for p in prompts]  # left padding
    response_ids = [r + [pad] * (width_r - len(r)) for r in responses]  # right padding
    order = np.random.default_rng(step).permutation(len(prompts))  # _balance_batch reorders the batch
    inputs = tok.batch_decode([prompt_ids[i] for i in order], skip_special_tokens=True)
    outputs = tok.batch_decode([response_ids[i] for i in order], skip_special_tokens=True)
    scores = [acc[i] for i in order]  # token_level_scores.sum(-1): the reward sits on one token
    base = {"input": inputs, "output": outputs, "gts": [gts[i] for i in order], "score": scores,
            "step": [step] * len(order)}
    extra = {"acc": [acc[i] for i in order]}
    base.update({k: v for k, v in extra.items() if len(v) == len(order)})
    return [{k: v[i] for k, v in base.items()} for i in range(len(order))]


def verl_files(tok) -> dict[str, str]:
    return {f"{step}.jsonl": "\n".join(json.dumps(r, ensure_ascii=False) for r in verl_rows(tok, step)) + "\n"
            for step in VERL_STEPS}


# -------------------------------------------------------------------------------------------- grpo-prm

GRPO_PRM_ARGS = {"group_size": 2, "step_size": 2, "epochs": 2, "loss_type": "grpo", "no_loss_scale": True}
#: Per epoch: steps of (prompt index, completion, reward) per instance, and the validation calls.
TRAIN_PROMPTS = ["What is 3+4?", "What is 9-1?", "What is 2*2?"]
GRPO_PRM_EPOCHS = [
    {"steps": [[(0, "7", 1.0), (0, "8", 0.0), (1, "8", 1.0), (1, "8 ok", 1.0)]], "loss": [0.12]},
    {"steps": [[(2, "4", 1.0), (2, "5", 0.0), (0, "7", 1.0), (0, "6", 0.0)]], "loss": [0.05]},
]
VAL_PROMPTS = [("What is 1+2?", "3"), ("What is 5+5?", "10")]
VALIDATION = [[["3", "11"]], [["3", "10"]]]  # per epoch, per validation call: greedy completions


def _decoded(tok, prompt: str, completion: str, skip: bool) -> str:
    ids = _chat_ids(tok, prompt) + tok.encode(completion, add_special_tokens=False) + [tok.eos_token_id]
    ids = [i for i in ids if i != tok.pad_token_id]  # y[y != pad_token_id]
    return tok.decode(ids, skip_special_tokens=skip)


def _validate(tok, completions: list[str]) -> list[list]:
    """``LambdaGRPOTrainer.validate``: ``[(batch_decode(..., skip_special_tokens=True), reward)]``, as JSON."""
    return [[_decoded(tok, p, c, skip=True), float(c == gold)] for (p, gold), c in zip(VAL_PROMPTS, completions,
                                                                                        strict=True)]


def grpo_prm_stats(tok) -> dict:
    stats = {"args": dict(GRPO_PRM_ARGS), "init_val": _validate(tok, ["3", "9"]), "epochs": []}
    for e, epoch in enumerate(GRPO_PRM_EPOCHS):
        stats["epochs"].append({"steps": [], "validation": []})
        for s, instances in enumerate(epoch["steps"]):
            stats["epochs"][-1]["steps"].append({
                "instances": [{"idx": i, "query_response": _decoded(tok, TRAIN_PROMPTS[i], c, skip=False),
                               "reward": r} for i, c, r in instances],
                "loss": epoch["loss"][s]})
        for call in VALIDATION[e]:
            stats["epochs"][-1]["validation"].append(_validate(tok, call))
    return stats


def main() -> None:
    tok = tokenizer()
    (HERE / "verl").mkdir(exist_ok=True)
    for old in (HERE / "verl").glob("*.jsonl"):
        old.unlink()
    for name, text in verl_files(tok).items():
        (HERE / "verl" / name).write_text(text, encoding="utf-8")
    (HERE / "grpo_prm").mkdir(exist_ok=True)
    (HERE / "grpo_prm" / "stats.json").write_text(json.dumps(grpo_prm_stats(tok)), encoding="utf-8")


if __name__ == "__main__":
    main()
