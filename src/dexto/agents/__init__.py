"""Bundled agent files and their upgrade-safe installation (SPEC §9).

The YAML files beside this module are the bundled agents. ``dexto.agents.manager`` installs them
under ``$DEXTO_HOME/agents/<id>/<id>.yml`` and records each one's ``bundledHash`` in
``agents/registry.json`` so that updates replace only copies the user has not modified.
"""
