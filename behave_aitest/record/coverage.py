"""Tool coverage: which tools of the servers the agent used did it call, and how.

The denominator is every tool an agent was offered (the servers' ``tools/list`` after
``allowed_tools``), kept per scenario in ``ScenarioRecord.tools_offered`` by the runtime;
the numerator the tools called successfully at least once. Failed calls (every call that
ended in an error, a doubled one too: the same count as the header's tool errors), doubled
calls (answered by a tool double, not the server; never coverage) and schema parameters
never used are shown beside them.

The section is plain JSON (``coverage`` in the report) and keeps the raw counts and the used
parameter names, so that ``report merge`` can add the shards' sections up (:func:`merge`)
rather than averaging ratios. Pure functions: no model, no server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Section = dict[str, Any]


def _tool(name: str, params: Iterable[str]) -> dict[str, Any]:
    return {"name": name, "params": sorted(set(params)), "used_params": [], "calls": 0, "ok": 0, "failed": 0, "doubled": 0}


def section(records: Iterable[Any], minimum: float | None = None) -> Section:
    """The coverage section from scenario records (``scenario.aitest``); None records are skipped."""
    servers: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        if record is None:
            continue
        for server, tools in (getattr(record, "tools_offered", None) or {}).items():
            for name, params in tools.items():
                entry = servers.setdefault(server, {}).setdefault(name, _tool(name, params))
                entry["params"] = sorted(set(entry["params"]) | set(params))
        for turn in getattr(record, "turns", None) or []:
            for call in turn.tool_calls:
                if not call.server or not call.name:
                    continue  # refused or unknown: no server's tool was exercised
                entry = servers.setdefault(call.server, {}).setdefault(call.name, _tool(call.name, ()))
                _count(entry, call)
    return finish({s: list(t.values()) for s, t in servers.items()}, minimum)


def _count(entry: dict[str, Any], call: Any) -> None:
    entry["calls"] += 1
    if call.is_error:  # every call that ended in an error, as the header's tool errors count it
        entry["failed"] += 1
    if getattr(call, "doubled", False):  # a tool double answered: the server was not exercised
        entry["doubled"] += 1
        return
    if call.is_error:
        return
    entry["ok"] += 1
    if isinstance(call.arguments, dict):
        entry["used_params"] = sorted(set(entry["used_params"]) | {str(k) for k in call.arguments})


def finish(servers: Mapping[str, list[dict[str, Any]]], minimum: float | None) -> Section:
    """Derived numbers (per server and overall) from the per-tool counts."""
    rows = []
    offered = called = 0
    for server in sorted(servers):
        tools = sorted(servers[server], key=lambda t: t["name"])
        for tool in tools:
            tool["unused_params"] = [p for p in tool["params"] if p not in tool["used_params"]]
        done = [t["name"] for t in tools if t["ok"]]
        rows.append({
            "server": server,
            "offered": len(tools),
            "called": len(done),
            "ratio": round(len(done) / len(tools), 4) if tools else None,
            "never_called": [t["name"] for t in tools if not t["ok"]],
            "tools": tools,
        })
        offered += len(tools)
        called += len(done)
    ratio = round(called / offered, 4) if offered else None
    return {
        "offered": offered,
        "called": called,
        "ratio": ratio,
        "min_tool_coverage": minimum,
        "below_gate": minimum is not None and ratio is not None and ratio < minimum,
        "servers": rows,
    }


def merge(sections: Iterable[Mapping[str, Any] | None], minimum: float | None = None) -> Section | None:
    """One section from the shards' sections: tools united, counts added, used parameters united.

    ``minimum`` defaults to the first shard's ``min_tool_coverage``; None when no shard had one."""
    servers: dict[str, dict[str, dict[str, Any]]] = {}
    seen = False
    for part in sections:
        if not part:
            continue
        seen = True
        if minimum is None:
            minimum = part.get("min_tool_coverage")
        for row in part.get("servers", []):
            tools = servers.setdefault(str(row["server"]), {})
            for tool in row.get("tools", []):
                entry = tools.setdefault(tool["name"], _tool(tool["name"], ()))
                entry["params"] = sorted(set(entry["params"]) | set(tool.get("params", [])))
                entry["used_params"] = sorted(set(entry["used_params"]) | set(tool.get("used_params", [])))
                for key in ("calls", "ok", "failed", "doubled"):
                    entry[key] += int(tool.get(key, 0))
    if not seen:
        return None
    return finish({s: list(t.values()) for s, t in servers.items()}, minimum)


def gate_message(cov: Mapping[str, Any] | None) -> str | None:
    """The message of a run below ``min_tool_coverage``, naming the tools never called; else None."""
    if not cov or not cov.get("below_gate"):
        return None
    never = [f"{row['server']}.{name}" for row in cov["servers"] for name in row["never_called"]]
    return (
        f"tool coverage {cov['ratio']:.0%} ({cov['called']} of {cov['offered']} tools called successfully) is below "
        f"min_tool_coverage {cov['min_tool_coverage']:.0%}; never called: {', '.join(never)}."
    )


def scenario_records(features: Iterable[Any]) -> list[Any]:
    """The records of every scenario behave ran (``scenario.aitest``)."""
    return [getattr(s, "aitest", None) for f in features for s in f.walk_scenarios()]


def run_gate(features: Iterable[Any], minimum: float | None) -> str | None:
    """The gate over a whole run's behave features (None: no gate, or above it)."""
    if minimum is None:
        return None
    return gate_message(section(scenario_records(features), minimum))
