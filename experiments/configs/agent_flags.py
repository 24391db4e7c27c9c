"""absl flags generated from agent config dataclasses.

Every field of every registered agent's config becomes a flag whose default
is None ("the agent's own default"), so that agents with different defaults
for the same field (e.g. `critic_lr`) share one flag.
"""

import dataclasses
import typing
from typing import Any, Dict, Iterable

from absl import flags


def _base_type(hint):
    if typing.get_origin(hint) is typing.Union:  # Optional[X] -> X
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(args[0])
    if typing.get_origin(hint) is tuple or hint is tuple:
        return tuple
    return hint


def define_config_flags(config_classes: Iterable[Any],
                        flag_values=flags.FLAGS) -> Dict[str, Any]:
    """Defines one flag per config field (first class wins on a clash).

    Returns:
      `{field name: base type}` of the flags defined.
    """
    defined: Dict[str, Any] = {}
    for cls in config_classes:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if field.name in defined:
                continue
            kind = _base_type(hints[field.name])
            default = field.default
            help_text = f"{cls.__name__}.{field.name} (default {default!r})."
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
            defined[field.name] = kind
    return defined


def config_overrides(config_cls: Any, defined: Dict[str, Any],
                     flag_values=flags.FLAGS) -> Dict[str, Any]:
    """The flags set on the command line, as overrides of `config_cls`.

    Raises:
      ValueError: a set flag is not a field of `config_cls`, or a list flag
        holds a non-integer.
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
        if kind is tuple:
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                raise ValueError(f"--{name} must be a comma-separated list of "
                                 f"integers, got {','.join(value)!r}.") from None
        overrides[name] = value
    return overrides
