"""Check a jupyterhub_config.py before the hub starts with it.

    python -m jhub_site.check_config /etc/jupyterhub/jupyterhub_config.py

Compiles the file, loads it the way JupyterHub does, and checks that every ``c.Class.attr``
names a setting of the hub, its proxy, authenticator or spawner and that its value has the
setting's type. Messages name settings and expected types, never values (the file holds
secrets). Exits 1 when something is wrong.
"""

from __future__ import annotations

import sys
from pathlib import Path

from traitlets import HasTraits, TraitError
from traitlets.config.loader import PyFileConfigLoader
from traitlets.utils.importstring import import_item


def _known_classes(app: HasTraits, config: dict) -> tuple[dict[str, type], list[str]]:
    """Every configurable class the hub would use, by name, with their base classes."""
    problems = []
    classes = list(app.classes)
    hub_config = config.get("JupyterHub", {})
    for name in ("authenticator_class", "spawner_class", "proxy_class"):
        try:
            classes.append(
                app.traits()[name].validate(app, hub_config.get(name, getattr(app, name)))
            )
        except Exception:  # an import error of any kind
            problems.append(f"c.JupyterHub.{name}: the class cannot be loaded")
            classes.append(getattr(app, name))
    # The backends of the spawn form (jhub_site.spawner.SiteSpawner) are spawners too.
    backends = config.get("SiteSpawner", {}).get("backends", {})
    for name, backend in backends.items() if isinstance(backends, dict) else []:
        try:
            classes.append(import_item(backend["class"]))
        except Exception:  # an import error of any kind
            problems.append(f"c.SiteSpawner.backends[{name!r}]: the class cannot be loaded")
    known: dict[str, type] = {}
    for cls in classes:
        for base in cls.mro():
            if isinstance(base, type) and issubclass(base, HasTraits):
                known.setdefault(base.__name__, base)
    return known, problems


def check(path: Path) -> list[str]:
    """Return the problems of the configuration file at ``path``."""
    compile(path.read_text(), str(path), "exec")
    config = PyFileConfigLoader(path.name, str(path.parent)).load_config()

    from jupyterhub.app import JupyterHub

    app = JupyterHub()
    known, problems = _known_classes(app, config)
    for section, values in config.items():
        cls = known.get(section)
        if cls is None:
            problems.append(f"c.{section}: no class of this name is used by the hub")
            continue
        traits = cls.class_traits(config=True)
        for name, value in values.items():
            trait = traits.get(name)
            if trait is None:
                problems.append(f"c.{section}.{name} is not a setting of {cls.__name__}")
                continue
            try:
                trait.validate(app, value)
            except TraitError:
                problems.append(f"c.{section}.{name} must be {trait.info()}")
            except Exception:  # validators that need a real instance of the class
                pass
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        problems = check(Path(argv[1]))
    except SyntaxError as exc:
        problems = [f"line {exc.lineno}: {exc.msg}"]
    for problem in problems:
        print(f"{argv[1]}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
