"""The GPU trainer, run as its own process (`python -m lorabake_tui.trainer CONFIG`).

It talks to the workbench only through files in its run directory (LoRA files, state,
train.log, events.jsonl). Never imports textual.
"""
