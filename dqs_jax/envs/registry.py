"""A registry of environment families keyed by a name prefix.

Names look like `<family>:<rest>`, e.g. `dmc:cheetah-run` or
`dmc:ball_in_cup-catch` (for `dmc`, domain and task are split at the first
'-'). A family is a factory `(rest, seed) -> env` plus the list of its valid
names; `validate_env_name` checks a name before anything is built.

The `dmc` family is registered on import; dm_control itself is only imported
when a dmc name is validated, listed or built. The `maze` family
(`maze:two-goal`, `maze:two-goal-terminate`: `dqs_jax.envs.maze`) is
registered on import too; gymnasium-robotics is only imported when a maze env
is built.
"""

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence

# Environments are family-specific (a stateful dm_control wrapper, a pure-JAX
# functional env, ...); the registry does not constrain their interface.
Env = Any
Factory = Callable[[str, int], Env]


@dataclasses.dataclass(frozen=True)
class _Family:
    factory: Factory
    names: Callable[[], Sequence[str]]
    validate: Optional[Callable[[str], None]]


_FAMILIES: Dict[str, _Family] = {}


def register_family(prefix: str, factory: Factory,
                    names: Callable[[], Sequence[str]],
                    validate: Optional[Callable[[str], None]] = None) -> None:
    """Registers an env family under `prefix`.

    Args:
      prefix: the family's name prefix, e.g. "dmc" (no ':').
      factory: `(rest, seed) -> env`, where `rest` is the name after
        `prefix:`.
      names: lists every valid full name (`prefix:rest`).
      validate: optional `(full_name) -> None` raising a `ValueError` with a
        family-specific message; by default a name must be in `names()`.

    Raises:
      ValueError: if `prefix` is empty, contains ':' or is already taken.
    """
    if not prefix or ":" in prefix:
        raise ValueError(
            f"Invalid family prefix {prefix!r}: must be non-empty, no ':'.")
    if prefix in _FAMILIES:
        raise ValueError(f"Env family {prefix!r} is already registered.")
    _FAMILIES[prefix] = _Family(factory, names, validate)


def env_families() -> List[str]:
    """The registered family prefixes, sorted."""
    return sorted(_FAMILIES)


def _split(name: str):
    """Returns `(prefix, rest, family)` or raises a `ValueError`."""
    if not isinstance(name, str):
        raise ValueError(f"Env name must be a string, got {name!r}.")
    prefix, sep, rest = name.partition(":")
    if not sep or prefix not in _FAMILIES:
        what = ("has no family prefix" if not sep
                else f"has unknown family prefix {prefix!r}")
        raise ValueError(
            f"Env name {name!r} {what}; expected '<family>:<env>' with a "
            f"family among {env_families()}.")
    return prefix, rest, _FAMILIES[prefix]


def validate_env_name(name: str) -> None:
    """Checks `name` without building anything.

    Raises:
      ValueError: naming the bad input and listing the valid alternatives.
    """
    prefix, _, family = _split(name)
    if family.validate is not None:
        family.validate(name)
    elif name not in family.names():
        raise ValueError(
            f"Unknown env {name!r} in family {prefix!r}; valid names: "
            f"{sorted(family.names())}.")


def make_env(name: str, seed: int) -> Env:
    """Validates `name`, then builds the env with `seed`."""
    validate_env_name(name)
    _, rest, family = _split(name)
    return family.factory(rest, int(seed))


def env_names(family: Optional[str] = None) -> List[str]:
    """All valid full names, or those of one `family`, sorted."""
    if family is not None:
        if family not in _FAMILIES:
            raise ValueError(f"Unknown env family {family!r}; known "
                             f"families: {env_families()}.")
        return sorted(_FAMILIES[family].names())
    return sorted(n for f in _FAMILIES.values() for n in f.names())


# --- The DeepMind Control Suite family ------------------------------------

def _dmc_tasks() -> Dict[str, List[str]]:
    """`{domain: [task, ...]}` of `dm_control.suite.ALL_TASKS`."""
    # pylint: disable=import-outside-toplevel
    import dqs_jax.envs.dmc  # noqa: F401  (sets MUJOCO_GL before dm_control)
    from dm_control import suite
    tasks: Dict[str, List[str]] = {}
    for domain, task in suite.ALL_TASKS:
        tasks.setdefault(domain, []).append(task)
    return tasks


def _dmc_split(rest: str, name: str):
    domain, sep, task = rest.partition("-")
    if not sep or not domain or not task:
        raise ValueError(
            f"Env name {name!r} is not of the form 'dmc:<domain>-<task>', "
            "e.g. 'dmc:cheetah-run'.")
    return domain, task


def _dmc_validate(name: str) -> None:
    domain, task = _dmc_split(name[len("dmc:"):], name)
    tasks = _dmc_tasks()
    if domain not in tasks:
        raise ValueError(f"Unknown dmc domain {domain!r} in {name!r}; valid "
                         f"domains: {sorted(tasks)}.")
    if task not in tasks[domain]:
        raise ValueError(f"Unknown task {task!r} of dmc domain {domain!r} in "
                         f"{name!r}; valid tasks: {sorted(tasks[domain])}.")


def _dmc_names() -> List[str]:
    return [f"dmc:{d}-{t}" for d, ts in _dmc_tasks().items() for t in ts]


def _dmc_factory(rest: str, seed: int):
    # pylint: disable=import-outside-toplevel
    from dqs_jax.envs.dmc import DMCEnv
    domain, task = _dmc_split(rest, "dmc:" + rest)
    return DMCEnv(domain, task, seed)


register_family("dmc", _dmc_factory, _dmc_names, validate=_dmc_validate)


# --- The two-goal PointMaze family (DQS Sec. 5.2) ---------------------------

# `maze:<rest>` -> whether the episode ends at the goal (`MazeEnv`'s
# `terminate_at_goal`); listing and validating import nothing.
_MAZE_NAMES = {"two-goal": False, "two-goal-terminate": True}


def _maze_names() -> List[str]:
    return [f"maze:{rest}" for rest in _MAZE_NAMES]


def _maze_factory(rest: str, seed: int):
    # pylint: disable=import-outside-toplevel
    from dqs_jax.envs.maze import MazeEnv
    return MazeEnv(seed, terminate_at_goal=_MAZE_NAMES[rest])


register_family("maze", _maze_factory, _maze_names)
