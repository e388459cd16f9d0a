"""POST /prompt validation: a port of validate_prompt / validate_inputs from ComfyUI v0.3.64 execution.py.

It returns the same tuple, (valid, error, good_outputs, node_errors), and mutates the prompt the
same way: scalars are coerced in place (INT->int, FLOAT->float, STRING->str, BOOLEAN->bool) and
`{"__value__": [...]}` wrappers are unwrapped, so the queued graph and the PNG `prompt` chunk
show the coerced values, as ComfyUI's do.
"""
from __future__ import annotations

import sys
import traceback
from typing import Any

from .graph import get_input_info
from .nodes import Catalog, NodeDef

Validated = dict[str, tuple[bool, list[dict], str]]


def full_type_name(klass: type) -> str:
    module = klass.__module__
    if module == "builtins":
        return klass.__qualname__
    return module + "." + klass.__qualname__


def validate_node_input(received_type: Any, input_type: Any) -> bool:
    """comfy_execution/validation.py: equal types, '*' wildcards, or overlapping comma unions."""
    if not received_type != input_type:
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    received = {t.strip() for t in received_type.split(",")}
    wanted = {t.strip() for t in input_type.split(",")}
    if "*" in received or "*" in wanted:
        return True
    return len(received & wanted) > 0


def _err(kind: str, message: str, details: str, **extra: Any) -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _validate_inputs(prompt: dict, unique_id: str, validated: Validated, registry: dict[str, NodeDef],
                     catalog: Catalog, visiting: set[str]) -> tuple[bool, list[dict], str]:
    if unique_id in validated:
        return validated[unique_id]
    if unique_id in visiting:
        # v0.3.64 has no cycle check here: it recurses until Python gives up. Raise what it would raise.
        raise RecursionError("maximum recursion depth exceeded")
    visiting.add(unique_id)
    try:
        return _validate_node(prompt, unique_id, validated, registry, catalog, visiting)
    finally:
        visiting.discard(unique_id)


def _validate_node(prompt: dict, unique_id: str, validated: Validated, registry: dict[str, NodeDef],
                   catalog: Catalog, visiting: set[str]) -> tuple[bool, list[dict], str]:
    inputs = prompt[unique_id]["inputs"]
    class_inputs = registry[prompt[unique_id]["class_type"]].input_types(catalog)
    declared = list(class_inputs.get("required", {})) + list(class_inputs.get("optional", {}))
    errors: list[dict] = []
    valid = True

    for x in declared:
        input_type, input_category, extra_info = get_input_info(class_inputs, x)
        assert extra_info is not None
        if x not in inputs:
            if input_category == "required":
                errors.append(_err("required_input_missing", "Required input is missing", f"{x}", input_name=x))
            continue

        val = inputs[x]
        info = (input_type, extra_info)
        if isinstance(val, list):
            if len(val) != 2:
                errors.append(_err("bad_linked_input",
                                   "Bad linked input, must be a length-2 list of [node_id, slot_index]", f"{x}",
                                   input_name=x, input_config=info, received_value=val))
                continue
            # A missing node or slot raises here, as in ComfyUI: the caller turns it into
            # exception_during_(inner_)validation with a traceback.
            o_id = val[0]
            received_type = registry[prompt[o_id]["class_type"]].return_types[val[1]]
            if not validate_node_input(received_type, input_type):
                errors.append(_err("return_type_mismatch", "Return type mismatch between linked nodes",
                                   f"{x}, received_type({received_type}) mismatch input_type({input_type})",
                                   input_name=x, input_config=info, received_type=received_type, linked_node=val))
                continue
            try:
                r = _validate_inputs(prompt, o_id, validated, registry, catalog, visiting)
                if r[0] is False:
                    valid = False  # the upstream node carries the reasons
                    continue
            except Exception as ex:
                typ, _, tb = sys.exc_info()
                valid = False
                validated[o_id] = (False, [_err(
                    "exception_during_inner_validation", "Exception when validating inner node", str(ex),
                    input_name=x, input_config=info, exception_message=str(ex),
                    exception_type=full_type_name(typ), traceback=traceback.format_tb(tb), linked_node=val)], o_id)
                continue
        else:
            try:
                if isinstance(val, dict) and "__value__" in val:
                    val = val["__value__"]
                    inputs[x] = val
                if input_type == "INT":
                    val = int(val)
                    inputs[x] = val
                if input_type == "FLOAT":
                    val = float(val)
                    inputs[x] = val
                if input_type == "STRING":
                    val = str(val)
                    inputs[x] = val
                if input_type == "BOOLEAN":
                    val = bool(val)
                    inputs[x] = val
            except Exception as ex:
                errors.append(_err("invalid_input_type", f"Failed to convert an input value to a {input_type} value",
                                   f"{x}, {val}, {ex}", input_name=x, input_config=info, received_value=val,
                                   exception_message=str(ex)))
                continue

            if "min" in extra_info and val < extra_info["min"]:
                errors.append(_err("value_smaller_than_min", f"Value {val} smaller than min of {extra_info['min']}",
                                   f"{x}", input_name=x, input_config=info, received_value=val))
                continue
            if "max" in extra_info and val > extra_info["max"]:
                errors.append(_err("value_bigger_than_max", f"Value {val} bigger than max of {extra_info['max']}",
                                   f"{x}", input_name=x, input_config=info, received_value=val))
                continue
            if isinstance(input_type, list) and val not in input_type:
                # Long lists (scanned model folders) are not echoed back.
                if len(input_type) > 20:
                    list_info, input_config = f"(list of length {len(input_type)})", None
                else:
                    list_info, input_config = str(input_type), info
                errors.append(_err("value_not_in_list", "Value not in list", f"{x}: '{val}' not in {list_info}",
                                   input_name=x, input_config=input_config, received_value=val))
                continue

    ret = (False, errors, unique_id) if errors or valid is not True else (True, [], unique_id)
    validated[unique_id] = ret
    return ret


