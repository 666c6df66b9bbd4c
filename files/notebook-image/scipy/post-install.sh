#!/bin/sh
# Register the Bash kernel in the notebook virtualenv (found by JupyterLab there).
set -eu
/opt/notebook/bin/python3 -m bash_kernel.install --sys-prefix
