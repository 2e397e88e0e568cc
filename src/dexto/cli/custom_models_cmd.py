"""``dexto models add`` / ``dexto models remove`` — custom models (SPEC §8.3).

``add`` validates the model, then (with ``--api-key``) stores the raw key in the auth store under
a reference name and writes only ``apiKeyRef`` to ``custom-models.json``. OpenRouter IDs are kept
exactly as typed and checked against the marketplace list: ``known``; ``unknown`` (a warning —
the model is still saved, since the list may lag behind new models); ``unverified`` when no list
is available (offline). Nothing here ever requires OPENROUTER_API_KEY: with Dexto credentials the
model is served via Dexto. ``remove`` also deletes a key that ``add`` stored for that model.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shlex
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["REF_PREFIX", "reference_name", "register_actions", "shared_key_warnings"]

REF_PREFIX = "custom-"
EFFORTS = ["none", "minimal", "low", "medium", "high", "xhigh"]


def register_actions(parser: argparse.ArgumentParser) -> None:
    """Add the optional ``add`` / ``remove`` sub-actions to the ``models`` parser."""
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")
    add = actions.add_parser("add", help="add (or --replace) a custom model")
    add.add_argument(
        "--provider",
        dest="cm_provider",
        required=True,
        help="openrouter, openai-compatible, litellm, glama, ollama, local, …",
    )
    add.add_argument(
        "--name",
        dest="cm_name",
        required=True,
        metavar="ID",
        help="the model ID, exactly as the provider names it",
    )
    add.add_argument("--base-url", help="API root (required for openai-compatible, litellm)")
    add.add_argument("--display-name")
    add.add_argument("--max-input-tokens", type=int, metavar="N")
    add.add_argument("--max-output-tokens", type=int, metavar="N")
    add.add_argument("--reasoning-effort", choices=EFFORTS)
    add.add_argument("--file-path", metavar="F", help="a .gguf file (provider local)")
    key = add.add_mutually_exclusive_group()
    key.add_argument("--api-key-env", metavar="VAR", help="read the key from this env variable")
    key.add_argument(
        "--api-key",
        metavar="KEY",
        help="store this key in the auth store ('-' reads stdin); only a "
        "reference is written to the models file",
    )
    add.add_argument("--replace", action="store_true", help="replace an existing model")
    add.add_argument("--json", dest="cm_json", action="store_true", help="print JSON")
    add.set_defaults(handler=run_add)
    rm = actions.add_parser("remove", help="remove a custom model")
    rm.add_argument("cm_name", metavar="NAME")
    rm.add_argument("--provider", dest="cm_provider", help="needed if the name is ambiguous")
    rm.add_argument("--json", dest="cm_json", action="store_true", help="print JSON")
    rm.set_defaults(handler=run_remove)


def reference_name(provider: str, name: str) -> str:
    """The auth-store name under which ``add --api-key`` keeps a model's key: a readable slug
    and a hash of the exact ``provider/name``, so names that differ only in case or punctuation
    (``Foo`` / ``foo``, ``org/m`` / ``org-m``) get different names."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", f"{provider}-{name}".lower()).strip("-._")
    digest = hashlib.sha256(f"{provider}/{name}".encode()).hexdigest()[:10]
    return (REF_PREFIX + slug)[: 63 - len(digest)].rstrip("-._") + "-" + digest


