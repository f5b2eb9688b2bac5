"""Insert (or refresh) the notebook's matched-study cells (section 7) and the study's trade-off
figures, round 1 beside round 2 (section 11), with outputs computed from the committed reports (the same way sections
10-12 read them)."""
import base64, io, json, sys, uuid
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- study-cells -->"
md = MARK + """
### The matched study

The runs above were trained once each, on the notebook's own schedule. The project's numbers come
from the **matched study** (`studies/main.toml`, `make study`): every task × {none, crop-mask}, plus
training recipes against source shortcuts, × 3 seeds on one schedule (head, then 2 fine-tuning
epochs; the better phase on validation is kept), each run evaluated on the Kaggle test split and,
for MRI, on the external sets of section 10. `braintumor study run` is resumable and runs in
sessions; the tables show what has finished of round 2 (mean ± sd over seeds, pooled 95%
interval), then the paired comparisons the study file declares, then round 1's comparisons: the
screening round whose external scores chose round 2's recipes (`reports/studies/main-pilot/`),
then two side studies of the MRI default's fine-tuning: a cheaper schedule (`studies/speed.toml`)
and a longer one (`studies/finetune.toml`, 4 epochs instead of 2)."""
code = """import json
from IPython.display import Markdown
from braintumor.config import project_root
from braintumor.studies.report import markdown as study_markdown

studies = project_root() / "reports" / "studies"  # committed, also in QUICK mode
study_dir, round1_dir = studies / "main", studies / "main-pilot"
display(Markdown(study_markdown(json.loads((study_dir / "summary.json").read_text()))))
for folder in (study_dir, round1_dir):
    if (folder / "comparisons.md").is_file():
        display(Markdown((folder / "comparisons.md").read_text().replace("# Study main", f"# {folder.name}")))
for side in ("speed", "finetune"):
    if (studies / side / "summary.json").is_file():
        display(Markdown(study_markdown(json.loads((studies / side / "summary.json").read_text()))))
    if (studies / side / "comparisons.md").is_file():
        display(Markdown((studies / side / "comparisons.md").read_text()))"""


def upsert(cells, mark: str, md: str, code: str, anchor: str, outputs: list) -> int:
    """The markdown + code pair that starts with ``mark``: refreshed where it is, else inserted
    after the first cell whose source contains ``anchor``; the code cell gets ``outputs``."""
    at = next((i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith(mark)), None)
    if at is None:
        at = next(i for i, c in enumerate(cells) if anchor in c.source) + 1
        cells[at:at] = [nbformat.v4.new_markdown_cell(md), nbformat.v4.new_code_cell(code)]
    else:
        cells[at].source, cells[at + 1].source = md, code
    cells[at + 1].outputs = outputs
    cells[at + 1].execution_count = None
    for c in cells[at:at + 2]:
        c.id = c.get("id") or uuid.uuid4().hex[:8]
    return at


# Outputs: run the cells' code here and record what they display.
sys.path.insert(0, str(ROOT / "src"))
from braintumor.studies.figures import recipe_tradeoff
from braintumor.studies.report import markdown as study_markdown

study_dir = ROOT / "reports" / "studies" / "main"
summary = json.loads((study_dir / "summary.json").read_text())
outs = [nbformat.v4.new_output("display_data", data={"text/markdown": study_markdown(summary), "text/plain": "<IPython.core.display.Markdown object>"})]
for folder in (study_dir, ROOT / "reports" / "studies" / "main-pilot"):
    if (folder / "comparisons.md").is_file():
        text = (folder / "comparisons.md").read_text().replace("# Study main", f"# {folder.name}")
        outs.append(nbformat.v4.new_output("display_data", data={"text/markdown": text, "text/plain": "<IPython.core.display.Markdown object>"}))

for side in ("speed", "finetune"):
    folder = ROOT / "reports" / "studies" / side
    texts = ([study_markdown(json.loads((folder / "summary.json").read_text()))] if (folder / "summary.json").is_file() else [])
    texts += [(folder / "comparisons.md").read_text()] if (folder / "comparisons.md").is_file() else []
    outs += [nbformat.v4.new_output("display_data", data={"text/markdown": t, "text/plain": "<IPython.core.display.Markdown object>"})
             for t in texts]

# Section 11: the study's recipes on both external sets, as one figure (after the lesions grid).
FIG_MARK = "<!-- study-tradeoff -->"
fig_md = FIG_MARK + """
Every training recipe of the matched study on both external sets: what it buys on tumour vs
tumour-free slices of the same scans (x) against what it costs on unseen SARTAJ images (y); the
shaded corner is the target. Round 1 (left) screened the recipes; round 2 (right) re-runs the
ones it kept. Choosing a recipe from this picture is a choice made on `lgg-flair-a`."""
fig_code = """import matplotlib.pyplot as plt
from braintumor.studies.figures import recipe_tradeoff

fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
for ax, folder, title in zip(axes, (round1_dir, study_dir), ("round 1 (screening)", "round 2")):
    recipe_tradeoff(json.loads((folder / "summary.json").read_text()), ax=ax)
    ax.set_title(title)"""
fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
for ax, folder, title in zip(axes, (ROOT / "reports" / "studies" / "main-pilot", study_dir), ("round 1 (screening)", "round 2")):
    recipe_tradeoff(json.loads((folder / "summary.json").read_text()), ax=ax)
    ax.set_title(title)
buf = io.BytesIO()
fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
plt.close("all")
fig_outs = [nbformat.v4.new_output("display_data", data={
    "image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": "<Figure>"})]

nb = nbformat.read(ROOT / "notebook.ipynb", as_version=4)
# Section 7's study cells after the results table (the cell that calls results_table).
print("study cells at", upsert(nb.cells, MARK, md, code, "results_table(", outs))
print("trade-off cells at", upsert(nb.cells, FIG_MARK, fig_md, fig_code, "synthesize(healthy", fig_outs))
nbformat.write(nb, ROOT / "notebook.ipynb")
