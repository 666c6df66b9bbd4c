"""JupyterLab's news and update check are off wherever the site installs JupyterLab.

The announcements plugin asks every user on first start whether to fetch Jupyter news and
checks for new releases, both from the internet. The notebook images (files/notebook-image),
the SLURM notebook environment (slurm role) and the hub's own virtualenv (local spawner)
each turn it off with the same two files under their virtualenv.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT

# Names as in JupyterLab 4 (packages/apputils-extension/schema/notification.json: fetchNews
# is a string, "true", "false" or "none").
EXPECTED = {
    "share/jupyter/lab/settings/overrides.json": {
        "@jupyterlab/apputils-extension:notification": {
            "checkForUpdates": False,
            "fetchNews": "false",
        },
    },
    "etc/jupyter/labconfig/page_config.json": {
        "disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True},
    },
}


def image_settings_script() -> str:
    """The Python that install.sh runs in every layer of a notebook image."""
    text = (REPO_ROOT / "files/notebook-image/install.sh").read_text()
    match = re.search(r"/opt/notebook/bin/python3 - /opt/notebook <<'PY'\n(.*?)\nPY\n", text, re.S)
    assert match, "install.sh no longer writes the JupyterLab settings"
    return match.group(1)


def run_image_script(prefix: Path) -> None:
    subprocess.run(
        [sys.executable, "-", str(prefix)], input=image_settings_script(), text=True, check=True
    )


def test_notebook_images_turn_off_news_and_update_check(tmp_path: Path) -> None:
    run_image_script(tmp_path)
    for name, wanted in EXPECTED.items():
        assert json.loads((tmp_path / name).read_text()) == wanted, name


def test_notebook_image_layers_keep_earlier_settings(tmp_path: Path) -> None:
    """A later layer (scipy on minimal) merges into what a recipe already set."""
    overrides = tmp_path / "share/jupyter/lab/settings/overrides.json"
    overrides.parent.mkdir(parents=True)
    theme = {"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}
    notification = {"@jupyterlab/apputils-extension:notification": {"doNotDisturbMode": True}}
    overrides.write_text(json.dumps(theme | notification))
    run_image_script(tmp_path)
    first = overrides.read_text()
    run_image_script(tmp_path)
    assert overrides.read_text() == first, "a second layer changed the settings again"
    data = json.loads(first)
    assert (
        data["@jupyterlab/apputils-extension:themes"]
        == theme["@jupyterlab/apputils-extension:themes"]
    )
    assert data["@jupyterlab/apputils-extension:notification"] == {
        "doNotDisturbMode": True,
        "checkForUpdates": False,
        "fetchNews": "false",
    }


def test_slurm_notebook_environment_turns_off_news_and_update_check() -> None:
    role_vars = yaml.safe_load((REPO_ROOT / "roles/slurm/vars/main.yml").read_text())
    assert role_vars["__slurm_notebook_lab_settings"] == EXPECTED
    tasks = yaml.safe_load((REPO_ROOT / "roles/slurm/tasks/notebook.yml").read_text())
    assert any(
        task.get("loop") == "{{ __slurm_notebook_lab_settings | dict2items }}" for task in tasks
    ), "roles/slurm/tasks/notebook.yml does not write __slurm_notebook_lab_settings"


def test_hub_virtualenv_turns_off_news_and_update_check() -> None:
    tasks = yaml.safe_load((REPO_ROOT / "roles/jupyterhub/tasks/install.yml").read_text())
    written = [
        task["vars"]["__settings"]
        for task in tasks
        if "ansible.builtin.copy" in task and "__settings" in task.get("vars", {})
    ]
    assert written == [EXPECTED]
