"""Find a bot's ``App`` from what a person types: a file path or a module name.

``sample_bots/labeler.py``, ``sample_bots.labeler`` and ``sample_bots.labeler:app`` all work;
without ``:name`` the module's ``app`` attribute is used, or its only ``App`` instance.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from framework.app import App
from framework.errors import ConfigurationError


def _import_file(path: Path) -> ModuleType:
    path = path.resolve()
    # The bot's own folder goes on sys.path so it can import modules beside it.
    sys.path.insert(0, str(path.parent))
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_app(target: str) -> App:
    """Import the bot named by ``target`` and return its ``App``."""
    where, _, attribute = target.partition(":")
    path = Path(where)
    if where.endswith(".py") or path.is_file():
        if not path.is_file():
            raise ConfigurationError(f"no bot file at {where}")
        module = _import_file(path)
    else:
        sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            if exc.name and where.startswith(exc.name):
                raise ConfigurationError(
                    f"no module named {where!r}: give a file path or an importable module"
                ) from None
            raise
    app = _app_in(module, where, attribute)
    if app.home is None and getattr(module, "__file__", None):
        app.home = Path(str(module.__file__)).resolve().parent  # where app.yml is looked for
    return app


def _app_in(module: ModuleType, where: str, attribute: str) -> App:
    if attribute:
        found = getattr(module, attribute, None)
        if not isinstance(found, App):
            raise ConfigurationError(f"{where} has no App named {attribute!r}")
        return found
    if isinstance(getattr(module, "app", None), App):
        return module.app  # type: ignore[no-any-return]
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    if len(apps) == 1:
        return apps[0]
    if not apps:
        raise ConfigurationError(f"{where} defines no App: create one with `app = App()`")
    raise ConfigurationError(f"{where} defines several Apps: name one as {where}:NAME")
