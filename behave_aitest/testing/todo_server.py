"""A to-do list as an MCP server ("todo"): add, list, complete and delete tasks.

Tasks live in named lists ("inbox" by default; a list exists as soon as a task is added
to it) and have a priority: low, normal or high. Task ids are ``task-1``, ``task-2``, ...
in order of creation and are never reused. State lives in memory for the life of the
process.

Run it with ``python -m behave_aitest.testing.todo_server [--transport stdio|streamable-http|sse]
[--host 127.0.0.1] [--port N]``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from behave_aitest.testing._serve import run, text_tool

PRIORITIES: tuple[str, ...] = ("low", "normal", "high")
DEFAULT_LIST = "inbox"


@dataclass
class Task:
    """One task."""

    id: str
    title: str
    list_name: str
    priority: str = "normal"
    done: bool = False

    def describe(self) -> str:
        box = "[x]" if self.done else "[ ]"
        return f"{box} {self.id}: {self.title} (priority: {self.priority})"


class TodoStore:
    """The in-memory state of one todo server process."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self._next = 1

    @staticmethod
    def _list_name(name: str) -> str:
        key = name.strip().lower()
        if not key:
            raise ToolError("The list name must not be empty.")
        return key

    def _task(self, task_id: str) -> Task:
        key = task_id.strip().lower()
        if key.isdigit():  # "3" means "task-3"
            key = f"task-{key}"
        task = self.tasks.get(key)
        if task is None:
            known = ", ".join(self.tasks) or "none yet"
            raise ToolError(f"Unknown task id '{task_id}'. Existing task ids: {known}")
        return task

    def add_task(self, title: str, list_name: str = DEFAULT_LIST, priority: str = "normal") -> str:
        title = title.strip()
        if not title:
            raise ToolError("The task title must not be empty.")
        level = priority.strip().lower()
        if level not in PRIORITIES:
            raise ToolError(f"Unknown priority '{priority}'. Use one of: {', '.join(PRIORITIES)}")
        task = Task(id=f"task-{self._next}", title=title, list_name=self._list_name(list_name), priority=level)
        self._next += 1
        self.tasks[task.id] = task
        return f"Added {task.id}: {task.title} (list: {task.list_name}, priority: {task.priority})"

    def list_tasks(self, list_name: str = DEFAULT_LIST, include_done: bool = False) -> str:
        name = self._list_name(list_name)
        shown = [t for t in self.tasks.values() if t.list_name == name and (include_done or not t.done)]
        if not shown:
            kind = "tasks" if include_done else "open tasks"
            others = sorted({t.list_name for t in self.tasks.values()} - {name})
            hint = f" Other lists: {', '.join(others)}." if others else ""
            return f"No {kind} in list '{name}'.{hint}"
        kind = "task(s)" if include_done else "open task(s)"
        return "\n".join([f"{len(shown)} {kind} in list '{name}':", *(t.describe() for t in shown)])

    def complete_task(self, task_id: str) -> str:
        task = self._task(task_id)
        if task.done:
            return f"{task.id} was already completed: {task.title}"
        task.done = True
        return f"Completed {task.id}: {task.title}"

    def delete_task(self, task_id: str) -> str:
        task = self._task(task_id)
        del self.tasks[task.id]
        return f"Deleted {task.id}: {task.title}"


def create_server() -> MCPServer:
    """A new todo server with its own, empty state."""
    store = TodoStore()
    server = MCPServer("todo", instructions="A to-do list manager: add tasks to lists, list them, complete or delete them.")
    tool = text_tool(server)

    # The tool parameter is called ``list`` (what the model sees); it shadows the builtin
    # inside these two functions only.
    @tool
    def add_task(title: str, list: str = DEFAULT_LIST, priority: str = "normal") -> str:  # noqa: A002
        """Add a task to a to-do list and return its id.

        Args:
            title: What needs doing, e.g. "Buy milk".
            list: The list to add the task to (default "inbox"); a new name creates a new list.
            priority: "low", "normal" (default) or "high".
        """
        return store.add_task(title, list, priority)

    @tool
    def list_tasks(list: str = DEFAULT_LIST, include_done: bool = False) -> str:  # noqa: A002
        """List the tasks of a to-do list with their ids, oldest first.

        Args:
            list: The list to show (default "inbox").
            include_done: Also show completed tasks (default false: open tasks only).
        """
        return store.list_tasks(list, include_done)

    @tool
    def complete_task(task_id: str) -> str:
        """Mark a task as done.

        Args:
            task_id: The task's id as returned by add_task or list_tasks, e.g. "task-3".
        """
        return store.complete_task(task_id)

    @tool
    def delete_task(task_id: str) -> str:
        """Delete a task permanently.

        Args:
            task_id: The task's id as returned by add_task or list_tasks, e.g. "task-3".
        """
        return store.delete_task(task_id)

    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m behave_aitest.testing.todo_server --help``."""
    return run(create_server(), argv, prog="python -m behave_aitest.testing.todo_server")


if __name__ == "__main__":
    sys.exit(main())