def validate_prompt(prompt: dict, partial_execution_targets: list[str] | None, registry: dict[str, NodeDef],
                    catalog: Catalog) -> tuple[bool, dict | None, list[str], dict]:
    outputs: list[str] = []
    for x in prompt:
        if "class_type" not in prompt[x]:
            return (False, _err("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                                f"Node ID '#{x}'"), [], {})
        class_type = prompt[x]["class_type"]
        node = registry.get(class_type)
        if node is None:
            return (False, _err("invalid_prompt", f"Cannot execute because node {class_type} does not exist.",
                                f"Node ID '#{x}'"), [], {})
        if node.output_node and (partial_execution_targets is None or x in partial_execution_targets):
            outputs.append(x)

    if not outputs:
        return (False, _err("prompt_no_outputs", "Prompt has no outputs", ""), [], {})

    good_outputs: list[str] = []
    errors: list[tuple[str, list[dict]]] = []
    node_errors: dict[str, dict] = {}
    validated: Validated = {}
    for o in outputs:
        try:
            valid, reasons, _ = _validate_inputs(prompt, o, validated, registry, catalog, set())
        except Exception as ex:
            typ, _, tb = sys.exc_info()
            valid = False
            reasons = [_err("exception_during_validation", "Exception when validating node", str(ex),
                            exception_type=full_type_name(typ), traceback=traceback.format_tb(tb))]
            validated[o] = (False, reasons, o)

        if valid is True:
            good_outputs.append(o)
            continue
        errors.append((o, reasons))
        for node_id, (node_valid, node_reasons, _) in validated.items():
            # Downstream nodes of a broken one are invalid without reasons of their own: not reported.
            if node_valid is not True and node_reasons:
                if node_id not in node_errors:
                    node_errors[node_id] = {"errors": node_reasons, "dependent_outputs": [],
                                            "class_type": prompt[node_id]["class_type"]}
                node_errors[node_id]["dependent_outputs"].append(o)

    if not good_outputs:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, reasons in errors for e in reasons)
        return (False, _err("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
                good_outputs, node_errors)
    return (True, None, good_outputs, node_errors)
