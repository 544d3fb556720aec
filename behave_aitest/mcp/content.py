"""MCP content blocks -> what the model reads (text, image parts) and what the report shows.

A tool result, a prompt message or a resource is a list of content blocks (text, image,
audio, embedded resource, resource link). The model gets text for all of them, keeping
the URI, name, MIME type and size of resources, so it can ask for a resource by URI;
images also travel as image parts when the model can see them (see engine.py). The
record keeps one small dict per block for the report: images with their data (bounded,
for a thumbnail), the rest described.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Images larger than this (base64 characters) are described in the record, not kept:
# the report must stay a reasonable size (it inlines thumbnails as data URIs).
MAX_IMAGE_CHARS = 300_000


@dataclass
class ContentView:
    """One result as the model and the report see it."""

    text: str = ""
    images: list[dict[str, str]] = field(default_factory=list)  # {"mime_type", "data"} for image parts
    items: list[dict[str, Any]] = field(default_factory=list)  # one per block, for the record


def _size(data: str | None) -> int:
    return len(data or "") * 3 // 4


def _resource_attributes(obj: Any, size: int | None = None) -> str:
    """``uri=… name=… mimeType=… size=…`` of a resource (only what is known)."""
    parts = [f"uri={getattr(obj, 'uri', '')}"]
    for label, attr in (("name", "name"), ("title", "title"), ("mimeType", "mime_type")):
        value = getattr(obj, attr, None)
        if value:
            parts.append(f"{label}={value}")
    size = getattr(obj, "size", None) if size is None else size
    if size is not None:
        parts.append(f"size={size}")
    return " ".join(parts)


def block_view(block: Any) -> tuple[str, dict[str, Any], dict[str, str] | None]:
    """(text for the model, record item, image part or None) of one content block."""
    kind = getattr(block, "type", "")
    if kind == "text":
        return block.text, {"type": "text", "size": len(block.text)}, None
    if kind in ("image", "audio"):
        data = getattr(block, "data", "") or ""
        mime = getattr(block, "mime_type", None) or "?"
        item: dict[str, Any] = {"type": kind, "mime_type": mime, "size": _size(data)}
        image = None
        if kind == "image":
            if len(data) <= MAX_IMAGE_CHARS:
                item["data"] = data
            image = {"mime_type": mime, "data": data}
        return f"[{kind}: {mime}, about {_size(data)} bytes]", item, image
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        blob = getattr(resource, "blob", None)
        size = len(text) if text is not None else _size(blob)
        item = {"type": "resource", "uri": str(resource.uri), "mime_type": getattr(resource, "mime_type", None), "size": size}
        head = f"[embedded resource {_resource_attributes(resource, size)}]"
        if text is not None:
            return f"{head}\n{text}", item, None
        return f"{head} (binary content, not shown)", item, None
    if kind == "resource_link":
        item = {"type": "resource_link", "uri": str(block.uri), "name": block.name, "mime_type": getattr(block, "mime_type", None)}
        description = getattr(block, "description", None)
        tail = f": {description}" if description else ""
        return f"[resource link {_resource_attributes(block)}]{tail}", item, None
    return str(block), {"type": str(kind or type(block).__name__)}, None


def blocks_view(blocks: Any) -> ContentView:
    """Every block of a list, in order."""
    view = ContentView()
    texts: list[str] = []
    for block in blocks or []:
        text, item, image = block_view(block)
        texts.append(text)
        view.items.append(item)
        if image is not None:
            view.images.append(image)
    view.text = "\n".join(texts)
    return view


def result_view(result: Any) -> ContentView:
    """A ``CallToolResult``: its blocks; structured content alone is shown as JSON."""
    view = blocks_view(getattr(result, "content", None))
    structured = getattr(result, "structured_content", None)
    if not view.text and structured is not None:
        view.text = json.dumps(structured, ensure_ascii=False)
    return view


def structured_for_record(value: Any) -> Any:
    """A tool's ``structuredContent`` as the record keeps it: any text longer than
    :data:`MAX_IMAGE_CHARS` (an image's base64 repeated there) is described, not kept, by the
    limit the image blocks follow; the model still gets the result whole."""
    if isinstance(value, str):
        return value if len(value) <= MAX_IMAGE_CHARS else f"[{len(value)} characters, not kept: over the report's limit of {MAX_IMAGE_CHARS}]"
    if isinstance(value, dict):
        return {k: structured_for_record(v) for k, v in value.items()}
    if isinstance(value, list):
        return [structured_for_record(v) for v in value]
    return value


def resource_contents_text(contents: Any) -> str:
    """The text of a ``resources/read`` answer: each part with its URI and type."""
    parts = []
    for part in contents or []:
        text = getattr(part, "text", None)
        head = f"[resource {_resource_attributes(part, len(text) if text is not None else _size(getattr(part, 'blob', None)))}]"
        parts.append(f"{head}\n{text}" if text is not None else f"{head} (binary content, not shown)")
    return "\n".join(parts)


def image_message(images: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """The user message that carries tool images to a vision model: an OpenAI-style
    ``image_url`` data URI per image (litellm translates it for each provider)."""
    from ..model.llm import TOOL_IMAGE_TEXT

    content: list[dict[str, Any]] = []
    for label, image in images:
        content.append({"type": "text", "text": f"{TOOL_IMAGE_TEXT}{label}:"})
        content.append({"type": "image_url", "image_url": {"url": f"data:{image['mime_type']};base64,{image['data']}"}})
    return {"role": "user", "content": content}
