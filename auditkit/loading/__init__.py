"""Loading a model file: sniff its format, check it (``safety``), load it per format, hand back
an object the adapters wrap.

The public names (``load_model``, ``save_model``, ``ModelMetadata``) are re-exported here; the
rooms below hold the flow, one step each.
"""

from auditkit.loading.load import inspect_file, load_model
from auditkit.loading.metadata import (
    METADATA_NAME,
    LoadedModel,
    MetadataError,
    ModelMetadata,
    sha256_file,
    weights_sha256,
)
from auditkit.loading.save import save_model
from auditkit.loading.sniff import (
    FORMAT_EXPORT,
    FORMAT_LEGACY_PICKLE,
    FORMAT_SAFETENSORS,
    FORMAT_TORCH_SAVE,
    FORMAT_TORCHSCRIPT,
    sniff_format,
)
from auditkit.loading.torch_formats import FORMAT_LOADERS, build_arch

__all__ = [
    "FORMAT_EXPORT",
    "FORMAT_LEGACY_PICKLE",
    "FORMAT_LOADERS",
    "FORMAT_SAFETENSORS",
    "FORMAT_TORCHSCRIPT",
    "FORMAT_TORCH_SAVE",
    "METADATA_NAME",
    "LoadedModel",
    "MetadataError",
    "ModelMetadata",
    "build_arch",
    "inspect_file",
    "load_model",
    "save_model",
    "sha256_file",
    "sniff_format",
    "weights_sha256",
]
