"""absl flags generated from agent config dataclasses.

Every field of every registered agent's config becomes a flag whose default
is None ("the agent's own default"), so that agents with different defaults
for the same field (e.g. `critic_lr`) share one flag. The help text of a
flag is that of the first class that has the field: a binary lists the
agent it runs first, so that `--help` shows that agent's defaults. The
same holds for any settings dataclass (`PresetFlags`: the GMM and maze
settings with their presets). `WandbFlags`: the `--wandb*` flags of the
binaries that train; `--matmul_precision` (`define_matmul_precision_flag`).
"""

import dataclasses
import typing
from typing import Any, Dict, Iterable, Optional

from absl import flags


def _base_type(hint):
    if typing.get_origin(hint) is typing.Union:  # Optional[X] -> X
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(args[0])
    if typing.get_origin(hint) is tuple or hint is tuple:
        return tuple
    return hint


def _element_type(hint):
    """`int` or `str`: the items of a `Tuple[X, ...]` field."""
    if typing.get_origin(hint) is typing.Union:
        hint = [a for a in typing.get_args(hint) if a is not type(None)][0]
    args = typing.get_args(hint)
    return args[0] if args and args[0] is str else int


def agent_from_argv(argv, default: str = "dqs") -> str:
    """The agent a command line names: `--agent=X` / `--agent X`, else the
    agent part of `--config=<file>:X`, else `default` (no validation)."""
    config_agent = None
    for i, arg in enumerate(argv):
        if arg.startswith("--agent="):
            return arg.split("=", 1)[1]
        if arg == "--agent" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config=") and ":" in arg:
            config_agent = arg.rsplit(":", 1)[1]
    return config_agent or default


def define_config_flags(config_classes: Iterable[Any],
                        flag_values=flags.FLAGS) -> Dict[str, Any]:
    """Defines one flag per config field; on a clash the first class's
    default is the one the help text shows.

    Returns:
      `{field name: base type}` of the flags defined (`(tuple, int or
      str)` for tuple fields).
    """
    classes = tuple(config_classes)
    defined: Dict[str, Any] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if field.name in defined:
                continue
            kind = _base_type(hints[field.name])
            default = field.default
            if cls is classes[0]:
                help_text = (f"{cls.__name__}.{field.name} (default "
                             f"{default!r}).")
                if field.metadata.get("help"):
                    help_text = f"{field.metadata['help']} {help_text}"
            else:
                help_text = (f"Not a field of {classes[0].__name__}; "
                             f"{cls.__name__}.{field.name} (default "
                             f"{default!r}).")
            if kind is tuple:
                flags.DEFINE_list(field.name, None, help_text,
                                  flag_values=flag_values)
            elif kind is bool:
                flags.DEFINE_boolean(field.name, None, help_text,
                                     flag_values=flag_values)
            elif kind is int:
                flags.DEFINE_integer(field.name, None, help_text,
                                     flag_values=flag_values)
            elif kind is float:
                flags.DEFINE_float(field.name, None, help_text,
                                   flag_values=flag_values)
            elif kind is str:
                flags.DEFINE_string(field.name, None, help_text,
                                    flag_values=flag_values)
            else:
                raise TypeError(f"Unsupported config field type {kind} for "
                                f"{cls.__name__}.{field.name}.")
            defined[field.name] = ((tuple, _element_type(hints[field.name]))
                                   if kind is tuple else kind)
    return defined


def config_overrides(config_cls: Any, defined: Dict[str, Any],
                     flag_values=flags.FLAGS) -> Dict[str, Any]:
    """The flags set on the command line, as overrides of `config_cls`.

    Raises:
      ValueError: a set flag is not a field of `config_cls`, or a list flag
        holds a non-integer where integers are expected.
    """
    fields = {f.name for f in dataclasses.fields(config_cls)}
    overrides = {}
    for name, kind in defined.items():
        value = flag_values[name].value
        if value is None:
            continue
        if name not in fields:
            raise ValueError(f"--{name} does not apply to {config_cls.__name__}"
                             f"; its hyper-parameters are {sorted(fields)}.")
        if isinstance(kind, tuple):
            try:
                value = tuple(kind[1](v) for v in value)
            except ValueError:
                raise ValueError(f"--{name} must be a comma-separated list of "
                                 f"integers, got {','.join(value)!r}.") from None
        overrides[name] = value
    return overrides


