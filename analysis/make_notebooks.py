"""Write the analysis notebooks (outputs cleared). Run: python analysis/make_notebooks.py"""
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent


def nb(cells):
    book = nbf.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, src in cells:
        book.cells.append(nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src))
    return book


NOTEBOOKS = {
"01_overlap_statistics.ipynb": [
("md", "# How much do the completions of a group overlap?\n\nOverlap statistics of a rollout log (docs/science.md §6): "
       "the share of non-trivial groups by both flags, path depth, intermediate proportion, the |λ| histogram and the "
       "gradient-mass ratio. CLI equivalent: `prm-probe stats LOG --by group -o groups.csv`."),
("code", "# Parameters\nLOG = \"sample\"  # the packaged log, from any folder; or a path to yours\nOUT = None  # a folder to save the figures in, or None"),
("code", "import prm_probe\nfrom prm_probe.views import plots\n\nresult = prm_probe.overlap_stats(LOG)\nresult.summary()"),
("code", "result.groups.head()"),
("code", "result.steps"),
("code", "with plots.theme():\n    ax = plots.plot_size_histogram(result.histogram.groupby(\"process_set_size\", as_index=False)[\"tokens\"].sum())\n"
         "    if OUT:\n        plots.save_figure(ax.figure, f\"{OUT}/size_histogram\")"),
("md", "The paper reports that 99.8% of groups (G = 6, DeepSeek-R1-Distill-Qwen-1.5B on OpenRS) are non-trivial. "
       "Compare `nontrivial_fraction` (F1: some token shared) and `proper_branching_fraction` (F2: some node with 1 < |λ| < G) above."),
],
"02_implied_prm_of_a_group.ipynb": [
("md", "# What step rewards does GRPO implicitly give one group?\n\nThe group's prefix trie with the Monte-Carlo step "
       "reward R̂(λ) and the PRM-aware advantage A(λ) of every node (docs/science.md §3–4), and a check of Theorem 1's "
       "per-node identity. CLI equivalent: `prm-probe prm LOG --step S --group G`."),
("code", "# Parameters\nLOG = \"sample\"  # the packaged log, from any folder; or a path to yours\nSTEP = 0\nGROUP = 20  # two of its eight completions are correct\nTOKENIZER = None  # a tokenizer.json or model folder to show text"),
("code", "import prm_probe\nfrom prm_probe.views import plots\n\ntrie = prm_probe.GroupTrie.from_log(LOG, step=STEP, group=GROUP)\ntrie"),
("code", "decode = None\nif TOKENIZER:\n    from tokenizers import Tokenizer\n    tok = Tokenizer.from_file(TOKENIZER)\n    decode = lambda ids: tok.decode(ids, skip_special_tokens=False)\nprint(trie.render(decode=decode))"),
("code", "trie.node_table()"),
("code", "check = trie.identity_check()\nassert check[\"holds\"].all()\ncheck.head()"),
("code", "with plots.theme():\n    ax = plots.draw_trie(trie, decode=decode)"),
("md", "## The paper's worked example (docs/science.md §4.2)\nThe step JKL is pushed down three times although JKLM is the best completion: the frequency flaw."),
("code", "words = [\"ABCD\", \"ABEFHI\", \"JKLM\", \"JKLNQST\", \"JKLNQU\", \"VWYZ\"]\n"
         "paper = prm_probe.GroupTrie.from_completions([[ord(c) for c in w] for w in words], rewards=[0.5, 0.5, 1.0, 0.0, 0.0, 0.5])\n"
         "print(paper.render(decode=lambda ids: \"\".join(map(chr, ids))))\nwith plots.theme():\n    plots.draw_trie(paper, decode=lambda ids: \"\".join(map(chr, ids)))"),
],
"03_compare_runs.ipynb": [
("md", "# Does λ-GRPO beat GRPO on my runs?\n\nLoads run folders written by `prm-probe train`, groups them by algorithm and seed, "
       "and reports validation curves with bootstrap bands, per-run peaks and the tests between algorithms. "
       "CLI equivalent: `prm-probe compare RUN_DIR... --out DIR`. With `RUNS = None` it trains two tiny toy-tree runs first."),
("code", "# Parameters\nRUNS = None  # a list of run folders, or None to make two small demo runs\nMETRIC = \"reward_mean\"\nWORK = \"../data/runs/notebook-compare\""),
("code", "from pathlib import Path\nimport prm_probe\nfrom prm_probe.views.compare import compare_runs\n\n"
         "if RUNS is None:\n    from prm_probe.training.config import config_from_dict\n    from prm_probe.training.trainer import train\n    RUNS = []\n"
         "    for weighting in (\"uniform\", \"process_set\"):\n        for seed in (0, 1):\n            out = Path(WORK) / f\"{weighting}-s{seed}\"\n"
         "            if not (out / \"metrics.jsonl\").exists():\n                cfg = config_from_dict({\"seed\": seed, \"steps\": 6, \"device\": \"cpu\", \"model\": {\"name\": \"tiny\"},\n"
         "                    \"task\": {\"name\": \"toy-tree\", \"train_size\": 1, \"val_size\": 1}, \"sampling\": {\"group_size\": 8, \"prompts_per_step\": 1},\n"
         "                    \"loss\": {\"weighting\": weighting}, \"optim\": {\"lr\": 3e-3}, \"schedule\": {\"val_every\": 2}})\n"
         "                train(cfg, out)\n            RUNS.append(str(out))\nRUNS"),
("code", "comparison = compare_runs(RUNS)\ncomparison.run_summary(METRIC)"),
("code", "comparison.tests(METRIC)"),
("code", "from prm_probe.views import plots\nwith plots.theme():\n    ax = plots.plot_curves(comparison.curves(METRIC), y=\"mean\", lower=\"lower\", upper=\"upper\")\n    ax.set_ylabel(METRIC)"),
],
"04_explore.ipynb": [
("md", "# Explore a log's process sets in the browser\n\nThe explorer of `prm-probe explore LOG`, inline: the per-step "
       "overlap statistics, every group, and the tries of the most informative groups with |λ|, R̂(λ) and A(λ) on each "
       "node (click a completion to highlight its path). `.save(path)` writes the same page as one HTML file that opens "
       "from disk. A single group's trie also displays itself."),
("code", "# Parameters\nLOG = \"sample\"  # the packaged log, from any folder; or a path to yours\nMAX_GROUPS = 20\nOUT = None  # a .html path to save the page, or None"),
("code", "import prm_probe\n\nexplorer = prm_probe.explore(LOG, max_groups=MAX_GROUPS)\nif OUT:\n    explorer.save(OUT)\nexplorer"),
("code", "explorer.data()[\"meta\"][\"selection\"]"),
("code", "prm_probe.GroupTrie.from_log(LOG, step=0, group=20)"),
],
}

for name, cells in NOTEBOOKS.items():
    nbf.write(nb(cells), HERE / name)
    print("wrote", HERE / name)
