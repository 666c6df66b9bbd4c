#!/bin/sh
# Installs one recipe directory into the image being built:
#   debian-packages.txt  Debian packages (one a line, # comments), the fastest way to the
#                        scientific stack and needs no PyPI
#   requirements.txt     PyPI packages for the notebook virtualenv /opt/notebook, pinned;
#                        ${JUPYTERHUB_VERSION} is replaced by the build argument
#   post-install.sh      optional: run last (e.g. register a kernel)
# The virtualenv sees Debian's packages (--system-site-packages).
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
if [ -f "$recipe/post-install.sh" ]; then
    sh "$recipe/post-install.sh"
fi
