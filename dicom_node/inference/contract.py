"""Matching the contract the node is configured with against the one a model serves.

Both backends go through `resolve_contract`: the embedded models with their own
contract, Triton with the one read from its model metadata.  Whatever the
configuration leaves unset is taken from the served model; whatever it sets must
agree, or the job fails with a message naming the tensor and both shapes/dtypes.
"""

from __future__ import annotations

from dicom_node.inference.base import ContractMismatch, ModelContract, TensorSpec
from dicom_node.inference.settings import ModelSettings

UNSET_NAME = ""
UNSET_DIMS: tuple[int, ...] = ()
UNSET_DTYPE = ""


def configured_contract(settings: ModelSettings) -> ModelContract:
    """The contract as configured, with unset names/dims/dtypes as empty values to fill from the model."""
    return ModelContract(
        name=settings.model_name,
        version=settings.model_version,
        inputs=(
            TensorSpec(settings.input_name or UNSET_NAME, settings.input_dims or UNSET_DIMS,
                       settings.input_dtype or UNSET_DTYPE),
        ),
        outputs=(
            TensorSpec(settings.output_name or UNSET_NAME, settings.output_dims or UNSET_DIMS,
                       settings.output_dtype or UNSET_DTYPE),
        ),
        class_names=settings.class_names,
    )


def resolve_contract(configured: ModelContract, served: ModelContract, where: str) -> ModelContract:
    """Fill the configured contract's gaps from the served one; raise ContractMismatch where they disagree.

    `where` names the model's location in messages (e.g. "Triton at grpc://host:8001").
    """
    label = f"model {served.name!r} version {served.version or '?'} ({where})"
    inputs = tuple(_resolve_tensor("input", want, served.inputs, label) for want in configured.inputs)
    outputs = tuple(_resolve_tensor("output", want, served.outputs, label) for want in configured.outputs)
    return ModelContract(
        name=served.name,
        version=served.version,
        inputs=inputs,
        outputs=outputs,
        class_names=configured.class_names or served.class_names,
    )


def _resolve_tensor(kind: str, want: TensorSpec, served: tuple[TensorSpec, ...], label: str) -> TensorSpec:
    names = [spec.name for spec in served]
    if want.name == UNSET_NAME:
        if len(served) != 1:
            raise ContractMismatch(f"{label} has {len(served)} {kind}s {names}: configure the {kind} name")
        have = served[0]
    else:
        matches = [spec for spec in served if spec.name == want.name]
        if not matches:
            raise ContractMismatch(f"{label} has no {kind} {want.name!r}; its {kind}s are {names}")
        have = matches[0]

    dims = _merge_dims(want.dims, have.dims)
    if dims is None:
        raise ContractMismatch(
            f"{kind} {have.name!r}: expected shape {list(want.dims)}, {label} has shape {list(have.dims)}"
        )
    if want.dtype not in (UNSET_DTYPE, have.dtype):
        raise ContractMismatch(f"{kind} {have.name!r}: expected dtype {want.dtype}, {label} has dtype {have.dtype}")
    return TensorSpec(have.name, dims, have.dtype)


def _merge_dims(want: tuple[int, ...], have: tuple[int, ...]) -> tuple[int, ...] | None:
    """The more specific of two compatible shapes (-1 = any size), or None when they cannot agree."""
    if want == UNSET_DIMS:
        return have
    if len(want) != len(have):
        return None
    merged = []
    for w, h in zip(want, have, strict=True):
        if -1 not in (w, h) and w != h:
            return None
        merged.append(h if w == -1 else w)
    return tuple(merged)