def _legacy_reference_name(provider: str, name: str) -> str:
    """The reference name earlier versions generated: the slug alone (``Foo`` and ``foo`` got
    the same one)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", f"{provider}-{name}".lower()).strip("-._")
    return (REF_PREFIX + slug)[:64].rstrip("-._")


def shared_key_warnings(models: Iterable[Any]) -> list[str]:
    """One warning per key reference that ``add`` generated for one model and that several
    models (different ``provider/name``) use; references named by the user may be shared."""
    users: dict[str, list[Any]] = {}
    for m in models:
        if m.apiKeyRef:
            users.setdefault(m.apiKeyRef, []).append(m)
    out: list[str] = []
    for ref, group in users.items():
        generated = {
            f(m.provider, m.name) for m in group for f in (reference_name, _legacy_reference_name)
        }
        if len(group) < 2 or ref not in generated:
            continue
        ids = [f"{m.provider}/{m.name}" for m in group]
        first = group[0]
        out.append(
            f"custom models {', '.join(ids)} share the stored key {ref!r}, which dexto made for "
            "one model (a key added for one replaced the other's); give each its own key: "
            f"`dexto models add --provider {first.provider} --name {shlex.quote(first.name)} "
            "… --api-key - "
            "--replace` (the same options as before), and the same for " + ", ".join(ids[1:])
        )
    return out


#: CustomModel field → the ``models add`` flag that sets it.
_FLAGS = {
    "name": "--name",
    "provider": "--provider",
    "baseURL": "--base-url",
    "displayName": "--display-name",
    "maxInputTokens": "--max-input-tokens",
    "maxOutputTokens": "--max-output-tokens",
    "reasoningEffort": "--reasoning-effort",
    "filePath": "--file-path",
    "apiKeyEnv": "--api-key-env",
    "apiKeyRef": "--api-key",
}


def _build(ns: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from dexto.config.custom_models import NEW_ENTRY, CustomModel, check_custom_model_provider
    from dexto.errors import ConfigError
    from dexto.llm.providers import PROVIDERS

    provider = check_custom_model_provider(ns.cm_provider)
    if PROVIDERS[provider].requires_base_url and not ns.base_url:
        raise ConfigError(
            f"provider {provider} needs the API root of your server",
            field="--base-url",
            fix="pass --base-url URL, e.g. --base-url http://localhost:4000/v1",
        )
    fields = {
        "name": ns.cm_name,
        "provider": provider,
        "baseURL": ns.base_url,
        "displayName": ns.display_name,
        "maxInputTokens": ns.max_input_tokens,
        "maxOutputTokens": ns.max_output_tokens,
        "reasoningEffort": ns.reasoning_effort,
        "filePath": ns.file_path,
        "apiKeyEnv": ns.api_key_env,
    }
    try:
        model = CustomModel.model_validate(
            {k: v for k, v in fields.items() if v is not None}, context={NEW_ENTRY: True}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        flag = _FLAGS.get(loc[0]) if loc else None
        message = first["msg"].removeprefix("Value error, ")
        if flag is None and "filePath" in message:
            flag = "--file-path"
        raise ConfigError(
            message,
            field=flag or (".".join(loc) or None),
            fix=f"correct {flag} and run the command again"
            if flag
            else "correct the arguments (see `dexto models add --help`)",
        ) from None
    if ns.api_key is not None:
        model = model.model_copy(update={"apiKeyRef": reference_name(model.provider, model.name)})
    return model


def _marketplace_status(model: Any, paths: Any) -> str | None:
    if model.provider != "openrouter":
        return None
    from dexto.llm.marketplace import refresh_marketplace

    return refresh_marketplace(paths).status(model.name)


def _route(model: Any, paths: Any) -> str:
    import logging

    from dexto.errors import DextoError
    from dexto.llm.context import build_context
    from dexto.llm.routing import decide
    from dexto.llm.selection import Selection

    try:
        ctx, _ = build_context(paths=paths)
        return decide(Selection(model.provider, model.name), ctx).route
    except DextoError as err:  # e.g. no credentials yet: reported as "route: none yet"
        logging.getLogger(__name__).debug("no route for %s/%s: %s", model.provider, model.name, err)
        return "none"
    except Exception as exc:  # the route is advisory here; saving never depends on it
        logging.getLogger(__name__).warning(
            "could not decide the route for %s/%s: %s: %s",
            model.provider,
            model.name,
            type(exc).__name__,
            exc,
        )
        return "none"


def run_add(ns: argparse.Namespace) -> int:
    from dexto.cli._output import print_error, print_json
    from dexto.config.paths import DextoPaths
    from dexto.errors import DextoError

    paths = DextoPaths.from_env()
    try:
        model = _build(ns)
        ref = model.apiKeyRef
        _check_duplicate(paths, model, ns.replace, own_key_ref=ref is not None)
        old_ref = _current_ref(paths, model)
        status = _marketplace_status(model, paths)
        if ref is not None:
            _store_key(paths, ref, ns.api_key, model.provider)
        from dexto.config.custom_models import add_custom_model

        replaced = add_custom_model(
            paths.custom_models, model, replace=ns.replace, own_key_ref=ref is not None
        )
        if replaced and old_ref != ref:
            _remove_unused_key(paths, old_ref)
    except DextoError as err:
        return print_error(err, as_json=ns.cm_json)
    route = _route(model, paths)
    if ns.cm_json:
        print_json(
            {"model": _shown(model), "replaced": replaced, "marketplace": status, "route": route}
        )
        return 0
    print(
        f"{'replaced' if replaced else 'added'} {model.provider}/{model.name} "
        f"in {paths.custom_models}"
    )
    _explain(status, route, model)
    return 0


def _shown(model: Any) -> dict[str, Any]:
    """The model's JSON with the password in its baseURL (if any) replaced by ``***``."""
    from dexto._url import redact_url

    out: dict[str, Any] = model.to_json()
    if "baseURL" in out:
        out["baseURL"] = redact_url(out["baseURL"])
    return out


