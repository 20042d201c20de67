"""The project: one training root with its concept folders and its own files in .lorabake/
(the training config, the journal, originals, caches). Every stage of the workbench, every
CLI command and the trainer get their paths and settings from here, so there is one truth:

- where things are (ProjectFiles),
- the training config (`.lorabake/training.toml`), read and checked into typed settings,
  and written back only through the journal (undoable, never over someone else's edit),
- the scan of the folders, with the regularization root and caption extension the config
  names (a command-line flag overrides them for that run),
- the training plan (config + scan), from which every number shown is derived.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..base.errors import LorabakeError
from ..base.journal import Journal, stat_signature
from ..base.project_files import CONFIG_REL, ProjectFiles
from ..dataset.scan import Dataset, scan_dataset
from ..images.media import DEFAULT_CAPTION_EXT

if TYPE_CHECKING:
    from ..base.journal import Entry
    from ..captions.tokens import TokenSettings
    from ..config.findings import Finding
    from ..config.schema import TrainingSettings
    from .check import CheckResult
    from .plan import TrainingPlan

# The config, check and plan modules are imported where they are used: `lorabake scan` and
# the workbench's first paint need only the folders (and the config's [data] table).


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """The project's training config as it was read: the text, and what the file looked
    like then, so a later write can tell whether someone changed it since."""

    path: Path
    text: str | None  # None: there is no config yet
    data: bytes | None
    stat: tuple[int, int] | None  # (size, mtime_ns)

    @property
    def exists(self) -> bool:
        return self.text is not None

    def changed_on_disk(self) -> bool:
        return stat_signature(self.path) != self.stat


class Project:
    def __init__(self, root: Path | str, *, reg_root: Path | str | None = None,
                 caption_ext: str | None = None) -> None:
        """`reg_root` / `caption_ext`: overrides for this session (the command line's --reg
        and --caption-ext); without them the config's data.reg_dir and
        data.caption_extension apply."""
        self.root = Path(root).resolve()
        self.files = ProjectFiles(self.root)
        self.journal = Journal(self.root)
        self._reg_override = Path(reg_root).resolve() if reg_root else None
        self._ext_override = caption_ext
        self.dataset: Dataset | None = None
        # bumped after every change lorabake makes, so screens know to rescan when shown
        self.generation = 0
        self.dataset_generation = -1  # the generation `dataset` was scanned at

    @property
    def name(self) -> str:
        return self.root.name

    # ---- the config ------------------------------------------------------------------------
    def read_config(self) -> ConfigFile:
        path = self.files.config
        try:
            for _ in range(5):  # the stat must describe the bytes read: a write between the
                before = stat_signature(path)  # two would otherwise go unnoticed by a later save
                data = path.read_bytes()
                stat = stat_signature(path)
                if stat == before:
                    break
        except FileNotFoundError:
            return ConfigFile(path, None, None, None)
        except OSError as exc:
            raise LorabakeError(f"cannot read {path}: {exc.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise LorabakeError(f"{path} is not UTF-8 text",
                                "re-save it as UTF-8 (lorabake will not rewrite it)") from None
        return ConfigFile(path, text, data, stat)

    def _config_data(self) -> dict:
        """The config's raw [data] table, for its folders and caption extension; {} when
        there is none or it is broken (the Config screen reports that)."""
        try:
            cfg = self.read_config()
        except LorabakeError:
            return {}
        if cfg.text is None:
            return {}
        import tomllib  # only when there is a config: `lorabake scan` of a bare folder

        try:
            data = tomllib.loads(cfg.text).get("data")
        except tomllib.TOMLDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def starter_config(self, dataset: Dataset) -> str:
        """A config for this project made from the default preset (not written)."""
        from ..config.file import dump_config
        from ..config.presets import DEFAULT_PRESET, new_config

        return dump_config(new_config(DEFAULT_PRESET, dataset))

    def check(self, text: str | None = None, *, dataset: Dataset | None = None,
              scan: bool = True) -> CheckResult:
        """Every finding about the project's config (or `text`, the editor's), with the
        plan when the folders can be read; a config that trains another folder than this
        project's says so."""
        from .check import check_text, train_dir_note

        if text is None:
            cfg = self.read_config()
            text = cfg.text if cfg.text is not None else self.starter_config(
                dataset or self.scan())
        result = check_text(text, source=str(self.files.config),
                            base_dir=self.files.config.parent,
                            dataset=dataset or self.fresh_dataset(), scan=scan)
        note = train_dir_note(result.settings, self.root)
        if note is not None and result.doc is not None:
            result.findings.append(note.at(result.doc.line(note.key)))
        return result

    def settings(self) -> tuple[TrainingSettings, list[Finding], bool]:
        """(settings, findings, from_file): the config's typed settings, the defaults (with
        this project's folders) when there is no config yet."""
        from ..config.schema import TrainingSettings
        from .check import check_text

        cfg = self.read_config()
        if cfg.text is None:
            s = TrainingSettings(source="defaults", base_dir=self.files.state)
            s = s.replace("data", train_dir=self.root, reg_dir=self.reg_root,
                          caption_extension=self.caption_ext)
            return s, [], False
        result = check_text(cfg.text, source=str(cfg.path), base_dir=cfg.path.parent,
                            scan=False, check_paths=False)
        return result.settings, result.findings, True

    def token_settings(self) -> TokenSettings:
        """How the trainer will read captions: the token limit and the caption rules of the
        config (a broken config: the defaults; the Config screen reports it)."""
        from ..captions.processing import CaptionRules
        from ..captions.tokens import TokenSettings

        s, _, from_file = self.settings()
        d = s.data
        rules = CaptionRules(shuffle=d.shuffle_caption, keep_tokens=d.keep_tokens,
                             keep_tokens_separator=d.keep_tokens_separator)
        return TokenSettings(s.general.max_token_length, rules,
                             str(self.files.config) if from_file else None)

    @property
    def epochs(self) -> int:
        """The config's general.epochs (what totals on the Concepts screen multiply by)."""
        return self.settings()[0].general.epochs

    def plan(self, settings: TrainingSettings, dataset: Dataset | None = None
             ) -> TrainingPlan:
        """The plan of `settings` over this project's folders (the given scan, the last
        fresh one, or a new one)."""
        from .plan import plan_training

        return plan_training(settings, dataset or self.fresh_dataset() or self.scan())

    def write_config(self, text: str, read: ConfigFile, *, label: str,
                     op: str = "config") -> Entry:
        """Replace the config with `text` through the journal (one undoable step). `read`
        is the file as the caller read it: if it changed on disk since, nothing is written
        and a ConflictError says so."""
        from ..base.journal import ChangeSet
        from ..config.file import parse_config

        parse_config(text, str(read.path))  # never write a file that does not parse
        cs = ChangeSet()
        cs.write(CONFIG_REL, text.encode("utf-8"), read.data, read.stat)
        self.files.state.mkdir(parents=True, exist_ok=True)
        entry = self.journal.apply(op, label, cs)
        self.changed()
        return entry

    def set_settings(self, changes: dict[str, object], *, label: str,
                     read: ConfigFile | None = None) -> Entry:
        """Change some settings ("section.key" -> value) in the config, comments and order
        kept; made from the default preset first when there is no config yet."""
        from ..config.file import set_value_in_text

        read = read or self.read_config()
        text = read.text if read.text is not None else self.starter_config(
            self.fresh_dataset() or self.scan())
        for name, value in changes.items():
            section, key = name.split(".", 1)
            text = set_value_in_text(text, section, key, value)
        return self.write_config(text, read, label=label)

    # ---- the folders -----------------------------------------------------------------------
    @property
    def reg_root(self) -> Path | None:
        if self._reg_override is not None:
            return self._reg_override
        reg = self._config_data().get("reg_dir")
        if isinstance(reg, str) and reg.strip():
            path = Path(reg).expanduser()
            path = path if path.is_absolute() else self.files.config.parent / path
            if path.is_dir():
                return path.resolve()
        return None

    @property
    def caption_ext(self) -> str:
        if self._ext_override:
            return self._ext_override
        ext = self._config_data().get("caption_extension")
        if isinstance(ext, str) and ext.startswith(".") and len(ext) > 1:
            return ext
        return DEFAULT_CAPTION_EXT

    def scan(self, progress=None, cancelled=None) -> Dataset:
        return scan_dataset(self.root, self.reg_root, caption_ext=self.caption_ext,
                            progress=progress, cancelled=cancelled)

    def changed(self) -> None:
        self.generation += 1

    def set_dataset(self, dataset: Dataset, generation: int) -> None:
        self.dataset, self.dataset_generation = dataset, generation

    def fresh_dataset(self) -> Dataset | None:
        """The last scan, if nothing lorabake did since could have made it stale."""
        return self.dataset if self.dataset_generation == self.generation else None
