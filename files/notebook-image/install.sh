#!/bin/sh
# Installs one recipe directory into the image being built:
#   debian-packages.txt  Debian packages (one a line, # comments), the fastest way to the
#                        scientific stack and needs no PyPI
#   requirements.txt     PyPI packages for the notebook virtualenv /opt/notebook, pinned;
#                        ${JUPYTERHUB_VERSION} is replaced by the build argument
#   post-install.sh      optional: run last (e.g. register a kernel)
# The virtualenv sees Debian's packages (--system-site-packages). Every layer also turns
# off JupyterLab's news and update check in the virtualenv (see below).
set -eu
recipe=$1
export DEBIAN_FRONTEND=noninteractive
packages=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$recipe/debian-packages.txt" 2>/dev/null || true)
apt-get update
# shellcheck disable=SC2086 # one word per package
apt-get install -y --no-install-recommends ca-certificates python3 python3-venv $packages
update-ca-certificates
apt-get clean
rm -rf /var/lib/apt/lists/*
if [ ! -x /opt/notebook/bin/python3 ]; then
    python3 -m venv --system-site-packages /opt/notebook
fi
if [ -s "$recipe/requirements.txt" ]; then
    /opt/notebook/bin/pip install -r "$recipe/requirements.txt"
fi
# JupyterLab's announcements plugin asks every user on first start whether to fetch Jupyter
# news, and checks for new releases; both call out to the internet. Off for every user of
# the image: the plugin is disabled (labconfig/page_config.json) and its settings are
# overridden (lab/settings/overrides.json), merged into what the files already hold.
/opt/notebook/bin/python3 - /opt/notebook <<'PY'
import json
import sys
from pathlib import Path

prefix = Path(sys.argv[1])
settings = {
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
for name, wanted in settings.items():
    path = prefix / name
    data = json.loads(path.read_text()) if path.exists() else {}
    for key, value in wanted.items():
        data[key] = {**data.get(key, {}), **value}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
PY
if [ -f "$recipe/post-install.sh" ]; then
    sh "$recipe/post-install.sh"
fi
