"""Declared stages: each stage says which profile fields it reads; its key hashes what it can change.

``@stage(reads=("meta_ppo", "eval_episodes"))`` on a function of ``(family spec, profile, seed,
...)`` makes it a cached stage. A call's key hashes

* the code the stage reaches (:func:`pgx.stage_keys.stage_version`: the functions, classes and
  constants it reaches in any pgx module, name by name, :mod:`pgx.reach`) — not the modules that
  hold them, nor the branches its family's trainer does not take (``if profile.trainer == ...``);
* its family's factory and what that reaches (:func:`pgx.keys.family_version`), not the registry
  of every family;
* the profile fields it reads, and those of every stage it consumes (a stage it calls), with the
  values the family runs with (``Profile.for_family``) — not the rest of the profile, nor its name;
* its other arguments, by value, and the versions of the libraries that can change a result.

So an edit re-runs a stage only where it can change its result: a docstring, a comment, another
family's module, a stage the stage does not reach, a profile field it does not read re-run nothing.

What keeps a declaration honest: the stage runs with a :class:`ProfileView` of the profile that
raises on a field it did not declare (nor a stage it consumes), naming the field and the stage, so
a read that the key would miss fails the first time it runs instead of serving stale results; and
a test reads every ``profile.<field>`` in the code a stage reaches and requires it declared, in
branches no run takes too. A field of one trainer (``meta_ppo``, ``metaworld``) counts only for the
families that trainer trains. The code part cannot be wrong the same way: it is read from the
sources, not declared (its one blind spot, a method of an object whose class no reached code
names, is stated in :mod:`pgx.reach`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from typing import Any, Callable

import joblib

from pgx import progress
from pgx.envs import make_family
from pgx.keys import PACKAGE_ROOT, family_version, libraries_version
from pgx.profiles import Profile
from pgx.runtime import _first_line, is_damage, is_int
from pgx.stage_keys import outside_stage_version, stage_version
import pgx.stages.cache as cache  # noqa: I001 (a module import: no cycle through pgx.stages' __init__)

__all__ = ["stage", "Stage", "Call", "ProfileView", "UndeclaredRead", "PROFILE_FIELDS", "FAMILY_PARAMETERS"]

PROFILE_FIELDS = frozenset(f.name for f in dataclasses.fields(Profile))
"""The fields a stage may declare in ``reads=``."""

TRAINER_FIELDS = {f.name: f.metadata["trainer"] for f in dataclasses.fields(Profile) if "trainer" in f.metadata}
"""Fields that count only for the families θ* is trained for by one trainer (``Profile.trainer``):
``meta_ppo`` for PPO's, ``metaworld`` for SAC's. A stage declares both where it runs either (the
meta-training stage); for a family of one trainer the other's field is neither keyed nor readable,
so an edit to SAC's budgets re-runs no PPO family's stage."""

TRAINERS = frozenset(TRAINER_FIELDS.values())
"""What can train θ* (``Profile.trainer``): a stage with a profile is keyed by the code its family's
trainer runs (:func:`pgx.reach.reach` with ``trainer``), so an edit to SAC's code re-runs no PPO
family's stage."""

ALWAYS_READABLE = frozenset({"family"})
"""Fields every stage may read undeclared: the family the profile was specialised for is in the key
already (as the family spec)."""

FAMILY_PARAMETERS = ("family_name", "family_spec")
"""A stage's parameter holding its family spec, by name (its first match)."""


class UndeclaredRead(AttributeError):
    """A stage read a profile field it does not declare: its key would not cover that field."""


