"""FetchXML sync and upload filters: a frozen model with parse, validate, render, summarize, evaluate.

Pure Python (no Qt, no HTTP, no database). Parsing is hardened with defusedxml: DTDs, entity
declarations and external references are refused, so an XML bomb is rejected, never expanded.
An empty string means "no filter" (all records) and parses to ``NO_FILTER``.
"""

from __future__ import annotations

from crmsync_desktop.sync.filters.evaluate import (
    EvaluationContext,
    can_evaluate_locally,
    evaluate,
    like_regex,
    local_evaluation_blockers,
)
from crmsync_desktop.sync.filters.model import (
    NO_FILTER,
    Condition,
    FetchFilter,
    FilterGroup,
    FilterType,
    LinkEntity,
    LinkType,
    Order,
)
from crmsync_desktop.sync.filters.operators import (
    LOCAL_OPERATORS,
    OPERATORS,
    Arity,
    AttributeType,
    OperatorSpec,
    TypeFamily,
)
from crmsync_desktop.sync.filters.parser import MAX_FILTER_CHARS, MAX_NESTING_DEPTH, parse_filter
from crmsync_desktop.sync.filters.render import render_filter, summarize_filter
from crmsync_desktop.sync.filters.validate import (
    AttributeInfo,
    FilterMetadata,
    FilterProblem,
    MetadataMap,
    as_metadata,
    validate_filter,
)

__all__ = [
    "LOCAL_OPERATORS",
    "MAX_FILTER_CHARS",
    "MAX_NESTING_DEPTH",
    "NO_FILTER",
    "OPERATORS",
    "Arity",
    "AttributeInfo",
    "AttributeType",
    "Condition",
    "EvaluationContext",
    "FetchFilter",
    "FilterGroup",
    "FilterMetadata",
    "FilterProblem",
    "FilterType",
    "LinkEntity",
    "LinkType",
    "MetadataMap",
    "OperatorSpec",
    "Order",
    "TypeFamily",
    "as_metadata",
    "can_evaluate_locally",
    "evaluate",
    "like_regex",
    "local_evaluation_blockers",
    "parse_filter",
    "render_filter",
    "summarize_filter",
    "validate_filter",
]
