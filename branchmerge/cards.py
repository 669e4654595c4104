"""Dataset and model cards in the Hugging Face Hub's format, built with ``huggingface_hub``.

Every card branchmerge writes (curated datasets, trained branches, merged models) has its metadata
in ``CardData`` form, so the Hub reads ``base_model``, ``datasets``, ``tags``, the licence and
merge relations exactly as it does for TRL and mergekit outputs; the body is plain markdown.
"""

from __future__ import annotations

from typing import Any


def dataset_card(meta: dict[str, Any], body: str) -> str:
    """A dataset card (README.md of a dataset folder) with ``meta`` as its ``DatasetCardData``."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(**{k: v for k, v in meta.items() if v not in (None, [], {})})
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body.lstrip()}"))


def model_card(meta: dict[str, Any], body: str) -> str:
    """A model card (README.md of a model folder) with ``meta`` as its ``ModelCardData``."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(**{k: v for k, v in meta.items() if v not in (None, [], {})})
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.lstrip()}"))