class ProfileView(Profile):
    """A family's profile as one stage may see it: the fields the stage (and the stages it consumes)
    declare, and ``family``; reading any other raises :class:`UndeclaredRead`.

    It is a :class:`~pgx.profiles.Profile` (``isinstance`` holds, ``for_family`` and ``replaced``
    work and keep the view), built around the whole, family-specialised profile it guards. Pickled,
    it becomes that whole profile (a worker process gets plain budgets)."""

    def __new__(cls, whole: Profile, fields: frozenset[str], stage: str) -> "ProfileView":
        view = object.__new__(cls)
        object.__setattr__(view, "_view", (whole, frozenset(fields), stage))
        return view

    def __init__(self, *args, **kwargs) -> None:  # the whole profile was checked when built
        pass

    def __getattribute__(self, name: str) -> Any:
        if name in PROFILE_FIELDS:
            whole, fields, stage = object.__getattribute__(self, "_view")
            if name not in fields and name not in ALWAYS_READABLE:
                raise UndeclaredRead(
                    f"stage {stage} read profile field {name!r}, which neither it nor a stage it consumes declares "
                    f"(reads={tuple(sorted(fields))}): add it to the stage's @stage(reads=...) so that its value "
                    f"keys the stage's results")
            return getattr(whole, name)
        return object.__getattribute__(self, name)

    @property
    def whole(self) -> Profile:
        return object.__getattribute__(self, "_view")[0]

    def for_family(self, family: str) -> "ProfileView":
        self.whole.for_family(family)  # raises for another family
        return self

    def replaced(self, **changes: Any) -> "ProfileView":
        _, fields, stage = object.__getattribute__(self, "_view")
        return ProfileView(self.whole.replaced(**changes), fields, stage)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProfileView) and object.__getattribute__(self, "_view") == \
            object.__getattribute__(other, "_view")

    def __hash__(self) -> int:
        return hash(object.__getattribute__(self, "_view"))

    def __repr__(self) -> str:
        _, fields, stage = object.__getattribute__(self, "_view")
        return f"ProfileView({self.whole.name!r}, family={self.whole.family!r}, stage={stage}, reads={sorted(fields)})"

    def __reduce__(self):
        return (_whole, (self.whole,))


def _whole(profile: Profile) -> Profile:
    return profile


def _named_stage(module: str, qualname: str) -> "Stage":
    import importlib

    found = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def stage(*, reads: tuple[str, ...] = ()) -> Callable[[Callable], "Stage"]:
    """Declare a cached stage that reads the profile fields ``reads`` (a literal tuple: the key's
    code part reads it from the source)."""

    def declare(fn: Callable) -> Stage:
        return Stage(fn, tuple(reads))

    return declare


