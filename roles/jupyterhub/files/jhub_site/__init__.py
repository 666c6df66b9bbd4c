"""Site extensions of JupyterHub, installed by the jupyterhub role into the hub's virtualenv."""
