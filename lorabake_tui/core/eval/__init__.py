"""Evaluation of trained LoRA files: what a grid or a trigger probe asks for (request.py), where
its files go (layout.py), the manifest the UI and `--json` read (manifest.py), the labelled grid
image (compose.py), the probe's diversity score (diversity.py), the LoRA files a run left
(run_loras.py) and keeping one of them (keep.py).

The render process (trainer/render) draws the cells; the CLI, the jobs and the Evaluate stage
read and write these files only through the functions here, so all of them agree on names.
"""