def _current_ref(paths: Any, model: Any) -> str | None:
    """The key reference of the saved entry that ``model`` would replace (None if none); the
    entry may be invalid (``--replace`` repairs it), so the file is read as plain JSON."""
    import json

    try:
        data = json.loads(paths.custom_models.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    entries = data.get("models") if isinstance(data, dict) else None
    for raw in entries if isinstance(entries, list) else []:
        if (
            isinstance(raw, dict)
            and raw.get("name") == model.name
            and raw.get("provider") == model.provider
            and isinstance(raw.get("apiKeyRef"), str)
        ):
            return str(raw["apiKeyRef"])
    return None


def _remove_unused_key(paths: Any, ref: str | None) -> None:
    """Delete the stored key ``ref`` when ``add`` made it (``custom-…``) and no model uses it."""
    from dexto.auth.store import remove_entry
    from dexto.config.custom_models import load_custom_models

    if not ref or not ref.startswith(REF_PREFIX):
        return
    if all(m.apiKeyRef != ref for m in load_custom_models(paths.custom_models)):
        remove_entry(paths.auth, ref)


def _check_duplicate(paths: Any, model: Any, replace: bool, *, own_key_ref: bool) -> None:
    """Refuse before anything is stored (a key, the marketplace lookup) when ``add`` would."""
    from dexto.config.custom_models import check_addable

    check_addable(paths.custom_models, model, replace=replace, own_key_ref=own_key_ref)


def _store_key(paths: Any, ref: str, raw: str, provider: str) -> None:
    from dexto.auth.login import check_key_format
    from dexto.auth.store import ApiEntry, set_entry
    from dexto.llm.providers import PROVIDERS

    key = check_key_format(sys.stdin.readline() if raw == "-" else raw, PROVIDERS[provider])
    set_entry(paths.auth, ref, ApiEntry(type="api", key=key))


def _explain(status: str | None, route: str, model: Any) -> None:
    notes = {
        "known": "found in the marketplace list",
        "unknown": "warning: not in the marketplace list — saved anyway; check the ID "
        "(refresh the list with `dexto models --refresh`)",
        "unverified": "unverified: no marketplace list available (offline?) — saved anyway",
    }
    if status is not None:
        print(
            f"  marketplace: {notes[status]}", file=sys.stderr if status != "known" else sys.stdout
        )
    if route == "dexto":
        print("  route: via Dexto credits (no provider key needed)")
    elif route == "direct":
        print("  route: direct, with your own key")
    else:
        if model.apiKeyEnv:
            hint = f"export {model.apiKeyEnv}=<your key> (the variable this model reads)"
        elif model.provider == "openrouter":
            hint = "run `dexto login`, or set OPENROUTER_API_KEY"
        else:
            hint = "add a key with --api-key / --api-key-env, or `dexto auth set`"
        if model.provider == "local":  # no credential helps: dexto has no GGUF runtime
            from dexto.llm.providers import get_provider
            from dexto.llm.routing import not_runnable_fix

            hint = not_runnable_fix(get_provider("local")) or hint
        print(f"  route: none yet — {hint}")


def run_remove(ns: argparse.Namespace) -> int:
    from dexto.auth.store import remove_entry
    from dexto.cli._output import print_error, print_json
    from dexto.config.custom_models import load_custom_models, remove_custom_model
    from dexto.config.paths import DextoPaths
    from dexto.errors import DextoError

    paths = DextoPaths.from_env()
    try:
        removed = remove_custom_model(paths.custom_models, ns.cm_name, ns.cm_provider)
        ref = removed.apiKeyRef
        key_removed = False
        if (
            ref
            and ref.startswith(REF_PREFIX)
            and all(m.apiKeyRef != ref for m in load_custom_models(paths.custom_models))
        ):
            key_removed = remove_entry(paths.auth, ref)
    except DextoError as err:
        return print_error(err, as_json=ns.cm_json)
    if ns.cm_json:
        print_json({"removed": removed.to_json(), "keyRemoved": key_removed})
    else:
        print(
            f"removed {removed.provider}/{removed.name}"
            + (f" and its stored key {ref}" if key_removed else "")
        )
    return 0