class PresetFlags:
    """`--preset` (a file of `experiments/configs/<kind>/`), `--config` (any
    config file, fields overridable as `--config.<field>=...`) and one flag
    per field of the settings dataclass `cls`, which wins over both."""

    def __init__(self, kind: str, cls: Any, default: str = "cpu"):
        from ml_collections import config_flags as ml_config_flags
        from experiments.configs import loader
        self.kind, self.cls, self._loader = kind, cls, loader
        names = loader.preset_names(kind)
        self.preset = flags.DEFINE_enum(
            "preset", default, names, f"A preset: a file of "
            f"experiments/configs/{kind}/ ({', '.join(names)}).")
        self.config = ml_config_flags.DEFINE_config_file(
            "config", None, f"A config file instead of --preset, e.g. "
            f"experiments/configs/{kind}/paper.py; its fields are "
            "overridable as --config.<field>=...; the field flags win.")
        self.fields = define_config_flags([cls])
        # The binary lists them in --help with
        # `flags.adopt_module_key_flags(agent_flags)`.

    def name(self) -> str:
        """The preset's name, or "config" when a --config file is given."""
        return self.preset.value if self.config.value is None else "config"

    def values(self):
        """`(base, overrides)`: the preset's or config file's fields and the
        field flags set. ValueError for --preset and --config together."""
        if self.config.value is not None and self.preset.present:
            raise ValueError("Give --preset or --config, not both.")
        base = (self._loader.load_preset(self.kind, self.preset.value)
                if self.config.value is None
                else self._loader.plain(self.config.value.to_dict()))
        return base, config_overrides(self.cls, self.fields)


class WandbFlags:
    """`--wandb` and its `--wandb_project`, `--wandb_entity`,
    `--wandb_group` (and, with `name_help`, `--wandb_name`) flags."""

    def __init__(self, wandb_help: str, group_help: str,
                 name_help: Optional[str] = None):
        from dqs_jax.training import WandbSettings
        defaults = WandbSettings()
        self.enabled = flags.DEFINE_boolean("wandb", False, wandb_help)
        self.fields = {
            "project": flags.DEFINE_string(
                "wandb_project", defaults.project,
                "W&B project (with --wandb)."),
            "entity": flags.DEFINE_string("wandb_entity", None,
                                          "W&B entity (with --wandb)."),
            "group": flags.DEFINE_string("wandb_group", None, group_help)}
        if name_help is not None:
            self.fields["name"] = flags.DEFINE_string("wandb_name", None,
                                                      name_help)

    def settings(self):
        """`training.WandbSettings` of the flags, or None without --wandb;
        ValueError for a --wandb_* flag given without --wandb."""
        from dqs_jax.training import WandbSettings
        if not self.enabled.value:
            given = [f.name for f in self.fields.values() if f.present]
            if given:
                raise ValueError(f"--{given[0]} needs --wandb.")
            return None
        return WandbSettings(**{k: f.value for k, f in self.fields.items()})


def define_matmul_precision_flag(help_text: str):
    """`--matmul_precision` (default, high, highest): JAX's default float32
    matmul precision, applied by `apply_matmul_precision`."""
    return flags.DEFINE_enum("matmul_precision", "default",
                             ["default", "high", "highest"], help_text)


def apply_matmul_precision(value: str) -> None:
    """Sets `jax_default_matmul_precision` ("default": XLA's own choice,
    TF32 for float32 matmuls on recent NVIDIA GPUs)."""
    import jax
    jax.config.update("jax_default_matmul_precision",
                      None if value == "default" else value)