class Stage:
    """A declared stage: call it as the function it wraps; ``__wrapped__`` is the function, uncached."""

    def __init__(self, fn: Callable, reads: tuple[str, ...]):
        functools.update_wrapper(self, fn)
        self.name = f"{fn.__module__}:{fn.__name__}"
        unknown = sorted(set(reads) - PROFILE_FIELDS)
        if unknown:
            raise ValueError(f"stage {self.name} declares unknown profile fields {unknown}; known: {sorted(PROFILE_FIELDS)}")
        self.signature = inspect.signature(fn)
        self.family_parameter = next((p for p in FAMILY_PARAMETERS if p in self.signature.parameters), None)
        # Read from the sources now, at import: the code a process runs is the code it imported.
        package = PACKAGE_ROOT.name
        if fn.__module__ == package or fn.__module__.startswith(package + "."):
            self.version = stage_version(fn.__module__, fn.__name__)
            # Per trainer, without the branches it does not take: a PPO family's key holds no SAC code.
            # Only a stage handed a profile knows its trainer (``key``); the others keep one version.
            self.trainer_versions = {trainer: stage_version(fn.__module__, fn.__name__, trainer=trainer)
                                     for trainer in TRAINERS} if "profile" in self.signature.parameters else {}
        else:  # a stage of a plugin, a notebook or a test: its own source
            self.version = outside_stage_version(fn, reads)
            self.trainer_versions = {}
        if not set(reads) <= self.version.reads:
            raise RuntimeError(f"stage {self.name}: reads={reads} were not found in its source's decorator")

    @property
    def reads(self) -> frozenset[str]:
        """The profile fields this stage's key hashes: its own and those of every stage it consumes."""
        return self.version.reads

    def arguments(self, *args, **kwargs) -> dict[str, Any]:
        """The call's arguments by name, defaults applied and checked; ``profile`` specialised to the
        family (a view unwrapped to its whole profile)."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        spec = arguments.get(self.family_parameter) if self.family_parameter else None
        if self.family_parameter:
            make_family(spec)  # an unknown family or a bad option fails here, naming it
        if "seed" in arguments:
            if not is_int(arguments["seed"]) or arguments["seed"] < 0:
                raise ValueError(f"seed must be a non-negative int, got {arguments['seed']!r}")
            arguments["seed"] = int(arguments["seed"])  # a numpy integer keys as the int it is
        if "profile" in arguments:
            profile = arguments["profile"]
            if isinstance(profile, ProfileView):
                profile = profile.whole
            if not isinstance(profile, Profile):
                raise ValueError(f"profile must be a pgx.profiles.Profile, got {type(profile).__name__}")
            arguments["profile"] = profile.for_family(spec) if spec is not None else profile
        return arguments

    def readable(self, profile: Profile) -> frozenset[str]:
        """The fields of :attr:`reads` that count for ``profile``'s family (its trainer's)."""
        return frozenset(f for f in self.reads if TRAINER_FIELDS.get(f, profile.trainer) == profile.trainer)

    def key(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """What a call's key hashes, readable (``key.json`` beside its result)."""
        spec = arguments.get(self.family_parameter) if self.family_parameter else None
        profile = arguments.get("profile")
        version = self.trainer_versions.get(profile.trainer, self.version) if profile is not None else self.version
        key = {"stage": self.name, "code": version.code, "consumes": list(version.stages),
               "family": family_version(spec) if spec is not None else None, "libraries": libraries_version(),
               "arguments": {k: v for k, v in arguments.items() if k != "profile"}}
        if profile is not None:
            key["profile"] = {f: getattr(profile, f) for f in sorted(self.readable(profile))}
        return key

    def folder(self, *args, **kwargs):
        """Where this call's result is kept (whether or not it is there yet)."""
        return self._folder(self.key(self.arguments(*args, **kwargs)))

    @property
    def _stage_dir(self):
        # "module.function": no ':' in a path (Windows refuses it).
        return cache.stages_dir() / self.name.replace(":", ".")

    def _folder(self, key: dict[str, Any]):
        return self._stage_dir / joblib.hash(key)

    def clear(self) -> None:
        """Forget every result of this stage."""
        cache.forget(self._stage_dir)

    def call(self, *args, **kwargs) -> "Call":
        """This stage's call with these arguments, not run yet (for :func:`pgx.stages.many.compute_many`);
        bad arguments fail here, naming them."""
        self.arguments(*args, **kwargs)
        return Call(self, args, kwargs)

    def __reduce__(self):  # a worker imports the stage by name (the function it wraps is not the module's)
        return (_named_stage, (self.__module__, self.__qualname__))

    def __call__(self, *args, **kwargs):
        arguments = self.arguments(*args, **kwargs)
        key = self.key(arguments)
        folder = self._folder(key)
        try:
            stored = cache.load(folder)
        except Exception as e:
            if not is_damage(e):
                e.add_note(f"while loading stage cache folder {folder}")  # the type is kept, for callers that catch it
                raise
            warnings.warn(f"stage cache file {folder / 'output.pkl'} cannot be read ({_first_line(e)}); "
                          f"recomputing {self.__name__} and overwriting it", RuntimeWarning, stacklevel=2)
            stored = None
        if stored is None:
            stored = self._compute(arguments)
            try:
                cache.save(folder, *stored, key)
            except Exception as e:  # the result stands; only its copy on disk is lost
                warnings.warn(f"stage {self.name}'s result could not be stored in {folder} ({_first_line(e)}); "
                              f"it will be computed again next time", RuntimeWarning, stacklevel=2)
        result, kept = stored
        for category, message in kept:
            warnings.warn(f"[{self.__name__.lstrip('_')}] {message}", category, stacklevel=2)
        return result

    def _compute(self, arguments: dict[str, Any]) -> tuple[Any, list]:
        """Run the stage (with a :class:`ProfileView`), reporting progress and keeping the warnings it
        raised, so that every later load raises them again (a solver that did not converge while the
        cache was filled still says so in every later build). Deprecation warnings are not kept."""
        call = dict(arguments)
        if "profile" in call:
            call["profile"] = ProfileView(call["profile"], self.readable(call["profile"]), self.name)
        with warnings.catch_warnings(record=True) as caught, \
                progress.stage_running(self.__name__, arguments, cache.cache_dir() / "timings"):
            warnings.simplefilter("always")
            result = self.__wrapped__(**call)
        kept = [(w.category, str(w.message)) for w in caught
                if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
        return result, list(dict.fromkeys(kept))  # each distinct warning once


@dataclasses.dataclass(frozen=True)
class Call:
    """One call of a stage, not run yet: ``call()`` runs it (loading it where it is cached)."""

    stage: Stage
    args: tuple
    kwargs: dict

    def arguments(self) -> dict[str, Any]:
        return self.stage.arguments(*self.args, **self.kwargs)

    def folder(self):
        """Where its result is kept."""
        return self.stage.folder(*self.args, **self.kwargs)

    def __call__(self) -> Any:
        return self.stage(*self.args, **self.kwargs)
