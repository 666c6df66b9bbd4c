"""condor_config_val with ClassAd evaluation, through HTCondor's Python bindings.

Reads a JSON request on stdin:

    {"config": "/etc/condor-jupyter/condor_config", "subsystem": "NEGOTIATOR",
     "params": ["NEGOTIATOR_JOB_CONSTRAINT", ...],
     "evaluate": {"name": {"expr": "NEGOTIATOR_JOB_CONSTRAINT", "my": {...}, "target": {...}}}}

loads the configuration as that subsystem would (CONDOR_CONFIG, set_subsystem,
reload_config) and prints {"params": {...}, "evaluate": {...}} as JSON. In the ads of
"my"/"target", a value {"knob": "NAME"} is the configuration value of NAME, parsed as a
ClassAd expression and evaluated; "expr" names the knob whose value is the expression.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main() -> None:
    request = json.load(sys.stdin)
    os.environ["CONDOR_CONFIG"] = request["config"]
    import classad2
    import htcondor2

    htcondor2.set_subsystem(request.get("subsystem", "TOOL"))
    htcondor2.reload_config()
    param = htcondor2.param

    def knob(name: str) -> Any:
        value = param.get(name)
        return None if value is None else str(value)

    def ad(spec: dict[str, Any]) -> classad2.ClassAd:
        out = classad2.ClassAd()
        for key, value in spec.items():
            if isinstance(value, dict) and "knob" in value:
                out[key] = classad2.ExprTree(knob(value["knob"])).eval()
            else:
                out[key] = value
        return out

    def plain(value: Any) -> Any:
        if isinstance(value, bool | int | float | str) or value is None:
            return value
        return str(value)

    result: dict[str, Any] = {"params": {}, "evaluate": {}}
    for name in request.get("params", []):
        result["params"][name] = knob(name)
    for name, spec in request.get("evaluate", {}).items():
        expression = classad2.ExprTree(knob(spec["expr"]))
        my, target = ad(spec.get("my", {})), ad(spec.get("target", {}))
        result["evaluate"][name] = plain(expression.eval(my, target))
    json.dump(result, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
