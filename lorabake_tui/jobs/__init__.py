"""Starting, tracking, stopping and following training jobs (reads the trainer's files only,
through core/run/). Modules, top to bottom (pyproject.toml's jobs layers contract keeps
imports going down): control (what the UI and the CLI do to jobs); supervisor, runner (the
detached processes); spawn, notify (words for the user); history (the dashboard's
incremental reader); store (the Job row and the SQLite registry); outcome (how a job
ended, from its run folder); logs, kohya_log; paths, procs."""
