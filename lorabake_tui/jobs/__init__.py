"""Starting, tracking, stopping and tailing training jobs (reads the trainer's files only)."""
