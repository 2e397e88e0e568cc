"""Translation of an OpenAI Responses API request into a chat-completions request (no I/O).

``to_chat(doc)`` returns the chat-completions request, or names the field that cannot be
translated.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps_compact_text", "to_chat"]

# Responses request fields copied to the chat request under the same name.
_SAME = ("model", "temperature", "top_p", "parallel_tool_calls", "user", "stream")
# Dexto / OpenRouter extensions passed through untouched.
_PASSTHROUGH = ("fake", "provider", "models", "transforms", "usage", "top_k", "seed")
_UNSUPPORTED = {
    "previous_response_id": "the gateway stores no responses; send the whole conversation "
    "in 'input'",
    "conversation": "the gateway stores no conversations; send the whole conversation in 'input'",
    "background": "background responses are not supported; omit 'background'",
}


# Request fields the Response object echoes (responses_wire._shell): encoded again in the answer,
# one level deeper in a stream's events, so their nesting is bounded well below the encoder's.
_ECHOED = ("text", "tools", "tool_choice", "metadata", "reasoning")
MAX_ECHO_DEPTH = 128


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists/objects more than ``limit`` levels (iteratively)."""
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, dict):
            node = list(node.values())
        elif not isinstance(node, list):
            continue
        if depth == limit:
            return True
        todo.extend((child, depth + 1) for child in node)
    return False


def dumps_compact_text(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _content_parts(content: Any, where: str) -> tuple[str, Any]:
    """(problem, chat content) for one message's Responses ``content``."""
    if isinstance(content, str):
        return "", content
    if not isinstance(content, list):
        return f"'{where}.content' must be a string or an array.", None
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        assert kind is None or isinstance(part, dict)
        if kind in ("input_text", "output_text", "text", "refusal"):
            text = part.get("text", part.get("refusal"))
            if not isinstance(text, str):
                return f"'{where}.content[{j}].text' must be a string.", None
            parts.append({"type": "text", "text": text})
        elif kind == "input_image" and isinstance(part, dict):
            url = part.get("image_url")
            if not isinstance(url, str):
                return (
                    f"'{where}.content[{j}].image_url' must be a URL or data URL "
                    "(file_id is not supported).",
                    None,
                )
            image: dict[str, Any] = {"url": url}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and isinstance(part, dict):
            file = {k: part[k] for k in ("filename", "file_data") if isinstance(part.get(k), str)}
            if "file_data" not in file:
                return f"'{where}.content[{j}].file_data' is required for input_file.", None
            parts.append({"type": "file", "file": file})
        else:
            return (
                f"'{where}.content[{j}].type' {kind!r} is not supported; use input_text, "
                "input_image or input_file.",
                None,
            )
    return "", parts


def _input_messages(items: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            return f"'{where}' must be an object.", []
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                return f"'{where}.role' must be user, assistant, system or developer.", []
            problem, content = _content_parts(item.get("content"), where)
            if problem:
                return problem, []
            if role == "assistant" and isinstance(content, list):
                content = "".join(p.get("text", "") for p in content)
            messages.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "function_call":
            call_id, name, args = item.get("call_id"), item.get("name"), item.get("arguments")
            if not (isinstance(call_id, str) and isinstance(name, str) and isinstance(args, str)):
                return f"'{where}' needs string call_id, name and arguments.", []
            fn = {"name": name, "arguments": args}
            call = {"id": call_id, "type": "function", "function": fn}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str):
                return f"'{where}.call_id' must be a string.", []
            if not isinstance(output, str):
                output = dumps_compact_text(output)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            continue  # reasoning items are the model's own; chat completions has no slot for them
        else:
            return (
                f"'{where}.type' {kind!r} is not supported; use message, function_call or "
                "function_call_output.",
                [],
            )
    return "", messages


def _tools(tools: Any) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(tools, list):
        return "'tools' must be an array.", []
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            return (
                f"'tools[{i}].type' {kind!r} is not supported; only function tools are "
                "(built-in tools such as web_search run on OpenAI's servers).",
                [],
            )
        if not isinstance(tool.get("name"), str):
            return f"'tools[{i}].name' must be a string.", []
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
        out.append({"type": "function", "function": fn})
    return "", out


def to_chat(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(problem, chat request): problem is "" when ``doc`` translates."""
    for name, why in _UNSUPPORTED.items():
        if doc.get(name) not in (None, False):
            return f"'{name}' is not supported: {why}.", {}
    for name in _ECHOED:
        if _deeper_than(doc.get(name), MAX_ECHO_DEPTH):
            return (
                f"'{name}' is nested more than {MAX_ECHO_DEPTH} levels deep; the response echoes"
                " it and cannot carry it. Flatten it.",
                {},
            )
    chat: dict[str, Any] = {k: doc[k] for k in _SAME if doc.get(k) is not None}
    chat.update({k: doc[k] for k in _PASSTHROUGH if k in doc})
    messages: list[dict[str, Any]] = []
    instructions = doc.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            return "'instructions' must be a string.", {}
        messages.append({"role": "system", "content": instructions})
    raw_input = doc.get("input")
    if isinstance(raw_input, str):
        messages.append({"role": "user", "content": raw_input})
    elif isinstance(raw_input, list):
        problem, more = _input_messages(raw_input)
        if problem:
            return problem, {}
        messages.extend(more)
    else:
        return "'input' must be a string or an array of input items.", {}
    if not any(m["role"] != "system" for m in messages):
        return "'input' must contain at least one message.", {}
    chat["messages"] = messages
    if doc.get("tools"):
        problem, tools = _tools(doc["tools"])
        if problem:
            return problem, {}
        chat["tools"] = tools
    choice = doc.get("tool_choice")
    if isinstance(choice, str):
        chat["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        return "'tool_choice' must be auto, none, required or a function choice.", {}
    limit = doc.get("max_output_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            return "'max_output_tokens' must be a positive integer.", {}
        chat["max_tokens"] = limit
    fmt = doc.get("text", {}).get("format") if isinstance(doc.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    reasoning = doc.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning"] = {"effort": reasoning["effort"]}
    if chat.get("stream"):
        chat["stream_options"] = {"include_usage": True}
    return "", chat
